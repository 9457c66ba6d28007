"""Render an event into the body a receiver expects. Pure functions: event in, bytes out."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oxoflow_notify.config.format_names import FORMAT_NAMES
from oxoflow_notify.inbound.oxoflow import render_oxoflow

from .common import STYLES, Style, facts
from .discord import render_discord
from .json_event import render_json
from .slack import render_slack
from .teams import render_teams
from .text import render_text

if TYPE_CHECKING:
    from oxoflow_notify.inbound.events import Event

FORMATS: dict[str, Callable[[Event], dict[str, Any]]] = {
    "json": render_json,
    "slack": render_slack,
    "teams": render_teams,
    "discord": render_discord,
    "text": render_text,
    "oxoflow": render_oxoflow,  # oxo-flow's own payload, for receivers written for oxo-flow
}
if tuple(FORMATS) != FORMAT_NAMES:  # config accepts FORMAT_NAMES without importing the renderers
    raise RuntimeError(f"formats.FORMATS {tuple(FORMATS)} does not match format_names.FORMAT_NAMES {FORMAT_NAMES}")

__all__ = ["FORMATS", "STYLES", "Style", "facts", "render"]


def render(event: Event, fmt: str) -> bytes:
    """The exact body bytes to send (and to sign): compact UTF-8 JSON, strict (no NaN or Infinity,
    which JSON does not have: ``allow_nan=False`` raises rather than send a body receivers refuse)."""
    payload = FORMATS[fmt](event)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")
