"""The delivery log: one entry per attempt, whatever it came to (delivered, held, retrying,
dead-lettered, already delivered), so "did the lab's Slack get last night's failure, and if not
why?" is one query. Entries are gathered while an invocation settles its attempts and written once
at its end; a log that cannot be written never changes what was delivered (it is counted and
logged, and the delivery stands).

What an entry keeps of the request: the headers this system sets, with their values, and only the
names of the headers a webhook configures (their values may be credentials); never the URL. The
event itself is kept on an attempt's first posting (``EVENT_KEPT_MAX`` bytes at most), which is
what ``redeliver`` posts again and what ``deliveries show`` renders the body from.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from oxoflow_notify.outbound.delivery import Prepared

EVENT_KEPT_MAX = 16_384  # bytes of an event's compact JSON kept in its entry: larger ones are not kept (redeliver says so)
REDELIVERY_HEADER = "X-OxoFlow-Redelivery"  # set on a redelivery, as GitHub marks its redeliveries
# Headers this system sets (their values are not secret); a signature header's value is a MAC, not its key.
OWN_HEADERS = frozenset(
    {"content-type", "user-agent", "x-oxoflow-event", "x-oxoflow-delivery", "x-oxoflow-attempt", "x-oxoflow-signature",
     "x-hub-signature-256", "webhook-id", "webhook-timestamp", "webhook-signature", REDELIVERY_HEADER.lower()}
)  # fmt: skip
NOT_SHOWN = "(set by the webhook's config: not shown)"


@dataclass(frozen=True)
class Entry:
    """One attempt as the log keeps it. ``outcome``: delivered, already_delivered, held, retrying,
    dead_lettered. Times are unix seconds."""

    workflow: str
    delivery_id: str
    attempt: int
    at: float
    event_id: str
    event: str
    run_id: str | None
    webhook_id: str
    config_key: str
    format: str
    outcome: str
    status: int | None = None
    error: str | None = None
    reason: str = ""
    duration_ms: float | None = None
    next_attempt_at: float | None = None
    headers: dict[str, str] = field(default_factory=dict)
    payload: str | None = None  # the event's compact JSON, on a first posting (at most EVENT_KEPT_MAX bytes)
    redelivery: bool = False

    def as_dict(self) -> dict[str, Any]:
        """The entry as stored and printed (``None`` fields left out)."""
        data = {
            "workflow": self.workflow, "delivery_id": self.delivery_id, "attempt": self.attempt, "at": self.at,
            "event_id": self.event_id, "event": self.event, "run_id": self.run_id, "webhook_id": self.webhook_id,
            "config_key": self.config_key, "format": self.format, "outcome": self.outcome, "status": self.status,
            "error": self.error, "reason": self.reason, "duration_ms": self.duration_ms, "next_attempt_at": self.next_attempt_at,
            "headers": self.headers or None, "payload": self.payload, "redelivery": self.redelivery or None,
        }  # fmt: skip
        return {k: v for k, v in data.items() if v is not None and v != ""}


def shown_headers(prepared: Prepared) -> dict[str, str]:
    """The request's headers as the log shows them: ours with their values, the config's by name only."""
    configured = {name.lower() for name, _ in prepared.webhook.headers}
    return {
        name: value if name.lower() in OWN_HEADERS and name.lower() not in configured else NOT_SHOWN
        for name, value in prepared.headers.items()
    }


def kept_payload(payload: dict[str, Any]) -> str | None:
    """The event's compact JSON, or None when it is larger than the log keeps."""
    text = json.dumps(payload, separators=(",", ":"), ensure_ascii=False)
    return text if len(text.encode()) <= EVENT_KEPT_MAX else None


class DeliveryLog(Protocol):
    def write(self, entries: Sequence[Entry]) -> None:
        """Keep these entries (raises on an AWS fault: the caller counts it and goes on)."""
        ...


class NoDeliveryLog:
    """No table configured: nothing is kept."""

    def write(self, entries: Sequence[Entry]) -> None:
        return None
