"""Never silent: a run that never ends is reported. A webhook with ``overdue`` (the run must end
within that long of its start) or ``silent`` (some event must arrive at least that often) watches
each run of its file's workflow that starts; when either passes first, it receives one synthesised
``WorkflowOverdue`` for the run, however many instances see its events.

A run's watch is one item (``RunWatches``, on the ledger's table): started, last seen, ended,
alerted. Its timer is a chain of delayed retry-queue messages (``WATCH_SCHEMA``), each due at the
watch's next deadline or in 15 minutes (SQS's longest delay), whichever is sooner: a million runs
cost a million messages per 15 minutes of their length, and no run is polled. The alert is a
conditional update (alerted, not ended): redelivered messages, duplicate timers and crashed hops
give one alert, and an ending that arrives after it is delivered marked ``after_overdue``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from oxoflow_notify.config import Config, Webhook
from oxoflow_notify.inbound.events import RUN_ENDINGS, WORKFLOW_OVERDUE, Event, event_from_payload
from oxoflow_notify.inbound.timestamps import epoch_millis
from oxoflow_notify.outbound.delivery import delivery_id_for

from .attempts import Attempt, current_webhook
from .invocation import Invocation
from .ports import SQS_MAX_DELAY, ConfigSource, MessageQueue

if TYPE_CHECKING:
    from oxoflow_notify.lazy import Lazy

    from .live import Live

WATCH_SCHEMA = "oxoflow-notify/run-watch/v1"
STARTED = "WorkflowStarted"
_NAMESPACE = uuid.UUID("3f0c9a1e-8d7b-5e2f-9a41-6c5b4d3e2f10")


@dataclass(frozen=True)
class Watch:
    """A run as one webhook watches it (unix seconds)."""

    started: float
    last: float
    last_event: dict[str, Any]  # {"event", "rule", "at"}
    ended: bool = False
    alerted: str | None = None  # "overdue" or "silent", once alerted
    alert: dict[str, Any] | None = None  # the WorkflowOverdue's payload, as first built (posted again under the same id)


class RunWatches(Protocol):
    def started(self, group: str, now: float, seen: dict[str, Any]) -> None:
        """The run's watch begins (a second start, a redelivery, changes nothing)."""
        ...

    def seen(self, group: str, now: float, seen: dict[str, Any]) -> None:
        """An event of a watched run arrived (nothing when the run is not watched)."""
        ...

    def ended(self, group: str) -> str | None:
        """The run ended: its watch stops; the reason it was alerted, if it was."""
        ...

    def get(self, group: str) -> Watch | None: ...

    def alert(self, group: str, reason: str, payload: dict[str, Any]) -> bool:
        """Mark it alerted (keeping the alert's payload) if it is not already and has not ended;
        whether this call did."""
        ...


def group_of(config_key: str, webhook_id: str, workflow: str, run_id: str | None) -> str:
    """One watch per (webhook, workflow, run), the workflow alone when there is no run id: a digest
    (never the names) as the item's key."""
    text = f"{config_key}\n{webhook_id}\n{workflow}\n{run_id if run_id is not None else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def watches(webhook: Webhook) -> bool:
    return bool(webhook.overdue or webhook.silent)


def seen_of(event: Event, now: float) -> dict[str, Any]:
    return {"event": event.event, "rule": event.rule, "at": now}


def deadline(webhook: Webhook, watch: Watch) -> tuple[float, str] | None:
    """When the run is due to be reported, and why (the earlier of its two deadlines)."""
    due = []
    if webhook.overdue:
        due.append((watch.started + webhook.overdue, "overdue"))
    if webhook.silent:
        due.append((watch.last + webhook.silent, "silent"))
    return min(due) if due else None


def overdue_event(workflow: str, run_id: str | None, watch: Watch, reason: str, now: float, group: str) -> Event:
    """The synthesised WorkflowOverdue: why, when the run started, the last event seen and how long ago."""
    last = watch.last_event
    ago = now - float(last.get("at", watch.last))
    what = f"run '{run_id}' of '{workflow}'" if run_id else f"'{workflow}'"
    if reason == "overdue":
        message = f"Workflow {what} is overdue: started {_span(now - watch.started)} ago and has not ended"
    else:
        message = f"Workflow {what} is silent: no event for {_span(ago)}"
    seen = {"event": last.get("event"), "rule": last.get("rule"), "at": epoch_millis(float(last.get("at", watch.last)))}
    details = {"reason": reason, "started_at": epoch_millis(watch.started), "last_event": seen, "silent_for_seconds": round(ago, 1)}
    alert_id = str(uuid.uuid5(_NAMESPACE, f"{group}\n{reason}"))
    return Event(event=WORKFLOW_OVERDUE, workflow=workflow, timestamp=epoch_millis(now), id=alert_id, message=message, details=details,
                 run_id=run_id)  # fmt: skip


