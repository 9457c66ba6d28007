"""Settlement: every attempt ends where ``answers.decide`` says, and every message that cannot be
handled ends as a dead letter. Metrics, logs, the breaker, the queues and the hand-off log all
follow the one decision; nothing here decides anything itself.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, assert_never

from oxoflow_notify.errors import fault_name, is_infrastructure
from oxoflow_notify.observability import ALREADY, DEAD_LETTERED, DELIVERED, DUPLICATE, FAILED, HELD_METRIC, LOG_FAILED, RETRIED, logger
from oxoflow_notify.outbound.breaker import CircuitBreaker, circuit_of
from oxoflow_notify.outbound.delivery import Outcome, Prepared
from oxoflow_notify.outbound.failures import Failure

from . import deadletter as dl
from .answers import Decision, Kind, Policy, decide, pause_for
from .attempts import PACE_EARLY, Attempt
from .budget import TimeBudget
from .delivery_log import REDELIVERY_HEADER, DeliveryLog, Entry, NoDeliveryLog, kept_payload, shown_headers
from .endpoints import Endpoints, NoEndpointStore
from .handoff import HandoffLog
from .invocation import Invocation
from .ports import MessageQueue
from .rate_gate import RateGate
from .retry import RetryTask, sqs_delay

# Seconds an invocation must have left to write its delivery log: one BatchWriteItem per 25 entries,
# each bounded to about 11 s by the log's own client (wiring._LOG_BOTO).
LOG_TIME = 12.0
Refusal = tuple[tuple[str, int], dict[str, Any]]  # ((delivery id, attempt), its dead letter): never deliverable


@dataclass(frozen=True)
class Queues:
    """Where settled attempts go: the retry queue (retries, holds, closes) and the dead-letter queue."""

    retry: MessageQueue
    dead_letters: MessageQueue


class Settlement:
    def __init__(
        self,
        queues: Queues,
        handoffs: HandoffLog,
        breaker: CircuitBreaker,
        gate: RateGate,
        policy: Policy,
        clock: Callable[[], float],
        log: DeliveryLog | None = None,
        endpoints: Endpoints | None = None,
        budget: TimeBudget | None = None,
    ) -> None:
        self.budget = budget  # the log is written only while the invocation has LOG_TIME left
        self.log: DeliveryLog = log or NoDeliveryLog()
        self.endpoints = endpoints or Endpoints(NoEndpointStore())
        self.queues = queues
        self.handoffs = handoffs
        self.breaker = breaker
        self.gate = gate
        self.policy = policy
        self.clock = clock

    def settle(self, inv: Invocation, attempt: Attempt, outcome: Outcome, request: Prepared | None = None) -> None:
        """Decide what one attempt's outcome means (answers.decide, the one place) and act on it.
        ``request``: what was sent, for the delivery log."""
        webhook = attempt.webhook
        decision = decide(webhook.format, outcome, attempt.number, webhook.max_attempts, self.policy, self.clock())
        self.act(inv, attempt, outcome, decision, request)

    def act(self, inv: Invocation, attempt: Attempt, outcome: Outcome | None, decision: Decision, request: Prepared | None = None) -> None:
        """Put one attempt where its decision says: done, held or retried (retry queue), or dead
        letters. Metrics, logs, the breaker, the queues, the hand-off log and the delivery log all
        follow the decision, at one reading of the clock."""
        now = self.clock()
        log = self._observe(inv, attempt, outcome, decision, now)
        if not isinstance(self.log, NoDeliveryLog):  # (no table: an entry would be built only to be dropped)
            inv.entries.append(entry_of(attempt, outcome, decision, now, request))
        match decision.kind:
            case Kind.DELIVERED:
                # DEBUG: at volume a line per success is the dispatcher's largest cost and log bill;
                # successes are counted in metrics, and failures are always logged.
                logger.debug("delivered", extra=log)
                inv.count(DELIVERED, attempt.webhook.format)
                inv.report.delivered += 1
                _record(inv, log, "delivered")
            case Kind.ALREADY_DELIVERED:
                # A redelivered SNS or retry message: this attempt (or the delivery) was already seen to.
                logger.info("already handled, not posted again", extra={**log, "reason": decision.reason})
                already = outcome is not None and outcome.error == Failure.ALREADY_DELIVERED
                inv.count(ALREADY if already else DUPLICATE, attempt.webhook.format)
                inv.report.already_delivered += 1
                _record(inv, log, "already_delivered")
            case Kind.HELD:
                self._held(inv, attempt, outcome, decision, log, now)
            case Kind.RETRY | Kind.GIVE_UP:
                assert outcome is not None  # RETRY and GIVE_UP come from an attempt that was made
                self._failed(inv, attempt, outcome, decision, log, now)

    def _observe(self, inv: Invocation, attempt: Attempt, outcome: Outcome | None, decision: Decision, now: float) -> dict[str, Any]:
        """What every decision teaches: the breaker, a 429's pause, the latency; and its log fields."""
        webhook = attempt.webhook
        if decision.endpoint_failed is not None:
            self.breaker.record(circuit_of(webhook.source, webhook.url), failed=decision.endpoint_failed)
        if decision.kind is Kind.DELIVERED:
            self.endpoints.learn(webhook, failed=False, now=now)
        elif (
            decision.kind in (Kind.RETRY, Kind.GIVE_UP) and outcome is not None and (outcome.status is not None or decision.endpoint_failed)
        ):
            self.endpoints.learn(webhook, failed=True, now=now)  # the receiver answered badly, or not at all
        pause = pause_for(webhook.format, outcome, now) if outcome is not None and webhook.pace > 0 else None
        if pause:
            self.gate.pause(webhook, pause, now)
        log = {
            "event_id": attempt.event.id,
            "delivery_id": attempt.delivery_id,
            "webhook_id": webhook.id,
            "host": webhook.host,
            "format": webhook.format,
            "attempt": attempt.number,
            "status": outcome.status if outcome else None,
            "error": outcome.error if outcome else decision.code,
            "decision": decision.kind.value,
        }
        if outcome is not None and decision.spends_attempt and not outcome.recovered:
            inv.tally.latency(webhook.format, outcome.latency_ms)
            log["latency_ms"] = round(outcome.latency_ms, 1)
        return log

    def _held(
        self, inv: Invocation, attempt: Attempt, outcome: Outcome | None, decision: Decision, log: dict[str, Any], now: float
    ) -> None:
        """Nothing was sent: the same attempt number waits in the retry queue, unspent."""
        paced = outcome if outcome is not None and outcome.error == Failure.RATE_LIMITED else None
        early = paced.early if paced is not None and paced.early is not None else PACE_EARLY
        slot = paced.slot if paced is not None else None
        self.enqueue_retry(attempt, attempt.number, list(attempt.history), now + decision.wait, now, slot, early)
        logger.warning("delivery held", extra={**log, "reason": decision.reason, "retry_in_seconds": round(decision.wait, 1)})
        inv.count(HELD_METRIC, attempt.webhook.format)
        inv.report.retrying += 1
        inv.report.held += 1
        _record(inv, log, "held")

    def _failed(self, inv: Invocation, attempt: Attempt, outcome: Outcome, decision: Decision, log: dict[str, Any], now: float) -> None:
        """A spent attempt that failed: its successor queued, or its dead letter written; then handed on."""
        webhook = attempt.webhook
        inv.count(FAILED, webhook.format)
        this = {"attempt": attempt.number, "at": dl.now_iso(now), "status": outcome.status, "error": outcome.error,
                "latency_ms": round(outcome.latency_ms, 1)}  # fmt: skip
        attempts = [*attempt.history, this]
        if decision.kind is Kind.RETRY:
            self.enqueue_retry(attempt, attempt.number + 1, attempts, now + decision.wait, now)
            logger.warning("delivery failed, will retry", extra={**log, "reason": decision.reason, "retry_in_seconds": decision.wait})
            inv.count(RETRIED, webhook.format)
            inv.report.retrying += 1
            _record(inv, log, "retrying")
        else:
            letter = dl.dead_letter(decision.code or dl.PERMANENT_FAILURE, decision.reason, event=attempt.event.to_payload(),
                                    webhook=dl.webhook_ref(webhook), delivery_id=attempt.delivery_id, attempts=attempts,
                                    now=now)  # fmt: skip
            self.dead_letter(inv, letter, webhook.format)
            logger.error("delivery dead-lettered", extra={**log, "reason": decision.reason})  # only once the letter is written
            _record(inv, log, "dead_lettered")
        self.handoffs.handed(attempt.delivery_id, attempt.number)

    def enqueue_retry(
        self, attempt: Attempt, number: int, attempts: list[dict[str, Any]], not_before: float, now: float,
        slot: float | None = None, early: float = PACE_EARLY,
    ) -> None:  # fmt: skip
        """Attempt ``number`` of the delivery, due at ``not_before``, on the retry queue."""
        webhook = attempt.webhook
        task = RetryTask(event=attempt.event.to_payload(), config_key=webhook.source, webhook_id=webhook.id, format=webhook.format,
                         delivery_id=attempt.delivery_id, attempt=number, not_before=not_before, attempts=attempts, slot=slot,
                         early=early)  # fmt: skip
        self.queues.retry.send(task.to_message(), delay_seconds=sqs_delay(not_before, now))

    def finish(self, inv: Invocation) -> None:
        """The invocation's end: its delivery log entries written (in one call per 25), its metrics
        flushed. A log that cannot be written is counted and logged; what was delivered stands."""
        remaining = self.budget.remaining() if self.budget is not None else None
        if inv.entries and remaining is not None and remaining < LOG_TIME:
            logger.warning("delivery log not written: the invocation is out of time", extra={"entries": len(inv.entries)})
            inv.count(LOG_FAILED, "none")  # a timeout here would fail an invocation whose deliveries all stand
        elif inv.entries and not self.record(inv.entries):
            inv.count(LOG_FAILED, "none")
        inv.entries.clear()
        inv.flush()

    def record(self, entries: list[Entry]) -> bool:
        """Write delivery log entries; False (logged) when the log could not take them."""
        try:
            self.log.write(entries)
        except Exception as exc:  # noqa: BLE001 - the log is a record of deliveries, never a reason to repeat one
            logger.warning("delivery log not written", extra={"entries": len(entries), "error": fault_name(exc)})
            return False
        return True

    def dead_letter(self, inv: Invocation, letter: dict[str, Any], fmt: str) -> None:
        self.queues.dead_letters.send(letter)
        inv.count(DEAD_LETTERED, fmt)
        inv.report.dead_lettered += 1

    def refuse(self, inv: Invocation, refusals: list[Refusal]) -> None:
        """Dead-letter what cannot be delivered, once per (delivery, attempt): a redelivered SNS or
        retry message finds the hand-off log's mark and writes no second letter."""
        if not refusals:
            return
        marks = self.handoffs.lookup_many([key for key, _ in refusals])
        for key, letter in refusals:
            if key in marks:
                continue
            self.dead_letter(inv, letter, str((letter.get("webhook") or {}).get("format") or "none"))
            self.handoffs.handed(*key)
            if (entry := letter_entry(letter, key[1], self.clock())) is not None:
                inv.entries.append(entry)

    def kept_whole(self, inv: Invocation, what: str, raw: str, message_id: str | None, exc: Exception,
                   received: tuple[Any, str | None] = (None, None)) -> None:  # fmt: skip
        """Whatever else went wrong with one message (an event, a retry message) ends as its dead
        letter, the message kept whole for replay (an event's with when SNS received it and its
        signature, so a replay re-runs it with the same event and delivery ids)."""
        reason = f"internal error while handling this {what} ({type(exc).__name__}); kept for replay"
        logger.error(f"{what} failed", extra={"message_id": message_id, "reason": reason, "error": type(exc).__name__})
        letter = dl.dead_letter(dl.INTERNAL_ERROR, reason, raw_message=raw, message_id=message_id, raw_max=dl.KEPT_WHOLE_MAX,
                                received_at=received[0], signature=received[1])  # fmt: skip
        self.dead_letter(inv, letter, "none")

    def contain(self, inv: Invocation, attempt: Attempt, exc: Exception) -> Exception | None:
        """A surprise while handling one delivery. Infrastructure faults go back to the caller
        (Lambda's retry is the design); anything else dead-letters that delivery, kept for replay."""
        if is_infrastructure(exc):
            return exc
        reason = f"internal error while handling this delivery ({type(exc).__name__}); kept for replay"
        logger.error("delivery failed", extra={"delivery_id": attempt.delivery_id, "webhook_id": attempt.webhook.id, "reason": reason})
        try:
            letter = dl.dead_letter(dl.INTERNAL_ERROR, reason, event=attempt.event.to_payload(), webhook=dl.webhook_ref(attempt.webhook),
                                    delivery_id=attempt.delivery_id, attempts=list(attempt.history))  # fmt: skip
            self.dead_letter(inv, letter, attempt.webhook.format)
        except Exception as again:  # noqa: BLE001 - the dead-letter queue itself failed: let Lambda retry
            return again
        if (entry := letter_entry(letter, attempt.number, self.clock())) is not None:
            inv.entries.append(entry)
        return None


