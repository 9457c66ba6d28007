"""What a receiver's answer means: delivered, try again, or give up, and why.

Status codes decide most cases; a few receivers need their documented answers read:
- Slack answers ``ok``; 400 ``invalid_payload``, 403 ``action_prohibited``, 404 ``channel_not_found``
  and 410 ``channel_is_archived`` are permanent (the last two mean the webhook is gone).
- Discord answers 204; 404 is an unknown (deleted) webhook; a 429 carries ``retry_after`` in JSON.
- Teams answers 200 or 202, but its connectors also answered 200 with an error text in the body:
  that is a failure, retried.
The reason never quotes a URL, and quotes a receiver's body only as a short, cleaned snippet.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from .delivery import PERMANENT, RETRYABLE, SUCCESS, Outcome
from .retry import parse_retry_after

_URL = re.compile(r"https?://\S+", re.IGNORECASE)
_GONE = {
    ("slack", 404): "Slack: channel_not_found, the webhook's channel is gone",
    ("slack", 410): "Slack: channel_is_archived",
    ("discord", 404): "Discord: unknown webhook, it was deleted",
    ("teams", 404): "Teams: the workflow behind this webhook is gone",
}


@dataclass(frozen=True)
class Verdict:
    kind: str  # SUCCESS | RETRYABLE | PERMANENT
    reason: str  # one phrase for logs and dead letters
    retry_after: float | None = None  # seconds the receiver asked us to wait


def snippet(body: str, limit: int = 80) -> str:
    """First line of a receiver's answer, URLs removed, short: safe to log."""
    line = _URL.sub("<url>", body.strip().splitlines()[0] if body.strip() else "")
    line = "".join(ch for ch in line if ch.isprintable())
    return line[:limit] + ("…" if len(line) > limit else "")


def _discord_retry_after(body: str) -> float | None:
    try:
        data = json.loads(body)
    except ValueError:
        return None
    value = data.get("retry_after") if isinstance(data, dict) else None
    return float(value) if isinstance(value, (int, float)) and not isinstance(value, bool) else None


def judge(fmt: str, outcome: Outcome, now: float) -> Verdict:
    if outcome.error is not None or outcome.status is None:
        return Verdict(outcome.verdict, outcome.describe())
    status = outcome.status
    if 200 <= status < 300:
        lowered = outcome.snippet.lower()
        if fmt == "teams" and ("error" in lowered or "failed" in lowered):
            return Verdict(RETRYABLE, f"HTTP {status} with an error in the body: {snippet(outcome.snippet)}")
        return Verdict(SUCCESS, f"HTTP {status}")
    said = snippet(outcome.snippet)
    described = f"HTTP {status}" + (f" {said}" if said else "")
    retry_after = parse_retry_after(outcome.retry_after, now)
    if retry_after is None and fmt == "discord" and status == 429:
        retry_after = _discord_retry_after(outcome.snippet)
    if (fmt, status) in _GONE:
        return Verdict(PERMANENT, f"HTTP {status} ({_GONE[fmt, status]})")
    if 300 <= status < 400:
        return Verdict(PERMANENT, f"HTTP {status} (redirects are not followed)")
    if outcome.verdict == RETRYABLE:
        return Verdict(RETRYABLE, described, retry_after)
    return Verdict(PERMANENT, described)
