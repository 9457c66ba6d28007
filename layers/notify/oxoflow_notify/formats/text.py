"""``text``: ``{"text": ...}`` for Google Chat, Mattermost and Rocket.Chat.

Kept within 4,000 characters (Rocket.Chat's default maximum is 5,000) and 32,000 bytes (Google
Chat's limit), the tail of stderr in a ``` block, which all three render as code.

One string goes to three parsers with different syntaxes (Google Chat's <url|text> and
<users/all>, Mattermost's Markdown with @here/@channel/@all and ~channel, Rocket.Chat's Markdown
with <url|text>, @all/@here and #channel), and they share no escape: Google Chat's chat syntax has
no backslash escape, and Mattermost unescapes \\@ and decodes &#64; *before* it looks for mentions.
So every line, stderr and the footer included, goes through ``neutralise``: a word joiner after
each @, <, ], & and #/~ name, which none of the three reads as mention or link syntax.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import (
    STYLES,
    code_block,
    defuse_fences,
    facts,
    fit,
    fit_bytes,
    fit_tail,
    footer,
    message_of,
    neutralise,
    stderr_of,
    subject,
    units,
)
from .digest_common import counts, headline, items, more, more_line, shrink, style_of, window_line
from .digest_common import footer as digest_footer

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

TEXT_MAX = 4000
TEXT_MAX_BYTES = 32_000
STDERR_MAX = 1500
LINE_MAX = 300  # a digest's listed event
DIGEST_STDERR_MAX = 800  # each of the (at most three) stderr tails, before shrinking to fit


def _safe(text: str) -> str:
    return neutralise(defuse_fences(text))


def render_text(event: Event) -> dict[str, Any]:
    style = STYLES[event.event]
    lines = [
        fit(_safe(f"{style.symbol} {subject(event)}"), 300),
        fit(_safe(message_of(event)), 1500),
        fit(_safe(" · ".join(f"{label}: {value}" for label, value in facts(event))), 600),
    ]
    foot = fit(_safe(footer(event)), 300)
    stderr = stderr_of(event)
    if stderr:
        # stderr gets what the other lines leave, so the end of it (the error) always survives
        room = TEXT_MAX - units("\n".join([*lines, foot])) - len(code_block("")) - 1
        if room > 20:
            lines.append(code_block(fit_tail(neutralise(stderr), min(STDERR_MAX, room))))
    lines.append(foot)
    return {"text": fit_bytes(fit("\n".join(lines), TEXT_MAX), TEXT_MAX_BYTES)}


def _fits(text: str) -> bool:
    return units(text) <= TEXT_MAX and len(text.encode("utf-8")) <= TEXT_MAX_BYTES


def render_text_digest(digest: Digest) -> dict[str, Any]:
    """Headline, window, counts, the listed events (stderr tails in ``` blocks under the first
    failed ones), "and N more", footer: one line each, shrunk until the text fits."""
    style = style_of(digest)
    top = [
        fit(_safe(f"{style.symbol} {headline(digest)}"), 400),
        fit(_safe(window_line(digest)), 600),
    ]
    shown = counts(digest)
    if shown:
        top.append(" · ".join(f"{label}: {n}" for label, n in shown))
    foot = fit(_safe(digest_footer(digest)), 600)
    listed = items(digest)

    def text(stderr_max: int, count: int) -> str:
        lines = list(top)
        for item in listed[:count]:
            lines.append(fit(_safe(f"{item.symbol} {item.line}"), LINE_MAX))
            if item.stderr and stderr_max > 0:
                lines.append(code_block(fit_tail(neutralise(item.stderr), stderr_max)))
        left = more(digest, count)
        if left:
            lines.append(more_line(left))
        lines.append(foot)
        return "\n".join(lines)

    return {"text": fit_bytes(fit(shrink(text, _fits, DIGEST_STDERR_MAX, len(listed)), TEXT_MAX), TEXT_MAX_BYTES)}
