"""What the platforms answer a live message's calls (``outbound.live_calls``), read as one result.

- Discord: a 2xx to ``POST ?wait=true`` is the message (its ``id``); a 404 with code 10008
  (unknown message: deleted) is LOST; anything else is read as any delivery's answer (``judge``:
  404 otherwise is the webhook gone, 429 waits ``retry_after``).
- Slack answers its errors as HTTP 200 with ``"ok": false`` and an ``error`` code: permanent,
  LOST (``message_not_found``) or retried, as Slack documents them; HTTP 429 waits its Retry-After.

Answers are untrusted: only ids, ``ts`` values and error codes of the expected shape are taken
from them; nothing else of an answer is kept.
"""

from __future__ import annotations

import enum
import json
import re
from dataclasses import dataclass
from typing import Any

from oxoflow_notify.outbound.delivery import Outcome

from .answers import Kind, judge

_ID = re.compile(r"\d{1,24}\Z")  # a Discord snowflake
_TS = re.compile(r"\d{1,12}\.\d{1,9}\Z")  # a Slack message ts
_CODE = re.compile(r"[a-z_]{1,64}\Z")  # a Slack error code
# Slack's error codes (api.slack.com/methods/chat.postMessage, chat.update) that waiting cannot help ...
SLACK_PERMANENT = frozenset(
    {"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed", "account_inactive", "token_revoked",
     "token_expired", "missing_scope", "no_permission", "msg_too_long", "invalid_blocks", "invalid_blocks_format",
     "too_many_attachments", "restricted_action", "cant_update_message", "edit_window_closed", "ekm_access_denied",
     "invalid_arguments", "invalid_arg_name", "team_access_not_granted", "org_login_required", "access_denied"}
)  # fmt: skip
# ... that mean the message is gone (deleted): it is posted anew, once. The rest (ratelimited,
# internal_error, fatal_error, service_unavailable, request_timeout, codes Slack adds later) are retried.
SLACK_LOST = frozenset({"message_not_found"})


class CallKind(enum.Enum):
    DONE = "done"  # the call did what it was for (``ref``: the new message's id or ts)
    LOST = "lost"  # the message to edit is gone: post it anew
    HELD = "held"  # the platform's rate limit (429, Slack's ratelimited): again after ``wait``, no attempt spent
    RETRY = "retry"  # try again after ``wait`` (the platform's, when it said; else the schedule's)
    GIVE_UP = "give_up"  # permanent: dead-lettered with ``reason``


@dataclass(frozen=True)
class CallResult:
    kind: CallKind
    reason: str
    ref: str | None = None
    wait: float | None = None


def _answer(raw: bytes) -> dict[str, Any]:
    try:
        data = json.loads(raw.decode("utf-8", "replace")) if raw else None
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _unsuccessful(fmt: str, outcome: Outcome, now: float) -> CallResult:
    """No 2xx (or no answer): read as any delivery's answer is."""
    verdict = judge(fmt, outcome, now)
    if outcome.status == 429:
        return CallResult(CallKind.HELD, verdict.reason, wait=verdict.retry_after or 1.0)
    match verdict.kind:
        case Kind.RETRY | Kind.HELD:
            return CallResult(CallKind.RETRY, verdict.reason, wait=verdict.retry_after)
        case Kind.GIVE_UP | Kind.DELIVERED | Kind.ALREADY_DELIVERED:
            return CallResult(CallKind.GIVE_UP, verdict.reason)


def read_discord(outcome: Outcome, raw: bytes, posting: bool, now: float) -> CallResult:
    status = outcome.status
    if outcome.error is None and status is not None and 200 <= status < 300:
        if not posting:
            return CallResult(CallKind.DONE, f"HTTP {status}")
        message_id = str(_answer(raw).get("id", ""))
        if not _ID.match(message_id):
            return CallResult(CallKind.RETRY, f"HTTP {status} without the message's id")
        return CallResult(CallKind.DONE, f"HTTP {status}", ref=message_id)
    if status == 404 and not posting and _answer(raw).get("code") == 10008:
        return CallResult(CallKind.LOST, "Discord: unknown message (10008), it was deleted")
    return _unsuccessful("discord", outcome, now)


def read_slack(outcome: Outcome, raw: bytes, posting: bool, now: float) -> CallResult:
    status = outcome.status
    if outcome.error is not None or status is None or not 200 <= status < 300:
        return _unsuccessful("slack-api", outcome, now)
    answer = _answer(raw)
    if answer.get("ok") is True:
        ts = str(answer.get("ts", ""))
        if posting and not _TS.match(ts):
            return CallResult(CallKind.RETRY, f"HTTP {status} ok without the message's ts")
        return CallResult(CallKind.DONE, f"HTTP {status} ok", ref=ts if posting else None)
    error = answer.get("error")
    code = error if isinstance(error, str) and _CODE.match(error) else "unknown_error"
    if code in SLACK_LOST:
        return CallResult(CallKind.LOST, f"Slack: {code}, the message was deleted")
    if code in SLACK_PERMANENT:
        return CallResult(CallKind.GIVE_UP, f"Slack: {code}")
    if code == "ratelimited":
        return CallResult(CallKind.HELD, f"Slack: {code}", wait=1.0)
    return CallResult(CallKind.RETRY, f"Slack: {code}")
