"""Replay the dead-letter queue: find, filter, re-deliver once, delete only what succeeded.

A replayed delivery that fails again is left where it was (it reappears when its visibility
timeout ends), so the queue never holds it twice.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from oxoflow_notify.pipeline import deadletter as dl
from oxoflow_notify.pipeline.answers import Kind
from oxoflow_notify.pipeline.deadletter import DEAD_LETTER_SCHEMA
from oxoflow_notify.pipeline.retry import CLOSE_SCHEMA, RETRY_SCHEMA

SCAN_VISIBILITY = 300  # seconds a scanned message stays hidden: the replay finishes within it
RETRY_REDRIVEN = "retry_redriven"  # a retry queue message SQS gave up on (see Letter.reason_code)
# Every reason code a letter can carry, so --reason can refuse a typo instead of matching nothing.
REASON_CODES: tuple[str, ...] = (
    dl.INVALID_EVENT,
    dl.INVALID_CONFIG,
    dl.INVALID_WEBHOOK,
    dl.PERMANENT_FAILURE,
    dl.RETRIES_EXHAUSTED,
    dl.WEBHOOK_REMOVED,
    dl.UNSUBSCRIBED,
    dl.MALFORMED_RETRY,
    dl.INTERNAL_ERROR,
    RETRY_REDRIVEN,
)


@dataclass
class Letter:
    message_id: str
    receipt: str
    body: dict[str, Any]
    sent_at: float  # unix seconds SQS received it

    @property
    def is_retry_message(self) -> bool:
        return self.body.get("schema") == RETRY_SCHEMA

    @property
    def is_digest_close(self) -> bool:
        """A digest window's close that the retry queue gave up on (redriven): replaying it closes
        the window and sends its digest."""
        return self.body.get("schema") == CLOSE_SCHEMA

    @property
    def event(self) -> dict[str, Any]:
        if self.is_digest_close:
            return {"event": "Digest", "workflow": self.body.get("workflow")}
        event = self.body.get("event")
        return event if isinstance(event, dict) else {}

    @property
    def webhook_id(self) -> str | None:
        if self.is_retry_message or self.is_digest_close:
            return self.body.get("webhook_id")
        return (self.body.get("webhook") or {}).get("id")

    @property
    def config_key(self) -> str | None:
        if self.is_retry_message or self.is_digest_close:
            return self.body.get("config_key")
        return (self.body.get("webhook") or {}).get("source")

    @property
    def reason_code(self) -> str:
        if self.is_retry_message or self.is_digest_close:
            return RETRY_REDRIVEN
        return str(self.body.get("reason_code", "unknown"))

    def why_not_replayable(self) -> str | None:
        if self.body.get("schema") not in (DEAD_LETTER_SCHEMA, RETRY_SCHEMA, CLOSE_SCHEMA):
            if "requestContext" in self.body and "requestPayload" in self.body:
                return "a Lambda on-failure record (a whole event): recover it with replay --on-failure, which keeps its event id"
            return "not an oxoflow-notify message: re-publish its SNS message"
        if not self.event:
            return "holds no valid event (the published message was rejected): fix and re-publish it"
        if not self.webhook_id or not self.config_key or str(self.webhook_id).startswith("wh_invalid_"):
            return "names no deliverable webhook (the config file was unusable): fix it and re-publish the event"
        return None


@dataclass
class Filters:
    workflow: str | None = None
    webhook: str | None = None
    event: str | None = None
    reason: str | None = None
    older_than: float | None = None  # seconds
    newer_than: float | None = None

    def match(self, letter: Letter, now: float) -> bool:
        age = now - letter.sent_at
        return (
            (self.workflow is None or letter.event.get("workflow") == self.workflow)
            and (self.webhook is None or letter.webhook_id == self.webhook)
            and (self.event is None or letter.event.get("event") == self.event)
            and (self.reason is None or letter.reason_code == self.reason)
            and (self.older_than is None or age >= self.older_than)
            and (self.newer_than is None or age <= self.newer_than)
        )


@dataclass
class Summary:
    results: dict[str, int] = field(default_factory=dict)
    rows: list[tuple[str, str, str, str]] = field(default_factory=list)  # message id, webhook, result, detail

    def add(self, letter: Letter, result: str, detail: str) -> None:
        self.results[result] = self.results.get(result, 0) + 1
        self.rows.append((letter.message_id, str(letter.webhook_id or "-"), result, detail))


def parse_age(text: str) -> float:
    """'90s', '30m', '12h', '7d' -> seconds."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    text = text.strip().lower()
    if not text or text[-1] not in units or not text[:-1].replace(".", "", 1).isdigit():
        raise ValueError(f"age {text!r} is not a number followed by s, m, h or d (e.g. 30m, 12h)")
    return float(text[:-1]) * units[text[-1]]


