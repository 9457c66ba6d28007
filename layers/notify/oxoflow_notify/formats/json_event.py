"""``json``: the event as published, with defaults filled in (the seed's shape)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oxoflow_notify.inbound.events import Event


def render_json(event: Event) -> dict[str, Any]:
    return event.to_payload()
