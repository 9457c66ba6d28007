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

if TYPE_CHECKING:
    from oxoflow_notify.inbound.events import Event

TEXT_MAX = 4000
TEXT_MAX_BYTES = 32_000
STDERR_MAX = 1500


def _safe(text: str) -> str:
    return neutralise(defuse_fences(text))


def render_text(event: Event) -> dict[str, Any]:
    style = STYLES[event.event]
    lines = [
        fit(_safe(f"{style.symbol} {subject(event)}"), 300),
        fit(_safe(message_of(event)), 1500),
        fit(_safe(" · ".join(f"{label}: {value}" for label, value in facts(event))), 600),
    ]
    foot = fit(neutralise(footer(event)), 300)
    stderr = stderr_of(event)
    if stderr:
        # stderr gets what the other lines leave, so the end of it (the error) always survives
        room = TEXT_MAX - units("\n".join([*lines, foot])) - len(code_block("")) - 1
        if room > 20:
            lines.append(code_block(fit_tail(neutralise(stderr), min(STDERR_MAX, room))))
    lines.append(foot)
    return {"text": fit_bytes(fit("\n".join(lines), TEXT_MAX), TEXT_MAX_BYTES)}
