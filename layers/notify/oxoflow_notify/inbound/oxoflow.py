"""oxo-flow's own webhook dialect (its 0.14 releases): its payload out, its payloads and logs in, its [webhook] table.

- Out: the ``oxoflow`` format renders our event as the payload oxo-flow itself posts, so
  receivers written for oxo-flow keep working (its signature header is in ``signing``).
- In: the ingest function and ``oxoflow-notify follow`` turn oxo-flow's native payloads and
  execution-log records into our events.

Its singular ``[webhook]`` table is read by ``config.oxoflow_table``: the config room's, so this
module imports no room after its own.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from oxoflow_notify.errors import EventError

from .events import SYSTEM_EVENTS, Event, canonical_event_name, snake_name

DATA_FIELDS = ("total_rules", "succeeded", "failed", "skipped", "duration_ms", "rule", "exit_code", "error")
# A rule_completed / workflow_completed record whose status is one of these (compared case-blind,
# '-' and ' ' read as '_') is a failure: RuleFailed / WorkflowFailed. docs/publishing.md lists them.
FAILED_STATUSES = frozenset(
    {"fail", "failed", "failure", "failing", "error", "errored", "err", "timeout", "timed_out", "timedout", "time_out",
     "killed", "crashed", "crash", "oom", "oom_killed", "out_of_memory", "aborted", "segfault", "signaled", "signalled"}
)  # fmt: skip


def render_oxoflow(event: Event) -> dict[str, Any]:
    """Our event as oxo-flow's WebhookPayload: event, workflow_name, timestamp, data, version."""
    from oxoflow_notify import __version__

    data: dict[str, Any] = {}
    for key in ("total_rules", "succeeded", "failed", "skipped", "duration_ms"):  # oxo-flow reads these as unsigned
        value = event.details.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            data[key] = value
    exit_code = event.details.get("exit_code")
    if isinstance(exit_code, int) and not isinstance(exit_code, bool):
        data["exit_code"] = exit_code
    if isinstance(event.details.get("error"), str):
        data["error"] = event.details["error"]
    if event.rule is not None:
        data["rule"] = event.rule
    if (event.event.endswith("Failed") or event.event in SYSTEM_EVENTS) and "error" not in data:
        data["error"] = event.message  # our own notices (a disabled webhook, an overdue run) are trouble too: the sentence says which
    return {
        "event": snake_name(event.event),
        "workflow_name": event.workflow,
        "timestamp": event.timestamp,
        "data": data,
        "version": f"oxoflow-notify/{__version__}",
    }


def from_native(payload: Any) -> dict[str, Any]:
    """oxo-flow's native webhook POST -> our event message (validate it with parse_event after).

    A completed run with failed rules stays WorkflowCompleted: that is what oxo-flow reported; the
    counts travel in details, and the formats show them."""
    if not isinstance(payload, dict):
        raise EventError(f"an oxo-flow payload must be a JSON object, got {type(payload).__name__}")
    for key in ("event", "workflow_name"):
        if not isinstance(payload.get(key), str) or not payload[key]:
            raise EventError(f"oxo-flow payload: '{key}' is required and must be a non-empty string")
    data = payload.get("data") or {}
    if not isinstance(data, dict):
        raise EventError(f"oxo-flow payload: 'data' must be an object, got {type(data).__name__}")
    details = {k: data[k] for k in DATA_FIELDS if k in data and k != "rule" and data[k] is not None}
    if isinstance(payload.get("version"), str):
        details["oxoflow_version"] = payload["version"]
    message: dict[str, Any] = {"event": payload["event"], "workflow": payload["workflow_name"], "details": details}
    if payload.get("timestamp") is not None:
        message["timestamp"] = payload["timestamp"]
    if data.get("rule") is not None:
        message["rule"] = data["rule"]
    if isinstance(data.get("error"), str) and data["error"]:
        message["message"] = data["error"][:4096]
    return message


def from_log_record(record: Any, workflow: str | None = None) -> dict[str, Any] | None:
    """One line of oxo-flow's JSON-lines execution log -> our event message, or None for records
    that are not lifecycle events (progress, resource samples, ...).

    ``rule_completed`` (``workflow_completed``) with a failing status becomes RuleFailed
    (WorkflowFailed): see ``failed_status``."""
    if not isinstance(record, dict) or not isinstance(record.get("event"), str):
        raise EventError("an execution-log record must be a JSON object with an 'event' string")
    canonical = canonical_event_name(record["event"])
    if canonical is None:
        return None
    name = snake_name(canonical)
    if name in ("rule_completed", "workflow_completed") and failed_status(record):
        name = name.replace("_completed", "_failed")
    wf = record.get("workflow") or record.get("workflow_name") or workflow
    if not isinstance(wf, str) or not wf:
        raise EventError("an execution-log record names no workflow: pass --workflow")
    skip = {"event", "workflow", "workflow_name", "timestamp", "rule", "message", "error", "run_id"}
    details = {k: v for k, v in record.items() if k not in skip and v is not None}
    message: dict[str, Any] = {"event": name, "workflow": wf, "details": details}
    for key in ("timestamp", "rule", "run_id"):
        if record.get(key) is not None:
            message[key] = str(record[key])
    text = record.get("message") or record.get("error")
    if isinstance(text, str) and text:
        message["message"] = text[:4096]
    return message


def failed_status(record: Mapping[str, Any]) -> bool:
    """A completion record that reports a failure: a failing ``status``, or no status and a
    non-zero integer ``exit_code``."""
    status = record.get("status")
    if status is None or status == "":
        code = record.get("exit_code")
        return isinstance(code, int) and not isinstance(code, bool) and code != 0
    return str(status).strip().lower().replace("-", "_").replace(" ", "_") in FAILED_STATUSES
