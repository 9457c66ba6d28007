"""The oxo-flow lifecycle event: parsing, validation and the canonical payload.

The JSON Schema in ``events/event.schema.json`` is the published contract; this module enforces
the same rules by hand so every rejection names the field and the problem in plain words.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from .errors import EventError, did_you_mean

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
RULE_EVENTS = frozenset(n for n in EVENT_NAMES if n.startswith("Rule"))
FIELDS = ("event", "workflow", "timestamp", "rule", "message", "details", "run_id", "id")

_SNAKE = re.compile(r"(?<!^)(?=[A-Z])")


def snake_name(event: str) -> str:
    """``RuleFailed`` -> ``rule_failed``: the spelling oxo-flow uses."""
    return _SNAKE.sub("_", event).lower()


_ALIASES: dict[str, str] = {}
for _name in EVENT_NAMES:
    _ALIASES[_name] = _name
    _ALIASES[snake_name(_name)] = _name

# Workflow names become S3 keys: keep them to a portable, unambiguous character set.
WORKFLOW_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
MAX_TEXT = 1024  # rule, run_id, id
MAX_MESSAGE_BYTES = 262_144  # SNS's own limit; larger only arrives by direct invocation
MAX_MESSAGE = 4096


def canonical_event_name(name: str) -> str | None:
    """PascalCase name for either spelling (``RuleFailed`` or ``rule_failed``), else None."""
    return _ALIASES.get(name)


def unknown_event_message(name: str) -> str:
    """Suggest in the spelling the user chose: a snake_case typo gets a snake_case answer."""
    snake = "_" in name or name.islower()
    choices = [a for a in _ALIASES if a.islower()] if snake else list(EVENT_NAMES)
    return f"unknown event '{name}'{did_you_mean(name, choices)}; expected one of {', '.join(EVENT_NAMES)}"


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


def format_timestamp(moment: datetime) -> str:
    """RFC 3339 in UTC with a Z; milliseconds only when the source had sub-second precision."""
    moment = moment.astimezone(UTC)
    if moment.microsecond:
        return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(value: str) -> datetime:
    """Parse RFC 3339; a timestamp without an offset is ambiguous and refused."""
    text = value.strip()
    if not re.match(r"^\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?([Zz]|[+-]\d{2}:\d{2})$", text):
        raise ValueError("not an RFC 3339 date-time with an offset, e.g. 2026-05-18T12:00:00Z")
    moment = datetime.fromisoformat(text.replace("z", "Z").replace("t", "T"))
    return moment


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


_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")


def scrub(value: Any) -> Any:
    """Replace lone surrogates (valid in JSON text, invalid in UTF-8) so every format can encode."""
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [scrub(v) for v in value]
    if isinstance(value, dict):
        return {scrub(k): scrub(v) for k, v in value.items()}
    return value


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
    if isinstance(raw, dict):
        data: Any = raw
    else:
        size = len(raw.encode("utf-8", "surrogatepass") if isinstance(raw, str) else raw)
        if size > MAX_MESSAGE_BYTES:
            raise EventError(f"message is {size:,} bytes; the limit is {MAX_MESSAGE_BYTES:,} (SNS's message size limit)")
        try:
            data = json.loads(raw)
        except (ValueError, UnicodeDecodeError) as exc:
            raise EventError(f"message is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise EventError(f"message must be a JSON object, got {type(data).__name__}")
    if (
        isinstance(raw, dict)
        or _ESCAPED_SURROGATE.search(raw if isinstance(raw, str) else raw.decode("utf-8", "replace"))
        or (isinstance(raw, str) and _SURROGATE.search(raw))
    ):
        data = scrub(data)  # only messages that can hold a lone surrogate pay for the walk

    for key in data:
        if key not in FIELDS:
            raise EventError(f"unknown field '{key}'{did_you_mean(str(key), FIELDS)}; allowed fields are {', '.join(FIELDS)}")

    name = data.get("event")
    if name is None:
        raise EventError("field 'event' is required")
    if not isinstance(name, str):
        raise EventError(f"field 'event' must be a string, got {type(name).__name__}")
    event = canonical_event_name(name)
    if event is None:
        raise EventError(f"field 'event': {unknown_event_message(name)}")

    workflow = _text(data, "workflow", 128, required=True)
    assert workflow is not None
    if not WORKFLOW_NAME.match(workflow):
        raise EventError(
            "field 'workflow' must start with a letter or digit and contain only letters, digits, '.', '_' or '-' (at most 128 characters)"
        )

    rule = _text(data, "rule", MAX_TEXT, required=event in RULE_EVENTS)

    if data.get("timestamp") is None:
        timestamp = format_timestamp(received_at)
    else:
        raw_ts = data["timestamp"]
        if not isinstance(raw_ts, str):
            raise EventError(f"field 'timestamp' must be a string, got {type(raw_ts).__name__}")
        try:
            timestamp = format_timestamp(parse_timestamp(raw_ts))
        except ValueError as exc:
            raise EventError(f"field 'timestamp': {exc}") from None

    details = data.get("details")
    if details is None:
        details = {}
    elif not isinstance(details, dict):
        raise EventError(f"field 'details' must be a JSON object, got {type(details).__name__}")

    message = _text(data, "message", MAX_MESSAGE)
    if message is None:
        message = default_message(event, workflow, rule, details)

    return Event(
        event=event,
        workflow=workflow,
        timestamp=timestamp,
        id=_text(data, "id", MAX_TEXT) or message_id,
        message=message,
        rule=rule,
        details=details,
        run_id=_text(data, "run_id", MAX_TEXT),
    )


def event_from_payload(payload: dict[str, Any]) -> Event:
    """Rebuild an Event from its own ``to_payload`` output (retry messages carry that)."""
    return Event(
        event=payload["event"],
        workflow=payload["workflow"],
        timestamp=payload["timestamp"],
        id=payload["id"],
        message=payload["message"],
        rule=payload.get("rule"),
        details=payload.get("details") or {},
        run_id=payload.get("run_id"),
    )
