"""``json``: the event as published, with defaults filled in (the seed's shape); a digest as its
documented payload (``events/digest.schema.json``), which the ``oxoflow`` format sends too: oxo-flow's
own receivers have no digest shape."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event


def render_json(event: Event) -> dict[str, Any]:
    return event.to_payload()


def render_json_digest(digest: Digest) -> dict[str, Any]:
    return digest.to_payload()
