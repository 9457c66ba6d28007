"""Replay the dead-letter queue: find, filter, re-deliver once, delete only what succeeded.

A replayed delivery that fails again is left where it was (it reappears when its visibility
timeout ends), so the queue never holds it twice. A letter kept in S3 behind a pointer (too big
for the queue: aws.letters) is read through it, and its S3 object removed once it is settled.
An event the dispatcher failed on (``internal_error`` with the raw message) is dispatched again
with its SNS message id and time of receipt: the same event id and delivery ids, so the ledger
stops every delivery that already got a 2xx.
"""

from __future__ import annotations

import contextlib
import json
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from oxoflow_notify.aws.letters import ClaimCheckError, LetterStore, pointer_of, resolve_body
from oxoflow_notify.pipeline import deadletter as dl
from oxoflow_notify.pipeline.answers import Kind
from oxoflow_notify.pipeline.deadletter import DEAD_LETTER_SCHEMA
from oxoflow_notify.pipeline.retry import CLOSE_SCHEMA, LIVE_SCHEMA, RETRY_SCHEMA

SCAN_VISIBILITY = 300  # seconds a scanned message stays hidden: the replay finishes within it
KEPT_WHOLE = (dl.INTERNAL_ERROR, dl.RETRY_FAULTED, dl.LIVE_FAILED)  # the reasons whose letter keeps its message whole, to run it again
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
    dl.RETRY_FAULTED,
    dl.ENDPOINT_DISABLED,
    dl.LIVE_FAILED,
    dl.UNAUTHENTICATED_EVENT,
    RETRY_REDRIVEN,
)


@dataclass
class Letter:
    message_id: str
    receipt: str
    body: dict[str, Any]
    sent_at: float  # unix seconds SQS received it
    claim: str | None = None  # the pointer it was sent as, when its body is kept in S3 (removed once settled)
    unreadable: str | None = None  # why its body, kept in S3, could not be read

    @property
    def kept(self) -> dict[str, Any] | None:
        """The message an ``internal_error`` or ``retry_faulted`` letter kept whole (an event, or a retry message), parsed."""
        raw = self.body.get("raw_message")
        if self.body.get("reason_code") not in KEPT_WHOLE or not isinstance(raw, str) or self.body.get("raw_message_truncated"):
            return None
        try:
            data = json.loads(raw)
        except (ValueError, RecursionError):
            return None
        return data if isinstance(data, dict) else None

    @property
    def is_kept_event(self) -> bool:
        """An event the dispatcher failed on, kept with its SNS message id: dispatched again by replay."""
        kept = self.kept
        return kept is not None and isinstance(self.body.get("message_id"), str) and kept.get("schema") is None

    @property
    def is_kept_retry(self) -> bool:
        """A retry message (or a digest's close) the retry function failed on: handled again by replay."""
        kept = self.kept
        return kept is not None and self.body.get("message_id") is None and kept.get("schema") in (RETRY_SCHEMA, CLOSE_SCHEMA, LIVE_SCHEMA)

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
        if not isinstance(event, dict) and (self.is_kept_event or self.is_kept_retry):
            kept = self.kept or {}
            event = kept if self.is_kept_event else kept.get("event", {"event": "Digest", "workflow": kept.get("workflow")})
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
        if self.unreadable is not None:
            return self.unreadable
        if self.body.get("schema") not in (DEAD_LETTER_SCHEMA, RETRY_SCHEMA, CLOSE_SCHEMA):
            if "requestContext" in self.body and "requestPayload" in self.body:
                return "a Lambda on-failure record (a whole event): recover it with replay --on-failure, which keeps its event id"
            return "not an oxoflow-notify message: re-publish its SNS message"
        if self.reason_code == dl.UNAUTHENTICATED_EVENT:  # replaying it would deliver what its workflow's key refused
            return "not signed with its workflow's publish key: publish it again signed with the workflow's publish key"
        if self.is_kept_event or self.is_kept_retry:
            return None
        if self.reason_code == dl.INTERNAL_ERROR and self.body.get("raw_message_truncated"):
            return "its message was cut short when it was kept, so it cannot be run again: re-publish the event"
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
    """'90s', '30m', '12h', '7d', '1h30m' -> seconds (the units the config's durations take, and days)."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    match = _AGE.fullmatch(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"age {text!r} is not a number followed by s, m, h or d (e.g. 30m, 12h, 1h30m)")
    return sum(float(number) * units[unit] for number, unit in _AGE_PART.findall(text.strip().lower()))


_AGE_PART = re.compile(r"(\d+(?:\.\d+)?)([smhd])")
_AGE = re.compile(r"(?:\d+(?:\.\d+)?[smhd])+")


def scan(
    sqs: Any, queue_url: str, limit: int | None = None, visibility: int = SCAN_VISIBILITY, letters: LetterStore | None = None
) -> Iterator[Letter]:
    """Every message in the queue once, hidden while the replay runs; a pointer read through to
    the body it keeps in S3 (``letters``)."""
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
            text, claim, unreadable = _read_body(message["Body"], letters)
            try:
                body = json.loads(text)
            except ValueError:
                body = {"raw": text}
            sent = int(message.get("Attributes", {}).get("SentTimestamp", "0")) / 1000
            body = body if isinstance(body, dict) else {"raw": body}
            yield Letter(message["MessageId"], message["ReceiptHandle"], body, sent, claim, unreadable)


def _read_body(raw: str, letters: LetterStore | None) -> tuple[str, str | None, str | None]:
    """(the body, the pointer it came through or None, why it could not be read or None)."""
    try:
        claim = raw if pointer_of(raw) is not None else None
        return resolve_body(raw, letters), claim, None
    except ClaimCheckError as exc:
        return raw, None, f"{exc}: nothing to replay"
    except (BotoCoreError, ClientError) as exc:
        code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else type(exc).__name__
        return raw, None, f"its body is kept in S3 and could not be read ({code}): check access to the config bucket's letters/"


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
    letters: LetterStore | None = None,
) -> Summary:
    """``letters``: where bodies too big for the queue are kept (default: the notifier's)."""
    summary = Summary()
    store = letters if letters is not None else getattr(notifier, "letters", None)
    scanned = list(scan(sqs, queue_url, limit, visibility, store))
    chosen = [letter for letter in scanned if filters.match(letter, now())]
    deleted: set[str] = set()
    try:
        _replay_each(notifier, _Settle(sqs, queue_url, store, deleted), chosen, summary, dry_run, progress)
    finally:
        # Whatever was scanned and not delivered is visible again at once (dry runs, filtered-out
        # letters, failures): the next run, or the next operator, sees the whole queue.
        for letter in scanned:
            if letter.message_id not in deleted:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)
    return summary


