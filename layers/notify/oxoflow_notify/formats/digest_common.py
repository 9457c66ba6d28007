"""What every chat format shows for a digest (``inbound.digests.Digest``), as plain cleaned text.

One headline ("❌ variant-calling (run r-42): 300 rule events in 2 min 0 s — 280 failed, 20
completed"), the window (opened, closed, why it closed), the counts per event type, the kept events
listed failed first (rule name and exit code, the stderr tail of the first ``STDERR_SHOWN`` failed
ones, then the others: rule name and what happened), "and N more" for the rest, and a footer (digest
id, workflow, run). The texts here are cleaned but *not* made safe: each format escapes or
neutralises them its own way, then fits them to its limits. ``shrink`` finds the largest rendering
that fits: shorter stderr tails first, then fewer listed events (the last ones, so failed rules go
last), whatever is not listed counted in "and N more".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

from .common import STYLES, Style, _scalar, clean, defuse_fences, duration_of, fit, format_duration

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest

T = TypeVar("T")

COUNT_ORDER = ("RuleFailed", "RuleSkipped", "RuleCompleted", "RuleStarted")  # by severity, as shown
COUNT_LABELS = {"RuleFailed": "Failed", "RuleSkipped": "Skipped", "RuleCompleted": "Completed", "RuleStarted": "Started"}
WHAT = {"RuleFailed": "failed", "RuleSkipped": "skipped", "RuleCompleted": "completed", "RuleStarted": "started"}
CLOSED_BY_TEXT = {"timer": "when its time was up", "workflow_end": "when the workflow ended", "full": "early, as it was full"}
STDERR_SHOWN = 3  # failed rules whose stderr tail is shown
LISTED_MAX = 40  # kept events any format lists at most (a window keeps 20)
NAME_MAX = 150  # units of a rule name in a listed line
PART_MAX = 80  # units of the workflow, the run id or a time in the headline and the window line
ID_MAX = 200  # units of the digest id and run id in the footer
STDERR_FLOOR = 200  # stderr tails shrink to this before any listed event is dropped


@dataclass(frozen=True)
class Item:
    """One listed event: ``line`` is "<rule> — <what happened>"; stderr only for the first failed."""

    event: str
    symbol: str  # Unicode
    emoji: str  # Slack shortcode
    line: str
    stderr: str | None = None  # cleaned, code fences defused, not cut


def one_line(value: Any, limit: int) -> str:
    """Event text as one cleaned line (no newlines or tabs), cut to ``limit`` units."""
    return fit(" ".join(clean(str(value)).split()), limit)


def style_of(digest: Digest) -> Style:
    """Failure if any rule failed, else warning if any was skipped, else success if any completed, else neutral."""
    seen = {name for name, n in digest.counts.items() if isinstance(n, int) and n > 0}
    seen |= {str(e.get("event")) for e in digest.events}
    for name in ("RuleFailed", "RuleSkipped", "RuleCompleted"):
        if name in seen:
            return STYLES[name]
    return STYLES["RuleStarted"]


def counts(digest: Digest) -> list[tuple[str, str]]:
    """(label, number) per event type that occurred, failed first."""
    out = []
    for name in COUNT_ORDER:
        n = digest.counts.get(name)
        if isinstance(n, int) and not isinstance(n, bool) and n > 0:
            out.append((COUNT_LABELS[name], str(n)))
    return out


def rule_events(n: int) -> str:
    return f"{n} rule event{'' if n == 1 else 's'}"


def headline(digest: Digest) -> str:
    """'variant-calling (run r-42): 300 rule events in 2 min 0 s — 280 failed, 20 completed' (no symbol)."""
    text = one_line(digest.workflow, PART_MAX)
    if digest.run_id is not None:
        text += f" (run {one_line(digest.run_id, PART_MAX)})"
    text += f": {rule_events(digest.total)} in {format_duration(digest.seconds)}"
    shown = counts(digest)
    if shown:
        text += " — " + ", ".join(f"{n} {label.lower()}" for label, n in shown)
    return text


def window_line(digest: Digest) -> str:
    """'Window 1 opened 2026-05-18T12:00:00Z, closed 2026-05-18T12:02:00Z when its time was up.'"""
    reason = CLOSED_BY_TEXT.get(digest.closed_by) or f"(closed by {one_line(digest.closed_by, PART_MAX)})"
    opened, closed = one_line(digest.opened, PART_MAX), one_line(digest.closed, PART_MAX)
    return f"Window {digest.window} opened {opened}, closed {closed} {reason}."


def footer(digest: Digest) -> str:
    """'Digest <id> · workflow <workflow> · run <run id>'."""
    text = f"Digest {one_line(digest.id, ID_MAX)} · workflow {one_line(digest.workflow, PART_MAX)}"
    if digest.run_id is not None:
        text += f" · run {one_line(digest.run_id, ID_MAX)}"
    return text


def more_line(n: int) -> str:
    return f"and {n} more {'rule event' if n == 1 else 'rule events'}"


def more(digest: Digest, listed: int) -> int:
    """How many rule events the message does not list: the window's left-out ones and any kept one
    a format had no room for."""
    return max(0, digest.total - listed)


def _what(name: str, details: dict[str, Any]) -> str:
    if name == "RuleFailed":
        code = _scalar(details.get("exit_code"))
        return f"failed with exit code {one_line(code, 40)}" if code is not None and clean(code).strip() else "failed"
    if name == "RuleCompleted":
        duration = duration_of(details)
        return f"completed in {duration}" if duration else "completed"
    return WHAT.get(name) or one_line(name, 40) or "event"


def items(digest: Digest) -> list[Item]:
    """The kept events to list, failed first (in their order), at most LISTED_MAX."""
    events = [e for e in digest.events if isinstance(e, dict)]
    ordered = [e for e in events if e.get("event") == "RuleFailed"] + [e for e in events if e.get("event") != "RuleFailed"]
    out: list[Item] = []
    failed_seen = 0
    for e in ordered[:LISTED_MAX]:
        name = str(e.get("event"))
        style = STYLES.get(name, STYLES["RuleStarted"])
        raw = e.get("details")
        details: dict[str, Any] = raw if isinstance(raw, dict) else {}
        rule = one_line(e.get("rule"), NAME_MAX) if e.get("rule") is not None else ""
        stderr = None
        if name == "RuleFailed":
            failed_seen += 1
            value = details.get("stderr")
            if failed_seen <= STDERR_SHOWN and isinstance(value, str) and value.strip():
                stderr = defuse_fences(clean(value).strip("\n"))
        out.append(Item(name, style.symbol, style.emoji, f"{rule or '—'} — {_what(name, details)}", stderr))
    return out


def shrink(build: Callable[[int, int], T], fits: Callable[[T], bool], stderr_max: int, shown: int) -> T:
    """``build(stderr_max, shown)`` with the largest budgets that fit: stderr tails halved down to
    STDERR_FLOOR, then the last listed events dropped one by one, then the tails left out."""
    while True:
        out = build(stderr_max, shown)
        if fits(out) or (stderr_max == 0 and shown == 0):
            return out
        if stderr_max > STDERR_FLOOR:
            stderr_max = max(STDERR_FLOOR, stderr_max // 2)
        elif shown > 0:
            shown -= 1
        else:
            stderr_max = 0
