"""``slack``: an incoming-webhook message with Block Kit blocks and a coloured attachment bar.

Limits (api.slack.com/reference/block-kit/blocks): header text 150, section text 3,000, a field
2,000, 10 fields per section, 50 blocks per message. Slack's control characters &, <, > are
escaped so event text can never become a mention (<!here>, <@U1>, <!subteam^S1>), a channel
(<#C1>) or a link (<url|text>); a word joiner after each @ and each #name keeps the plain forms
(@here, @channel, #general) from being linked by clients that parse them, and one after each ]
keeps markdown link syntax dead. The plain_text header, which has no escapes, gets the word
joiner treatment for < and & as well.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import (
    STYLES,
    break_links,
    break_mentions,
    code_block,
    defuse_fences,
    facts,
    fit,
    fit_tail,
    footer,
    message_of,
    neutralise,
    stderr_of,
    subject,
    units,
)
from .digest_common import counts, headline, items, more, more_line, style_of, window_line
from .digest_common import footer as digest_footer

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

COLOURS = {"success": "#2eb67d", "failure": "#e01e5a", "neutral": "#868e96", "warning": "#ecb22e"}
HEADER_MAX = 150
SECTION_MAX = 3000
FIELD_MAX = 2000
FALLBACK_MAX = 3000
STDERR_MAX = 2500  # leaves room for the fence inside a 3,000-unit section
BLOCKS_MAX = 50
LINE_MAX = 400  # a digest's listed event: 400 + a newline + a 2,500-unit stderr tail in its fence < 3,000


def escape(text: str) -> str:
    """Slack's three control characters, plain @ and # mentions, markdown links, and code fences
    (event text must not open a block). Word joiners first: they must not split an entity."""
    text = break_links(break_mentions(text))
    return defuse_fences(text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;"))


def _escaped_fit(text: str, limit: int) -> str:
    """Escape, then fit; never leaves half an entity (&am…) at the cut."""
    out = fit(escape(text), limit)
    amp = out.rfind("&", max(0, len(out) - 6))
    if amp != -1 and ";" not in out[amp:]:
        out = out[:amp] + "…"
    return out


def _escaped_tail(text: str, limit: int) -> str:
    """Escape, then keep the tail; never starts with the rest of a cut entity (…mp;)."""
    out = fit_tail(escape(text), limit)
    if out.startswith("…"):
        semi = out.find(";", 1, 7)
        if semi != -1 and "&" not in out[1:semi]:
            out = "…" + out[semi + 1 :]
    return out


def render_slack(event: Event) -> dict[str, Any]:
    style = STYLES[event.event]
    headline = subject(event)
    message = message_of(event)
    blocks: list[dict[str, Any]] = [
        {"type": "section", "text": {"type": "mrkdwn", "text": _escaped_fit(message, SECTION_MAX)}},
        {
            "type": "section",
            "fields": [{"type": "mrkdwn", "text": _escaped_fit(f"*{label}*\n{value}", FIELD_MAX)} for label, value in facts(event)[:10]],
        },
    ]
    stderr = stderr_of(event)
    if stderr:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": code_block(_escaped_tail(stderr, STDERR_MAX))}})
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escaped_fit(footer(event), FIELD_MAX)}]})
    header = fit(f"{style.emoji} {neutralise(headline)}", HEADER_MAX)  # plain_text: no escapes, only word joiners
    return {
        "text": _escaped_fit(f"{headline}: {message}", FALLBACK_MAX),
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}],
        "attachments": [{"color": COLOURS[style.outcome], "blocks": blocks}],
    }


def render_slack_digest(digest: Digest) -> dict[str, Any]:
    """The header and fallback carry the headline; the attachment the window, the counts as fields,
    one section per failed rule with a stderr tail, the other listed events packed into sections,
    "and N more" and the footer. Events beyond the 50-block limit are counted in "and N more"."""
    style = style_of(digest)
    head = headline(digest)
    blocks: list[dict[str, Any]] = [{"type": "section", "text": {"type": "mrkdwn", "text": _escaped_fit(window_line(digest), SECTION_MAX)}}]
    shown = counts(digest)
    if shown:
        blocks.append({"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{label}*\n{n}"} for label, n in shown]})
    room = BLOCKS_MAX - 1 - len(blocks) - 2  # the header; "and N more" and the footer after the list
    listed, lines = 0, ""

    def section(text: str) -> dict[str, Any]:
        return {"type": "section", "text": {"type": "mrkdwn", "text": text}}

    listing: list[dict[str, Any]] = []
    for item in items(digest):
        line = _escaped_fit(f"{item.emoji} {item.line}", LINE_MAX)
        if item.stderr:
            text = line + "\n" + code_block(_escaped_tail(item.stderr, STDERR_MAX))
            if lines:
                listing.append(section(lines))
                lines = ""
            if len(listing) >= room:
                break
            listing.append(section(text))
        elif lines and units(lines) + 1 + units(line) <= SECTION_MAX:
            lines += "\n" + line
        else:
            if lines:
                listing.append(section(lines))
            if len(listing) >= room:
                lines = ""
                break
            lines = line
        listed += 1
    if lines:
        listing.append(section(lines))
    blocks.extend(listing)
    left = more(digest, listed)
    if left:
        blocks.append(section(more_line(left)))
    blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": _escaped_fit(digest_footer(digest), FIELD_MAX)}]})
    header = fit(f"{style.emoji} {neutralise(head)}", HEADER_MAX)
    return {
        "text": _escaped_fit(head, FALLBACK_MAX),
        "blocks": [{"type": "header", "text": {"type": "plain_text", "text": header, "emoji": True}}],
        "attachments": [{"color": COLOURS[style.outcome], "blocks": blocks}],
    }
