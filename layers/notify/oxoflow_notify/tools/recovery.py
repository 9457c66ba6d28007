"""Recover Lambda's on-failure records from the dead-letter queue: publish each one's event again.

When the dispatcher fails an invocation every time, Lambda's on-failure destination puts a record
in the dead-letter queue that wraps the whole SNS event (``requestContext`` + ``requestPayload``).
Publishing its SNS message again as it was would give it a new SNS MessageId, hence (the event id
defaulting to the MessageId) new delivery ids: webhooks that were posted before the invocation
failed would get the event a second time, under another id. So each message is published with the
event id it was first given (the SNS MessageId, unless the message set its own ``id``) and its
timestamp (when SNS received it, unless it set its own): the dispatcher derives the same delivery
ids, and the delivery ledger stops what was delivered already.

A message signed with its workflow's publish key (``oxoflow-signature``) cannot be changed without
the key: it is published again byte for byte with its signature when it has its own id and
timestamp (its delivery ids are then the same), and left in the queue as ``invalid`` otherwise.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from botocore.exceptions import BotoCoreError, ClientError

from oxoflow_notify.aws.letters import LetterStore
from oxoflow_notify.errors import EventError
from oxoflow_notify.inbound.events import canonical_event_name, parse_event
from oxoflow_notify.inbound.json_input import load_json
from oxoflow_notify.inbound.timestamps import format_timestamp, parse_timestamp
from oxoflow_notify.inbound.topic import publish_body, publish_message, signature_of

from .replay import SCAN_VISIBILITY, Filters, Letter, Summary, scan

OTHER_LETTERS = "other letters"  # the Summary count of letters that are not on-failure records


@dataclass(frozen=True)
class SnsRecord:
    """One SNS message of the event an on-failure record wraps."""

    message_id: str
    message: str
    timestamp: str | None
    signature: str | None = None  # its oxoflow-signature: the message is published again as it is, or not at all


def is_on_failure_record(body: dict[str, Any]) -> bool:
    return "requestContext" in body and "requestPayload" in body


def sns_records(body: dict[str, Any]) -> list[SnsRecord]:
    """The SNS messages of an on-failure record (its ``requestPayload`` is the dispatcher's SNS
    event); EventError when it holds none."""
    payload = body.get("requestPayload")
    records = payload.get("Records") if isinstance(payload, dict) else None
    out: list[SnsRecord] = []
    for record in records if isinstance(records, list) else []:
        sns = record.get("Sns") if isinstance(record, dict) else None
        if not isinstance(sns, dict) or not isinstance(sns.get("MessageId"), str) or not isinstance(sns.get("Message"), str):
            out = []
            break
        timestamp = sns.get("Timestamp")
        out.append(SnsRecord(sns["MessageId"], sns["Message"], timestamp if isinstance(timestamp, str) else None, signature_of(sns)))
    if not out:
        raise EventError("its requestPayload holds no SNS message (Records[].Sns with MessageId and Message)")
    return out


def recovered_message(record: SnsRecord) -> dict[str, Any]:
    """The message to publish again: as it was published, plus the event id the dispatcher gave it
    (the SNS MessageId) when it set none, and the timestamp (when SNS received it) when it set
    none. An ``id`` or ``timestamp`` it set is kept as it is. EventError when the message is not a
    JSON object."""
    data = load_json(record.message)
    if not isinstance(data, dict):
        raise EventError(f"message must be a JSON object, got {type(data).__name__}")
    message = dict(data)
    if message.get("id") in (None, ""):  # parse_event falls back to the MessageId for both
        message["id"] = record.message_id
    if message.get("timestamp") is None and record.timestamp is not None:
        with contextlib.suppress(ValueError, OverflowError):  # unreadable: the dispatcher could not read it either
            message["timestamp"] = format_timestamp(parse_timestamp(record.timestamp))
    return message


def signed_message(record: SnsRecord) -> dict[str, Any]:
    """A signed message as it was published, when it can be published again unchanged: it must carry
    its own id and timestamp (else a new SNS MessageId would give it new delivery ids, and adding
    them would break the signature). EventError saying what to do otherwise."""
    data = load_json(record.message)
    if not isinstance(data, dict):
        raise EventError(f"message must be a JSON object, got {type(data).__name__}")
    if data.get("id") in (None, "") or data.get("timestamp") is None:
        again = f" --timestamp {record.timestamp}" if record.timestamp else ""
        raise EventError("it is signed with its workflow's publish key but has no id and timestamp of its own, so it cannot "
                         "be republished unchanged: publish it again signed with the workflow's publish key "
                         f"(oxoflow-notify publish --publish-key-file FILE --id {record.message_id}{again})")  # fmt: skip
    return data


def check_message(message: dict[str, Any]) -> dict[str, Any]:
    """The dispatcher's own validation (the command line adds the published JSON Schema's)."""
    parse_event(message, message_id="recovery-check", received_at=datetime.now(UTC))
    return message


def _matches(filters: Filters, letter: Letter, message: dict[str, Any] | None, now: float) -> bool:
    """--workflow, --event (either spelling) and the ages; a message that cannot be read matches
    only when no workflow or event is asked for."""
    age = now - letter.sent_at
    if (filters.older_than is not None and age < filters.older_than) or (filters.newer_than is not None and age > filters.newer_than):
        return False
    if filters.workflow is None and filters.event is None:
        return True
    if message is None:
        return False
    name = message.get("event")
    event = canonical_event_name(name) if isinstance(name, str) else None
    return (filters.workflow is None or message.get("workflow") == filters.workflow) and (
        filters.event is None or (event is not None and event == canonical_event_name(filters.event))
    )


def _row(summary: Summary, message_id: str, event_id: str, result: str, detail: str) -> None:
    summary.results[result] = summary.results.get(result, 0) + 1
    summary.rows.append((message_id, event_id, result, detail))


def republish_on_failure(
    sns: Any,
    topic_arn: str | None,
    sqs: Any,
    queue_url: str,
    filters: Filters,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int, int, str], None] | None = None,
    now: Callable[[], float] = time.time,
    visibility: int = SCAN_VISIBILITY,
    check: Callable[[dict[str, Any]], dict[str, Any]] = check_message,
    letters: LetterStore | None = None,
) -> Summary:
    """Publish the event of each on-failure record in the queue to the topic again, keeping its
    event id, and delete the record only once every message it holds was published. A record
    whose event fails validation (``invalid``) or whose publish fails (``failed``) stays in the
    queue, as does every other letter (counted as ``other letters``). ``topic_arn`` may be None
    for a dry run. Summary rows: dead-letter message id, event id, result, detail. ``letters``: to
    read letters kept in S3 behind a pointer (Lambda's own records never are: it drops those over
    256 KB; docs/operations.md)."""
    summary = Summary()
    scanned = list(scan(sqs, queue_url, limit, visibility, letters))
    deleted: set[str] = set()
    try:
        records = [letter for letter in scanned if is_on_failure_record(letter.body)]
        if len(records) < len(scanned):
            summary.results[OTHER_LETTERS] = len(scanned) - len(records)
        for done, letter in enumerate(records, start=1):
            if _republish_one(sns, topic_arn, letter, filters, dry_run, check, summary, now()):
                sqs.delete_message(QueueUrl=queue_url, ReceiptHandle=letter.receipt)
                deleted.add(letter.message_id)
            if progress:
                progress(done, len(records), summary.rows[-1][2] if summary.rows else "")
    finally:
        for letter in scanned:  # visible again at once, as replay() leaves what it did not delete
            if letter.message_id not in deleted:
                sqs.change_message_visibility(QueueUrl=queue_url, ReceiptHandle=letter.receipt, VisibilityTimeout=0)
    return summary


def _republish_one(
    sns: Any,
    topic_arn: str | None,
    letter: Letter,
    filters: Filters,
    dry_run: bool,
    check: Callable[[dict[str, Any]], dict[str, Any]],
    summary: Summary,
    now: float,
) -> bool:
    """Settle one on-failure record; True when it may be deleted (every message in it published)."""
    try:
        records = sns_records(letter.body)
    except EventError as exc:
        if _matches(filters, letter, None, now):
            _row(summary, letter.message_id, "-", "invalid", f"left in the queue: {exc}")
        return False
    checked: list[tuple[SnsRecord, dict[str, Any] | None, str]] = []
    for record in records:
        try:
            checked.append((record, check(signed_message(record) if record.signature else recovered_message(record)), ""))
        except EventError as exc:
            checked.append((record, None, str(exc)))
    if not any(_matches(filters, letter, message, now) for _, message, _ in checked):
        return False
    complete = True
    for record, message, problem in checked:
        if message is None:
            _row(summary, letter.message_id, record.message_id, "invalid", f"left in the queue: {problem}")
            complete = False
            continue
        what = f"{canonical_event_name(str(message.get('event')))} of {message.get('workflow')}"
        event_id = str(message["id"])
        if dry_run:
            _row(summary, letter.message_id, event_id, "would republish", what)
            continue
        try:
            if record.signature is not None:  # its exact bytes and signature: the key is not ours to sign with
                new_id = publish_body(sns, str(topic_arn), record.message, message, record.signature)
            else:
                new_id = publish_message(sns, str(topic_arn), message)
        except (BotoCoreError, ClientError) as exc:
            code = exc.response.get("Error", {}).get("Code", "") if isinstance(exc, ClientError) else ""
            why = f"left in the queue: {what}: publish failed ({code or type(exc).__name__})"
            _row(summary, letter.message_id, event_id, "failed", why)
            complete = False
            continue
        _row(summary, letter.message_id, event_id, "republished", f"{what} as SNS message {new_id}")
    return complete and not dry_run
