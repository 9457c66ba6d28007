"""Retry: a batch of retry-queue messages -> the attempts they ask for, all POSTed at once.

A message is a delivery's next attempt (or a hold of the same one), a digest window's close, or a
pointer to either kept in S3. One not due yet hops again; one whose webhook is gone, or that cannot
be read, is dead-lettered; the rest go through the executor as any attempt does.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import ClaimCheckError, fault_name, is_infrastructure
from oxoflow_notify.inbound.events import DIGEST_EVENT

from . import deadletter as dl
from .attempts import Attempt, current_webhook, subject_from_payload
from .executor import Executor
from .invocation import Invocation, Report
from .ports import ConfigSource, MessageQueue
from .retry import CLOSE_SCHEMA, LIVE_SCHEMA, RetryMessageError, RetryTask, sqs_delay
from .settlement import Settlement
from .watching import WATCH_SCHEMA, Watching
from .windowing import Windowing

if TYPE_CHECKING:
    from oxoflow_notify.lazy import Lazy

    from .live import Live

# What a retry message that cannot be read raises on its way in (it is dead-lettered as malformed_retry).
_MALFORMED = (ValueError, KeyError, TypeError, RecursionError, RetryMessageError, ClaimCheckError)


class Redrive:
    def __init__(
        self,
        store: ConfigSource,
        read_body: Callable[[str], str],
        retry_queue: MessageQueue,
        longest_wait: float,
        windowing: Windowing,
        executor: Executor,
        settlement: Settlement,
        clock: Callable[[], float],
        watching: Watching | None = None,
        live: Lazy[Live] | None = None,
    ) -> None:
        self.watching = watching  # run timers (WATCH_SCHEMA) go to it
        self.live = live  # live messages' timers (LIVE_SCHEMA) go to it
        self.store = store
        self.read_body = read_body  # a pointer to a body kept in S3 (aws.letters) -> the body; raises ClaimCheckError
        self.retry_queue = retry_queue
        self.longest_wait = longest_wait  # the longest wait this deployment schedules (retry.far_future)
        self.windowing = windowing
        self.executor = executor
        self.settlement = settlement
        self.clock = clock

    def retry_batch(self, bodies: Sequence[str], receives: Sequence[int] = ()) -> tuple[Report, list[Exception | None]]:
        """Handle a batch of retry-queue messages, all their POSTs at once on the fan-out's pool.

        Returns, per message, the infrastructure fault (S3, SQS) that must make SQS deliver it
        again, or None when it was settled (delivered, queued again or dead-lettered).
        ``receives``: each message's ApproximateReceiveCount; one that fails on the last receive
        the queue allows is dead-lettered here with its fault, not moved bare by SQS's redrive."""
        inv = Invocation()
        errors: list[Exception | None] = [None] * len(bodies)
        pending: list[tuple[int, Attempt]] = []
        try:
            for index, body in enumerate(bodies):
                try:
                    attempt = self._attempt_of(inv, body)
                except Exception as exc:  # noqa: BLE001 - one message's surprise must not sink the batch
                    if is_infrastructure(exc):
                        errors[index] = exc
                    else:
                        self.settlement.kept_whole(inv, "retry message", body, None, exc)
                    continue
                if attempt is not None:
                    pending.append((index, attempt))
            for (index, _), error in zip(pending, self.executor.run(inv, [a for _, a in pending]), strict=True):
                errors[index] = error
            for index, count in enumerate(receives):
                if errors[index] is not None and count >= DEFAULTS.retry_receives:
                    errors[index] = self._faulted(inv, bodies[index], count, errors[index])
        finally:
            self.settlement.finish(inv)
        return inv.report, errors

    def _faulted(self, inv: Invocation, body: str, count: int, exc: Exception | None) -> Exception | None:
        """A message that met an AWS fault on every receive: its dead letter names the fault and
        keeps it whole for replay. If the dead-letter queue fails too, SQS's redrive moves it bare."""
        named = fault_name(exc) if exc is not None else "unknown"
        reason = (f"the retry function met an AWS fault on this message on each of its {count} receives (last: {named}); "
                  "kept whole: replay it once AWS answers again")  # fmt: skip
        try:
            self.settlement.dead_letter(inv, dl.dead_letter(dl.RETRY_FAULTED, reason, raw_message=body, raw_max=dl.KEPT_WHOLE_MAX), "none")
        except Exception as again:  # noqa: BLE001 - the dead-letter queue failed as well
            return again
        return None

    def _attempt_of(self, inv: Invocation, body: str) -> Attempt | None:
        """The attempt a retry message asks for, or None when it was settled here (malformed,
        not due yet, or its webhook is gone)."""
        try:
            body = self.read_body(body)
            data = json.loads(body)
            if isinstance(data, dict) and data.get("schema") == CLOSE_SCHEMA:
                return self.windowing.close_due(inv, data, body)
            if isinstance(data, dict) and data.get("schema") == WATCH_SCHEMA:
                return self.watching.due(inv, data) if self.watching is not None else None
            if isinstance(data, dict) and data.get("schema") == LIVE_SCHEMA:
                if self.live is not None:
                    self.live.get().due(inv, data)  # edits the message itself: no attempt for the executor
                return None
            task = RetryTask.from_message(data)
            event = subject_from_payload(task.event)
        except _MALFORMED as exc:  # a DigestPayloadError is a ValueError; a ClaimCheckError: a pointer whose body is gone
            reason = str(exc) if isinstance(exc, (RetryMessageError, ClaimCheckError)) else f"malformed retry message: {type(exc).__name__}"
            self.settlement.dead_letter(inv, dl.dead_letter(dl.MALFORMED_RETRY, reason, raw_message=body), "none")
            return None
        if not self._due(inv, task):
            return None
        subscribed = None if event.event == DIGEST_EVENT else event.event  # a digest is its window's, whatever the events now
        current = current_webhook(self.store, task.config_key, task.webhook_id, subscribed)
        if current.webhook is None:
            self._refuse(inv, task, current.code, current.reason)
            return None
        return Attempt(event, current.webhook, task.delivery_id, task.attempt, tuple(task.attempts), task.slot, task.early)

    def _due(self, inv: Invocation, task: RetryTask) -> bool:
        """Whether the task is due now; if not, it hops again (or, absurdly far off, is dead-lettered)."""
        now = self.clock()
        ahead = task.not_before - now
        if ahead > self.longest_wait:
            # No wait of ours is that long: re-queued every 15 minutes it would never come due.
            reason = (f"retry message's not_before is {ahead:,.0f} s ahead, more than any wait this deployment schedules "
                      f"({self.longest_wait:,.0f} s): dead-lettered instead of re-queued for ever; replay it to deliver now")  # fmt: skip
            self._refuse(inv, task, dl.MALFORMED_RETRY, reason)
            return False
        if ahead > 1:
            # Not due yet (a wait longer than SQS's 15-minute delay): hop once more.
            self.retry_queue.send(task.to_message(), delay_seconds=sqs_delay(task.not_before, now))
            inv.report.retrying += 1
            return False
        return True

    def _refuse(self, inv: Invocation, task: RetryTask, code: str, reason: str) -> None:
        webhook_ref: dict[str, Any] = {"id": task.webhook_id, "format": task.format, "host": None, "source": task.config_key}
        letter = dl.dead_letter(code, reason, event=task.event, webhook=webhook_ref, delivery_id=task.delivery_id, attempts=task.attempts)
        self.settlement.refuse(inv, [((task.delivery_id, task.attempt), letter)])
