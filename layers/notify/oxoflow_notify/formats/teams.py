"""``teams``: a Teams Workflows message carrying an Adaptive Card (the Office 365 connectors are retired).

Teams accepts cards up to about 28 KB; the whole payload is kept under 27,000 bytes. No actions:
nothing in an event needs a button, and Teams rejects Action.Submit from webhooks.

TextBlocks and Fact values are rendered as markdown (links included), so every piece of event text
goes through ``neutralise``: a word joiner after each @, <, ], & and #/~ name, which no Teams client
reads as link or mention syntax. Backslash escapes are not used: Teams' mobile clients have shown
them literally and ignored them (AdaptiveCards issues 5590, 4677), which would leave
``\\[x\\](url)`` a live link there. Mentions need ``msteams.entities``, which the card never has.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .common import STYLES, Style, encoded_size, facts, fit, fit_tail, footer, message_of, neutralise, stderr_of, subject
from .digest_common import counts, headline, items, more, more_line, shrink, style_of, window_line
from .digest_common import footer as digest_footer

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest
    from oxoflow_notify.inbound.events import Event

CONTAINER_STYLE = {"success": "good", "failure": "attention", "neutral": "emphasis", "warning": "warning"}
TEXT_COLOUR = {"success": "good", "failure": "attention", "neutral": "default", "warning": "warning"}
PAYLOAD_MAX_BYTES = 27_000
FACT_MAX = 1000


def _message(body: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "type": "message",
        "attachments": [
            {
                "contentType": "application/vnd.microsoft.card.adaptive",
                "contentUrl": None,
                "content": {
                    "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                    "type": "AdaptiveCard",
                    "version": "1.4",
                    "msteams": {"width": "Full"},
                    "body": body,
                },
            }
        ],
    }


def _banner(style: Style, title: str) -> dict[str, Any]:
    """The headline in its coloured container: the top of every card, an event's or a digest's."""
    text = {"type": "TextBlock", "text": fit(f"{style.symbol} {neutralise(title)}", 400), "weight": "Bolder", "size": "Medium",
            "color": TEXT_COLOUR[style.outcome], "wrap": True}  # fmt: skip
    return {"type": "Container", "style": CONTAINER_STYLE[style.outcome], "bleed": True, "items": [text]}


def _card(event: Event, message_max: int, stderr_max: int) -> dict[str, Any]:
    style = STYLES[event.event]
    body: list[dict[str, Any]] = [
        _banner(style, subject(event)),
        {"type": "TextBlock", "text": fit(neutralise(message_of(event)), message_max), "wrap": True},
        {"type": "FactSet", "facts": [{"title": label, "value": fit(neutralise(value), FACT_MAX)} for label, value in facts(event)]},
    ]
    stderr = stderr_of(event)
    if stderr and stderr_max > 0:
        tail = fit_tail(neutralise(stderr), stderr_max)
        body.append({"type": "TextBlock", "text": tail, "fontType": "Monospace", "wrap": True, "size": "Small"})
    body.append({"type": "TextBlock", "text": neutralise(footer(event)), "isSubtle": True, "size": "Small", "wrap": True})
    return _message(body)


def render_teams(event: Event) -> dict[str, Any]:
    """Shrink stderr, then the message, until the card fits Teams' size limit."""
    message_max, stderr_max = 4000, 8000
    card = _card(event, message_max, stderr_max)
    while encoded_size(card) > PAYLOAD_MAX_BYTES and (message_max > 200 or stderr_max > 0):
        stderr_max = stderr_max // 2 if stderr_max > 200 else 0
        if stderr_max == 0:
            message_max = max(200, message_max // 2)
        card = _card(event, message_max, stderr_max)
    return card


LINE_MAX = 500  # a digest's listed event
DIGEST_STDERR_MAX = 4000  # each of the (at most three) stderr tails, before shrinking to fit


def render_teams_digest(digest: Digest) -> dict[str, Any]:
    """The headline in the coloured container, the window, the counts as facts, one TextBlock per
    listed event (a monospace stderr tail under the first failed ones), "and N more", the footer;
    shrunk (stderr tails, then listed events) until the card fits Teams' size limit."""
    style = style_of(digest)
    listed = items(digest)
    top: list[dict[str, Any]] = [
        _banner(style, headline(digest)),
        {"type": "TextBlock", "text": fit(neutralise(window_line(digest)), 600), "wrap": True},
    ]
    shown = counts(digest)
    if shown:
        top.append({"type": "FactSet", "facts": [{"title": label, "value": n} for label, n in shown]})
    foot = {"type": "TextBlock", "text": fit(neutralise(digest_footer(digest)), 600), "isSubtle": True, "size": "Small", "wrap": True}

    def card(stderr_max: int, count: int) -> dict[str, Any]:
        body = list(top)
        for item in listed[:count]:
            body.append({"type": "TextBlock", "text": fit(f"{item.symbol} {neutralise(item.line)}", LINE_MAX), "wrap": True})
            if item.stderr and stderr_max > 0:
                tail = fit_tail(neutralise(item.stderr), stderr_max)
                body.append({"type": "TextBlock", "text": tail, "fontType": "Monospace", "wrap": True, "size": "Small"})
        left = more(digest, count)
        if left:
            body.append({"type": "TextBlock", "text": more_line(left), "wrap": True})
        body.append(foot)
        return _message(body)

    return shrink(card, lambda c: encoded_size(c) <= PAYLOAD_MAX_BYTES, DIGEST_STDERR_MAX, len(listed))
