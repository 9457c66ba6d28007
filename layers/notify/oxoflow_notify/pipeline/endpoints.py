"""Endpoints that disable themselves before they rot, as Svix does: a webhook with no 2xx for its
``disable_after`` (default 5 days) while its deliveries kept failing is disabled. Its deliveries
are then dead-lettered ``endpoint_disabled`` (replayable once it is fixed), and a
``WebhookDisabled`` notice goes, once, to the file's other webhooks and the stack's alarm topic.
It is enabled again by ``oxoflow-notify endpoints enable`` or by a config whose entry changed.

State is one item per failing or disabled webhook (``EndpointStore``, on the ledger's table): a
healthy webhook has none, so the common case writes nothing. Each container caches what it read
for ``max_age`` seconds (one read per minute at most for the webhooks it serves) and writes only on
a change: the first failure after a success, the first success after a failure, the disable.
A store that cannot be reached changes nothing: deliveries go on as if every webhook were enabled.
"""

from __future__ import annotations

import dataclasses
import hashlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol

from oxoflow_notify.config import Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.observability import logger

NOTICE_LEASE = DEFAULTS.notice_lease  # 20 min: Lambda's longest invocation (15) and clocks' skew: a claim this old is a dead sender's


@dataclass(frozen=True)
class EndpointState:
    """What the store keeps of one webhook: failing since (unix s), disabled at, and the digest of
    its entry when it was disabled (a config whose entry changed enables it again)."""

    failing_since: float | None = None
    disabled_at: float | None = None
    fingerprint: str | None = None
    notified: bool = False  # its WebhookDisabled notice went out
    notice_claimed: float | None = None  # when an instance claimed the notice to send it (unix s); cleared once sent


HEALTHY = EndpointState()


class EndpointStore(Protocol):
    def states(self, keys: Sequence[str]) -> dict[str, EndpointState]:
        """The items for these keys (absent: healthy), in one read."""
        ...

    def failing(self, key: str, now: float) -> float:
        """Mark the webhook failing from ``now`` unless it already was; returns since when."""
        ...

    def recovered(self, key: str) -> bool:
        """A 2xx: forget the failure (never a disable); False when it was disabled meanwhile."""
        ...

    def disable(self, key: str, now: float, failing_before: float, fingerprint: str) -> bool:
        """Disable it if it is still failing since ``failing_before`` or earlier and not disabled yet;
        whether this call did (exactly one caller wins)."""
        ...

    def enable(self, key: str) -> None:
        """Forget everything about it: enabled, healthy."""
        ...

    def claim_notice(self, key: str, now: float, stale_before: float) -> bool:
        """Claim a disabled webhook's notice, not sent yet and not claimed since ``stale_before`` (a claim
        older is its sender's that died); whether the claim was this caller's."""
        ...

    def notice_done(self, key: str, claimed: float, sent: bool) -> None:
        """After the send: the notice went out (``sent``), or the claim is given back for the next delivery.
        Only the claim made at ``claimed`` (this caller's) is settled."""
        ...


class NoEndpointStore:
    """No table: nothing is ever disabled."""

    def states(self, keys: Sequence[str]) -> dict[str, EndpointState]:
        return {}

    def failing(self, key: str, now: float) -> float:
        return now

    def recovered(self, key: str) -> bool:
        return True

    def disable(self, key: str, now: float, failing_before: float, fingerprint: str) -> bool:
        return False

    def enable(self, key: str) -> None:
        return None

    def claim_notice(self, key: str, now: float, stale_before: float) -> bool:
        return False

    def notice_done(self, key: str, claimed: float, sent: bool) -> None:
        return None


def endpoint_key(webhook: Webhook) -> str:
    """A webhook's key: its config file and id (the same id in two files is two endpoints)."""
    return f"{webhook.source}#{webhook.id}"


def fingerprint(webhook: Webhook) -> str:
    """The entry's digest as written (``config``'s, taken before references are resolved, so the
    resolved webhook a delivery holds has the same one): a changed entry has another digest."""
    if webhook.entry_digest:
        return webhook.entry_digest
    parts = [webhook.url, webhook.format, webhook.method, webhook.signature, *webhook.secrets, *(f"{k}:{v}" for k, v in webhook.headers)]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]  # a webhook built by hand (tests)


Notice = Callable[[Webhook, EndpointState, float], None]  # a webhook was just disabled: tell its owners


