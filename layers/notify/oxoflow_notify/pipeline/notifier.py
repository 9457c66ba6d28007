"""The pipeline: event -> matching webhooks -> render -> sign -> POST -> retry or dead letter.

Every (event, matching webhook) pair ends in exactly one place: delivered, waiting in the retry
queue, or in the dead-letter queue with its reason. Nothing is dropped.

``Notifier`` is the pipeline assembled: each job is its own module, read in this order —
``dispatch`` (an SNS message -> deliveries), ``redrive`` (a retry-queue message -> an attempt),
``windowing`` (digest windows), ``executor`` (one POST's whole sequence), ``rate_gate`` and
``budget`` (when a POST may start), ``settlement`` (acting on ``answers.decide``), with
``invocation`` carrying what one handler call did.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from oxoflow_notify.lazy import Lazy
from oxoflow_notify.outbound.breaker import CircuitBreaker
from oxoflow_notify.outbound.delivery import HttpSender

from .answers import Kind, Policy
from .attempts import PACE_EARLY, Attempt, current_webhook, subject_from_payload
from .budget import TimeBudget
from .claim_check import without_store
from .delivery_log import DeliveryLog, NoDeliveryLog
from .disabled_notice import Alarm, DisabledNotice
from .dispatch import Dispatcher, Published
from .endpoints import Endpoints, EndpointStore, NoEndpointStore
from .executor import Executor
from .handoff import HandoffLog, NoHandoffLog
from .invocation import Report
from .ledger import Ledger, NoLedger
from .ports import ConfigSource, LetterBodies, MessageQueue, SecretReferences, Tuning
from .rate_gate import PACE_EARLY_MAX, PACE_WAIT, REPLAY_WAIT, RateGate
from .redrive import Redrive
from .retry import far_future
from .settlement import Queues, Settlement
from .watching import RunWatches, Watching
from .windowing import RECENT_WINDOWS, Windowing

if TYPE_CHECKING:  # digests, rate limits and live messages load on first use: most cold starts meet none
    from .live import Live, LiveStore
    from .pacing import Pacer
    from .windows import WindowStore

__all__ = [
    "PACE_EARLY",
    "PACE_EARLY_MAX",
    "PACE_WAIT",
    "RECENT_WINDOWS",
    "REPLAY_WAIT",
    "Attempt",
    "Notifier",
    "Published",
    "Report",
    "subject_from_payload",
]


# What the jobs are assembled from: swapping one on a built Notifier assembles them again.
_PARTS = frozenset(
    {"store", "sender", "retry_queue", "dead_letters", "clock", "sleep", "references", "letters", "windows", "pacer", "ledger",
     "handoffs", "breaker", "log", "endpoint_store", "alarm", "watches", "live_store"}
)  # fmt: skip


class Notifier:
    """The three entry points the handlers and the CLI call (dispatch, retry, replay by hand),
    over one set of parts built once per container."""

    def __init__(
        self,
        settings: Tuning,
        store: ConfigSource,
        sender: HttpSender,
        retry_queue: MessageQueue,
        dead_letters: MessageQueue,
        clock: Callable[[], float] = time.time,
        references: SecretReferences | None = None,
        breaker: CircuitBreaker | None = None,
        ledger: Ledger | None = None,
        handoffs: HandoffLog | None = None,
        windows: WindowStore | None = None,
        pacer: Pacer | None = None,
        sleep: Callable[[float], None] = time.sleep,
        letters: LetterBodies | None = None,
        log: DeliveryLog | None = None,
        endpoints: EndpointStore | None = None,
        alarm: Alarm | None = None,
        watches: RunWatches | None = None,
        live: LiveStore | Lazy[LiveStore] | None = None,
    ) -> None:
        self.settings = settings
        self.store = store
        self.sender = sender
        self.retry_queue = retry_queue
        self.dead_letters = dead_letters
        self.clock = clock
        self.sleep = sleep
        self.references = references
        self.letters = letters  # where letters too big for their queue are kept (aws.letters); None: nowhere
        self.windows = windows  # None: no table to keep windows in, so digests are off (each event goes alone)
        self.pacer = pacer  # None: no table for the slots, so no rate limit is enforced
        self.ledger = ledger or NoLedger()
        self.handoffs = handoffs or NoHandoffLog()
        self.log = log or NoDeliveryLog()  # every attempt's entry, written at each invocation's end
        self.endpoint_store = endpoints or NoEndpointStore()  # failing and disabled webhooks; none: nothing is disabled
        self.alarm = alarm  # the stack's alarm topic, told when a webhook is disabled
        self.watches = watches  # runs watched for overdue and silent; None: no table, nothing is watched
        self.live_store = live  # live messages' state; None: no table, no message is live
        self.breaker = breaker or CircuitBreaker(settings.circuit_threshold, settings.circuit_cooldown)
        self.policy = Policy(settings.retry_schedule, settings.retry_jitter, settings.throttle_floor, settings.claim_wait)
        self.budget = TimeBudget(settings.invocation_reserve)
        self._assemble()

    def __setattr__(self, name: str, value: Any) -> None:
        """A part swapped after construction (the soak and tests wrap the sender, the ledger, the
        queues) reaches every job that uses it: the jobs are assembled again around it."""
        super().__setattr__(name, value)
        if name in _PARTS and "dispatcher" in self.__dict__:
            self._assemble()

    def _assemble(self) -> None:
        """The jobs, each handed only the parts it uses."""
        self.gate = RateGate(self.pacer, self.clock, self.budget, self.sleep)
        self.endpoints = Endpoints(self.endpoint_store, DisabledNotice(self.store, self.retry_queue, self.alarm))
        self.settlement = Settlement(Queues(self.retry_queue, self.dead_letters), self.handoffs, self.breaker, self.gate, self.policy,
                                     self.clock, self.log, self.endpoints, self.budget)  # fmt: skip
        self.executor = Executor(self.sender, self.ledger, self.handoffs, self.gate, self.budget, self.breaker, self.settlement,
                                 self.references, self.clock)  # fmt: skip
        self.live: Lazy[Live] = Lazy(self._live)
        self.watching = Watching(self.watches, self.retry_queue, self.store, self.clock, self.live)
        self.windowing = Windowing(self.windows, self.retry_queue, self.store, self.settlement, self.clock)
        read_body = self.letters.resolve if self.letters is not None else without_store
        longest = far_future(self.settings.retry_schedule, self.settings.retry_jitter)
        self.redrive = Redrive(self.store, read_body, self.retry_queue, longest, self.windowing, self.executor, self.settlement,
                               self.clock, self.watching, self.live)  # fmt: skip
        self.dispatcher = Dispatcher(self.store, self.references, self.windowing, self.executor, self.settlement, self.watching,
                                     self.live)  # fmt: skip

    def _live(self) -> Live:
        """The live messages' job, built (and its modules imported) when a live webhook first needs it."""
        from .live import Live

        store = self.live_store.get() if isinstance(self.live_store, Lazy) else self.live_store
        return Live(store, self.retry_queue, self.store, self.sender, self.executor.resolved,
                    lambda inv, letter: self.settlement.dead_letter(inv, letter, "live"), self.settings.retry_schedule, self.budget,
                    self.clock)  # fmt: skip

    def bind(self, context: Any) -> None:
        """This invocation's Lambda context: no POST starts that could not finish before the
        function times out, and a crashed run's ledger claims expire with it."""
        self.budget.bind(context.get_remaining_time_in_millis)
        self.ledger.register(context)

    def dispatch(self, messages: Iterable[Published]) -> Report:
        """SNS messages (see ``dispatch.Dispatcher``); raises only for infrastructure faults."""
        return self.dispatcher.dispatch(messages)

    def retry(self, body: str) -> Report:
        """Handle one retry-queue message (see ``retry_batch``); raises its infrastructure fault."""
        report, errors = self.retry_batch([body])
        if errors[0] is not None:
            raise errors[0]
        return report

    def retry_batch(self, bodies: Sequence[str], receives: Sequence[int] = ()) -> tuple[Report, list[Exception | None]]:
        """Retry-queue messages, all their POSTs at once (see ``redrive.Redrive``); per message,
        the infrastructure fault that must make SQS deliver it again, or None. ``receives``: how
        often SQS has handed each out (on the last, a failing one is dead-lettered with its fault)."""
        return self.redrive.retry_batch(bodies, receives)

    def redeliver(self, event: dict[str, Any], config_key: str, webhook_id: str, delivery_id: str, attempt: int) -> tuple[Kind, str]:
        """An operator's redelivery (``executor.Executor.redeliver``) to the webhook as its config says now."""
        current = current_webhook(self.store, config_key, webhook_id, None)
        if current.webhook is None:
            return Kind.GIVE_UP, current.reason
        if current.webhook.live:
            return Kind.GIVE_UP, f"webhook {webhook_id} is live now: its run's message shows the run as it is (nothing to post again)"
        return self.executor.redeliver(current.webhook, event, delivery_id, attempt)

    def attempt_once(self, event: dict[str, Any], config_key: str, webhook_id: str, delivery_id: str, attempt: int) -> tuple[Kind, str]:
        """One delivery, one attempt, nothing queued: for replaying dead letters by hand.

        Returns what the attempt came to and why. The current config decides the URL and secret,
        as for retries; the ledger still stops a delivery that already got a 2xx."""
        current = current_webhook(self.store, config_key, webhook_id, None)
        if current.webhook is None:
            return Kind.GIVE_UP, current.reason
        if current.webhook.live:
            return Kind.GIVE_UP, f"webhook {webhook_id} is live now: it takes no single deliveries (its run's message shows the run)"
        return self.executor.by_hand(current.webhook, event, delivery_id, attempt)
