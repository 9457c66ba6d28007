"""A run's live message (``live = true``): one Slack or Discord message that is edited as the run
goes — state, counts per rule event, a progress bar when the total is known, the time it has run,
the last failure — and ends as completed, failed or cancelled with the totals.

Pure: a ``LiveView`` in, the platform's message out. Text from events (workflow, run, rule,
stderr) is neutralised as in every chat format and fitted to the platform's limits; the same
checks the format tests use read it (tests/unit/test_live_format.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from . import discord, slack
from .common import clean, code_block, fit, fit_tail, format_duration, neutralise

STATES = ("running", "completed", "failed", "cancelled", "overdue")
# state -> (word, outcome colour, Slack emoji, Unicode symbol)
_LOOK: dict[str, tuple[str, str, str, str]] = {
    "running": ("running", "neutral", ":hourglass_flowing_sand:", "⏳"),
    "completed": ("completed", "success", ":white_check_mark:", "✅"),
    "failed": ("failed", "failure", ":x:", "❌"),
    "cancelled": ("cancelled", "warning", ":no_entry_sign:", "🚫"),
    "overdue": ("overdue", "warning", ":hourglass:", "⌛"),
}
COUNTED = (("RuleCompleted", "Completed"), ("RuleFailed", "Failed"), ("RuleSkipped", "Skipped"), ("RuleStarted", "Started"))
BAR_CELLS = 20
STDERR_TAIL = 900  # of the last failure's stderr, in the message itself (a Slack thread reply has the rest)


@dataclass(frozen=True)
class LiveView:
    """What a run's live message shows at one moment."""

    workflow: str
    run_id: str | None
    state: str  # one of STATES
    counts: Mapping[str, int] = field(default_factory=dict)  # by rule event name
    total: int | None = None  # details.total_rules of WorkflowStarted, when it said
    elapsed: float | None = None  # seconds since the run started (to its end, once ended)
    last_failure: Mapping[str, Any] | None = None  # {"rule", "exit_code", "stderr"}
    failures_not_shown: int = 0  # RuleFailed events beyond the thread's replies (Slack)

    @property
    def done(self) -> int:
        return sum(self.counts.get(name, 0) for name in ("RuleCompleted", "RuleFailed", "RuleSkipped"))


def headline(view: LiveView) -> str:
    """'variant-calling run 42: running — 312/500 rules done, 3 failed, 1 h 12 min'."""
    word = _LOOK[view.state][0]
    run = f" run {view.run_id}" if view.run_id else ""
    done = f"{view.done:,}/{view.total:,}" if view.total else f"{view.done:,}"
    failed = view.counts.get("RuleFailed", 0)
    parts = [f"{done} rules done"] + ([f"{failed:,} failed"] if failed else [])
    if view.elapsed is not None:
        parts.append(format_duration(view.elapsed))
    return clean(f"{view.workflow}{run}: {word} — {', '.join(parts)}")


def progress_bar(view: LiveView) -> str | None:
    """'▓▓▓▓▓▓▓▓▓▓▓▓░░░░░░░░ 62 %' when the total is known, else None (counts only)."""
    if not view.total or view.total <= 0:
        return None
    share = min(1.0, view.done / view.total)
    filled = int(share * BAR_CELLS)
    return "▓" * filled + "░" * (BAR_CELLS - filled) + f" {int(share * 100)} %"


def _counts(view: LiveView) -> list[tuple[str, str]]:
    shown = [(label, f"{view.counts.get(name, 0):,}") for name, label in COUNTED]
    if view.total:
        shown.append(("Rules", f"{view.total:,}"))
    return shown


def _failure_line(view: LiveView) -> tuple[str, str | None] | None:
    """The last failure as (line, stderr tail), or None."""
    failure = view.last_failure
    if not failure:
        return None
    line = f"Last failure: {clean(str(failure.get('rule') or '?'))}"
    if failure.get("exit_code") is not None:
        line += f" (exit code {clean(str(failure['exit_code']))})"
    stderr = failure.get("stderr")
    tail = clean(stderr).strip("\n") if isinstance(stderr, str) and stderr.strip() else None
    return line, tail


def render_live_slack(view: LiveView) -> dict[str, Any]:
    """chat.postMessage / chat.update's text and blocks (the caller adds channel and ts): the
    headline as the header, the rest in an attachment coloured by state, as the slack format does."""
    word, outcome, emoji, _ = _LOOK[view.state]
    head = headline(view)
    header = {"type": "header", "text": {"type": "plain_text", "text": fit(f"{emoji} {neutralise(head)}", slack.HEADER_MAX), "emoji": True}}
    blocks: list[dict[str, Any]] = []
    bar = progress_bar(view)
    if bar:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"`{bar}`"}})
    blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{n}"} for label, n in _counts(view)]})
    failure = _failure_line(view)
    if failure:
        line, tail = failure
        text = slack._escaped_fit(line, 400)
        if tail:
            text += "\n" + code_block(slack._escaped_tail(tail, STDERR_TAIL))
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": text}})
    if view.failures_not_shown:
        blocks.append(
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"{view.failures_not_shown:,} more failures not in the thread"}]}
        )
    context = f"{word} · oxoflow-notify live" + (f" · run {slack._escaped_fit(view.run_id, 200)}" if view.run_id else "")
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": context}]})
    return {"text": slack._escaped_fit(head, slack.FALLBACK_MAX), "blocks": [header],
            "attachments": [{"color": slack.COLOURS[outcome], "blocks": blocks}]}  # fmt: skip


def render_live_discord(view: LiveView) -> dict[str, Any]:
    """The webhook message's body (POST ?wait=true, then PATCH .../messages/{id})."""
    word, outcome, _, symbol = _LOOK[view.state]
    title = fit(f"{symbol} {neutralise(headline(view))}", discord.TITLE_MAX)
    lines = []
    bar = progress_bar(view)
    if bar:
        lines.append(f"`{bar}`")
    failure = _failure_line(view)
    if failure:
        line, tail = failure
        lines.append(fit(discord.escape(line), 400))
        if tail:
            lines.append(code_block(fit_tail(neutralise(tail), STDERR_TAIL)))
    fields = [{"name": label, "value": n, "inline": True} for label, n in _counts(view)]
    foot = fit(neutralise(f"{word} · oxoflow-notify live" + (f" · run {view.run_id}" if view.run_id else "")), discord.FOOTER_MAX)
    embed: dict[str, Any] = {"title": title, "color": discord.COLOURS[outcome], "fields": fields, "footer": {"text": foot}}
    if lines:
        embed["description"] = fit("\n".join(lines), discord.DESCRIPTION_MAX)
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}