class Endpoints:
    """The policy over the store: which webhooks are disabled now, and what each answer teaches."""

    def __init__(self, store: EndpointStore, notice: Notice | None = None, max_age: float = 60.0) -> None:
        self.store = store
        self.notice = notice
        self.max_age = max_age
        self._cache: dict[str, tuple[float, EndpointState]] = {}  # key -> (read at, state)

    def refresh(self, webhooks: Iterable[Webhook], now: float) -> None:
        """Read, in one call, the states of these webhooks not read within ``max_age``."""
        stale = sorted({endpoint_key(w) for w in webhooks} - self._fresh(now))  # (disable_after 0 too: a record to clear)
        if not stale:
            return
        try:
            found = self.store.states(stale)
        except Exception as exc:  # noqa: BLE001 - unknown is enabled: deliveries go on
            logger.warning("endpoint states unavailable, taken as enabled", extra={"webhooks": len(stale), "error": type(exc).__name__})
            return
        for key in stale:
            self._cache[key] = (now, found.get(key, HEALTHY))

    def _fresh(self, now: float) -> set[str]:
        return {key for key, (at, _) in self._cache.items() if now - at < self.max_age}

    def disabled(self, webhook: Webhook, now: float) -> EndpointState | None:
        """The state of a disabled webhook, or None. An entry changed since it was disabled is
        enabled again here (the config's owner fixed it)."""
        at, state = self._cache.get(endpoint_key(webhook), (now, HEALTHY))
        if webhook.disable_after <= 0 and state != HEALTHY:
            # The owner turned disabling off: what was recorded (a disable, a failing streak) is
            # cleared, so turning it on again later starts afresh instead of re-applying it.
            self._forget(webhook, at, "disable_after is 0")
            return None
        if state.disabled_at is None:
            return None
        if state.fingerprint is not None and state.fingerprint == fingerprint(webhook) and _notice_due(state, now):
            self._notify(webhook, state, now)  # a notice that failed, or whose sender died, when it was disabled: sent now
        if state.fingerprint is not None and state.fingerprint != fingerprint(webhook):
            self._forget(webhook, at, "its entry changed")
            return None
        return state

    def _forget(self, webhook: Webhook, at: float, why: str) -> None:
        """Enabled again (its record deleted); in this container at once, in the store when it answers."""
        try:
            self.store.enable(endpoint_key(webhook))
        except Exception as exc:  # noqa: BLE001 - enabled in this container; the store learns next time
            logger.warning("could not record a re-enabled webhook", extra={"webhook_id": webhook.id, "error": type(exc).__name__})
        self._cache[endpoint_key(webhook)] = (at, HEALTHY)
        logger.info(f"webhook enabled again: {why}", extra={"webhook_id": webhook.id})

    def learn(self, webhook: Webhook, failed: bool, now: float) -> None:
        """An answer the breaker learns from (a receiver's failure, or a 2xx). Never raises."""
        if webhook.disable_after <= 0:
            return
        key = endpoint_key(webhook)
        _, state = self._cache.get(key, (now, HEALTHY))
        try:
            if not failed:
                if state.failing_since is not None:
                    cleared = self.store.recovered(key)
                    if cleared:
                        self._cache[key] = (now, HEALTHY)
                    else:
                        self._cache.pop(key, None)  # disabled meanwhile: read it again before the next POST
                return
            since = state.failing_since
            if since is None:
                since = self.store.failing(key, now)
                state = EndpointState(since, state.disabled_at, state.fingerprint)
                self._cache[key] = (now, state)
            if state.disabled_at is None and now - since >= webhook.disable_after:
                self._disable(webhook, key, since, now)
        except Exception as exc:  # noqa: BLE001 - the store's trouble never touches a delivery
            logger.warning("endpoint state not recorded", extra={"webhook_id": webhook.id, "error": type(exc).__name__})

    def _disable(self, webhook: Webhook, key: str, since: float, now: float) -> None:
        mark = fingerprint(webhook)
        if not self.store.disable(key, now, now - webhook.disable_after, mark):
            self._cache.pop(key, None)  # another instance disabled it, or a 2xx arrived meanwhile: read it again
            return
        state = EndpointState(since, now, mark)
        self._cache[key] = (now, state)
        logger.error("webhook disabled", extra={"webhook_id": webhook.id, "source": webhook.source, "failing_since": since})
        self._notify(webhook, state, now)

    def _notify(self, webhook: Webhook, state: EndpointState, now: float) -> None:
        """The notice, once: claimed on the store first, marked sent after. Given back if it could not
        be sent, so the next delivery to the disabled webhook (any instance's) tries again; a claim
        whose sender died (a kill, a timeout) is taken over after NOTICE_LEASE by the next delivery,
        as is one whose sent-mark could not be written (then the notice goes out twice)."""
        key = endpoint_key(webhook)
        if self.notice is None or not self.store.claim_notice(key, now, now - NOTICE_LEASE):
            return
        read_at = self._cache.get(key, (now, state))[0]
        self._cache[key] = (read_at, dataclasses.replace(state, notice_claimed=now))
        try:
            self.notice(webhook, state, now)
        except Exception as exc:  # noqa: BLE001 - the webhook stays disabled; the notice is tried again
            logger.error("webhook disabled, notice not sent: tried again at its next delivery",
                         extra={"webhook_id": webhook.id, "error": type(exc).__name__})  # fmt: skip
            self._done(key, now, sent=False)  # the store's claim given back: any instance's next delivery tries again;
            return  # this one's cache keeps it disabled and claimed (tried again after its next read, within a minute)
        self._cache[key] = (read_at, dataclasses.replace(state, notified=True, notice_claimed=None))
        self._done(key, now, sent=True)

    def _done(self, key: str, claimed: float, sent: bool) -> None:
        try:
            self.store.notice_done(key, claimed, sent)
        except Exception as exc:  # noqa: BLE001 - the claim lapses after NOTICE_LEASE: sent again then (sent) or sent then (not)
            logger.warning("notice state not recorded", extra={"sent": sent, "error": type(exc).__name__})


def _notice_due(state: EndpointState, now: float) -> bool:
    """Whether a disabled webhook's notice is still to be sent: not sent, and not claimed by a live sender."""
    return not state.notified and (state.notice_claimed is None or state.notice_claimed < now - NOTICE_LEASE)
