"""``discord``: one embed with an integer colour, fields and a timestamp.

Limits (discord.com/developers/docs/resources/message#embed-object-embed-limits): title 256,
description 4,096, 25 fields, field name 256 and value 1,024, footer 2,048, and 6,000 for all of
an embed's text together. ``allowed_mentions`` is empty, so no text can ping @everyone or anyone:
that is Discord's own guarantee. On top of it nothing even *looks* like a mention or a link: the
markdown of the description and field values is backslash-escaped (Discord honours a backslash
before any ASCII punctuation: no masked link, no <@id>, <#id> or <t:…>) and each @ gets a word
joiner; the title, footer and stderr code block, where a backslash would show, get ``neutralise``.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any

from .common import STYLES, break_mentions, code_block, facts, fit, fit_tail, footer, message_of, neutralise, stderr_of, subject, units
from .digest_common import counts, headline, items, more, more_line, shrink, style_of, window_line
from .digest_common import footer as digest_footer

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

COLOURS = {"success": 0x2EB67D, "failure": 0xE01E5A, "neutral": 0x868E96, "warning": 0xECB22E}
TITLE_MAX = 256
DESCRIPTION_MAX = 4096
FIELD_VALUE_MAX = 1024
FOOTER_MAX = 2048
TOTAL_MAX = 6000
_MARKDOWN = re.compile(r"([\\*_~`|\[\]<])")
_LINE_START = re.compile(r"(?m)^(\s*)([>#-])")
_TIMESTAMP = re.compile(r"\A\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})\Z")  # what an embed's timestamp takes
LINE_MAX = 300  # a digest's listed event
DIGEST_STDERR_MAX = 900  # each of the (at most three) stderr tails, before shrinking to fit


def escape(text: str) -> str:
    """Markdown shown as itself: event text cannot format, make a masked link, quote, list or
    mention (the word joiner after @ is what discord.py's escape_mentions does with U+200B)."""
    return break_mentions(_LINE_START.sub(r"\1\\\2", _MARKDOWN.sub(r"\\\1", text)))


def _description(event: Event, message_max: int, stderr_max: int) -> str:
    text = fit(escape(message_of(event)), message_max)
    stderr = stderr_of(event)
    if stderr and stderr_max > 0:
        text += "\n" + code_block(fit_tail(neutralise(stderr), stderr_max))
    return text


def render_discord(event: Event) -> dict[str, Any]:
    style = STYLES[event.event]
    title = fit(f"{style.symbol} {neutralise(subject(event))}", TITLE_MAX)
    pairs = [(label, fit(escape(value), FIELD_VALUE_MAX)) for label, value in facts(event)[:25]]
    fields = [{"name": label, "value": value, "inline": True} for label, value in pairs]
    foot = fit(neutralise(footer(event)), FOOTER_MAX)
    fixed = units(title) + units(foot) + sum(units(label) + units(value) for label, value in pairs)
    room = min(DESCRIPTION_MAX, TOTAL_MAX - fixed)
    message_max = min(2000, max(0, room - 16))
    stderr_max = max(0, room - message_max - 16)
    description = _description(event, message_max, stderr_max)
    while units(description) > room and stderr_max > 0:
        stderr_max = stderr_max // 2 if stderr_max > 64 else 0
        description = _description(event, message_max, stderr_max)
    return {
        "embeds": [
            {
                "title": title,
                "description": fit(description, max(0, room)),
                "color": COLOURS[style.outcome],
                "fields": fields,
                "footer": {"text": foot},
                "timestamp": event.timestamp,
            }
        ],
        "allowed_mentions": {"parse": []},
    }


def render_discord_digest(digest: Digest) -> dict[str, Any]:
    """The headline as the title, the counts as inline fields, the footer; the description holds
    the window, the listed events (stderr tails in code blocks under the first failed ones) and
    "and N more", shrunk until all the embed's text fits 6,000 and the description 4,096."""
    style = style_of(digest)
    title = fit(f"{style.symbol} {neutralise(headline(digest))}", TITLE_MAX)
    pairs = counts(digest)
    fields = [{"name": label, "value": n, "inline": True} for label, n in pairs]
    foot = fit(neutralise(digest_footer(digest)), FOOTER_MAX)
    fixed = units(title) + units(foot) + sum(units(label) + units(n) for label, n in pairs)
    room = min(DESCRIPTION_MAX, TOTAL_MAX - fixed)
    listed = items(digest)
    window = fit(escape(window_line(digest)), 600)

    def description(stderr_max: int, count: int) -> str:
        lines = [window]
        for item in listed[:count]:
            lines.append(fit(f"{item.symbol} {escape(item.line)}", LINE_MAX))
            if item.stderr and stderr_max > 0:
                lines.append(code_block(fit_tail(neutralise(item.stderr), stderr_max)))
        left = more(digest, count)
        if left:
            lines.append(more_line(left))
        return "\n".join(lines)

    text = shrink(description, lambda d: units(d) <= room, DIGEST_STDERR_MAX, len(listed))
    embed: dict[str, Any] = {
        "title": title,
        "description": fit(text, max(0, room)),
        "color": COLOURS[style.outcome],
        "fields": fields,
        "footer": {"text": foot},
    }
    if _TIMESTAMP.match(digest.closed):
        embed["timestamp"] = digest.closed
    return {"embeds": [embed], "allowed_mentions": {"parse": []}}
