"""A digest: the ``Rule*`` events of one run, for one webhook, within one window, as one delivery.

A webhook with ``digest = "2m"`` has its ``Rule*`` events grouped by (webhook, workflow, run id);
the first event of a group opens a window, and when the window closes its events go out as one
message (``windows`` keeps the state, ``notifier`` closes and sends). This module is the model
the renderers and the queues share: what a closed window says, its JSON payload (the ``json``
format's body, the retry message's and the dead letter's copy), and its stable ids.

The payload is documented in ``events/digest.schema.json``.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass, field
from typing import Any

from oxoflow_notify.inbound.events import RULE_EVENTS

from .retry import DIGEST_EVENT

DIGEST = DIGEST_EVENT  # the event name a digest goes out under (body and X-OxoFlow-Event)
KEEP_FAILED = 10  # RuleFailed events a window keeps in full
KEEP_OTHER = 10  # other Rule* events a window keeps in full
KEEP_EVENT_BYTES = 8_000  # a larger event is kept trimmed (its stderr's tail, its message's head)
# Kept events per window, in bytes: (KEEP_FAILED + KEEP_OTHER) x KEEP_EVENT_BYTES fits, so a window
# closes early only if these numbers are changed; items stay < 400 KB, payloads < SQS's 256 KiB.
WINDOW_BYTES = 160_000
STALE_AFTER = 60  # seconds past its duration: an open window whose close never came is closed by the next event
CLOSED_BY = ("timer", "workflow_end", "full")
_NAMESPACE = uuid.UUID("0e3c6a4d-1f0b-5a8e-8d2f-d16e57d16e57")


def group_of(config_key: str, webhook_id: str, workflow: str, run_id: str | None) -> str:
    """The window group: one per (webhook, workflow, run); the workflow alone when there is no run id."""
    text = f"{config_key}\n{webhook_id}\n{workflow}\n{run_id if run_id is not None else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def digest_delivery_id(group: str, window: int, opened: float) -> str:
    """One delivery id per window, whoever closes it and however often: the ledger sends it once.
    The opening time is part of it: a group whose windows expired starts again at window 1, and
    that new window 1 is a delivery of its own."""
    return str(uuid.uuid5(_NAMESPACE, f"{group}\n{window}\n{opened:.6f}"))


def kept_form(payload: dict[str, Any]) -> dict[str, Any]:
    """An event as a window keeps it: whole, unless it is larger than KEEP_EVENT_BYTES; then its
    stderr's tail and its message's head are kept, marked ``"trimmed": true``."""
    if size_of(payload) <= KEEP_EVENT_BYTES:
        return payload
    found = payload.get("details")
    details: dict[str, Any] = found if isinstance(found, dict) else {}
    kept: dict[str, Any] = {
        k: details[k]
        for k in ("exit_code", "duration_s", "duration_ms")
        if isinstance(details.get(k), (str, int, float, bool)) and size_of(details[k]) <= 64
    }
    if isinstance(details.get("stderr"), str):
        kept["stderr"] = details["stderr"][-3000:]
    trimmed = {**payload, "message": str(payload.get("message", ""))[:1000], "details": kept, "trimmed": True}
    if size_of(trimmed) > KEEP_EVENT_BYTES:  # long rule names or ids: keep the identity only
        trimmed = {k: (v[:512] if isinstance(v, str) else v) for k, v in trimmed.items() if k != "details"}
        trimmed["details"] = {k: v for k, v in kept.items() if k != "stderr"}
    return trimmed


def size_of(payload: Any) -> int:
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8"))


@dataclass(frozen=True)
class Digest:
    """A closed window, ready to render. ``events``: the kept events in full, the failed ones first."""

    id: str  # the window's delivery id
    workflow: str
    run_id: str | None
    opened: str  # RFC 3339, when the first event arrived
    closed: str  # RFC 3339, when the window closed
    seconds: float  # the webhook's digest duration
    closed_by: str  # one of CLOSED_BY
    counts: dict[str, int]  # per Rule* event name, only those that occurred
    events: tuple[dict[str, Any], ...] = ()
    total: int = 0
    window: int = 1  # the group's window number
    event: str = field(default=DIGEST, init=False)

    @property
    def left_out(self) -> int:
        return max(0, self.total - len(self.events))

    @property
    def failed(self) -> tuple[dict[str, Any], ...]:
        return tuple(e for e in self.events if e.get("event") == "RuleFailed")

    def to_payload(self) -> dict[str, Any]:
        """The documented digest body (``events/digest.schema.json``), in a fixed key order."""
        payload: dict[str, Any] = {
            "event": DIGEST,
            "id": self.id,
            "workflow": self.workflow,
            "run_id": self.run_id,
            "window": {
                "number": self.window,
                "opened": self.opened,
                "closed": self.closed,
                "seconds": self.seconds,
                "closed_by": self.closed_by,
            },
            "counts": {name: self.counts[name] for name in sorted(self.counts)},
            "total": self.total,
            "events": list(self.events),
            "left_out": self.left_out,
        }
        return payload


class DigestPayloadError(ValueError):
    pass


def digest_from_payload(payload: Any) -> Digest:
    """A digest back from its payload (a retry message's or a dead letter's copy)."""
    try:
        if not isinstance(payload, dict) or payload.get("event") != DIGEST:
            raise DigestPayloadError("not a digest payload")
        window = payload["window"]
        counts = {str(k): int(v) for k, v in payload["counts"].items() if k in RULE_EVENTS}
        events = tuple(e for e in payload["events"] if isinstance(e, dict))
        return Digest(
            id=str(payload["id"]),
            workflow=str(payload["workflow"]),
            run_id=None if payload.get("run_id") is None else str(payload["run_id"]),
            opened=str(window["opened"]),
            closed=str(window["closed"]),
            seconds=float(window["seconds"]),
            closed_by=str(window.get("closed_by", "timer")),
            counts=counts,
            events=events,
            total=int(payload["total"]),
            window=int(window.get("number", 1)),
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise DigestPayloadError(f"malformed digest payload: {type(exc).__name__}") from None
