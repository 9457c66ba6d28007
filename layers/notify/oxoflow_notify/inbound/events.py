"""The oxo-flow lifecycle event: parsing, validation and the canonical payload.

The JSON Schema in ``events/event.schema.json`` is the published contract; this module enforces
the same rules by hand so every rejection names the field and the problem in plain words.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from datetime import datetime
from functools import cached_property
from typing import Any

from oxoflow_notify.errors import EventError, did_you_mean, shown

from .json_input import _ESCAPED_SURROGATE, _SURROGATE
from .json_input import MAX_EVENT_NESTING as MAX_EVENT_NESTING
from .json_input import MAX_INT_DIGITS as MAX_INT_DIGITS
from .json_input import check_json as check_json
from .json_input import load_json as load_json
from .json_input import scrub as scrub
from .timestamps import format_timestamp as format_timestamp
from .timestamps import normalise_timestamp as normalise_timestamp
from .timestamps import parse_timestamp as parse_timestamp

EVENT_NAMES: tuple[str, ...] = (
    "WorkflowStarted",
    "WorkflowCompleted",
    "WorkflowFailed",
    "WorkflowCancelled",
    "RuleStarted",
    "RuleCompleted",
    "RuleFailed",
    "RuleSkipped",
)
# Events oxoflow-notify sends itself (a webhook's ``events`` may name them; a publisher may not).
SYSTEM_EVENTS: tuple[str, ...] = ("WebhookDisabled", "WorkflowOverdue")
WEBHOOK_DISABLED = "WebhookDisabled"  # one of the workflow's webhooks was disabled after failing for its disable_after
WORKFLOW_OVERDUE = "WorkflowOverdue"  # a watched run did not end in time (overdue) or went quiet (silent)
RULE_EVENTS = frozenset(n for n in EVENT_NAMES if n.startswith("Rule"))
RUN_ENDINGS = frozenset({"WorkflowCompleted", "WorkflowFailed", "WorkflowCancelled"})  # a run's last word
DIGEST_EVENT = "Digest"  # the event name a digest (inbound.digests) goes out under; here, so naming it loads no model
FIELDS = ("event", "workflow", "timestamp", "rule", "message", "details", "run_id", "id")

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake_name(event: str) -> str:
    """``RuleFailed`` -> ``rule_failed``: the spelling oxo-flow uses."""
    return _SNAKE.sub("_", event).lower()


_ALIASES: dict[str, str] = {}
for _name in (*EVENT_NAMES, *SYSTEM_EVENTS):
    _ALIASES[_name] = _name
    _ALIASES[snake_name(_name)] = _name

# Workflow names become S3 keys: keep them to a portable, unambiguous character set.
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")  # \Z: "$" would let a trailing newline in
MAX_TEXT = 1024  # rule, run_id, id
MAX_MESSAGE_BYTES = 262_144  # SNS's own limit; larger only arrives by direct invocation
MAX_MESSAGE = 4096


def canonical_event_name(name: str) -> str | None:
    """PascalCase name for either spelling (``RuleFailed`` or ``rule_failed``), else None."""
    return _ALIASES.get(name)


def unknown_event_message(name: str, expected: bool = True) -> str:
    """Suggest in the spelling the user chose: a snake_case typo gets a snake_case answer.
    The name is quoted cut short (``shown``); ``expected=False`` leaves out the list of names."""
    snake = "_" in name or name.islower()
    choices = [a for a in _ALIASES if a.islower()] if snake else list(EVENT_NAMES)
    tail = f"; expected one of {', '.join(EVENT_NAMES)}" if expected else ""
    return f"unknown event '{shown(name)}'{did_you_mean(name, choices)}{tail}"


@dataclass(frozen=True)
class Event:
    """A validated event. ``id`` is always set: it defaults to the SNS MessageId."""

    event: str
    workflow: str
    timestamp: str
    id: str
    message: str
    rule: str | None = None
    details: dict[str, Any] = field(default_factory=dict)
    run_id: str | None = None

    @property
    def is_rule_event(self) -> bool:
        return self.event in RULE_EVENTS

    @cached_property
    def digest(self) -> str:
        """A digest of the whole normalised event, timestamp included: part of each delivery id, so
        an event differing in anything (a forged timestamp too) is a delivery of its own and can never
        make the real one "already delivered". A true SNS redelivery keeps its content and, when the
        publisher set no timestamp, SNS's own Timestamp, which is the default: the same delivery."""
        return hashlib.sha256(self.normalised_json()).hexdigest()

    def normalised_json(self) -> bytes:
        """The event as it is re-serialised for receivers and queues (sorted keys, compact, UTF-8);
        made once per event (an event is never changed after it is made: ``dataclasses.replace`` makes another)."""
        return self._normalised

    @cached_property
    def _normalised(self) -> bytes:
        return json.dumps(self.to_payload(), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8", "surrogatepass")

    def to_payload(self) -> dict[str, Any]:
        """The seed's JSON shape, in a fixed key order so bodies are byte-stable."""
        payload: dict[str, Any] = {
            "event": self.event,
            "workflow": self.workflow,
            "timestamp": self.timestamp,
            "rule": self.rule,
            "message": self.message,
            "details": self.details,
            "id": self.id,
        }
        if self.run_id is not None:
            payload["run_id"] = self.run_id
        return payload


def default_message(event: str, workflow: str, rule: str | None, details: dict[str, Any]) -> str:
    """A readable sentence for publishers that send only the facts."""
    verb = {
        "Started": "started",
        "Completed": "completed",
        "Failed": "failed",
        "Cancelled": "was cancelled",
        "Skipped": "was skipped",
    }
    outcome = event.removeprefix("Workflow").removeprefix("Rule")
    if event in RULE_EVENTS:
        sentence = f"Rule '{rule}' {verb[outcome]} in workflow '{workflow}'"
    else:
        sentence = f"Workflow '{workflow}' {verb[outcome]}"
    exit_code = details.get("exit_code")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        sentence += f" (exit code {exit_code})"
    return sentence


def _text(data: dict[str, Any], name: str, limit: int, required: bool = False) -> str | None:
    if name not in data or data[name] is None:
        if required:
            raise EventError(f"field '{name}' is required")
        return None
    value = data[name]
    if not isinstance(value, str):
        raise EventError(f"field '{name}' must be a string, got {type(value).__name__}")
    if required and not value.strip():
        raise EventError(f"field '{name}' must not be empty")
    if len(value) > limit:
        raise EventError(f"field '{name}' is {len(value)} characters long; the limit is {limit}")
    return value


def parse_event(raw: str | bytes | dict[str, Any], *, message_id: str, received_at: datetime) -> Event:
    """Validate one published message and fill the defaults.

    ``message_id`` and ``received_at`` come from the SNS record, so a redelivered SNS message
    yields the same event id and timestamp, hence the same delivery ids.
    """
    data = _decoded(raw)
    for key in data:
        if key not in FIELDS:
            raise EventError(f"unknown field '{shown(key)}'{did_you_mean(key, FIELDS)}; allowed fields are {', '.join(FIELDS)}")
    event = _event_name(data)
    workflow = _workflow(data)
    rule = _text(data, "rule", MAX_TEXT, required=event in RULE_EVENTS)
    timestamp = _timestamp(data, received_at)
    details = data.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        raise EventError(f"field 'details' must be a JSON object, got {type(details).__name__}")
    message = _text(data, "message", MAX_MESSAGE)
    run_id = _text(data, "run_id", MAX_TEXT)
    if run_id is not None and not run_id.strip():
        raise EventError("field 'run_id' must not be empty: leave it out (or null) when there is no run")
    parsed = Event(
        event=event,
        workflow=workflow,
        timestamp=timestamp,
        id=_text(data, "id", MAX_TEXT) or message_id,
        message=message if message is not None else default_message(event, workflow, rule, details),
        rule=rule,
        details=details,
        run_id=run_id,
    )
    check_normalised_size(parsed)
    return parsed


def _decoded(raw: str | bytes | dict[str, Any]) -> dict[str, Any]:
    """The message as a JSON object, within SNS's size and our nesting limits, lone surrogates removed."""
    if isinstance(raw, dict):
        data: Any = raw
        check_json(data)  # built in Python (a direct invocation): the same limits as decoded text
    else:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > MAX_MESSAGE_BYTES:
            raise EventError(f"message is {size:,} bytes; the limit is {MAX_MESSAGE_BYTES:,} (SNS's message size limit)")
        data = load_json(raw)
    if not isinstance(data, dict):
        raise EventError(f"message must be a JSON object, got {type(data).__name__}")
    if (
        isinstance(raw, dict)
        or _ESCAPED_SURROGATE.search(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        or (isinstance(raw, str) and _SURROGATE.search(raw))
    ):
        data = scrub(data)  # only messages that can hold a lone surrogate pay for the walk
    decoded: dict[str, Any] = data
    return decoded


def _event_name(data: dict[str, Any]) -> str:
    name = data.get("event")
    if name is None:
        raise EventError("field 'event' is required")
    if not isinstance(name, str):
        raise EventError(f"field 'event' must be a string, got {type(name).__name__}")
    event = canonical_event_name(name)
    if event is None:
        raise EventError(f"field 'event': {unknown_event_message(name)}")
    if event in SYSTEM_EVENTS:
        raise EventError(
            f"field 'event': '{event}' is sent by oxoflow-notify itself, never published; expected one of {', '.join(EVENT_NAMES)}"
        )
    return event


def _workflow(data: dict[str, Any]) -> str:
    workflow = _text(data, "workflow", 128, required=True)
    assert workflow is not None
    if not WORKFLOW_NAME.match(workflow):
        raise EventError(
            "field 'workflow' must start with a letter or digit and contain only letters, digits, '.', '_' or '-' (at most 128 characters)"
        )
    return workflow


def _timestamp(data: dict[str, Any], received_at: datetime) -> str:
    """The event's own timestamp, normalised, or when SNS received it."""
    if data.get("timestamp") is None:
        return format_timestamp(received_at)
    raw_ts = data["timestamp"]
    if not isinstance(raw_ts, str):
        raise EventError(f"field 'timestamp' must be a string, got {type(raw_ts).__name__}")
    return normalise_timestamp(raw_ts)


def check_normalised_size(event: Event) -> None:
    """Refuse an event whose re-serialised form is over the limit a published one is held to:
    numbers such as ``1e5`` are written out in full (``100000.0``), so a message under the limit
    can grow past it, and past what the queues and receivers take, once normalised."""
    size = len(event.normalised_json())
    if size > MAX_MESSAGE_BYTES:
        raise EventError(f"the event is {size:,} bytes once normalised (numbers such as 1e5 written out in full, "
                         f"defaults filled in); the limit is {MAX_MESSAGE_BYTES:,}: send fewer or shorter details")  # fmt: skip


def event_from_payload(payload: Any) -> Event:
    """Rebuild an Event from its own ``to_payload`` output (retry messages and dead letters carry
    that). What comes back from a queue is checked again, with the same limits as a published
    message: a mangled one is an EventError naming the field, never a crash while rendering."""
    if not isinstance(payload, dict):
        raise EventError(f"event payload must be a JSON object, got {type(payload).__name__}")
    check_json(payload, "event payload")
    text: dict[str, str | None] = {}
    for name in ("event", "workflow", "timestamp", "id", "message", "rule", "run_id"):
        value = payload.get(name)
        if name == "run_id" and isinstance(value, str) and not value.strip():
            value = None  # refused when published; one queued by an older version is read as no run
        if value is None and name in ("rule", "run_id"):
            text[name] = None
        elif not isinstance(value, str):
            raise EventError(f"field '{name}' must be a string, got {type(value).__name__}")
        else:
            text[name] = value
    event = str(text["event"])
    if canonical_event_name(event) != event:
        raise EventError(f"field 'event': {unknown_event_message(event)}")
    if not WORKFLOW_NAME.match(str(text["workflow"])):
        raise EventError("field 'workflow' must start with a letter or digit and contain only letters, digits, '.', '_' or '-'")
    details = payload.get("details")
    if details is not None and not isinstance(details, dict):
        raise EventError(f"field 'details' must be a JSON object, got {type(details).__name__}")
    return Event(
        event=event,
        workflow=str(text["workflow"]),
        timestamp=normalise_timestamp(str(text["timestamp"])),
        id=str(text["id"]),
        message=str(text["message"]),
        rule=text["rule"],
        details=details or {},
        run_id=text["run_id"],
    )
