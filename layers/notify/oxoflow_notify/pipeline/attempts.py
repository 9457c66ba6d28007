"""What one try at a delivery is (``Attempt``), what a queued copy of its subject turns back into,
and where its webhook is found now: the vocabulary dispatch, retry, settlement and replay share."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from oxoflow_notify.config import Config, Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import ConfigError
from oxoflow_notify.inbound.events import DIGEST_EVENT, Event, event_from_payload

from . import deadletter as dl
from .ports import ConfigSource

if TYPE_CHECKING:  # digests load on first use: most cold starts deliver none
    from oxoflow_notify.inbound.digests import Digest

PACE_EARLY = DEFAULTS.pace_early  # a held delivery comes back this long before its rate-limit slot


def subject_from_payload(payload: Any) -> Event | Digest:
    """An event, or a digest, back from the copy a retry message or a dead letter carries."""
    if isinstance(payload, dict) and payload.get("event") == DIGEST_EVENT:
        from oxoflow_notify.inbound.digests import digest_from_payload

        return digest_from_payload(payload)
    return event_from_payload(payload)


@dataclass(frozen=True)
class Attempt:
    """One try at one (event, webhook) pair, or at one digest of a webhook's window."""

    event: Event | Digest
    webhook: Webhook
    delivery_id: str
    number: int
    history: tuple[dict[str, Any], ...] = ()  # the attempts before this one, for the dead letter
    slot: float | None = None  # the rate-limit slot reserved for it, carried by its retry message
    early: float = PACE_EARLY  # how long before its slot it is brought back (grows when it came back late)


@dataclass(frozen=True)
class Current:
    """The webhook as its config file says now, or why there is none (a dead letter's code and reason)."""

    webhook: Webhook | None
    code: str = ""
    reason: str = ""


def current_webhook(store: ConfigSource, config_key: str, webhook_id: str, event: str | None) -> Current:
    """The webhook as the config says now (retries and replays follow edits), or why not.
    ``event``: the event it must still subscribe to (None: any, as for a digest or a replay)."""
    config = store.load(config_key)
    if isinstance(config, ConfigError):
        return Current(None, dl.INVALID_CONFIG, str(config))
    webhook = config.find(webhook_id) if isinstance(config, Config) else None
    if webhook is None:
        problem = config.problem_for(webhook_id) if isinstance(config, Config) else None
        if problem is not None:
            return Current(None, dl.INVALID_WEBHOOK, problem.message)
        return Current(None, dl.WEBHOOK_REMOVED, f"webhook {webhook_id} is no longer in {config_key}")
    if event is not None and not webhook.matches(event):
        reason = f"webhook {webhook_id} no longer subscribes to {event} in {config_key}; replay it to deliver anyway"
        return Current(None, dl.UNSUBSCRIBED, reason)
    return Current(webhook)
