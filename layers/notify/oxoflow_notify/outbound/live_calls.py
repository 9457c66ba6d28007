"""The platform calls of a live message (``pipeline.live_answers`` reads what they answer).

- Discord, on the webhook's own URL: ``POST ?wait=true`` (the answer is the message, with its
  ``id``), then ``PATCH /messages/{id}``.
- Slack, on the Web API (``url`` is its base) with ``Authorization: Bearer <token>``:
  ``chat.postMessage`` (answers ``ts``), ``chat.update``, and replies with ``thread_ts``.

No signature headers: the platforms' APIs take none. The token travels only in its header; the
answer is cleaned of it as of every secret (``delivery.redact``).
"""

from __future__ import annotations

import json
from dataclasses import replace
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from oxoflow_notify import USER_AGENT
from oxoflow_notify.config import Webhook
from oxoflow_notify.inbound.events import Event

from .delivery import Prepared

LIVE_EVENT = "LiveMessage"  # the name a live call's Prepared carries as its subject (never sent)


def _subject(workflow: str, run_id: str | None) -> Event:
    return Event(event=LIVE_EVENT, workflow=workflow, timestamp="", id="", message="", run_id=run_id)


def _call(webhook: Webhook, url: str, method: str, body: bytes, extra: dict[str, str], workflow: str, run_id: str | None) -> Prepared:
    headers = {**dict(webhook.headers), "Content-Type": "application/json; charset=utf-8", "User-Agent": USER_AGENT, **extra}
    return Prepared(replace(webhook, url=url, method=method), _subject(workflow, run_id), "", 0, body, headers)


def _with_path(url: str, tail: str, query: dict[str, str] | None = None) -> str:
    parts = urlsplit(url)
    pairs = parse_qsl(parts.query, keep_blank_values=True) + list((query or {}).items())
    return urlunsplit((parts.scheme, parts.netloc, parts.path.rstrip("/") + tail, urlencode(pairs), ""))


def encode(payload: dict[str, Any]) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False).encode("utf-8")


def discord_post(webhook: Webhook, payload: dict[str, Any], workflow: str, run_id: str | None) -> Prepared:
    """A new message; ``?wait=true`` makes Discord answer with it (its id) instead of 204."""
    return _call(webhook, _with_path(webhook.url, "", {"wait": "true"}), "POST", encode(payload), {}, workflow, run_id)


def discord_edit(webhook: Webhook, message_id: str, payload: dict[str, Any], workflow: str, run_id: str | None) -> Prepared:
    return _call(webhook, _with_path(webhook.url, f"/messages/{message_id}"), "PATCH", encode(payload), {}, workflow, run_id)


def slack_call(webhook: Webhook, method: str, payload: dict[str, Any], workflow: str, run_id: str | None) -> Prepared:
    """``chat.postMessage`` or ``chat.update`` with the bot token; ``payload`` names the channel (and ts / thread_ts)."""
    auth = {"Authorization": f"Bearer {webhook.token or ''}"}
    return _call(webhook, _with_path(webhook.url, f"/{method}"), "POST", encode(payload), auth, workflow, run_id)
