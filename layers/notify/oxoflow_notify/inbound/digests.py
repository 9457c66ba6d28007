"""A digest: the ``Rule*`` events of one run's window, for one webhook, as one delivery.

The model beside ``Event`` (``events``), because both are what a receiver is sent: the formats
render it, the delivery posts it, a retry message and a dead letter carry its payload back. How
windows open, count and close is the pipeline's (``pipeline.digest``, ``pipeline.windows``).

The payload is documented in ``events/digest.schema.json``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from .events import DIGEST_EVENT, RULE_EVENTS

DIGEST = DIGEST_EVENT  # the event name a digest goes out under (body, X-OxoFlow-Event, a retry message's event)
CLOSED_BY = ("timer", "workflow_end", "full")


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