def scan(sqs: Any, queue_url: str, limit: int | None = None, visibility: int = SCAN_VISIBILITY) -> Iterator[Letter]:
    """Every message in the queue once, hidden while the replay runs."""
    seen: set[str] = set()
    while limit is None or len(seen) < limit:
        batch = sqs.receive_message(
            QueueUrl=queue_url, MaxNumberOfMessages=10, VisibilityTimeout=visibility, AttributeNames=["SentTimestamp"]
        ).get("Messages", [])
        fresh = [m for m in batch if m["MessageId"] not in seen]
        if not fresh:
            return
        for message in fresh:
            seen.add(message["MessageId"])
            try:
                body = json.loads(message["Body"])
            except ValueError:
                body = {"raw": message["Body"]}
            sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            yield Letter(message["MessageId"], message["ReceiptHandle"], body if isinstance(body, dict) else {"raw": body}, sent)


def replay(
    notifier: Any,
    sqs: Any,
    queue_url: str,
    filters: Filters,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    now: Callable[[], float] = time.time,
    visibility: int = SCAN_VISIBILITY,
) -> Summary:
    summary = Summary()
    scanned = list(scan(sqs, queue_url, limit, visibility))
    letters = [letter for letter in scanned if filters.match(letter, now())]
    deleted: set[str] = set()
    try:
        _replay_each(notifier, sqs, queue_url, letters, summary, deleted, dry_run, progress)
    finally:
        # Whatever was scanned and not delivered is visible again at once (dry runs, filtered-out
        # letters, failures): the next run, or the next operator, sees the whole queue.
        for letter in scanned:
            if letter.message_id not in deleted:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)
    return summary


def _replay_each(
    notifier: Any,
    sqs: Any,
    queue_url: str,
    letters: list[Letter],
    summary: Summary,
    deleted: set[str],
    dry_run: bool,
    progress: Callable[[int, int, str], None] | None,
) -> None:
    for done, letter in enumerate(letters, start=1):
        reason = letter.why_not_replayable()
        if reason:
            summary.add(letter, "skipped", reason)
        elif dry_run:
            summary.add(letter, "would replay", f"{letter.event.get('event')} of {letter.event.get('workflow')} ({letter.reason_code})")
        elif letter.is_digest_close:
            # Closed and handed on (delivered, or queued as the digest's own retry or dead letter): settled.
            report = notifier.retry(json.dumps(letter.body))
            sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt)
            deleted.add(letter.message_id)
            if report.delivered or report.already_delivered:
                summary.add(letter, "delivered", "the window closed and its digest delivered")
            elif report.retrying:
                summary.add(letter, "queued", "the window closed; its digest waits in the retry queue (a retry or its rate-limit slot)")
            elif report.dead_lettered:
                summary.add(letter, "failed again", "the window closed; its digest is in the dead-letter queue")
            else:
                summary.add(letter, "settled", "nothing to send: the window was sent by its own close, or holds nothing")
        else:
            attempts = letter.body.get("attempts") or []
            verdict, detail = notifier.attempt_once(
                letter.event, str(letter.config_key), str(letter.webhook_id), str(letter.body.get("delivery_id")), len(attempts) + 1
            )
            if verdict in (Kind.DELIVERED, Kind.ALREADY_DELIVERED):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt)
                deleted.add(letter.message_id)
                summary.add(letter, "delivered", detail)
            else:
                summary.add(letter, "failed again", detail)  # stays in the queue, once
        if progress:
            progress(done, len(letters), summary.rows[-1][2])
