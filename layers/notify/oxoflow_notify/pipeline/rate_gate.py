"""A webhook's rate limit at the moment of one POST: the slot to start it at, a wait in its thread
for a slot a few seconds off, or a hold in the retry queue until just before a later one.

The slots themselves (reserved across every instance, on a clock they share) are ``pacing``'s;
this is what one delivery does with them. A 429's pause is recorded here too, so every sender of
every tenant waits as the receiver asked.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from oxoflow_notify.config import Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.breaker import target_of
from oxoflow_notify.outbound.delivery import Outcome, Prepared
from oxoflow_notify.outbound.failures import Failure

from .attempts import PACE_EARLY  # a held delivery comes back this long before its slot (SQS delays are whole seconds) ...
from .budget import TimeBudget

if TYPE_CHECKING:  # rate limits load on first use: most cold starts deliver none
    from .pacing import Pacer

PACE_WAIT = DEFAULTS.pace_wait  # seconds a POST may wait in its thread for its slot; a later slot waits in the retry queue
PACE_EARLY_MAX = DEFAULTS.pace_early_max  # ... and earlier each time it came back too late for it, up to this
REPLAY_WAIT = DEFAULTS.replay_wait  # seconds a replay waits for a letter's slot (the letters it scanned are hidden for 300)


class RateGate:
    """Slots for POSTs. ``pacer`` None: no table for the slots, so no rate limit is enforced."""

    def __init__(
        self,
        pacer: Pacer | None,
        clock: Callable[[], float],
        budget: TimeBudget,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.pacer = pacer
        self.clock = clock
        self.budget = budget
        self.sleep = sleep

    def slot_for(self, prepared: Prepared, slot: float | None, early: float, budget: float) -> Outcome | float | None:
        """The webhook's rate-limit slot for this POST: the time to start it (waited for right
        before the POST, after the ledger's claim, so nothing comes between the slot and the
        request), or a hold until just before a slot too far off (an Outcome), or None: no limit.

        A delivery that carries a slot (it was held) keeps it, unless it came back more than half
        an interval late, or a 429 paused the webhook past it: then it takes a new one, and is
        brought back earlier from now on, so lateness cannot starve it. If the slots cannot be
        read, the delivery is held a few seconds (never sent unpaced into a storm)."""
        rate = prepared.webhook.pace
        if rate <= 0 or self.pacer is None:
            return None
        now = self.shared_now()  # slots and pauses are on the pacer's shared clock, not ours
        if slot is not None:
            slot, early = self._kept(prepared, slot, early, now)
        if slot is None:
            reserved = self._reserve(prepared, early)
            if isinstance(reserved, Outcome):
                return reserved
            slot, now = reserved
        wait = slot - now
        if wait > max(PACE_WAIT, early + 1) or self.budget.too_late(budget + wait) is not None:
            detail = f"rate limit of {rate:g}/s: its slot is {wait:.1f} s away"
            return Outcome(None, Failure.RATE_LIMITED, 0.0, detail=detail, slot=slot, hold_for=max(0.0, wait - early), early=early)
        return slot

    def _kept(self, prepared: Prepared, slot: float, early: float, now: float) -> tuple[float | None, float]:
        """The slot a held delivery carries, if it still stands (and how early it comes back next)."""
        late = now - slot
        if late > min(0.5 / prepared.webhook.pace, 0.5):
            return None, min(PACE_EARLY_MAX, early + late + 1)
        if self.paused_until(target_of(prepared.webhook.url)) > slot:
            return None, early  # a receiver's 429 paused every sender past this slot
        return slot, early

    def _reserve(self, prepared: Prepared, early: float) -> Outcome | tuple[float, float]:
        """A new slot and now on the shared clock (the reservation may have learned that our clock
        is behind), or the hold when there is none to be had, or the slots cannot be read."""
        assert self.pacer is not None
        webhook = prepared.webhook
        try:
            reserved = self.pacer.reserve(target_of(webhook.url), webhook.pace, self.clock(), tenant=webhook.source)
            now = self.shared_now()
        except Exception as exc:  # noqa: BLE001 - an unpaced POST in a storm is what the limit is for
            logger.warning("rate limit unavailable, delivery held", extra={"webhook_id": webhook.id, "error": type(exc).__name__})
            return Outcome(
                None, Failure.RATE_LIMITED, 0.0, detail="rate limit: its slots could not be read", hold_for=_jitter(5, 15), early=early
            )
        if reserved.at is None:
            hold = max(0.0, reserved.free_at - now) + _jitter(0, 60)
            return Outcome(None, Failure.RATE_LIMITED, 0.0, detail="rate limit: no slot within its horizon", hold_for=hold, early=early)
        return reserved.at, now

    def at_slot(self, prepared: Prepared, slot: float) -> Outcome | None:
        """Wait for the slot; then, if a 429 paused the webhook meanwhile, hold it past the pause."""
        wait = slot - self.shared_now()
        if wait <= 0:
            return None
        self.sleep(wait)
        paused = self.paused_until(target_of(prepared.webhook.url))
        if paused > slot:
            return Outcome(None, Failure.RATE_LIMITED, 0.0, detail="rate limit: the receiver asked everyone to wait",
                           hold_for=max(0.0, paused - self.shared_now() - PACE_EARLY))  # fmt: skip
        return None

    def for_replay(self, webhook: Webhook) -> str | None:
        """A replay keeps to the rate limit too: wait for its slot, or say why it is left queued."""
        if webhook.pace <= 0 or self.pacer is None:
            return None
        slot = self.pacer.reserve(target_of(webhook.url), webhook.pace, self.clock(), tenant=webhook.source)
        if slot.at is None or slot.at - self.shared_now() > REPLAY_WAIT:
            return "rate limit: its next slot is too far off; left in the queue, replay it later"
        self.sleep(max(0.0, slot.at - self.shared_now()))
        return None

    def pause(self, webhook: Webhook, seconds: float, now: float) -> None:
        """A 429 asked to wait: every instance and tenant sending to this receiver waits."""
        if self.pacer is None:
            return
        try:
            self.pacer.pause(target_of(webhook.url), self.pacer.now(now) + seconds)
        except Exception as exc:  # noqa: BLE001 - the delivery's own retry still waits; only the others may not
            logger.warning("rate limit pause not recorded", extra={"webhook_id": webhook.id, "error": type(exc).__name__})

    def paused_until(self, target: str) -> float:
        """Until when a 429 paused the target (shared clock); 0 when unknown (the slot stands)."""
        try:
            return self.pacer.paused_until(target) if self.pacer is not None else 0.0
        except Exception:  # noqa: BLE001
            return 0.0

    def shared_now(self) -> float:
        """Now on the clock the rate-limit slots share (ours, moved on by what the pacer learned)."""
        return self.pacer.now(self.clock()) if self.pacer is not None else self.clock()


def _jitter(low: float, high: float) -> float:
    """Spread holds: deliveries held together must not all come back in the same second."""
    return random.uniform(low, high)  # noqa: S311 - a delay, not a secret
