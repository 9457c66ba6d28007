"""The pipeline: event -> matching webhooks -> render -> sign -> POST -> retry or dead letter.

Every (event, matching webhook) pair ends in exactly one place: delivered, waiting in the retry
queue, or in the dead-letter queue with its reason. Nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from . import deadletter as dl
from .answers import judge
from .breaker import CircuitBreaker, endpoint_of
from .config import Config, ConfigProblem, Webhook, is_reference
from .config_store import ConfigStore
from .delivery import PERMANENT, RETRYABLE, SUCCESS, HttpSender, Outcome, Prepared, delivery_id_for, prepare
from .errors import ConfigError, EventError
from .events import Event, event_from_payload, parse_event
from .ledger import ALREADY_DELIVERED, Ledger, NoLedger
from .observability import ALREADY, DEAD_LETTERED, DELIVERED, FAILED, RETRIED, MetricsTally, logger
from .queues import MessageQueue
from .references import ReferenceProblem, References
from .retry import RetryMessageError, RetryTask, next_delay, sqs_delay
from .settings import Settings


@dataclass(frozen=True)
class Attempt:
    """One try at one (event, webhook) pair."""

    event: Event
    webhook: Webhook
    delivery_id: str
    number: int


@dataclass(frozen=True)
class Published:
    """One SNS message as the dispatcher sees it."""

    message: str
    message_id: str
    timestamp: datetime


@dataclass
class Report:
    """What one invocation did; returned by the handlers so callers and tests can read it."""

    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    already_delivered: int = 0
    events: int = 0
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead_lettered": self.dead_lettered,
            "already_delivered": self.already_delivered,
            "deliveries": self.deliveries,
        }


class Notifier:
    def __init__(
        self,
        settings: Settings,
        store: ConfigStore,
        sender: HttpSender,
        retry_queue: MessageQueue,
        dead_letters: MessageQueue,
        clock: Callable[[], float] = time.time,
        references: References | None = None,
        breaker: CircuitBreaker | None = None,
        ledger: Ledger | None = None,
    ) -> None:
        self.references = references
        self.ledger = ledger or NoLedger()
        self.breaker = breaker or CircuitBreaker(settings.circuit_threshold, settings.circuit_cooldown)
        self.settings = settings
        self.store = store
        self.sender = sender
        self.retry_queue = retry_queue
        self.dead_letters = dead_letters
        self.clock = clock

    # -- dispatch (SNS) ---------------------------------------------------------------------

    def dispatch(self, messages: Iterable[Published]) -> Report:
        report = Report()
        tally = MetricsTally()
        try:
            for published in messages:
                report.events += 1
                self._dispatch_one(published, report, tally)
        finally:
            tally.flush()
        return report

    def _dispatch_one(self, published: Published, report: Report, tally: MetricsTally) -> None:
        try:
            event = parse_event(published.message, message_id=published.message_id, received_at=published.timestamp)
        except EventError as exc:
            logger.error("event rejected", extra={"message_id": published.message_id, "reason": str(exc)})
            self._dead_letter(
                dl.dead_letter(dl.INVALID_EVENT, str(exc), raw_message=published.message, message_id=published.message_id),
                report,
                tally,
                "none",
            )
            return

        targets: list[tuple[Webhook, str]] = []
        for config in self.store.configs_for(event.workflow):
            if isinstance(config, ConfigError):
                logger.error("config unusable", extra={"event_id": event.id, "reason": str(config)})
                self._dead_letter(dl.dead_letter(dl.INVALID_CONFIG, str(config), event=event.to_payload()), report, tally, "none")
                continue
            targets.extend((w, config.source) for w in config.webhooks if w.matches(event.event))
            for problem in config.problems:
                if problem.matches(event.event):
                    self._dead_letter_problem(event, problem, report, tally)

        if not targets:
            logger.info("no webhook matches", extra={"event_id": event.id, "workflow": event.workflow, "event": event.event})
            return
        attempts = [Attempt(event, w, delivery_id_for(event.id, source, w.id), 1) for w, source in targets]
        self._deliver(attempts, [], report, tally)

    def _dead_letter_problem(self, event: Event, problem: ConfigProblem, report: Report, tally: MetricsTally) -> None:
        logger.error("webhook skipped", extra={"event_id": event.id, "webhook_id": problem.webhook_id, "reason": problem.message})
        letter = dl.dead_letter(
            dl.INVALID_WEBHOOK,
            problem.message,
            event=event.to_payload(),
            webhook={"id": problem.webhook_id, "format": None, "host": None, "source": problem.source},
            delivery_id=delivery_id_for(event.id, problem.source, problem.webhook_id),
        )
        self._dead_letter(letter, report, tally, "none")

    # -- retry (SQS) ------------------------------------------------------------------------

    def retry(self, body: str) -> Report:
        """Handle one retry-queue message. Raises only for infrastructure trouble (S3, SQS),
        so the batch processor reports it as a partial failure and SQS delivers it again."""
        report = Report()
        tally = MetricsTally()
        try:
            self._retry_one(body, report, tally)
        finally:
            tally.flush()
        return report

    def _retry_one(self, body: str, report: Report, tally: MetricsTally) -> None:
        try:
            task = RetryTask.from_message(json.loads(body))
            event = event_from_payload(task.event)
        except (ValueError, KeyError, TypeError, RetryMessageError) as exc:
            reason = str(exc) if isinstance(exc, RetryMessageError) else f"malformed retry message: {type(exc).__name__}"
            self._dead_letter(dl.dead_letter(dl.MALFORMED_RETRY, reason, raw_message=body), report, tally, "none")
            return
        now = self.clock()
        if task.not_before - now > 1:
            # Not due yet (a wait longer than SQS's 15-minute delay): hop once more.
            self.retry_queue.send(task.to_message(), delay_seconds=sqs_delay(task.not_before, now))
            report.retrying += 1
            return

        webhook, code, reason = self._current_webhook(task.config_key, task.webhook_id)
        if webhook is None:
            letter = dl.dead_letter(
                code,
                reason,
                event=task.event,
                webhook={"id": task.webhook_id, "format": task.format, "host": None, "source": task.config_key},
                delivery_id=task.delivery_id,
                attempts=task.attempts,
            )
            self._dead_letter(letter, report, tally, task.format)
            return
        self._deliver([Attempt(event, webhook, task.delivery_id, task.attempt)], task.attempts, report, tally)

    # -- replay -----------------------------------------------------------------------------

    def attempt_once(self, event: dict[str, Any], config_key: str, webhook_id: str, delivery_id: str, attempt: int) -> tuple[str, str]:
        """One delivery, one attempt, nothing queued: for replaying dead letters by hand.

        Returns (verdict, reason). The current config decides the URL and secret, as for retries."""
        webhook, _, reason = self._current_webhook(config_key, webhook_id)
        if webhook is None:
            return PERMANENT, reason
        try:
            webhook = self._resolved(webhook)
        except ReferenceProblem as exc:
            return (PERMANENT if exc.permanent else RETRYABLE), str(exc)
        prepared = prepare(event_from_payload(event), webhook, delivery_id, attempt, now=self.clock())
        outcome = self._post(prepared)
        if outcome.error == ALREADY_DELIVERED:
            return SUCCESS, outcome.describe()
        judged = judge(webhook.format, outcome, self.clock())
        return judged.kind, judged.reason

    # -- shared -----------------------------------------------------------------------------

    def _current_webhook(self, config_key: str, webhook_id: str) -> tuple[Webhook | None, str, str]:
        """The webhook as the config says now (retries and replays follow edits), or why not:
        (None, reason code, reason)."""
        config = self.store.load(config_key)
        if isinstance(config, ConfigError):
            return None, dl.INVALID_CONFIG, str(config)
        webhook = config.find(webhook_id) if isinstance(config, Config) else None
        if webhook is None:
            return None, dl.WEBHOOK_REMOVED, f"webhook {webhook_id} is no longer in {config_key}"
        return webhook, "", ""

    def _deliver(self, attempts: list[Attempt], history: list[dict[str, Any]], report: Report, tally: MetricsTally) -> None:
        """Resolve references, render, sign and POST every attempt at once; settle each result."""
        ready: list[tuple[Attempt, Prepared]] = []
        for attempt in attempts:
            try:
                webhook = self._resolved(attempt.webhook)
            except ReferenceProblem as exc:
                error = "unresolvable_reference" if exc.permanent else "secret_unavailable"
                self._settle(attempt, Outcome(None, error, 0.0, detail=str(exc)), history, report, tally)
                continue
            resolved = attempt if webhook is attempt.webhook else dataclasses.replace(attempt, webhook=webhook)
            wait = self.breaker.blocked_for(endpoint_of(webhook.url))
            if wait > 0:
                self._requeue(resolved, history, wait, report, tally)
                continue
            ready.append((resolved, prepare(attempt.event, webhook, attempt.delivery_id, attempt.number, now=self.clock())))
        outcomes = self.sender.send_all([prepared for _, prepared in ready], self._post)
        for (attempt, _), outcome in zip(ready, outcomes, strict=True):
            verdict = self._settle(attempt, outcome, history, report, tally)
            self.breaker.record(endpoint_of(attempt.webhook.url), failed=verdict == RETRYABLE)

    def _post(self, prepared: Prepared) -> Outcome:
        """One POST through the ledger: a delivery id that already got a 2xx is not posted again."""
        return self.ledger.once(prepared, self.sender.send, self.clock())

    def _requeue(self, attempt: Attempt, history: list[dict[str, Any]], wait: float, report: Report, tally: MetricsTally) -> None:
        """The endpoint's circuit is open: queue the delivery for after the cool-down, no attempt spent."""
        now = self.clock()
        self._enqueue_retry(attempt, attempt.number, history, now + wait, now)
        logger.warning(
            "endpoint circuit open, delivery queued",
            extra={"event_id": attempt.event.id, "delivery_id": attempt.delivery_id, "webhook_id": attempt.webhook.id,
                   "host": attempt.webhook.host, "retry_in_seconds": round(wait, 1)},
        )  # fmt: skip
        tally.count(RETRIED, attempt.webhook.format)
        report.retrying += 1
        report.deliveries.append({"delivery_id": attempt.delivery_id, "webhook_id": attempt.webhook.id, "attempt": attempt.number,
                                  "status": None, "error": "circuit_open", "result": "retrying"})  # fmt: skip

    def _enqueue_retry(self, attempt: Attempt, number: int, attempts: list[dict[str, Any]], not_before: float, now: float) -> None:
        task = RetryTask(
            event=attempt.event.to_payload(),
            config_key=attempt.webhook.source,
            webhook_id=attempt.webhook.id,
            format=attempt.webhook.format,
            delivery_id=attempt.delivery_id,
            attempt=number,
            not_before=not_before,
            attempts=attempts,
        )
        self.retry_queue.send(task.to_message(), delay_seconds=sqs_delay(not_before, now))

    def _resolved(self, webhook: Webhook) -> Webhook:
        if self.references is not None:
            return self.references.webhook(webhook)
        if is_reference(webhook.url) or any(is_reference(s) for s in webhook.secrets):
            raise ReferenceProblem("this webhook uses ssm:/secretsmanager: references, which are not configured here", permanent=True)
        return webhook

    def _settle(self, attempt: Attempt, outcome: Outcome, history: list[dict[str, Any]], report: Report, tally: MetricsTally) -> str:
        """Put one attempt's result where it belongs: done, retry queue, or dead letters.

        Returns the verdict it acted on, so the circuit breaker learns from the same judgement."""
        webhook = attempt.webhook
        now = self.clock()
        log = {
            "event_id": attempt.event.id,
            "delivery_id": attempt.delivery_id,
            "webhook_id": webhook.id,
            "host": webhook.host,
            "format": webhook.format,
            "attempt": attempt.number,
            "status": outcome.status,
            "error": outcome.error,
            "latency_ms": round(outcome.latency_ms, 1),
        }
        summary = {
            "delivery_id": attempt.delivery_id,
            "webhook_id": webhook.id,
            "attempt": attempt.number,
            "status": outcome.status,
            "error": outcome.error,
        }
        if outcome.error == ALREADY_DELIVERED:
            # A redelivered SNS message or retry message: this webhook already answered 2xx.
            logger.info("already delivered, not posted again", extra=log)
            tally.count(ALREADY, webhook.format)
            report.already_delivered += 1
            report.deliveries.append({**summary, "result": "already_delivered"})
            return SUCCESS
        tally.latency(webhook.format, outcome.latency_ms)
        judged = judge(webhook.format, outcome, now)
        verdict = judged.kind
        if verdict == SUCCESS:
            # DEBUG: at volume a line per success is the dispatcher's largest cost and log bill;
            # successes are counted in metrics, and failures are always logged.
            logger.debug("delivered", extra=log)
            tally.count(DELIVERED, webhook.format)
            report.delivered += 1
            report.deliveries.append({**summary, "result": "delivered"})
            return verdict

        tally.count(FAILED, webhook.format)
        attempts = [
            *history,
            {
                "attempt": attempt.number,
                "at": dl.now_iso(now),
                "status": outcome.status,
                "error": outcome.error,
                "latency_ms": round(outcome.latency_ms, 1),
            },
        ]
        delay = None
        if verdict != PERMANENT:
            delay = next_delay(
                self.settings.retry_schedule,
                attempt.number,
                judged.retry_after,
                max_attempts=webhook.max_attempts,
                throttled=outcome.status == 429 or outcome.error in ("read_timeout", "connect_timeout"),
                throttle_floor=self.settings.throttle_floor,
                jitter=self.settings.retry_jitter,
            )
        if delay is not None:
            self._enqueue_retry(attempt, attempt.number + 1, attempts, now + delay, now)
            logger.warning("delivery failed, will retry", extra={**log, "reason": judged.reason, "retry_in_seconds": delay})
            tally.count(RETRIED, webhook.format)
            report.retrying += 1
            report.deliveries.append({**summary, "result": "retrying"})
            return verdict

        if verdict == PERMANENT:
            code, reason = dl.PERMANENT_FAILURE, f"{judged.reason} is a permanent failure; not retried"
        else:
            code, reason = dl.RETRIES_EXHAUSTED, f"gave up after {attempt.number} attempts; last: {judged.reason}"
        logger.error("delivery dead-lettered", extra={**log, "reason": reason})
        letter = dl.dead_letter(
            code,
            reason,
            event=attempt.event.to_payload(),
            webhook=dl.webhook_ref(webhook),
            delivery_id=attempt.delivery_id,
            attempts=attempts,
            now=now,
        )
        self._dead_letter(letter, report, tally, webhook.format)
        report.deliveries.append({**summary, "result": "dead_lettered"})
        return verdict

    def _dead_letter(self, letter: dict[str, Any], report: Report, tally: MetricsTally, fmt: str) -> None:
        self.dead_letters.send(letter)
        tally.count(DEAD_LETTERED, fmt)
        report.dead_lettered += 1