def _span(seconds: float) -> str:
    minutes = int(seconds // 60)
    return f"{minutes // 60}h{minutes % 60:02d}m" if minutes >= 60 else f"{max(minutes, 1)}m"


def after_overdue(event: Event) -> Event:
    """An ending that arrives after its run was reported overdue: delivered as usual, marked."""
    return dataclasses.replace(event, message=f"{event.message} (finished after being reported overdue)",
                               details={**event.details, "after_overdue": True})  # fmt: skip


class Watching:
    def __init__(
        self, store: RunWatches | None, retry_queue: MessageQueue, config: ConfigSource, clock: Callable[[], float],
        live: Lazy[Live] | None = None,
    ) -> None:  # fmt: skip
        self.live = live  # a live webhook's alert marks its run's message overdue instead of posting
        self.store = store  # None: no table, so no run is watched
        self.retry_queue = retry_queue
        self.config = config
        self.clock = clock

    def observe(self, event: Event, configs: Sequence[Config]) -> set[tuple[str, str]]:
        """What one event means to the runs its files' webhooks watch. Returns the (file, webhook)
        pairs for which this ending comes after the run was reported overdue. Raises AWS faults."""
        marked: set[tuple[str, str]] = set()
        if self.store is None:
            return marked
        now = self.clock()
        for config in configs:
            for webhook in (w for w in config.webhooks if watches(w)):
                group = group_of(config.source, webhook.id, event.workflow, event.run_id)
                if event.event == STARTED:
                    self.store.started(group, now, seen_of(event, now))
                    self._timer(
                        group,
                        config.source,
                        webhook,
                        event.workflow,
                        event.run_id,
                        now + min(self._first_wait(webhook), SQS_MAX_DELAY),
                        now,
                    )
                elif event.event in RUN_ENDINGS:
                    if self.store.ended(group) is not None:
                        marked.add((config.source, webhook.id))
                else:  # the last event seen: silent's clock, and what the alert tells
                    self.store.seen(group, now, seen_of(event, now))
        return marked

    @staticmethod
    def _first_wait(webhook: Webhook) -> float:
        return min(x for x in (webhook.overdue, webhook.silent) if x)

    def _timer(self, group: str, source: str, webhook: Webhook, workflow: str, run_id: str | None, due: float, now: float) -> None:
        message = {"schema": WATCH_SCHEMA, "group": group, "config_key": source, "webhook_id": webhook.id, "workflow": workflow,
                   "run_id": run_id, "due": due}  # fmt: skip
        self.retry_queue.send(message, delay_seconds=max(0, min(SQS_MAX_DELAY, int(due - now + 0.999))))

    def due(self, inv: Invocation, data: dict[str, Any]) -> Attempt | None:
        """A timer's hop: the run ended or was alerted (nothing more), its deadline is later (hop
        again), or it passed: alerted once, and the WorkflowOverdue is the attempt to post."""
        if self.store is None:
            return None
        group, source, webhook_id = str(data["group"]), str(data["config_key"]), str(data["webhook_id"])
        workflow, run_id = str(data["workflow"]), data.get("run_id")
        watch = self.store.get(group)
        if watch is None or (watch.ended and watch.alert is None):
            return None
        webhook = current_webhook(self.config, source, webhook_id, None).webhook
        if webhook is None or not watches(webhook):
            return None  # the webhook is gone, or watches no more
        if watch.alert is not None:  # (even if the run ended since: its ending went out marked after_overdue)
            # Alerted by a run that may have died before posting it: the same alert again, under the
            # same delivery id (the ledger posts it once). A later duplicate timer ends here too.
            again = event_from_payload(watch.alert)
            return self._alerting(again, webhook, source)
        now = self.clock()
        when = deadline(webhook, watch)
        if when is None:
            return None
        if when[0] > now:
            self._timer(group, source, webhook, workflow, run_id, min(when[0], now + SQS_MAX_DELAY), now)
            inv.report.retrying += 1
            return None
        # As of its deadline, read back as a queued copy is: posted again after a crash, it is the same bytes and delivery id.
        event = event_from_payload(overdue_event(workflow, run_id, watch, when[1], when[0], group).to_payload())
        if not self.store.alert(group, when[1], event.to_payload()):
            return None  # another instance alerted (its timer posts it), or the run ended meanwhile
        return self._alerting(event, webhook, source)

    def _alerting(self, event: Event, webhook: Webhook, source: str) -> Attempt | None:
        """The alert to post; for a live webhook, its run's message marked overdue instead."""
        if webhook.live:
            if self.live is not None and self.live.get().store is not None:
                self.live.get().fold(event, webhook, source)
            return None
        return Attempt(event, webhook, delivery_id_for(event, source, webhook.id), 1)
