"""What every chat format shares: one style table, one list of facts, safe text that fits.

Lengths are measured in UTF-16 code units, the most a receiver can count a string as (JavaScript
`length`): a text that fits by that measure fits by code points too. Cuts are made between code
points, so a multi-byte character is never split.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from oxoflow_notify.inbound.events import Event

ELLIPSIS = "…"
_BACKTICK_PAIR = re.compile(r"`(?=`)")  # a ZWSP after each such backtick: no run of three survives


@dataclass(frozen=True)
class Style:
    title: str
    outcome: str  # success | failure | neutral | warning
    emoji: str  # Slack shortcode
    symbol: str  # the same, as Unicode, for receivers without shortcodes


STYLES: dict[str, Style] = {
    "WorkflowStarted": Style("Workflow started", "neutral", ":arrow_forward:", "▶️"),
    "WorkflowCompleted": Style("Workflow completed", "success", ":white_check_mark:", "✅"),
    "WorkflowFailed": Style("Workflow failed", "failure", ":x:", "❌"),
    "WorkflowCancelled": Style("Workflow cancelled", "warning", ":no_entry_sign:", "🚫"),
    "RuleStarted": Style("Rule started", "neutral", ":arrow_forward:", "▶️"),
    "RuleCompleted": Style("Rule completed", "success", ":white_check_mark:", "✅"),
    "RuleFailed": Style("Rule failed", "failure", ":x:", "❌"),
    "RuleSkipped": Style("Rule skipped", "warning", ":fast_forward:", "⏭️"),
    "WebhookDisabled": Style("Webhook disabled", "warning", ":no_bell:", "🔕"),
    "WorkflowOverdue": Style("Workflow overdue", "warning", ":hourglass:", "⌛"),
}

_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def units(text: str) -> int:
    """Length in UTF-16 code units."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def clean(text: str) -> str:
    """Drop control and bidi-override characters (they garble or disguise chat text); keep \\n, \\t."""
    return _CONTROL.sub("", text.replace("\r\n", "\n").replace("\r", "\n"))


def fit(text: str, limit: int) -> str:
    """Keep the head within ``limit`` units; a visible … marks the cut."""
    if units(text) <= limit:
        return text
    cut = max(0, limit - 1)
    while cut and units(text[:cut]) > limit - 1:
        cut -= 1
    return text[:cut] + ELLIPSIS


def fit_tail(text: str, limit: int) -> str:
    """Keep the end (where a stderr's error is) within ``limit`` units, marking the cut at the start."""
    if units(text) <= limit:
        return text
    start = len(text) - max(0, limit - 1)
    while start < len(text) and units(text[start:]) > limit - 1:
        start += 1
    return ELLIPSIS + text[start:]


def fit_bytes(text: str, limit: int) -> str:
    """Keep the head within ``limit`` UTF-8 bytes, never splitting a character."""
    encoded = text.encode("utf-8")
    if len(encoded) <= limit:
        return text
    return encoded[: max(0, limit - 3)].decode("utf-8", "ignore") + ELLIPSIS


def defuse_fences(text: str) -> str:
    """A zero-width space inside any ``` so event text can neither open nor close a code block."""
    return _BACKTICK_PAIR.sub("`\u200b", text)


def code_block(text: str) -> str:
    return "```\n" + defuse_fences(text) + "\n```"


# -- mentions and links ----------------------------------------------------------------------
# Event text must never ping anyone or show one thing while linking to another. Every chat format
# breaks the sigils its receivers parse by putting a WORD JOINER (U+2060) right after each one: it
# is invisible and no line-break opportunity, so the text reads and wraps as sent; it is not a
# letter, digit, space or punctuation, so no receiver's mention, channel, link or reference syntax
# continues across it (Mattermost splits words on it, Rocket.Chat's names are [0-9a-zA-Z-_.],
# CommonMark needs "](" and "]:" adjacent, Slack and Google Chat need "<" then the target).
# Inserting *after* the sigil means a cut (fit, fit_tail) can never separate the two into a live
# form: the sigil is followed by its joiner, by the cut's "…", or by nothing. Each substitution is
# idempotent, so text broken twice reads the same. docs/formats.md has the table per format.

WORD_JOINER = "\u2060"
_MENTION_SIGIL = re.compile(r"@(?!\u2060)|[#~](?=\w)")  # @here @all @name; #channel (Slack, Rocket.Chat); ~channel (Mattermost)
_LINK_CLOSE = re.compile(r"\](?!\u2060)")  # [t](u), ![a](u), [t][r] and the definition [r]: u all need "]" then ( [ :
_ANGLE = re.compile(r"<(?!\u2060)")  # <!here> <@U1> <#C1> <!subteam^S1> <users/all> <url|text> <https://…> <at>
_CHARACTER_REFERENCE = re.compile(r"&(?=[#A-Za-z])")  # &#64;here is @here to Mattermost once decoded


