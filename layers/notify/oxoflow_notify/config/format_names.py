"""The format names a webhook may choose, kept apart from the renderers so config parsing imports none."""

from __future__ import annotations

FORMAT_NAMES = ("json", "slack", "teams", "discord", "text", "oxoflow")  # formats.FORMATS renders each, in this order
DEFAULT_FORMAT = "json"
