"""Dead letters: one documented JSON shape for everything that could not be delivered.

They name the webhook by id, format and host; never by URL or secret.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.timestamps import format_timestamp

DEAD_LETTER_SCHEMA = "oxoflow-notify/dead-letter/v1"
RAW_MESSAGE_MAX = 200_000  # bytes kept of an unparseable message, well inside an SQS body
# Bytes kept of a message the functions failed on (internal_error), for replay: anything SNS or SQS
# can hand them (a letter over the queue's limit keeps its body in S3: aws.letters).
KEPT_WHOLE_MAX = 1_048_576

# reason codes
INVALID_EVENT = "invalid_event"
INVALID_CONFIG = "invalid_config"
INVALID_WEBHOOK = "invalid_webhook"
PERMANENT_FAILURE = "permanent_failure"
RETRIES_EXHAUSTED = "retries_exhausted"
WEBHOOK_REMOVED = "webhook_removed"
UNSUBSCRIBED = "unsubscribed"  # a pending retry whose webhook no longer subscribes to its event: replay to deliver anyway
MALFORMED_RETRY = "malformed_retry"
INTERNAL_ERROR = "internal_error"  # a surprise in our own code: the event or delivery is kept for replay
ENDPOINT_DISABLED = "endpoint_disabled"  # the webhook is disabled (no 2xx for its disable_after): replay once it is fixed
RETRY_FAULTED = "retry_faulted"  # an AWS fault on every receive the retry queue allows: the message is kept for replay
LIVE_FAILED = "live_failed"  # a live message's updates failed for good: replay resumes them (its timer is kept whole)
UNAUTHENTICATED_EVENT = "unauthenticated_event"  # not signed with its workflow's publish key: nothing delivered


def now_iso(now: float | None = None) -> str:
    return format_timestamp(datetime.fromtimestamp(time.time() if now is None else now, tz=UTC))


def webhook_ref(webhook: Webhook) -> dict[str, Any]:
    return {"id": webhook.id, "format": webhook.format, "host": webhook.host, "source": webhook.source}


def dead_letter(
    reason_code: str,
    reason: str,
    *,
    event: dict[str, Any] | None = None,
    raw_message: str | None = None,
    message_id: str | None = None,
    webhook: dict[str, Any] | None = None,
    delivery_id: str | None = None,
    attempts: list[dict[str, Any]] | None = None,
    now: float | None = None,
    raw_max: int = RAW_MESSAGE_MAX,
    received_at: datetime | None = None,
    signature: str | None = None,
) -> dict[str, Any]:
    """``received_at`` and ``signature``: when SNS received the raw message and its oxoflow-signature,
    so that a replay can dispatch it again exactly as it first was (same event id and delivery ids)."""
    attempts = attempts or []
    last = attempts[-1] if attempts else {}
    letter: dict[str, Any] = {
        "schema": DEAD_LETTER_SCHEMA,
        "reason_code": reason_code,
        "reason": reason,
        "dead_lettered_at": now_iso(now),
        "workflow": (event or {}).get("workflow"),
        "event": event,
        "webhook": webhook,
        "delivery_id": delivery_id,
        "attempt_count": len(attempts),
        "last_status": last.get("status"),
        "last_error": last.get("error"),
        "attempts": attempts,
    }
    if message_id is not None:
        letter["message_id"] = message_id
    if received_at is not None:
        letter["received_at"] = format_timestamp(received_at)
    if signature is not None:
        letter["signature"] = signature
    if raw_message is not None:
        encoded = raw_message.encode("utf-8", "replace")
        # Cut on bytes, then drop a split multi-byte character at the end rather than garble it.
        letter["raw_message"] = encoded[:raw_max].decode("utf-8", "ignore")
        letter["raw_message_truncated"] = len(encoded) > raw_max
    return letter
