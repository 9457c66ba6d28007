"""The pipeline: event -> matching webhooks -> render -> sign -> POST -> retry or dead letter.

Every (event, matching webhook) pair ends in exactly one place: delivered, waiting in the retry
queue, or in the dead-letter queue with its reason. Nothing is dropped.
"""

from __future__ import annotations

import dataclasses
import json
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any

from oxoflow_notify.aws.config_store import ConfigStore
from oxoflow_notify.aws.letters import ClaimCheckError, LetterStore, resolve_body
from oxoflow_notify.aws.observability import (
    ALREADY,
    DEAD_LETTERED,
    DELIVERED,
    DUPLICATE,
    FAILED,
    HELD_METRIC,
    RETRIED,
    MetricsTally,
    logger,
)
from oxoflow_notify.aws.queues import MessageQueue
from oxoflow_notify.aws.references import ReferenceProblem, References
from oxoflow_notify.aws.settings import Settings
from oxoflow_notify.config import Config, ConfigProblem, Webhook, is_reference
from oxoflow_notify.errors import ConfigError, EventError, is_infrastructure
from oxoflow_notify.inbound.events import RUN_ENDINGS, Event, event_from_payload, parse_event
from oxoflow_notify.outbound.breaker import CircuitBreaker, circuit_of, target_of
from oxoflow_notify.outbound.delivery import (
    ALREADY_DELIVERED,
    DUPLICATE_ATTEMPT,
    IN_PROGRESS,
    OUT_OF_TIME,
    RATE_LIMITED,
    SECRET_UNAVAILABLE,
    HttpSender,
    Outcome,
    Prepared,
    delivery_id_for,
    prepare,
)

from . import deadletter as dl
from .answers import Decision, Kind, Policy, circuit_open, decide, delivered, judge, pause_for
from .handoff import HANDED, HandoffLog, Mark, NoHandoffLog
from .ledger import Ledger, NoLedger
from .retry import CLOSE_SCHEMA, DIGEST_EVENT, RetryMessageError, RetryTask, far_future, sqs_delay

if TYPE_CHECKING:  # digests and rate limits load on first use: most cold starts deliver neither
    from .digest import Digest
    from .pacing import Pacer
    from .windows import Group, WindowStore

PACE_WAIT = 3.0  # seconds a POST may wait in its thread for its rate-limit slot; a later slot waits in the retry queue
PACE_EARLY = 2.0  # a held delivery comes back this long before its slot (SQS delays are whole seconds) ...
PACE_EARLY_MAX = 30.0  # ... and earlier each time it came back too late for it, up to this
REPLAY_WAIT = 60.0  # seconds a replay waits for a letter's rate-limit slot (the letters it scanned are hidden for 300)
CLOSE_AGAIN, CLOSE_AGAIN_DELAY = 3, 10  # a close that found no window yet comes back this often, this many seconds apart


def subject_from_payload(payload: Any) -> Event | Digest:
    """An event, or a digest, back from the copy a retry message or a dead letter carries."""
    if isinstance(payload, dict) and payload.get("event") == DIGEST_EVENT:
        from .digest import digest_from_payload

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
class Published:
    """One SNS message as the dispatcher sees it."""

    message: str
    message_id: str
    timestamp: datetime
    signature: str | None = None  # its oxoflow-signature attribute (pipeline.publishers checks it)


