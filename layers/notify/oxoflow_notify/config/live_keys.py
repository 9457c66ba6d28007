"""The keys of a live webhook (``live = true``): one message per run, edited in place as the run
goes (``pipeline.live``). Only Slack and Discord can edit what they posted: Discord through its
ordinary webhook URL (``?wait=true`` returns the message, ``PATCH .../messages/{id}`` edits it),
Slack through its Web API with a bot token and a channel id (incoming webhooks cannot edit).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from urllib.parse import urlsplit

from oxoflow_notify.defaults import DEFAULTS

from . import is_reference
from .lifecycle_keys import secret_key
from .webhook_values import named, parse_duration

if TYPE_CHECKING:
    from .webhook_keys import Fields

Check = Callable[["Fields"], list[str]]
LIVE_FORMATS = ("slack", "discord")
SLACK_API = "https://slack.com/api"
_CHANNEL_ID = re.compile(r"[CGD][A-Z0-9]{8,20}\Z")
# What a live message does instead of these keys, worded for the refusal.
_NOT_LIVE = {
    "events": "a live message follows every event of its run",
    "digest": "a live message already folds a run's events into one",
    "rate_limit": "its edits are paced by live_interval",
    "secret": "the platform's API takes no signature",
    "signature": "the platform's API takes no signature",
    "signature_scheme": "the platform's API takes no signature",
    "method": "each call's method is the platform's",
}


def _live(fields: Fields) -> list[str]:
    value = fields.get("live")
    if value is None or value is False:
        return []
    if value is not True:
        return [f"key 'live' must be true or false, got {type(value).__name__}"]
    fmt = fields.get("format", "json")
    if fmt not in LIVE_FORMATS:
        shown_format = fmt if isinstance(fmt, str) and fmt.isidentifier() else "this format"
        return [f"key 'live' applies to formats slack and discord only: {shown_format} cannot edit a message it posted "
                "(Teams Workflows and plain-text webhooks post and forget)"]  # fmt: skip
    problems = [f"key '{key}' does not apply to a live webhook: {why}" for key, why in _NOT_LIVE.items() if key in fields.table]
    return problems + _slack_url(fields) if fmt == "slack" else problems


def _slack_url(fields: Fields) -> list[str]:
    """A live Slack webhook's url is the Web API's base; never quoted."""
    url = fields.get("url")
    if not isinstance(url, str) or is_reference(url):
        return []
    try:
        parts = urlsplit(url)
    except ValueError:
        return []  # _url's to report
    if (parts.hostname or "").lower() == "hooks.slack.com":
        return [f"key 'url': a Slack incoming webhook cannot edit what it posted; a live Slack webhook uses the Web API: "
                f'url = "{SLACK_API}", a bot token (key \'token\') and a channel id (key \'channel\')']  # fmt: skip
    if parts.path.rstrip("/").rsplit("/", 1)[-1].startswith("chat."):
        return [f"key 'url' must be the Web API's base (\"{SLACK_API}\"), not one of its methods: each call names its own"]
    return []


def _live_interval(fields: Fields) -> list[str]:
    value = fields.get("live_interval")
    if value is None:
        return []
    if fields.get("live") is not True:
        return ["key 'live_interval' applies to a live webhook only (live = true)"]
    seconds = parse_duration(value)
    if seconds is None:
        return [f"key 'live_interval': '{named(value)}' is not a duration: write 5s, 30s or 1m"]
    low, high = DEFAULTS.live_interval_min, DEFAULTS.live_interval_max
    if not low <= seconds <= high:
        return [f"key 'live_interval' must be from {low:g}s to 15m (got {seconds:g} s)"]
    return []


def _slack_only(key: str, what: str, valid: Callable[[Fields], list[str]]) -> Check:
    """``channel`` / ``token``: required by a live Slack webhook, refused anywhere else."""

    def check(fields: Fields) -> list[str]:
        live_slack = fields.get("live") is True and fields.get("format") == "slack"
        if not live_slack:
            return [f"key '{key}' applies to a live Slack webhook only (format = \"slack\", live = true)"] if key in fields.table else []
        if key not in fields.table:
            return [f"key '{key}' is required for a live Slack webhook: {what}"]
        return valid(fields)

    return check


def _channel(fields: Fields) -> list[str]:
    value = fields.get("channel")
    if not isinstance(value, str) or not _CHANNEL_ID.match(value):
        return [f"key 'channel': '{named(value)}' is not a channel id: write one such as C0123456789 (chat.update takes ids, "
                "not names; the channel's details in Slack show it)"]  # fmt: skip
    return []


def _token(fields: Fields) -> list[str]:
    """A bot token (xoxb-...) or a reference to one in the file's scope; never quoted."""

    def bot_token(value: str) -> list[str]:
        if value.startswith(("xoxb-", "xoxp-")) and not any(ch.isspace() for ch in value):
            return []
        return ["key 'token' must be a Slack bot token (xoxb-...) or an ssm:/secretsmanager: reference to one; "
                "better kept in SSM than in the file"]  # fmt: skip

    return secret_key(fields, "token", bot_token)


LIVE_CHECKS: tuple[tuple[str, Check], ...] = (
    ("live", _live),
    ("live_interval", _live_interval),
    ("channel", _slack_only("channel", "the id of the channel to post to (C0123456789)", _channel)),
    ("token", _slack_only("token", "a bot token with chat:write (an ssm:/secretsmanager: reference in this file's scope)", _token)),
)