@dataclass
class _Settle:
    """Removes a settled letter: its message, then the S3 object its body was kept in (if any)."""

    sqs: Any
    queue_url: str
    letters: LetterStore | None
    deleted: set[str]

    def __call__(self, letter: Letter) -> None:
        self.sqs.delete_message(QueueUrl=self.queue_url, ReceiptHandle=letter.receipt)
        self.deleted.add(letter.message_id)
        if letter.claim is not None and self.letters is not None:
            with contextlib.suppress(BotoCoreError, ClientError):  # settled all the same; the lifecycle rule expires the copy
                self.letters.discard(letter.claim)


def _replay_each(
    notifier: Any,
    settle: _Settle,
    letters: list[Letter],
    summary: Summary,
    dry_run: bool,
    progress: Callable[[int, int, str], None] | None,
) -> None:
    for done, letter in enumerate(letters, start=1):
        reason = letter.why_not_replayable()
        if reason:
            summary.add(letter, "skipped", reason)
        elif dry_run:
            summary.add(letter, "would replay", f"{letter.event.get('event')} of {letter.event.get('workflow')} ({letter.reason_code})")
        elif letter.is_kept_event:
            report = notifier.dispatch([_published(letter)])
            settle(letter)  # dispatched again: every delivery of it is delivered, queued or a new letter
            summary.add(letter, *_outcome(report, "the event was dispatched again with its own id"))
        elif letter.is_kept_retry:
            report = notifier.retry(str(letter.body["raw_message"]))
            settle(letter)
            summary.add(letter, *_outcome(report, "its retry message was handled again"))
        elif letter.is_digest_close:
            # Closed and handed on (delivered, or queued as the digest's own retry or dead letter): settled.
            report = notifier.retry(json.dumps(letter.body))
            settle(letter)
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
                settle(letter)
                summary.add(letter, "delivered", detail)
            else:
                summary.add(letter, "failed again", detail)  # stays in the queue, once
        if progress:
            progress(done, len(letters), summary.rows[-1][2])


def _published(letter: Letter) -> Any:
    """The SNS message a kept event was, as the dispatcher first saw it: its raw text, message id,
    time of receipt (letters from before it was kept: when it was dead-lettered) and signature."""
    from oxoflow_notify.inbound.events import parse_timestamp
    from oxoflow_notify.pipeline.notifier import Published

    body = letter.body
    received = body.get("received_at") or body.get("dead_lettered_at")
    signature = body.get("signature")
    return Published(
        message=str(body["raw_message"]),
        message_id=str(body["message_id"]),
        timestamp=parse_timestamp(str(received)),
        signature=signature if isinstance(signature, str) else None,
    )


def _outcome(report: Any, what: str) -> tuple[str, str]:
    """The replay result of a message handled again whole (an event, a retry message)."""
    if report.dead_lettered:
        return "failed again", f"{what}; {report.dead_lettered} delivery(ies) are in the dead-letter queue again"
    if report.retrying:
        return "queued", f"{what}; {report.retrying} delivery(ies) wait in the retry queue"
    if report.delivered or report.already_delivered:
        return "delivered", f"{what}; {report.delivered} delivered, {report.already_delivered} already delivered before"
    return "settled", f"{what}; nothing to send (no webhook matches it now)"