def break_mentions(text: str) -> str:
    """A word joiner after every @, and after # or ~ that starts a name."""
    return _MENTION_SIGIL.sub(lambda m: m.group() + WORD_JOINER, text)


def break_links(text: str) -> str:
    """A word joiner after every ]: no markdown link, image, reference or reference definition."""
    return _LINK_CLOSE.sub("]" + WORD_JOINER, text)


def neutralise(text: str) -> str:
    """Everything a chat receiver could turn into a mention or a link, broken; for text that has no
    escape syntax of its own (Teams, the text format, Slack's plain_text header, Discord's title,
    footer and code blocks). Angle forms and character references are broken as well."""
    text = _CHARACTER_REFERENCE.sub("&" + WORD_JOINER, _ANGLE.sub("<" + WORD_JOINER, text))
    return break_links(break_mentions(text))


def _scalar(value: Any) -> str | None:
    if value is None or isinstance(value, (dict, list)):
        return None
    if isinstance(value, bool):
        return "yes" if value else "no"
    return str(value)


READABLE_SECONDS = 10_000 * 3600  # beyond 10,000 hours a duration is shown as the number it is


def number_text(value: float) -> str:
    """Any finite number, briefly: 1.5, 1e+308, 1.00000e+300 for an integer too big for a float."""
    if isinstance(value, int) and abs(value) >= 10**15:
        digits = str(abs(value))
        return f"{'-' if value < 0 else ''}{digits[0]}.{digits[1:6]}e+{len(digits) - 1}"
    return f"{value:.6g}"


def format_duration(seconds: float) -> str:
    """1.5 s, 3 min 20 s, 2 h 5 min; a huge or non-finite value falls back to its number of seconds."""
    if not math.isfinite(seconds) or seconds >= READABLE_SECONDS:
        return f"{number_text(seconds)} s"
    seconds = max(0.0, seconds)
    if seconds < 60:
        return f"{seconds:.1f} s" if seconds % 1 else f"{int(seconds)} s"
    minutes, secs = divmod(round(seconds), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes} min" if hours else f"{minutes} min {secs} s"


def duration_of(details: dict[str, Any]) -> str | None:
    """``duration_s`` (or ``duration_seconds``), else ``duration_ms``, as text; any finite number
    renders (an integer too big for a float is shown as it is, not converted)."""
    value = details.get("duration_s", details.get("duration_seconds"))
    scale = 1
    if value is None:
        value, scale = details.get("duration_ms"), 1000
    if not isinstance(value, (int, float)) or isinstance(value, bool):
        return None
    try:
        return format_duration(value / scale if scale != 1 else float(value))
    except OverflowError:  # an integer beyond a float's range
        return f"{number_text(value)} {'ms' if scale != 1 else 's'}"


COUNTS = (("succeeded", "Succeeded"), ("failed", "Failed"), ("skipped", "Skipped"), ("total_rules", "Rules"))


def facts(event: Event) -> list[tuple[str, str]]:
    """The facts every chat format shows, in this order, when present. Values are cleaned text."""
    out: list[tuple[str, str]] = [("Workflow", event.workflow)]
    if event.rule:
        out.append(("Rule", event.rule))
    if event.run_id:
        out.append(("Run", event.run_id))
    details = event.details
    exit_code = _scalar(details.get("exit_code"))
    if exit_code is not None:
        out.append(("Exit code", exit_code))
    duration = duration_of(details)
    if duration is not None:
        out.append(("Duration", duration))
    for key, label in COUNTS:
        value = details.get(key)
        if isinstance(value, int) and not isinstance(value, bool):
            out.append((label, str(value)))
    # A value that cleans to nothing would be an empty field, which Discord refuses: show a dash.
    return [(label, clean(value).strip() or "—") for label, value in out]


def message_of(event: Event) -> str:
    """The event's message as chat text; never empty (the headline stands in)."""
    return clean(event.message).strip() or subject(event)


def stderr_of(event: Event) -> str | None:
    value = event.details.get("stderr")
    # Defused here, before any fitting, so what is measured is what is sent.
    return defuse_fences(clean(value).strip("\n")) if isinstance(value, str) and value.strip() else None


def subject(event: Event) -> str:
    """'Rule failed: variant-calling / align_reads': the one-line headline of every format."""
    return clean(f"{STYLES[event.event].title}: {event.workflow}" + (f" / {event.rule}" if event.rule else ""))


def footer(event: Event) -> str:
    return clean(f"{event.timestamp} · {event.event} · id {event.id}")


def encoded_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8"))
