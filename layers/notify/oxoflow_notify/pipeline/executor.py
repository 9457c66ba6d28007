"""The attempt executor: one place owns the whole sequence of a POST, the way svix's worker does
(prepare -> call -> one result): the webhook's references resolved, the circuit consulted, the
request rendered and signed; then, in the sending thread, the hand-off mark, the rate-limit slot,
the ledger's claim, the POST and the record of a failed outcome. Settlement acts on the result.

Every attempt of a fan-out or a retry batch goes at once on the sender's pool; one webhook's
trouble (a reference, rendering, signing, sending) ends as its own retry or dead letter.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from oxoflow_notify.config import Webhook, is_reference
from oxoflow_notify.errors import ReferenceProblem
from oxoflow_notify.outbound.breaker import CircuitBreaker, circuit_of
from oxoflow_notify.outbound.delivery import HttpSender, Outcome, Prepared, prepare
from oxoflow_notify.outbound.failures import Failure

from .answers import Decision, Kind, Verdict, circuit_open, delivered, judge
from .attempts import PACE_EARLY, Attempt, subject_from_payload
from .budget import TimeBudget
from .delivery_log import REDELIVERY_HEADER
from .endpoints import EndpointState
from .handoff import HANDED, HandoffLog, Key, Mark
from .invocation import Invocation
from .ledger import Ledger
from .ports import SecretReferences
from .rate_gate import RateGate
from .settlement import Settlement, entry_of

Ready = tuple[int, Attempt, Prepared]  # (index in the batch, the attempt as resolved, its request)


class Executor:
    def __init__(
        self,
        sender: HttpSender,
        ledger: Ledger,
        handoffs: HandoffLog,
        gate: RateGate,
        budget: TimeBudget,
        breaker: CircuitBreaker,
        settlement: Settlement,
        references: SecretReferences | None,
        clock: Callable[[], float],
    ) -> None:
        self.sender = sender
        self.ledger = ledger
        self.handoffs = handoffs
        self.gate = gate
        self.budget = budget
        self.breaker = breaker
        self.settlement = settlement
        self.references = references
        self.clock = clock

    def run(self, inv: Invocation, attempts: list[Attempt]) -> list[Exception | None]:
        """Resolve, render, sign and POST every attempt at once; settle each. Returns, per attempt,
        an infrastructure fault to raise (Lambda's retry is the design), else None."""
        errors: list[Exception | None] = [None] * len(attempts)
        if not attempts:
            return errors
        # One read of the hand-off log for the whole fan-out or batch, before anything else.
        marks = self.handoffs.lookup_many([(a.delivery_id, a.number) for a in attempts])
        ready = self._ready(inv, attempts, marks, errors)
        carried = {(a.delivery_id, a.number): (a.slot, a.early) for _, a, _ in ready}

        def post(p: Prepared) -> Outcome:
            key = (p.delivery_id, p.attempt)
            return self.post(p, marks.get(key), *carried.get(key, (None, PACE_EARLY)))

        outcomes = self.sender.send_all([prepared for _, _, prepared in ready], post)
        for (index, attempt, prepared), outcome in zip(ready, outcomes, strict=True):
            try:
                self.settlement.settle(inv, attempt, outcome, prepared)
            except Exception as exc:  # noqa: BLE001 - contained to this delivery
                errors[index] = self.settlement.contain(inv, attempt, exc)
        return errors

    def _ready(self, inv: Invocation, attempts: list[Attempt], marks: dict[Key, Mark], errors: list[Exception | None]) -> list[Ready]:
        """The attempts to POST: not a second copy in the batch, not one another run handed on,
        and not one settled while it was prepared."""
        ready: list[Ready] = []
        seen: set[Key] = set()
        self.settlement.endpoints.refresh((a.webhook for a in attempts), self.clock())  # one read a minute at most
        for index, attempt in enumerate(attempts):
            key = (attempt.delivery_id, attempt.number)
            mark = marks.get(key)
            try:
                if key in seen or (mark is not None and mark.state == HANDED):
                    duplicate = Outcome(None, Failure.DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {attempt.number} was already handed on")
                    self.settlement.settle(inv, attempt, duplicate)
                    continue
                seen.add(key)
                prepared = self._prepare(inv, attempt)
            except Exception as exc:  # noqa: BLE001 - contained to this delivery
                errors[index] = self.settlement.contain(inv, attempt, exc)
                continue
            if prepared is not None:
                ready.append((index, *prepared))
        return ready

    def _prepare(self, inv: Invocation, attempt: Attempt) -> tuple[Attempt, Prepared] | None:
        """The attempt with its references resolved and its request built, or None when it was
        settled here (an unresolvable reference, a render or signing failure, an open circuit)."""
        disabled = self.settlement.endpoints.disabled(attempt.webhook, self.clock())
        if disabled is not None:
            self.settlement.settle(inv, attempt, disabled_outcome(attempt.webhook, disabled))
            return None
        try:
            webhook = self.resolved(attempt.webhook)
        except ReferenceProblem as exc:
            error = Failure.UNRESOLVABLE_REFERENCE if exc.permanent else Failure.SECRET_UNAVAILABLE
            self.settlement.settle(inv, attempt, Outcome(None, error, 0.0, detail=str(exc)))
            return None
        resolved = attempt if webhook is attempt.webhook else dataclasses.replace(attempt, webhook=webhook)
        wait = self.breaker.blocked_for(circuit_of(webhook.source, webhook.url))
        if wait > 0:
            self.settlement.act(inv, resolved, None, circuit_open(wait))
            return None
        try:
            prepared = prepare(attempt.event, webhook, attempt.delivery_id, attempt.number, now=self.clock())
        except Exception as exc:  # noqa: BLE001 - never take the other webhooks down with this one
            detail = f"could not render or sign this delivery ({type(exc).__name__})"
            self.settlement.settle(inv, resolved, Outcome(None, Failure.RENDER_ERROR, 0.0, detail=detail))
            return None
        return resolved, prepared

    def post(self, prepared: Prepared, mark: Mark | None, slot: float | None = None, early: float = PACE_EARLY) -> Outcome:
        """One attempt, at most once: not started when its deadline does not fit in what is left
        of the invocation; not posted when the hand-off log (``mark``) says another run already
        handed this attempt on (or recorded its outcome), nor when the ledger holds a 2xx for the
        delivery; not before its rate-limit slot (``slot``: one reserved earlier). A failed
        outcome is recorded before anything acts on it. Never raises."""
        budget = self.budget.cap(self.sender.budget(prepared.webhook))
        late = self.budget.too_late(budget)
        if late is not None:
            return late
        try:
            if mark is not None and mark.state == HANDED:
                return Outcome(
                    None, Failure.DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {prepared.attempt} was already handed on; not posted again"
                )
            if mark is not None and mark.outcome is not None:
                return dataclasses.replace(mark.outcome, recovered=True)  # posted by a run that died: hand it on, do not post again
            paced = self.gate.slot_for(prepared, slot, early, budget)
            if isinstance(paced, Outcome):
                return paced
            fmt = prepared.webhook.format
            return self.ledger.once(
                prepared, lambda p: self._claimed(p, budget, paced, mark is None), lambda o: delivered(fmt, o, self.clock())
            )
        except Exception as exc:  # noqa: BLE001 - the ledger's own surprise is this delivery's retry
            return Outcome(None, Failure.REQUEST_ERROR, 0.0, detail=f"unexpected {type(exc).__name__} around the POST")

    def _claimed(self, prepared: Prepared, budget: float, slot: float | None, unmarked: bool) -> Outcome:
        """The POST, inside the ledger's claim. Another run may have posted this attempt, failed and
        dropped its claim since the fan-out read no mark for it: read the mark again first. A failed
        outcome is marked before this claim drops, so whoever claims next sees it."""
        key = (prepared.delivery_id, prepared.attempt)
        if unmarked and (again := self.handoffs.lookup_many([key]).get(key)) is not None:
            return _posted_elsewhere(prepared.attempt, again)
        outcome = self._send_in_time(prepared, budget, slot)
        failed = judge(prepared.webhook.format, outcome, self.clock()).kind in (Kind.RETRY, Kind.GIVE_UP)
        if failed and not self.handoffs.posted(prepared.delivery_id, prepared.attempt, outcome):
            return _posted_elsewhere(prepared.attempt, self.handoffs.lookup_many([key]).get(key))
        return outcome

    def _send_in_time(self, prepared: Prepared, budget: float, slot: float | None) -> Outcome:
        """The POST itself, at its rate-limit slot, checked against the clock once more: the
        ledger's claim took time too. (A rate-limit hold here is not a failure: the ledger drops
        its claim, and the hand-off log records nothing.)"""
        held = self.gate.at_slot(prepared, slot) if slot is not None else None
        return held or self.budget.too_late(budget) or self.sender.send(prepared, budget)

    def resolved(self, webhook: Webhook) -> Webhook:
        """The webhook with its ``ssm:`` / ``secretsmanager:`` values read (raises ReferenceProblem)."""
        if self.references is not None:
            return self.references.webhook(webhook)
        if is_reference(webhook.url) or any(is_reference(s) for s in webhook.secrets):
            raise ReferenceProblem("this webhook uses ssm:/secretsmanager: references, which are not configured here", permanent=True)
        return webhook

    def by_hand(self, webhook: Webhook, event: dict[str, Any], delivery_id: str, attempt: int) -> tuple[Kind, str]:
        """One attempt, nothing queued (a replay of a dead letter): what it came to and why. The
        rate limit holds for it too; the ledger still stops a delivery that already got a 2xx.
        An attempt that posted goes to the delivery log, as every other attempt does."""
        try:
            webhook = self.resolved(webhook)
        except ReferenceProblem as exc:
            return (Kind.GIVE_UP if exc.permanent else Kind.RETRY), str(exc)
        subject = subject_from_payload(event)
        prepared = prepare(subject, webhook, delivery_id, attempt, now=self.clock())
        left_queued = self.gate.for_replay(webhook)
        if left_queued is not None:
            return Kind.HELD, left_queued
        outcome = self.ledger.once(prepared, self.sender.send, lambda o: delivered(webhook.format, o, self.clock()))
        verdict = judge(webhook.format, outcome, self.clock())
        if verdict.kind not in (Kind.ALREADY_DELIVERED, Kind.HELD):  # (the ledger answered, or another run holds it: nothing posted)
            self._record_by_hand(Attempt(subject, webhook, delivery_id, attempt), outcome, verdict, prepared)
        return verdict.kind, verdict.reason

    def redeliver(self, webhook: Webhook, event: dict[str, Any], delivery_id: str, attempt: int) -> tuple[Kind, str]:
        """An operator's explicit request: the delivery posted again now under its own id, marked
        ``X-OxoFlow-Redelivery: true``, even if it once got a 2xx (the ledger is not asked), as the
        next attempt; nothing is queued whatever the answer. Its entry goes to the delivery log."""
        try:
            webhook = self.resolved(webhook)
        except ReferenceProblem as exc:
            return (Kind.GIVE_UP if exc.permanent else Kind.RETRY), str(exc)
        left_queued = self.gate.for_replay(webhook)
        if left_queued is not None:
            return Kind.HELD, left_queued
        subject = subject_from_payload(event)
        prepared = prepare(subject, webhook, delivery_id, attempt, now=self.clock())
        prepared.headers[REDELIVERY_HEADER] = "true"
        outcome = self.sender.send(prepared, self.sender.budget(webhook))
        verdict = judge(webhook.format, outcome, self.clock())
        self._record_by_hand(Attempt(subject, webhook, delivery_id, attempt), outcome, verdict, prepared)
        return verdict.kind, verdict.reason

    def _record_by_hand(self, attempt: Attempt, outcome: Outcome, verdict: Verdict, prepared: Prepared) -> None:
        """The delivery log entry of an attempt made by hand (replay, redeliver): delivered, or failed (nothing queued)."""
        done = verdict.kind is Kind.DELIVERED
        entry = entry_of(attempt, outcome, Decision(Kind.DELIVERED if done else Kind.GIVE_UP, verdict.reason), self.clock(), prepared)
        self.settlement.record([dataclasses.replace(entry, outcome="delivered" if done else "failed")])


def disabled_outcome(webhook: Webhook, state: EndpointState) -> Outcome:
    """A delivery to a disabled webhook: refused (dead-lettered), the receiver not asked."""
    since = datetime.fromtimestamp(state.disabled_at or 0.0, UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
    detail = (f"webhook disabled at {since} after no 2xx for {webhook.disable_after / 86400:g} days; enable it with "
              f"oxoflow-notify endpoints enable {webhook.id} (or upload a config that changes its entry), then replay")  # fmt: skip
    return Outcome(None, Failure.ENDPOINT_DISABLED, 0.0, detail=detail)


def _posted_elsewhere(attempt: int, mark: Mark | None) -> Outcome:
    """Another run recorded this attempt first. If it handed it on, nothing is left to do; if not
    (it may have died), look again once it would have: never drop it unhanded."""
    if mark is not None and mark.state == HANDED:
        return Outcome(None, Failure.DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {attempt} was handed on by another run")
    return Outcome(None, Failure.IN_PROGRESS, 0.0, detail=f"another run recorded attempt {attempt} first; looked at again later")
