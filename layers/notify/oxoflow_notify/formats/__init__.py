"""Render an event, or a digest of events, into the body a receiver expects. Pure functions: in, bytes out.

Each format's renderer is imported on its first use (cold start: a function that only sends ``json``
never imports the chat renderers); ``FORMATS`` and ``DIGEST_FORMATS`` are read-only mappings from
format name to renderer, in ``config.format_names.FORMAT_NAMES`` order, that import on lookup.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable, Iterator, Mapping
from typing import TYPE_CHECKING, Any, Generic, TypeVar, cast

from oxoflow_notify.config.format_names import FORMAT_NAMES

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

    from .common import STYLES, Style, facts

S = TypeVar("S")
DIGEST = "Digest"  # inbound.digests.DIGEST: a digest's ``event``, checked without importing the model

_PACKAGE = "oxoflow_notify.formats"
_EVENT_RENDERERS: dict[str, tuple[str, str]] = {  # format -> (module, function)
    "json": (f"{_PACKAGE}.json_event", "render_json"),
    "slack": (f"{_PACKAGE}.slack", "render_slack"),
    "teams": (f"{_PACKAGE}.teams", "render_teams"),
    "discord": (f"{_PACKAGE}.discord", "render_discord"),
    "text": (f"{_PACKAGE}.text", "render_text"),
    "oxoflow": ("oxoflow_notify.inbound.oxoflow", "render_oxoflow"),  # oxo-flow's own payload, for receivers written for oxo-flow
    "pagerduty": (f"{_PACKAGE}.pagerduty", "render_pagerduty"),  # Events API v2; the routing key is put in when sent
}
_DIGEST_RENDERERS: dict[str, tuple[str, str]] = {
    "json": (f"{_PACKAGE}.json_event", "render_json_digest"),
    "slack": (f"{_PACKAGE}.slack", "render_slack_digest"),
    "teams": (f"{_PACKAGE}.teams", "render_teams_digest"),
    "discord": (f"{_PACKAGE}.discord", "render_discord_digest"),
    "text": (f"{_PACKAGE}.text", "render_text_digest"),
    "oxoflow": (f"{_PACKAGE}.json_event", "render_json_digest"),  # oxo-flow has no digest shape: the json payload
    "pagerduty": (f"{_PACKAGE}.pagerduty", "render_pagerduty_digest"),  # refused by the config; readable if it came anyway
}


class Renderers(Mapping[str, Callable[[S], dict[str, Any]]], Generic[S]):
    """Format name -> renderer, the renderer's module imported on first lookup and kept."""

    def __init__(self, paths: dict[str, tuple[str, str]]) -> None:
        self._paths = paths
        self._loaded: dict[str, Callable[[S], dict[str, Any]]] = {}

    def __getitem__(self, name: str) -> Callable[[S], dict[str, Any]]:
        renderer = self._loaded.get(name)
        if renderer is None:
            module, function = self._paths[name]  # KeyError for an unknown format, as a dict's
            renderer = cast("Callable[[S], dict[str, Any]]", getattr(importlib.import_module(module), function))
            self._loaded[name] = renderer
        return renderer

    def __contains__(self, name: object) -> bool:  # without importing the renderer
        return name in self._paths

    def __iter__(self) -> Iterator[str]:
        return iter(self._paths)

    def __len__(self) -> int:
        return len(self._paths)

    def __repr__(self) -> str:
        return f"Renderers({list(self._paths)})"


FORMATS: Mapping[str, Callable[[Event], dict[str, Any]]] = Renderers(_EVENT_RENDERERS)
DIGEST_FORMATS: Mapping[str, Callable[[Digest], dict[str, Any]]] = Renderers(_DIGEST_RENDERERS)
for _renderers in (_EVENT_RENDERERS, _DIGEST_RENDERERS):  # config accepts FORMAT_NAMES without importing the renderers
    if tuple(_renderers) != FORMAT_NAMES:
        raise RuntimeError(f"formats renderers {tuple(_renderers)} do not match format_names.FORMAT_NAMES {FORMAT_NAMES}")

__all__ = ["DIGEST_FORMATS", "FORMATS", "STYLES", "Style", "facts", "render", "render_digest", "render_incident"]


def __getattr__(name: str) -> Any:
    """``STYLES``, ``Style`` and ``facts`` from ``common``, imported when first asked for."""
    if name in ("STYLES", "Style", "facts"):
        return getattr(importlib.import_module(f"{_PACKAGE}.common"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _encode(payload: dict[str, Any]) -> bytes:
    """Compact UTF-8 JSON, strict (no NaN or Infinity, which JSON does not have: ``allow_nan=False``
    raises rather than send a body receivers refuse)."""
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def render(subject: Event | Digest, fmt: str) -> bytes:
    """The exact body bytes to send (and to sign), for an event or a digest."""
    if subject.event == DIGEST:
        return render_digest(cast("Digest", subject), fmt)
    return _encode(FORMATS[fmt](cast("Event", subject)))


def render_incident(event: Event, routing_key: str, incident_per: str, severity: str | None) -> bytes:
    """A pagerduty webhook's body as sent: the Events API v2 event with its routing key in it."""
    from .pagerduty import payload

    return _encode(payload(event, routing_key, incident_per, severity))


def render_digest(digest: Digest, fmt: str) -> bytes:
    """A digest's body bytes: one message for all its events (``json`` and ``oxoflow``: its payload)."""
    return _encode(DIGEST_FORMATS[fmt](digest))