@dataclass
class Report:
    """What one invocation did; returned by the handlers so callers and tests can read it."""

    delivered: int = 0
    retrying: int = 0
    dead_lettered: int = 0
    already_delivered: int = 0
    held: int = 0  # of `retrying`: queued again without spending an attempt
    events: int = 0
    digested: int = 0  # (event, webhook) pairs counted in a digest window instead of sent alone
    deliveries: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "events": self.events,
            "delivered": self.delivered,
            "retrying": self.retrying,
            "dead_lettered": self.dead_lettered,
            "already_delivered": self.already_delivered,
            "held": self.held,
            "digested": self.digested,
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
        handoffs: HandoffLog | None = None,
        windows: WindowStore | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        letters: LetterStore | None = None,
    ) -> None:
        self.references = references
        self.letters = letters  # where letters too big for their queue are kept (aws.letters); None: nowhere
        self.windows = windows  # None: no table to keep windows in, so digests are off (each event goes alone)
        self.pacer = pacer  # None: no table for the slots, so no rate limit is enforced
        self.sleep = sleep
        self.ledger = ledger or NoLedger()
        self.handoffs = handoffs or NoHandoffLog()
        self.breaker = breaker or CircuitBreaker(settings.circuit_threshold, settings.circuit_cooldown)
        self.policy = Policy(settings.retry_schedule, settings.retry_jitter, settings.throttle_floor, settings.claim_wait)
        self.settings = settings
        self.store = store
        self.sender = sender
        self.retry_queue = retry_queue
        self.dead_letters = dead_letters
        self.clock = clock
        self._remaining_ms: Callable[[], int] | None = None
        self._capacity: float | None = None  # seconds for POSTs in a whole invocation of this function

    def bind(self, context: Any) -> None:
        """This invocation's Lambda context: no POST starts that could not finish before the
        function times out, and a crashed run's ledger claims expire with it."""
        self._remaining_ms = context.get_remaining_time_in_millis
        self._capacity = self._remaining_ms() / 1000 - self.settings.invocation_reserve
        self.ledger.register(context)

    def _time_left(self) -> float | None:
        """Seconds this invocation may still spend on POSTs (None outside Lambda): what Lambda
        gives us, less the reserve for queueing retries and flushing metrics afterwards."""
        if self._remaining_ms is None:
            return None
        return self._remaining_ms() / 1000 - self.settings.invocation_reserve

    # -- dispatch (SNS) ---------------------------------------------------------------------

    def dispatch(self, messages: Iterable[Published]) -> Report:
        """Raises only for infrastructure faults (S3 with nothing cached, SQS), after every other
        delivery of the event was settled: Lambda's retry then re-runs it, and the ledger keeps
        the deliveries that already got a 2xx from being posted twice."""
        report = Report()
        tally = MetricsTally()
        try:
            for published in messages:
                report.events += 1
                try:
                    self._dispatch_one(published, report, tally)
                except Exception as exc:
                    if is_infrastructure(exc):
                        raise
                    self._kept_whole("event", published.message, published.message_id, exc, report, tally, published)
        finally:
            tally.flush()
        return report

    def _kept_whole(
        self, what: str, raw: str, message_id: str | None, exc: Exception, report: Report, tally: MetricsTally,
        published: Published | None = None,
    ) -> None:  # fmt: skip
        """Whatever else went wrong with one message (an event, a retry message) ends as its dead
        letter, the message kept whole for replay (an event's with when SNS received it and its
        signature, so a replay re-runs it with the same event and delivery ids)."""
        reason = f"internal error while handling this {what} ({type(exc).__name__}); kept for replay"
        logger.error(f"{what} failed", extra={"message_id": message_id, "reason": reason, "error": type(exc).__name__})
        received = (published.timestamp, published.signature) if published is not None else (None, None)
        letter = dl.dead_letter(dl.INTERNAL_ERROR, reason, raw_message=raw, message_id=message_id, raw_max=dl.KEPT_WHOLE_MAX,
                                received_at=received[0], signature=received[1])  # fmt: skip
        self._dead_letter(letter, report, tally, "none")

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
        refusals: list[tuple[tuple[str, int], dict[str, Any]]] = []  # ((delivery id, attempt), dead letter): never deliverable
        configs: list[Config] = []
        loaded = self.store.configs_for(event.workflow)
        if self._unauthenticated(event, published, loaded, report, tally):
            return
        for config in loaded:
            if isinstance(config, ConfigError):
                logger.error("config unusable", extra={"event_id": event.id, "reason": str(config)})
                letter = dl.dead_letter(dl.INVALID_CONFIG, str(config), event=event.to_payload())
                refusals.append(((delivery_id_for(event, str(config).split(":", 1)[0], "-"), 1), letter))
                continue
            configs.append(config)
            targets.extend((w, config.source) for w in config.webhooks if w.matches(event.event))
            for problem in config.problems:
                if problem.matches(event.event):
                    refusals.append(self._refusal(event, problem))
        self._refuse(refusals, report, tally)

        errors: list[Exception] = []
        closing = self._close_runs(event, configs, errors) if event.event in RUN_ENDINGS else []
        attempts: list[Attempt] = []
        for webhook, source in targets:
            delivery_id = delivery_id_for(event, source, webhook.id)
            if self.windows is not None and webhook.digest and event.is_rule_event:
                try:
                    self._collect(event, webhook, source, delivery_id)
                    report.digested += 1
                except Exception as exc:  # noqa: BLE001 - an AWS fault is raised once the rest is settled
                    errors.append(exc)
                continue
            attempts.append(Attempt(event, webhook, delivery_id, 1))
        if not targets and not closing:
            logger.info("no webhook matches", extra={"event_id": event.id, "workflow": event.workflow, "event": event.event})
        if errors:
            # A window could not be read or written: fail the event before anything is posted, so
            # Lambda's retry re-runs it with nothing to repeat (the windows' markers count it once).
            raise next((e for e in errors if is_infrastructure(e)), errors[0])
        # A run's open windows go out before the event that ended the run.
        errors += [e for e in self._deliver(closing, report, tally) if e is not None]
        errors += [e for e in self._deliver(attempts, report, tally) if e is not None]
        if errors:
            # An AWS fault first: Lambda's retry re-runs the event (the windows' markers and the
            # ledger keep what was done from being done twice); else the event is kept whole.
            raise next((e for e in errors if is_infrastructure(e)), errors[0])

    def _collect(self, event: Event, webhook: Webhook, source: str, delivery_id: str) -> None:
        """Count a Rule* event in its webhook's digest window (opening one, and queueing its close,
        if there is none). It goes out with the window."""
        from .digest import group_of
        from .windows import Group

        assert self.windows is not None and webhook.digest is not None
        group = Group(group_of(source, webhook.id, event.workflow, event.run_id), source, webhook.id, event.workflow, event.run_id,
                      webhook.digest)  # fmt: skip
        result = self.windows.add(group, event.to_payload(), delivery_id, self.clock(), self._schedule_close)
        logger.debug("digested", extra={"event_id": event.id, "webhook_id": webhook.id, "window": result})

    def _schedule_close(self, group: Group, window: int, delay: float, token: str | None, closed_by: str) -> None:
        message = group.close_message(window, token, closed_by)
        self.retry_queue.send(message, delay_seconds=sqs_delay(self.clock() + delay, self.clock()))

    def _close_runs(self, event: Event, configs: list[Config], errors: list[Exception]) -> list[Attempt]:
        """The digests of the run this event ends, to go out before it: every window of the run,
        closed now if still open, and sent unless it was before. Not only the current window: one
        whose close is still on its way, or was lost (a batch that died five times), is sent here
        too. Attempt 1 of each, so the hand-off log skips a window its own close already posted,
        and the ledger one that was delivered: nothing goes out twice."""
        closing: list[Attempt] = []
        if self.windows is None or not any(w.digest for config in configs for w in config.webhooks):
            return closing
        from .digest import group_of
        from .windows import Group

        for config in configs:
            for webhook in config.webhooks:
                if not webhook.digest:
                    continue
                group = Group(group_of(config.source, webhook.id, event.workflow, event.run_id), config.source, webhook.id,
                              event.workflow, event.run_id, webhook.digest)  # fmt: skip
                try:
                    for window in self._run_windows(group, event.run_id):
                        done = self.windows.close(group, window, self.clock(), "workflow_end")
                        if done.digest is not None:
                            closing.append(Attempt(done.digest, webhook, done.digest.id, 1))
                except Exception as exc:  # noqa: BLE001 - the timers' closes still send them
                    errors.append(exc)
        return closing

    def _run_windows(self, group: Group, run_id: str | None) -> range:
        """The windows a run's ending closes: all of a run's (a run_id's group is that run's alone);
        without a run_id the group spans runs, so the latest RECENT_WINDOWS (the older ones' closes
        have long come, or their letters wait in the dead-letter queue for replay)."""
        assert self.windows is not None
        head = self.windows.current(group) or 0
        first = 1 if run_id else max(1, head - RECENT_WINDOWS + 1)
        return range(first, head + 1)

    def _unauthenticated(
        self, event: Event, published: Published, loaded: list[Config | ConfigError], report: Report, tally: MetricsTally
    ) -> bool:
        """Whether the event was refused whole, before any fan-out: its workflow's own file binds it
        to a publish key it is not signed with (pipeline.publishers)."""
        from .publishers import refusal

        own = self.store.key_for(event.workflow)
        refused = refusal(event, published.message, published.message_id, published.signature, loaded, own, self.references)
        if refused is not None:
            self._refuse([refused], report, tally)
        return refused is not None

    @staticmethod
    def _refusal(event: Event, problem: ConfigProblem) -> tuple[tuple[str, int], dict[str, Any]]:
        logger.error("webhook skipped", extra={"event_id": event.id, "webhook_id": problem.webhook_id, "reason": problem.message})
        delivery_id = delivery_id_for(event, problem.source, problem.webhook_id)
        letter = dl.dead_letter(
            dl.INVALID_WEBHOOK,
            problem.message,
            event=event.to_payload(),
            webhook={"id": problem.webhook_id, "format": None, "host": None, "source": problem.source},
            delivery_id=delivery_id,
        )
        return (delivery_id, 1), letter

    def _refuse(self, refusals: list[tuple[tuple[str, int], dict[str, Any]]], report: Report, tally: MetricsTally) -> None:
        """Dead-letter what cannot be delivered, once per (delivery, attempt): a redelivered SNS or
        retry message finds the hand-off log's mark and writes no second letter."""
        if not refusals:
            return
        marks = self.handoffs.lookup_many([key for key, _ in refusals])
        for key, letter in refusals:
            if key in marks:
                continue
            self._dead_letter(letter, report, tally, str((letter.get("webhook") or {}).get("format") or "none"))
            self.handoffs.handed(*key)

    # -- retry (SQS) ------------------------------------------------------------------------

    def retry(self, body: str) -> Report:
        """Handle one retry-queue message (see ``retry_batch``); raises its infrastructure fault."""
        report, errors = self.retry_batch([body])
        if errors[0] is not None:
            raise errors[0]
        return report

    def retry_batch(self, bodies: Sequence[str]) -> tuple[Report, list[Exception | None]]:
        """Handle a batch of retry-queue messages, all their POSTs at once on the fan-out's pool.

        Returns, per message, the infrastructure fault (S3, SQS) that must make SQS deliver it
        again, or None when it was settled (delivered, queued again or dead-lettered)."""
        report = Report()
        tally = MetricsTally()
        errors: list[Exception | None] = [None] * len(bodies)
        pending: list[tuple[int, Attempt]] = []
        try:
            for index, body in enumerate(bodies):
                try:
                    attempt = self._retry_attempt(body, report, tally)
                except Exception as exc:  # noqa: BLE001 - one message's surprise must not sink the batch
                    if is_infrastructure(exc):
                        errors[index] = exc
                        continue
                    self._kept_whole("retry message", body, None, exc, report, tally)
                    continue
                if attempt is not None:
                    pending.append((index, attempt))
            for (index, _), error in zip(pending, self._deliver([a for _, a in pending], report, tally), strict=True):
                errors[index] = error
        finally:
            tally.flush()
        return report, errors

    def _retry_attempt(self, body: str, report: Report, tally: MetricsTally) -> Attempt | None:
        """The attempt a retry message asks for, or None when it was settled here (malformed,
        not due yet, or its webhook is gone)."""
        try:
            body = resolve_body(body, self.letters)  # a pointer to a body kept in S3 (aws.letters): the body
            data = json.loads(body)
            if isinstance(data, dict) and data.get("schema") == CLOSE_SCHEMA:
                return self._close_attempt(data, body, report, tally)
            task = RetryTask.from_message(data)
            event = subject_from_payload(task.event)
        except _MALFORMED as exc:  # a DigestPayloadError is a ValueError; a ClaimCheckError: a pointer whose body is gone
            reason = str(exc) if isinstance(exc, (RetryMessageError, ClaimCheckError)) else f"malformed retry message: {type(exc).__name__}"
            self._dead_letter(dl.dead_letter(dl.MALFORMED_RETRY, reason, raw_message=body), report, tally, "none")
            return None
        now = self.clock()
        limit = far_future(self.settings.retry_schedule, self.settings.retry_jitter)
        if task.not_before - now > limit:
            # No wait of ours is that long: re-queued every 15 minutes it would never come due.
            reason = (f"retry message's not_before is {task.not_before - now:,.0f} s ahead, more than any wait this deployment "
                      f"schedules ({limit:,.0f} s): dead-lettered instead of re-queued for ever; replay it to deliver now")  # fmt: skip
            webhook_ref = {"id": task.webhook_id, "format": task.format, "host": None, "source": task.config_key}
            letter = dl.dead_letter(dl.MALFORMED_RETRY, reason, event=task.event, webhook=webhook_ref, delivery_id=task.delivery_id,
                                    attempts=task.attempts)  # fmt: skip
            self._refuse([((task.delivery_id, task.attempt), letter)], report, tally)
            return None
        if task.not_before - now > 1:
            # Not due yet (a wait longer than SQS's 15-minute delay): hop once more.
            self.retry_queue.send(task.to_message(), delay_seconds=sqs_delay(task.not_before, now))
            report.retrying += 1
            return None

        subscribed = None if event.event == DIGEST_EVENT else event.event  # a digest is its window's, whatever the events now
        webhook, code, reason = self._current_webhook(task.config_key, task.webhook_id, subscribed)
        if webhook is None:
            letter = dl.dead_letter(
                code,
                reason,
                event=task.event,
                webhook={"id": task.webhook_id, "format": task.format, "host": None, "source": task.config_key},
                delivery_id=task.delivery_id,
                attempts=task.attempts,
            )
            self._refuse([((task.delivery_id, task.attempt), letter)], report, tally)
            return None
        return Attempt(event, webhook, task.delivery_id, task.attempt, tuple(task.attempts), task.slot, task.early)

    def _close_attempt(self, data: dict[str, Any], body: str, report: Report, tally: MetricsTally) -> Attempt | None:
        """A window's close came due: close it (once; a re-run reads it again) and send its digest
        as attempt 1, through the same ledger and hand-off log as any delivery."""
        from .digest import CLOSED_BY
        from .windows import Group

        group, window = Group.from_close_message(data)
        token, again = data.get("token"), data.get("again")
        closed_by = str(data.get("closed_by")) if data.get("closed_by") in CLOSED_BY else "timer"
        if self.windows is None:
            self._dead_letter(dl.dead_letter(dl.INTERNAL_ERROR, "a digest window closed where no table keeps windows (LEDGER_TABLE)",
                                             raw_message=body), report, tally, "none")  # fmt: skip
            return None
        closing = self.windows.close(group, window, self.clock(), closed_by)
        if closing.not_yet and isinstance(again, int) and again < CLOSE_AGAIN:
            # Came before its opener committed: look once more (if it never commits, no window is lost).
            message = group.close_message(window, token if isinstance(token, str) else None, closed_by, again + 1)
            self.retry_queue.send(message, delay_seconds=CLOSE_AGAIN_DELAY)
            report.retrying += 1
            return None
        digest = closing.digest
        if digest is None:
            return None  # never opened (its opener lost the race), or nothing in it
        if not closing.newly and (token is None or token != closing.token):
            return None  # another close flipped it and hands it on; this one (a race's spare) sends nothing
        webhook, code, reason = self._current_webhook(group.config_key, group.webhook_id, None)
        if webhook is None:
            letter = dl.dead_letter(
                code,
                reason,
                event=digest.to_payload(),
                webhook={"id": group.webhook_id, "format": None, "host": None, "source": group.config_key},
                delivery_id=digest.id,
            )
            self._refuse([((digest.id, 1), letter)], report, tally)
            return None
        return Attempt(digest, webhook, digest.id, 1)

    # -- replay -----------------------------------------------------------------------------

    def attempt_once(self, event: dict[str, Any], config_key: str, webhook_id: str, delivery_id: str, attempt: int) -> tuple[Kind, str]:
        """One delivery, one attempt, nothing queued: for replaying dead letters by hand.

        Returns what the attempt came to and why. The current config decides the URL and secret,
        as for retries; the ledger still stops a delivery that already got a 2xx."""
        webhook, _, reason = self._current_webhook(config_key, webhook_id, None)
        if webhook is None:
            return Kind.GIVE_UP, reason
        try:
            webhook = self._resolved(webhook)
        except ReferenceProblem as exc:
            return (Kind.GIVE_UP if exc.permanent else Kind.RETRY), str(exc)
        prepared = prepare(subject_from_payload(event), webhook, delivery_id, attempt, now=self.clock())
        if webhook.pace > 0 and self.pacer is not None:  # a replay keeps to the rate limit too: it waits for its slot
            slot = self.pacer.reserve(target_of(webhook.url), webhook.pace, self.clock(), tenant=webhook.source)
            if slot.at is None or slot.at - self._shared_now() > REPLAY_WAIT:
                return Kind.HELD, "rate limit: its next slot is too far off; left in the queue, replay it later"
            self.sleep(max(0.0, slot.at - self._shared_now()))
        outcome = self.ledger.once(prepared, self.sender.send, lambda o: delivered(webhook.format, o, self.clock()))
        verdict = judge(webhook.format, outcome, self.clock())
        return verdict.kind, verdict.reason

    # -- shared -----------------------------------------------------------------------------

    def _current_webhook(self, config_key: str, webhook_id: str, event: str | None) -> tuple[Webhook | None, str, str]:
        """The webhook as the config says now (retries and replays follow edits), or why not:
        (None, reason code, reason). ``event``: the event it must still subscribe to."""
        config = self.store.load(config_key)
        if isinstance(config, ConfigError):
            return None, dl.INVALID_CONFIG, str(config)
        webhook = config.find(webhook_id) if isinstance(config, Config) else None
        if webhook is None:
            problem = config.problem_for(webhook_id) if isinstance(config, Config) else None
            if problem is not None:
                return None, dl.INVALID_WEBHOOK, problem.message
            return None, dl.WEBHOOK_REMOVED, f"webhook {webhook_id} is no longer in {config_key}"
        if event is not None and not webhook.matches(event):
            return (
                None,
                dl.UNSUBSCRIBED,
                f"webhook {webhook_id} no longer subscribes to {event} in {config_key}; replay it to deliver anyway",
            )
        return webhook, "", ""

    def _deliver(self, attempts: list[Attempt], report: Report, tally: MetricsTally) -> list[Exception | None]:
        """Resolve references, render, sign and POST every attempt at once; act on each decision.

        One webhook's trouble (a reference, rendering, signing, sending) ends as its own retry or
        dead letter. Returns, per attempt, an infrastructure fault to raise, else None."""
        errors: list[Exception | None] = [None] * len(attempts)
        ready: list[tuple[int, Attempt, Prepared]] = []
        # One read of the hand-off log for the whole fan-out or batch, before anything else.
        marks = self.handoffs.lookup_many([(a.delivery_id, a.number) for a in attempts]) if attempts else {}
        seen: set[tuple[str, int]] = set()
        for index, attempt in enumerate(attempts):
            key = (attempt.delivery_id, attempt.number)
            mark = marks.get(key)
            try:
                if key in seen or (mark is not None and mark.state == HANDED):
                    # Two copies of one attempt in a batch, or one another run handed on already.
                    duplicate = Outcome(None, DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {attempt.number} was already handed on")
                    self._settle(attempt, duplicate, report, tally)
                    continue
                seen.add(key)
                prepared = self._prepare(attempt, report, tally)
            except Exception as exc:  # noqa: BLE001 - contained to this delivery
                errors[index] = self._contain(attempt, exc, report, tally)
                continue
            if prepared is not None:
                ready.append((index, prepared[0], prepared[1]))
        slots = {(a.delivery_id, a.number): (a.slot, a.early) for _, a, _ in ready}
        outcomes = self.sender.send_all(
            [prepared for _, _, prepared in ready],
            lambda p: self._post(p, marks.get((p.delivery_id, p.attempt)), *slots.get((p.delivery_id, p.attempt), (None, PACE_EARLY))),
        )
        for (index, attempt, _), outcome in zip(ready, outcomes, strict=True):
            try:
                self._settle(attempt, outcome, report, tally)
            except Exception as exc:  # noqa: BLE001 - contained to this delivery
                errors[index] = self._contain(attempt, exc, report, tally)
        return errors

    def _prepare(self, attempt: Attempt, report: Report, tally: MetricsTally) -> tuple[Attempt, Prepared] | None:
        """The attempt with its references resolved and its request built, or None when it was
        settled here (an unresolvable reference, a render or signing failure, an open circuit)."""
        try:
            webhook = self._resolved(attempt.webhook)
        except ReferenceProblem as exc:
            error = "unresolvable_reference" if exc.permanent else SECRET_UNAVAILABLE
            self._settle(attempt, Outcome(None, error, 0.0, detail=str(exc)), report, tally)
            return None
        resolved = attempt if webhook is attempt.webhook else dataclasses.replace(attempt, webhook=webhook)
        wait = self.breaker.blocked_for(circuit_of(webhook.source, webhook.url))
        if wait > 0:
            self._act(resolved, None, circuit_open(wait), report, tally)
            return None
        try:
            prepared = prepare(attempt.event, webhook, attempt.delivery_id, attempt.number, now=self.clock())
        except Exception as exc:  # noqa: BLE001 - never take the other webhooks down with this one
            detail = f"could not render or sign this delivery ({type(exc).__name__})"
            self._settle(resolved, Outcome(None, "render_error", 0.0, detail=detail), report, tally)
            return None
        return resolved, prepared

    def _contain(self, attempt: Attempt, exc: Exception, report: Report, tally: MetricsTally) -> Exception | None:
        """A surprise while handling one delivery. Infrastructure faults go back to the caller
        (Lambda's retry is the design); anything else dead-letters that delivery, kept for replay."""
        if is_infrastructure(exc):
            return exc
        reason = f"internal error while handling this delivery ({type(exc).__name__}); kept for replay"
        logger.error("delivery failed", extra={"delivery_id": attempt.delivery_id, "webhook_id": attempt.webhook.id, "reason": reason})
        try:
            letter = dl.dead_letter(
                dl.INTERNAL_ERROR,
                reason,
                event=attempt.event.to_payload(),
                webhook=dl.webhook_ref(attempt.webhook),
                delivery_id=attempt.delivery_id,
                attempts=list(attempt.history),
            )
            self._dead_letter(letter, report, tally, attempt.webhook.format)
        except Exception as again:  # noqa: BLE001 - the dead-letter queue itself failed: let Lambda retry
            return again
        return None

    def _post(self, prepared: Prepared, mark: Mark | None, slot: float | None = None, early: float = PACE_EARLY) -> Outcome:
        """One attempt, at most once: not started when its deadline does not fit in what is left
        of the invocation; not posted when the hand-off log (``mark``) says another run already
        handed this attempt on (or recorded its outcome), nor when the ledger holds a 2xx for the
        delivery; not before its rate-limit slot (``slot``: one reserved earlier). A failed
        outcome is recorded before anything acts on it. Never raises."""
        budget = self._budget(prepared)
        late = self._too_late(budget)
        if late is not None:
            return late
        try:
            if mark is not None and mark.state == HANDED:
                return Outcome(None, DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {prepared.attempt} was already handed on; not posted again")
            if mark is not None and mark.outcome is not None:
                return dataclasses.replace(mark.outcome, recovered=True)  # posted by a run that died: hand it on, do not post again
            paced = self._pace(prepared, slot, early, budget)
            if isinstance(paced, Outcome):
                return paced
            fmt = prepared.webhook.format
            outcome = self.ledger.once(prepared, lambda p: self._send_in_time(p, budget, paced), lambda o: delivered(fmt, o, self.clock()))
            failed = judge(fmt, outcome, self.clock()).kind in (Kind.RETRY, Kind.GIVE_UP)
            if failed and not self.handoffs.posted(prepared.delivery_id, prepared.attempt, outcome):
                # Another run recorded this attempt first. If it handed it on, nothing is left to do;
                # if not (it may have died), look again once it would have: never drop it unhanded.
                key = (prepared.delivery_id, prepared.attempt)
                again = self.handoffs.lookup_many([key]).get(key)
                if again is not None and again.state == HANDED:
                    return Outcome(None, DUPLICATE_ATTEMPT, 0.0, detail=f"attempt {prepared.attempt} was handed on by another run")
                return Outcome(
                    None, IN_PROGRESS, 0.0, detail=f"another run recorded attempt {prepared.attempt} first; looked at again later"
                )
            return outcome
        except Exception as exc:  # noqa: BLE001 - the ledger's own surprise is this delivery's retry
            return Outcome(None, "request_error", 0.0, detail=f"unexpected {type(exc).__name__} around the POST")

    def _pace(self, prepared: Prepared, slot: float | None, early: float, budget: float) -> Outcome | float | None:
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
        target = target_of(prepared.webhook.url)
        now = self._shared_now()  # slots and pauses are on the pacer's shared clock, not ours
        if slot is not None:
            late = now - slot
            if late > min(0.5 / rate, 0.5):
                early = min(PACE_EARLY_MAX, early + late + 1)
                slot = None
            elif self._paused_until(target) > slot:
                slot = None  # a receiver's 429 paused every sender past this slot
        if slot is None:
            try:
                reserved = self.pacer.reserve(target, rate, self.clock(), tenant=prepared.webhook.source)
                now = self._shared_now()  # it may have learned that our clock is behind
            except Exception as exc:  # noqa: BLE001 - an unpaced POST in a storm is what the limit is for
                logger.warning("rate limit unavailable, delivery held", extra={"webhook_id": prepared.webhook.id,
                                                                               "error": type(exc).__name__})  # fmt: skip
                return Outcome(None, RATE_LIMITED, 0.0, detail="rate limit: its slots could not be read", hold_for=_jitter(5, 15),
                               early=early)  # fmt: skip
            if reserved.at is None:
                return Outcome(None, RATE_LIMITED, 0.0, detail="rate limit: no slot within its horizon",
                               hold_for=max(0.0, reserved.free_at - now) + _jitter(0, 60), early=early)  # fmt: skip
            slot = reserved.at
        wait = slot - now
        if wait > max(PACE_WAIT, early + 1) or self._too_late(budget + wait) is not None:
            detail = f"rate limit of {rate:g}/s: its slot is {wait:.1f} s away"
            return Outcome(None, RATE_LIMITED, 0.0, detail=detail, slot=slot, hold_for=max(0.0, wait - early), early=early)
        return slot

    def _paused_until(self, target: str) -> float:
        """Until when a 429 paused the target (shared clock); 0 when unknown (the slot stands)."""
        try:
            return self.pacer.paused_until(target) if self.pacer is not None else 0.0
        except Exception:  # noqa: BLE001
            return 0.0

    def _shared_now(self) -> float:
        """Now on the clock the rate-limit slots share (ours, moved on by what the pacer learned)."""
        return self.pacer.now(self.clock()) if self.pacer is not None else self.clock()

    def _at_slot(self, prepared: Prepared, slot: float) -> Outcome | None:
        """Wait for the slot; then, if a 429 paused the webhook meanwhile, hold it past the pause."""
        wait = slot - self._shared_now()
        if wait <= 0:
            return None
        self.sleep(wait)
        paused = self._paused_until(target_of(prepared.webhook.url))
        if paused > slot:
            return Outcome(None, RATE_LIMITED, 0.0, detail="rate limit: the receiver asked everyone to wait",
                           hold_for=max(0.0, paused - self._shared_now() - PACE_EARLY))  # fmt: skip
        return None

    def _budget(self, prepared: Prepared) -> float:
        """The delivery's deadline, cut to what a whole invocation can give (a function timeout set
        below a webhook's timeout would otherwise hold that delivery for ever)."""
        budget = self.sender.budget(prepared.webhook)
        return budget if self._capacity is None else max(min(budget, self._capacity), 0.1)

    def _send_in_time(self, prepared: Prepared, budget: float, slot: float | None = None) -> Outcome:
        """The POST itself, at its rate-limit slot, checked against the clock once more: the
        ledger's claim took time too. (A rate-limit hold here is not a failure: the ledger drops
        its claim, and the hand-off log records nothing.)"""
        held = self._at_slot(prepared, slot) if slot is not None else None
        return held or self._too_late(budget) or self.sender.send(prepared, budget)

    def _too_late(self, budget: float) -> Outcome | None:
        """OUT_OF_TIME when ``budget`` seconds no longer fit in what is left of the invocation."""
        left = self._time_left()
        if left is None or left >= budget:
            return None
        return Outcome(None, OUT_OF_TIME, 0.0, detail=f"{max(left, 0):.1f} s left in this invocation, {budget:.1f} s needed")

    def _enqueue_retry(
        self,
        attempt: Attempt,
        number: int,
        attempts: list[dict[str, Any]],
        not_before: float,
        now: float,
        slot: float | None = None,
        early: float = PACE_EARLY,
    ) -> None:
        task = RetryTask(
            event=attempt.event.to_payload(),
            config_key=attempt.webhook.source,
            webhook_id=attempt.webhook.id,
            format=attempt.webhook.format,
            delivery_id=attempt.delivery_id,
            attempt=number,
            not_before=not_before,
            attempts=attempts,
            slot=slot,
            early=early,
        )
        self.retry_queue.send(task.to_message(), delay_seconds=sqs_delay(not_before, now))

    def _resolved(self, webhook: Webhook) -> Webhook:
        if self.references is not None:
            return self.references.webhook(webhook)
        if is_reference(webhook.url) or any(is_reference(s) for s in webhook.secrets):
            raise ReferenceProblem("this webhook uses ssm:/secretsmanager: references, which are not configured here", permanent=True)
        return webhook

    def _settle(self, attempt: Attempt, outcome: Outcome, report: Report, tally: MetricsTally) -> None:
        """Decide what one attempt's outcome means (answers.decide, the one place) and act on it."""
        decision = decide(attempt.webhook.format, outcome, attempt.number, attempt.webhook.max_attempts, self.policy, self.clock())
        self._act(attempt, outcome, decision, report, tally)

    def _act(self, attempt: Attempt, outcome: Outcome | None, decision: Decision, report: Report, tally: MetricsTally) -> None:
        """Put one attempt where its decision says: done, held or retried (retry queue), or dead
        letters. Metrics, logs, the breaker, the queues and the hand-off log all follow the decision."""
        webhook = attempt.webhook
        now = self.clock()
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
        summary = {k: log[k] for k in ("delivery_id", "webhook_id", "attempt", "status", "error")}
        if decision.endpoint_failed is not None:
            self.breaker.record(circuit_of(webhook.source, webhook.url), failed=decision.endpoint_failed)
        pause = pause_for(webhook.format, outcome, now) if outcome is not None and webhook.pace > 0 else None
        if pause and self.pacer is not None:
            try:
                self.pacer.pause(target_of(webhook.url), self.pacer.now(now) + pause)  # every instance and tenant waits
            except Exception as exc:  # noqa: BLE001 - the delivery's own retry still waits; only the others may not
                logger.warning("rate limit pause not recorded", extra={"webhook_id": webhook.id, "error": type(exc).__name__})
        if outcome is not None and decision.spends_attempt and not outcome.recovered:
            tally.latency(webhook.format, outcome.latency_ms)
            log["latency_ms"] = round(outcome.latency_ms, 1)

        if decision.kind is Kind.DELIVERED:
            # DEBUG: at volume a line per success is the dispatcher's largest cost and log bill;
            # successes are counted in metrics, and failures are always logged.
            logger.debug("delivered", extra=log)
            tally.count(DELIVERED, webhook.format)
            report.delivered += 1
            report.deliveries.append({**summary, "result": "delivered"})
            return
        if decision.kind is Kind.ALREADY_DELIVERED:
            # A redelivered SNS or retry message: this attempt (or the delivery) was already seen to.
            logger.info("already handled, not posted again", extra={**log, "reason": decision.reason})
            tally.count(ALREADY if outcome is not None and outcome.error == ALREADY_DELIVERED else DUPLICATE, webhook.format)
            report.already_delivered += 1
            report.deliveries.append({**summary, "result": "already_delivered"})
            return
        if decision.kind is Kind.HELD:
            # Nothing was sent: the same attempt number waits in the retry queue, unspent.
            paced = outcome is not None and outcome.error == RATE_LIMITED
            slot = outcome.slot if paced and outcome is not None else None
            early = outcome.early if paced and outcome is not None and outcome.early is not None else PACE_EARLY
            self._enqueue_retry(attempt, attempt.number, list(attempt.history), now + decision.wait, now, slot, early)
            logger.warning("delivery held", extra={**log, "reason": decision.reason, "retry_in_seconds": round(decision.wait, 1)})
            tally.count(HELD_METRIC, webhook.format)
            report.retrying += 1
            report.held += 1
            report.deliveries.append({**summary, "result": "held"})
            return

        assert outcome is not None  # RETRY and GIVE_UP come from an attempt that was made
        tally.count(FAILED, webhook.format)
        attempts = [
            *attempt.history,
            {
                "attempt": attempt.number,
                "at": dl.now_iso(now),
                "status": outcome.status,
                "error": outcome.error,
                "latency_ms": round(outcome.latency_ms, 1),
            },
        ]
        if decision.kind is Kind.RETRY:
            self._enqueue_retry(attempt, attempt.number + 1, attempts, now + decision.wait, now)
            logger.warning("delivery failed, will retry", extra={**log, "reason": decision.reason, "retry_in_seconds": decision.wait})
            tally.count(RETRIED, webhook.format)
            report.retrying += 1
            report.deliveries.append({**summary, "result": "retrying"})
        else:
            letter = dl.dead_letter(
                decision.code or dl.PERMANENT_FAILURE,
                decision.reason,
                event=attempt.event.to_payload(),
                webhook=dl.webhook_ref(webhook),
                delivery_id=attempt.delivery_id,
                attempts=attempts,
                now=now,
            )
            self._dead_letter(letter, report, tally, webhook.format)
            logger.error("delivery dead-lettered", extra={**log, "reason": decision.reason})  # only once the letter is written
            report.deliveries.append({**summary, "result": "dead_lettered"})
        self.handoffs.handed(attempt.delivery_id, attempt.number)

    def _dead_letter(self, letter: dict[str, Any], report: Report, tally: MetricsTally, fmt: str) -> None:
        self.dead_letters.send(letter)
        tally.count(DEAD_LETTERED, fmt)
        report.dead_lettered += 1


# Without a run_id, how many of a workflow's latest windows its run's ending looks at.
RECENT_WINDOWS = 16
# What a retry message that cannot be read raises on its way in (it is dead-lettered as malformed_retry).
_MALFORMED = (ValueError, KeyError, TypeError, RecursionError, RetryMessageError, ClaimCheckError)


def _jitter(low: float, high: float) -> float:
    """Spread holds: deliveries held together must not all come back in the same second."""
    return random.uniform(low, high)  # noqa: S311 - a delay, not a secret