def _record(inv: Invocation, log: dict[str, Any], result: str) -> None:
    """The delivery's line in the report: what tests and the CLI read back."""
    inv.report.deliveries.append({**{k: log[k] for k in ("delivery_id", "webhook_id", "attempt", "status", "error")}, "result": result})


def outcome_of(kind: Kind) -> str:
    """A decision as the delivery log names what became of the attempt."""
    match kind:
        case Kind.DELIVERED:
            return "delivered"
        case Kind.ALREADY_DELIVERED:
            return "already_delivered"
        case Kind.HELD:
            return "held"
        case Kind.RETRY:
            return "retrying"
        case Kind.GIVE_UP:
            return "dead_lettered"
        case _ as unreachable:
            assert_never(unreachable)


def entry_of(attempt: Attempt, outcome: Outcome | None, decision: Decision, now: float, request: Prepared | None) -> Entry:
    """One attempt's delivery log entry. The event is kept on its first posting (what redeliver
    posts again), and on a redelivery."""
    webhook, event = attempt.webhook, attempt.event
    posted = request is not None and outcome is not None and decision.spends_attempt and not outcome.recovered
    redelivery = request is not None and REDELIVERY_HEADER in request.headers
    return Entry(
        workflow=event.workflow, delivery_id=attempt.delivery_id, attempt=attempt.number, at=now, event_id=event.id,
        event=event.event, run_id=event.run_id, webhook_id=webhook.id, config_key=webhook.source, format=webhook.format,
        outcome=outcome_of(decision.kind), status=outcome.status if outcome else None,
        error=str(outcome.error) if outcome and outcome.error else decision.code, reason=decision.reason,
        duration_ms=round(outcome.latency_ms, 1) if posted and outcome else None,
        next_attempt_at=now + decision.wait if decision.kind in (Kind.HELD, Kind.RETRY) else None,
        headers=shown_headers(request) if posted and request is not None else {},
        payload=kept_payload(event.to_payload()) if posted and (attempt.number == 1 or redelivery) else None,
        redelivery=redelivery,
    )  # fmt: skip


def letter_entry(letter: dict[str, Any], attempt: int, now: float) -> Entry | None:
    """A dead letter written without an attempt (the webhook gone, a surprise of ours) as its entry."""
    event, webhook = letter.get("event") or {}, letter.get("webhook") or {}
    if not isinstance(event, dict) or not letter.get("delivery_id") or not event.get("workflow"):
        return None
    return Entry(
        workflow=str(event["workflow"]), delivery_id=str(letter["delivery_id"]), attempt=attempt, at=now,
        event_id=str(event.get("id", "")), event=str(event.get("event", "")), run_id=event.get("run_id"),
        webhook_id=str(webhook.get("id", "")), config_key=str(webhook.get("source", "")), format=str(webhook.get("format", "")),
        outcome="dead_lettered", error=str(letter.get("reason_code", "")), reason=str(letter.get("reason", "")),
    )  # fmt: skip
