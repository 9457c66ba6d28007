"""Render an event into the body a receiver expects. Pure functions: event in, bytes out.

One table (``STYLES``) decides each event's title and outcome colour, and ``facts`` decides which
facts are shown in which order, so every chat format tells the same story.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .events import Event

ELLIPSIS = "…"


@dataclass(frozen=True)
class Style:
    title: str
    outcome: str  # success | failure | neutral | warning
    emoji: str


STYLES: dict[str, Style] = {
    "WorkflowStarted": Style("Workflow started", "neutral", ":arrow_forward:"),
    "WorkflowCompleted": Style("Workflow completed", "success", ":white_check_mark:"),
    "WorkflowFailed": Style("Workflow failed", "failure", ":x:"),
    "WorkflowCancelled": Style("Workflow cancelled", "warning", ":no_entry_sign:"),
    "RuleStarted": Style("Rule started", "neutral", ":arrow_forward:"),
    "RuleCompleted": Style("Rule completed", "success", ":white_check_mark:"),
    "RuleFailed": Style("Rule failed", "failure", ":x:"),
    "RuleSkipped": Style("Rule skipped", "warning", ":fast_forward:"),
}
SLACK_COLOURS = {"success": "#2eb67d", "failure": "#e01e5a", "neutral": "#868e96", "warning": "#ecb22e"}

# Slack Block Kit limits (api.slack.com/reference/block-kit/blocks).
SLACK_HEADER_MAX = 150
SLACK_SECTION_MAX = 3000
SLACK_FIELD_MAX = 2000
SLACK_FALLBACK_MAX = 3000
STDERR_TAIL_MAX = 2500


def truncate(text: str, limit: int) -> str:
    """Keep the head; a visible marker shows text was cut. Works on code points, never bytes."""
    if len(text) <= limit:
        return text
    return text[: max(0, limit - 1)] + ELLIPSIS


def keep_tail(text: str, limit: int) -> str:
    """Keep the end (where a stderr's error is), marking the cut at the start."""
    if len(text) <= limit:
        return text
    return ELLIPSIS + text[len(text) - (limit - 1) :]


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


def format_duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else f"{int(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def facts(event: Event) -> list[tuple[str, str]]:
    """The facts every chat format shows, in this order, when present."""
    out: list[tuple[str, str]] = [("Workflow", event.workflow)]
    if event.rule:
        out.append(("Rule", event.rule))
    if event.run_id:
        out.append(("Run", event.run_id))
    details = event.details
    exit_code = _scalar(details.get("exit_code"))
    if exit_code is not None:
        out.append(("Exit code", exit_code))
    duration = details.get("duration_s", details.get("duration_seconds"))
    if duration is None and isinstance(details.get("duration_ms"), (int, float)):
        duration = details["duration_ms"] / 1000
    if isinstance(duration, (int, float)) and not isinstance(duration, bool):
        out.append(("Duration", format_duration(float(duration))))
    return out


def stderr_of(event: Event) -> str | None:
    value = event.details.get("stderr")
    return value if isinstance(value, str) and value.strip() else None


def render_json(event: Event) -> dict[str, Any]:
    return event.to_payload()


def slack_escape(text: str) -> str:
    """Slack's three control characters (api.slack.com/reference/surfaces/formatting#escaping)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _slack_code_block(text: str) -> str:
    # A literal ``` inside would close the block early; a zero-width space defuses it.
    body = keep_tail(text.replace("```", "`\u200b``"), STDERR_TAIL_MAX)
    return "```" + slack_escape(body) + "```"


def render_slack(event: Event) -> dict[str, Any]:
    style = STYLES[event.event]
    subject = f"{style.title}: {event.workflow}" + (f" / {event.rule}" if event.rule else "")
    fallback = truncate(f"{subject}: {event.message}", SLACK_FALLBACK_MAX)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": truncate(slack_escape(event.message), SLACK_SECTION_MAX)}},
        {
            "type": "section",
            "fields": [
                {"type": "mrkdwn", "text": truncate(f"*{label}*\n{slack_escape(value)}", SLACK_FIELD_MAX)}
                for label, value in facts(event)[:10]
            ],
        },
    ]
    stderr = stderr_of(event)
    if stderr:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _slack_code_block(stderr)}})
    blocks.append(
        {
            "type": "context",
            "elements": [{"type": "mrkdwn", "text": slack_escape(f"{event.timestamp} · {event.event} · id {event.id}")[:SLACK_FIELD_MAX]}],
        }
    )
    return {
        "text": slack_escape(fallback),
        "blocks": [
            {
                "type": "header",
                "text": {"type": "plain_text", "text": truncate(f"{style.emoji} {subject}", SLACK_HEADER_MAX), "emoji": True},
            }
        ],
        "attachments": [{"color": SLACK_COLOURS[style.outcome], "blocks": blocks}],
    }


FORMATS: dict[str, Callable[[Event], dict[str, Any]]] = {
    "json": render_json,
    "slack": render_slack,
}


def render(event: Event, fmt: str) -> bytes:
    """The exact body bytes to send (and to sign): compact UTF-8 JSON."""
    payload = FORMATS[fmt](event)
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
