"""Digest windows as a delivery sees them: a ``Rule*`` event is counted in its webhook's window
(opening one, and queueing its close, if there is none); a due close turns the window into a
digest, attempt 1; and a run's ending closes every window of its run, to go out before it.

The windows' state and rules are ``windows`` and ``digest``; those load on first use.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from oxoflow_notify.config import Config, Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.inbound.events import Event
from oxoflow_notify.observability import logger

from . import deadletter as dl
from .attempts import Attempt, current_webhook
from .invocation import Invocation
from .ports import ConfigSource, MessageQueue
from .retry import sqs_delay
from .settlement import Settlement

if TYPE_CHECKING:  # digests load on first use: most cold starts deliver none
    from .windows import Group, WindowStore

RECENT_WINDOWS = DEFAULTS.recent_windows  # without a run_id, how many of a workflow's latest windows its run's ending looks at
CLOSE_AGAIN, CLOSE_AGAIN_DELAY = 3, 10  # a close that found no window yet comes back this often, this many seconds apart


def group_for(source: str, webhook: Webhook, workflow: str, run_id: str | None) -> Group:
    """The window group of a webhook's events of one run (of the workflow, without a run id)."""
    from .digest import group_of
    from .windows import Group

    assert webhook.digest is not None
    return Group(group_of(source, webhook.id, workflow, run_id), source, webhook.id, workflow, run_id, webhook.digest)


class Windowing:
    """``windows`` None: no table to keep windows in, so digests are off (each event goes alone)."""

    def __init__(
        self, windows: WindowStore | None, retry_queue: MessageQueue, store: ConfigSource, settlement: Settlement,
        clock: Callable[[], float],
    ) -> None:  # fmt: skip
        self.windows = windows
        self.retry_queue = retry_queue
        self.store = store
        self.settlement = settlement
        self.clock = clock

    def digests(self, webhook: Webhook, event: Event) -> bool:
        """Whether this event of this webhook goes into a window rather than out alone."""
        return self.windows is not None and bool(webhook.digest) and event.is_rule_event

    def collect(self, event: Event, webhook: Webhook, source: str, delivery_id: str) -> None:
        """Count a Rule* event in its webhook's digest window. It goes out with the window."""
        assert self.windows is not None
        group = group_for(source, webhook, event.workflow, event.run_id)
        result = self.windows.add(group, event.to_payload(), delivery_id, self.clock(), self._schedule_close)
        logger.debug("digested", extra={"event_id": event.id, "webhook_id": webhook.id, "window": result})

    def _schedule_close(self, group: Group, window: int, delay: float, token: str | None, closed_by: str) -> None:
        message = group.close_message(window, token, closed_by)
        self.retry_queue.send(message, delay_seconds=sqs_delay(self.clock() + delay, self.clock()))

    def run_ending(self, event: Event, configs: list[Config], errors: list[Exception]) -> list[Attempt]:
        """The digests of the run this event ends, to go out before it: every window of the run,
        closed now if still open, and sent unless it was before. Not only the current window: one
        whose close is still on its way, or was lost (a batch that died five times), is sent here
        too. Attempt 1 of each, so the hand-off log skips a window its own close already posted,
        and the ledger one that was delivered: nothing goes out twice."""
        closing: list[Attempt] = []
        if self.windows is None:
            return closing
        for config in configs:
            for webhook in (w for w in config.webhooks if w.digest):
                try:
                    closing += self._close_all(group_for(config.source, webhook, event.workflow, event.run_id), webhook)
                except Exception as exc:  # noqa: BLE001 - the timers' closes still send them
                    errors.append(exc)
        return closing

    def _close_all(self, group: Group, webhook: Webhook) -> list[Attempt]:
        """The windows a run's ending closes: all of a run's (a run_id's group is that run's alone);
        without a run_id the group spans runs, so the latest RECENT_WINDOWS (the older ones' closes
        have long come, or their letters wait in the dead-letter queue for replay)."""
        assert self.windows is not None
        head = self.windows.current(group) or 0
        first = 1 if group.run_id else max(1, head - RECENT_WINDOWS + 1)
        closing: list[Attempt] = []
        for window in range(first, head + 1):
            done = self.windows.close(group, window, self.clock(), "workflow_end")
            if done.digest is not None:
                closing.append(Attempt(done.digest, webhook, done.digest.id, 1))
        return closing

    def close_due(self, inv: Invocation, data: dict[str, Any], body: str) -> Attempt | None:
        """A window's close came due: close it (once; a re-run reads it again) and send its digest
        as attempt 1, through the same ledger and hand-off log as any delivery."""
        from oxoflow_notify.inbound.digests import CLOSED_BY

        from .windows import Group

        group, window = Group.from_close_message(data)
        token, again = data.get("token"), data.get("again")
        closed_by = str(data.get("closed_by")) if data.get("closed_by") in CLOSED_BY else "timer"
        if self.windows is None:
            self.settlement.dead_letter(inv, dl.dead_letter(dl.INTERNAL_ERROR, "a digest window closed where no table keeps windows "
                                                            "(LEDGER_TABLE)", raw_message=body), "none")  # fmt: skip
            return None
        closing = self.windows.close(group, window, self.clock(), closed_by)
        if closing.not_yet and isinstance(again, int) and again < CLOSE_AGAIN:
            # Came before its opener committed: look once more (if it never commits, no window is lost).
            message = group.close_message(window, token if isinstance(token, str) else None, closed_by, again + 1)
            self.retry_queue.send(message, delay_seconds=CLOSE_AGAIN_DELAY)
            inv.report.retrying += 1
            return None
        digest = closing.digest
        if digest is None:
            return None  # never opened (its opener lost the race), or nothing in it
        if not closing.newly and (token is None or token != closing.token):
            return None  # another close flipped it and hands it on; this one (a race's spare) sends nothing
        current = current_webhook(self.store, group.config_key, group.webhook_id, None)
        if current.webhook is None:
            webhook_ref = {"id": group.webhook_id, "format": None, "host": None, "source": group.config_key}
            letter = dl.dead_letter(current.code, current.reason, event=digest.to_payload(), webhook=webhook_ref, delivery_id=digest.id)
            self.settlement.refuse(inv, [((digest.id, 1), letter)])
            return None
        return Attempt(digest, current.webhook, digest.id, 1)
