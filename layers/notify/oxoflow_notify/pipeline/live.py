"""One live message per run (``live = true``): a Slack or Discord message that edits itself as the
run goes, ends as completed, failed or cancelled with the run's true totals, and (Slack) gets
the run's failures as replies in its thread.

The run's state is one item per (webhook, run) (``LiveStore``, on the ledger's table): counts per
rule event, the state, the total, the last failure, a ``version`` that every counted event raises,
and the message's id with the ``sent_version`` it shows. Each event is counted once (a marker item
in the same transaction: redelivered events, four dispatchers at once), then makes sure a timer is
pending: a retry-queue message (``LIVE_SCHEMA``) due at the last edit + ``live_interval``. Events
never call the platform themselves, so a storm makes one edit per interval, not one per event.

A timer edits under a lease (one instance at a time, ``DEFAULTS.live_lease`` at most): it reads
the newest state, posts the message (once: the lease makes the first post single) or edits it,
and records the version it showed. An older state can never overwrite a newer one: edits are
serialised and each shows the state read as it began. If events came meanwhile, the same timer
comes back after the interval; else it ends (conditionally, so an event racing it starts the
next). The run's ending raises the version like any event, so its edit always comes, and last.

A message deleted on the platform (Discord 10008, Slack ``message_not_found``) is posted anew,
once. A failed call is retried on the retry schedule (or after the platform's Retry-After); a
permanent failure, or the schedule's end, is a dead letter (``live_failed``) that keeps the timer
whole: ``replay`` revives the message's updates. Requests to the platform: at most one edit per
interval per run, plus the first post and the final edit; plus at most ``DEFAULTS.live_replies``
thread replies (Slack).
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from oxoflow_notify.config import Config, Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.errors import ReferenceProblem
from oxoflow_notify.inbound.events import WORKFLOW_OVERDUE, Event
from oxoflow_notify.observability import logger
from oxoflow_notify.outbound.delivery import HttpSender, Outcome
from oxoflow_notify.outbound.live_calls import LIVE_EVENT

from . import deadletter as dl
from .attempts import current_webhook
from .budget import TimeBudget
from .delivery_log import Entry
from .invocation import Invocation
from .live_answers import CallKind, CallResult, read_discord, read_slack
from .live_state import Change, LiveState, LiveStore, change_of, group_of, kept_failure
from .ports import SQS_MAX_DELAY, ConfigSource, MessageQueue

__all__ = ["LIVE_FAILED", "Change", "Live", "LiveState", "LiveStore", "change_of", "entry_of", "group_of", "kept_failure", "view_of"]
from .retry import LIVE_SCHEMA

if TYPE_CHECKING:
    from oxoflow_notify.formats.live import LiveView

LIVE_FAILED = dl.LIVE_FAILED
_NAMESPACE = uuid.UUID("7a1d3c52-0e4b-5f6a-8c9d-2b3e4f5a6b7c")
REPLIES_PER_PASS = 1  # thread replies one edit posts at most: with its post, within Slack's 1 a second (bursts of 2)


LEASE_SKEW = 5.0  # seconds: instances' clocks may differ this much (the lease's end is read on another's)
# What a bug of ours raises while a timer runs that redrive would otherwise read as a malformed message
# (AWS faults are botocore's or InfrastructureError, and propagate): the message's updates stop with a
# letter a replay resumes, never a malformed_retry. Others propagate: SQS gives the timer again, and
# after its receives it is kept whole (retry_faulted).
_SURPRISES = (ValueError, KeyError, TypeError, RecursionError)
LIVE_RETRY_WAIT = SQS_MAX_DELAY  # seconds: a failing live message is tried again at least this often


class Live:
    """``store`` None: no table, so no message is live (a live webhook then gets nothing: validate says so)."""

    def __init__(
        self,
        store: LiveStore | None,
        retry_queue: MessageQueue,
        config: ConfigSource,
        sender: HttpSender,
        resolve: Callable[[Webhook], Webhook],
        dead_letter: Callable[[Invocation, dict[str, Any]], None],
        schedule: Sequence[int],
        budget: TimeBudget,
        clock: Callable[[], float],
    ) -> None:
        self.store = store
        self.retry_queue = retry_queue
        self.config = config
        self.sender = sender
        self.resolve = resolve
        self.dead_letter = dead_letter
        self.schedule = tuple(schedule)
        self.budget = budget
        self.clock = clock

    # -- events ------------------------------------------------------------------------------

    def observe(self, event: Event, configs: Sequence[Config]) -> None:
        """Fold the event into the live message of each live webhook of its files. Raises an AWS
        fault (the event is run again: counting is once per event)."""
        if self.store is None:
            return
        for config in configs:
            for webhook in config.webhooks:
                if webhook.live:
                    self.fold(event, webhook, config.source)

    def fold(self, event: Event, webhook: Webhook, source: str) -> None:
        """One event into one webhook's live message of its run (a WorkflowOverdue marks it overdue)."""
        assert self.store is not None
        group = group_of(source, webhook.id, event.workflow, event.run_id)
        key = f"{event.id}#{event.digest[:16]}"
        now = self.clock()
        if event.event == WORKFLOW_OVERDUE:
            self.store.overdue(group)
        else:
            change = change_of(event)
            self.store.record(group, key, change, now)
            if change.last_failure is not None:  # again when the event runs again: the write is idempotent
                # A failure stamped later than it arrived (a node's clock ahead) counts as arriving now:
                # one skewed clock cannot keep every later failure of the run from being shown.
                self.store.newest_failure(group, change.last_failure, min(change.failed_at, now), key)
            if event.event == "RuleFailed" and webhook.format == "slack":
                self.store.keep_failure(group, key, kept_failure(event), DEFAULTS.live_replies)
        token = str(uuid.uuid5(_NAMESPACE, f"{group}\n{key}"))  # the same for a redelivered event: its timer again
        state = self.store.schedule(group, token, now)
        if state is not None and state.broken is None:
            message = {"schema": LIVE_SCHEMA, "group": group, "config_key": source, "webhook_id": webhook.id,
                       "workflow": event.workflow, "run_id": event.run_id, "token": token, "attempt": 1}  # fmt: skip
            try:
                self._send(message, max(0.0, state.last_edit + webhook.live_interval - now))
            except Exception:
                self._unschedule(group, token)
                raise

    def _unschedule(self, group: str, token: str) -> None:
        """A timer marked but perhaps never queued: its mark made stale at once, so the run's next event
        arms one (this event's re-run too) instead of every event waiting 20 minutes. Not removed: a
        copy of this event may have queued the same token already (an SNS redelivery, a re-run), or SQS
        took the message before the call failed, and such a timer still runs on a stale mark."""
        assert self.store is not None
        try:
            self.store.touch(group, token, 0.0)
        except Exception as exc:  # noqa: BLE001 - the event fails anyway (raised by the caller); the mark goes stale
            logger.warning("live timer mark not given back", extra={"message_id": message_id(group), "error": type(exc).__name__})

    def _send(self, message: dict[str, Any], delay: float) -> None:
        self.retry_queue.send(message, delay_seconds=max(0, min(SQS_MAX_DELAY, int(delay + 0.999))))

    # -- timers ------------------------------------------------------------------------------

    def due(self, inv: Invocation, data: dict[str, Any]) -> None:
        """A timer: edit the message now, or come back when the interval allows."""
        if self.store is None:
            return
        group, token = str(data["group"]), str(data["token"])  # a message without them is malformed (redrive says so)
        try:
            self._tick(inv, data, group, token)
        except _SURPRISES as exc:  # ours, not the message's nor AWS's (those raise on: SQS gives it again)
            self._stopped(inv, data, f"unexpected {type(exc).__name__} while updating the live message")

    def _tick(self, inv: Invocation, data: dict[str, Any], group: str, token: str) -> None:
        assert self.store is not None
        if data.get("revive"):
            self.store.revive(group, token, self.clock())
        state = self.store.get(group)
        if state is None or state.timer != token or state.broken is not None:
            return  # superseded, ended, or stopped until a replay
        not_before = data.get("not_before")
        if isinstance(not_before, (int, float)) and not_before - (now := self.clock()) > 0.5:  # early, or past SQS's 15 minutes
            self._again(inv, data, group, not_before - now, now)
            return
        current = current_webhook(self.config, str(data["config_key"]), str(data["webhook_id"]), None)
        webhook = current.webhook
        if webhook is None and current.code in (dl.INVALID_CONFIG, dl.INVALID_WEBHOOK):
            # A file broken for now (a bad upload): the message waits for the fix rather than ending unseen.
            logger.warning("live message waits: its config is unusable", extra={"reason": current.reason})
            self._again(inv, data, group, float(SQS_MAX_DELAY), self.clock())
            return
        if webhook is None or not webhook.live:
            self.store.end_timer(group, token, None)  # the webhook is gone, or no longer live: nothing more to show
            return
        now = self.clock()
        wait = state.last_edit + webhook.live_interval - now
        if wait > 0.5:
            self._again(inv, data, group, wait, now)
            return
        if self.budget.too_late(self.sender.budget(webhook)) is not None:  # a call would not finish in this invocation
            self._again(inv, data, group, 1.0, now)
            return
        lease = uuid.uuid4().hex
        # Held for as long as this invocation can still act (a slow secret lookup and two calls
        # included) and a margin for the instances' clocks: no other instance edits meanwhile, so an
        # older state can never land after a newer one.
        hold = max(DEFAULTS.live_lease, (self.budget.remaining() or 0.0) + LEASE_SKEW)
        leased = self.store.lease(group, token, lease, now, now + hold)
        if leased is None:  # another instance is editing: look again once it should have finished
            self._again(inv, data, group, min(DEFAULTS.live_lease, webhook.live_interval), now)
            return
        try:
            resolved = self.resolve(webhook)
        except ReferenceProblem as exc:
            self.store.release(group, lease)
            self._failed(inv, data, webhook, CallResult(CallKind.GIVE_UP if exc.permanent else CallKind.RETRY, str(exc)))
            return
        result, message, threaded, outcome = self._edit(resolved, leased, data)
        inv.entries.append(entry_of(data, webhook, leased.version, result, outcome, self.clock()))
        self._settle(inv, data, webhook, leased, lease, result, message, threaded)

    def _settle(
        self, inv: Invocation, data: dict[str, Any], webhook: Webhook, shown: LiveState, lease: str, result: CallResult,
        message: str | None, threaded: int,
    ) -> None:  # fmt: skip
        group, token = str(data["group"]), str(data["token"])
        now = self.clock()
        match result.kind:
            case CallKind.DONE:
                assert message is not None
                inv.report.delivered += 1
                after = self.store.edited(group, lease, shown.version, message, threaded, now) if self.store else None
                if after is None:
                    return  # the lease ran out meanwhile: whoever holds it now shows a newer state
                more = after.version > shown.version or after.threaded < len(after.failures)
                if more or not self.store.end_timer(group, token, shown.version):  # type: ignore[union-attr]
                    self._again(inv, _afresh(data), group, webhook.live_interval, now)  # it succeeded: failing afresh next time
            case CallKind.LOST:
                if self.store is not None and self.store.lost(group, lease):
                    logger.warning("live message deleted; posting it anew", extra={"webhook_id": webhook.id})
                    self._again(inv, data, group, 0.0, now)
                else:
                    self._failed(
                        inv, data, webhook, CallResult(CallKind.GIVE_UP, f"{result.reason} (again, after it was posted anew once)")
                    )
            case CallKind.HELD:  # the platform's rate: the same attempt again after its wait, unspent
                if self.store is not None:
                    self.store.release(group, lease)
                self._again(inv, data, group, max(result.wait or 1.0, 1.0), now)
            case CallKind.RETRY | CallKind.GIVE_UP:
                if self.store is not None:
                    self.store.release(group, lease)
                self._failed(inv, data, webhook, result)

    def _failed(self, inv: Invocation, data: dict[str, Any], webhook: Webhook, result: CallResult) -> None:
        """A call that failed: again on the retry schedule (or the platform's wait), else a dead letter."""
        group, attempt, now = str(data["group"]), int(data.get("attempt", 1)), self.clock()
        since = data.get("failing_since")
        since = float(since) if isinstance(since, (int, float)) and not isinstance(since, bool) else now
        # A live message shows a run as it goes: retried at least every 15 minutes while it fails (so it
        # catches up soon after the platform does), for as long as the whole schedule lasts.
        within = attempt <= len(self.schedule) or now - since < sum(self.schedule)
        if result.kind is CallKind.RETRY and within and attempt < (webhook.max_attempts or 10**6):
            step = float(self.schedule[min(attempt, len(self.schedule)) - 1]) if self.schedule else 0.0
            wait = min(max(result.wait or 0.0, step), float(LIVE_RETRY_WAIT))
            logger.warning(
                "live message update failed; retrying", extra={"webhook_id": webhook.id, "reason": result.reason, "attempt": attempt}
            )
            self._again(inv, {**data, "attempt": attempt + 1, "failing_since": since}, group, wait, now)
            return
        ran_out = result.kind is CallKind.RETRY
        hours = (now - since) / 3600
        reason = (f"{result.reason}; the live message's updates stopped after {attempt} attempts over {hours:.1f} h" if ran_out
                  else result.reason)  # fmt: skip
        self._stopped(inv, data, reason, webhook)

    def _stopped(self, inv: Invocation, data: dict[str, Any], reason: str, webhook: Webhook | None = None) -> None:
        """The message's updates stop until a replay of the one dead letter that keeps its timer whole."""
        reason += "; replay this letter to resume them (the message then shows the run's state as it is)"
        if self.store is not None:
            self.store.broke(str(data["group"]), str(data["token"]), reason)  # the lease too goes at the replay (revive)
        kept = json.dumps({**_afresh(data), "revive": True})
        subject = {"event": LIVE_EVENT, "workflow": data.get("workflow"), "run_id": data.get("run_id")}
        ref = dl.webhook_ref(webhook) if webhook is not None else {"id": data.get("webhook_id"), "source": data.get("config_key")}
        letter = dl.dead_letter(LIVE_FAILED, reason, event=subject, raw_message=kept, raw_max=dl.KEPT_WHOLE_MAX, webhook=ref)
        logger.error("live message dead-lettered", extra={"webhook_id": ref.get("id"), "reason": reason})
        self.dead_letter(inv, letter)

    def _again(self, inv: Invocation, data: dict[str, Any], group: str, wait: float, now: float) -> None:
        """The timer again after ``wait``. It carries ``not_before``: a wait past SQS's longest delay hops
        (each hop keeps the timer fresh) until then, so the retry schedule's hours are waited whole, not
        cut to 15 minutes; and a timer that comes early for any reason waits its time."""
        if self.store is not None:
            self.store.touch(group, str(data["token"]), now)
        message = {k: v for k, v in data.items() if k not in ("revive", "not_before")}
        if wait > 1.0:
            message["not_before"] = now + wait
        self._send(message, wait)
        inv.report.retrying += 1

    # -- the platform ------------------------------------------------------------------------

    def _edit(self, webhook: Webhook, state: LiveState, data: dict[str, Any]) -> tuple[CallResult, str | None, int, Outcome]:
        """Post or edit the message as ``state`` is, then (Slack) reply the failures not yet in its
        thread. Returns the first call's result, the message's id or ts, and how many are threaded."""
        from oxoflow_notify.formats.live import render_live_discord, render_live_slack
        from oxoflow_notify.outbound import live_calls

        workflow, run_id = str(data["workflow"]), data.get("run_id")
        view = view_of(state, workflow, run_id, self.clock())
        posting = state.message is None
        if webhook.format == "discord":
            payload = render_live_discord(view)
            prepared = (live_calls.discord_post(webhook, payload, workflow, run_id) if posting
                        else live_calls.discord_edit(webhook, str(state.message), payload, workflow, run_id))  # fmt: skip
            outcome, raw = self.sender.call(prepared, self.budget.cap(self.sender.budget(webhook)))
            result = read_discord(outcome, raw, posting, self.clock())
            return result, (result.ref if posting else state.message), state.threaded, outcome
        slack = {**render_live_slack(view), "channel": webhook.channel}
        if not posting:
            slack["ts"] = state.message
        prepared = live_calls.slack_call(webhook, "chat.postMessage" if posting else "chat.update", slack, workflow, run_id)
        outcome, raw = self.sender.call(prepared, self.budget.cap(self.sender.budget(webhook)))
        result = read_slack(outcome, raw, posting, self.clock())
        ts = result.ref if posting else state.message
        threaded = state.threaded
        if result.kind is CallKind.DONE and ts is not None:
            threaded = self._replies(webhook, state, ts, workflow, run_id)
        return result, ts, threaded, outcome

    def _replies(self, webhook: Webhook, state: LiveState, ts: str, workflow: str, run_id: str | None) -> int:
        """The failures not yet in the thread, one per pass (the next pass comes after the interval); how many are threaded after it."""
        from oxoflow_notify.formats.slack import render_slack
        from oxoflow_notify.inbound.events import event_from_payload
        from oxoflow_notify.outbound import live_calls

        threaded = state.threaded
        for payload in state.failures[threaded : threaded + REPLIES_PER_PASS]:
            reply = {**render_slack(event_from_payload(payload)), "channel": webhook.channel, "thread_ts": ts}
            prepared = live_calls.slack_call(webhook, "chat.postMessage", reply, workflow, run_id)
            if self.budget.too_late(self.sender.budget(webhook)) is not None:
                break  # no time left in this invocation: the next pass
            outcome, raw = self.sender.call(prepared, self.budget.cap(self.sender.budget(webhook)))
            kind = read_slack(outcome, raw, True, self.clock()).kind
            if kind is CallKind.GIVE_UP:
                logger.warning("live thread reply refused for good; skipped", extra={"webhook_id": webhook.id})
            elif kind is not CallKind.DONE:
                break  # the next pass tries it again
            threaded += 1  # (a reply Slack refuses for good is skipped: never retried for ever)
        return threaded


def message_id(group: str) -> str:
    """The live message's id in the delivery log (``deliveries show`` takes it): one per (webhook, run)."""
    return str(uuid.uuid5(_NAMESPACE, f"message\n{group}"))


def _afresh(data: dict[str, Any]) -> dict[str, Any]:
    """A timer's message as a first attempt: no attempts spent, no failing streak."""
    return {**{k: v for k, v in data.items() if k != "failing_since"}, "attempt": 1}


def entry_of(data: dict[str, Any], webhook: Webhook, version: int, result: CallResult, outcome: Outcome, now: float) -> Entry:
    """One platform call of a live message as the delivery log keeps it: the message is the
    delivery, each call an attempt numbered by the state's version it showed; no body is kept
    (``redeliver`` has nothing to post: the next edit shows the run as it is)."""
    match result.kind:
        case CallKind.DONE:
            kept = "delivered"
        case CallKind.RETRY | CallKind.LOST:
            kept = "retrying"
        case CallKind.HELD:
            kept = "held"
        case CallKind.GIVE_UP:
            kept = "dead_lettered"
    group = str(data["group"])
    return Entry(
        workflow=str(data["workflow"]), delivery_id=message_id(group), attempt=version, at=now, event_id=message_id(group),
        event=LIVE_EVENT, run_id=data.get("run_id"), webhook_id=webhook.id, config_key=webhook.source, format=webhook.format,
        outcome=kept, status=outcome.status, error=str(outcome.error) if outcome.error else None, reason=result.reason,
        duration_ms=round(outcome.latency_ms, 1),
    )  # fmt: skip


def view_of(state: LiveState, workflow: str, run_id: str | None, now: float) -> LiveView:
    """What the message shows of ``state`` at ``now``."""
    from oxoflow_notify.formats.live import LiveView

    end = state.ended if state.ended is not None else now
    elapsed = max(0.0, end - state.started) if state.started is not None else None
    not_shown = max(0, state.counts.get("RuleFailed", 0) - len(state.failures)) if state.failures else 0
    return LiveView(workflow, run_id, state.state, dict(state.counts), state.total, elapsed, state.last_failure, not_shown)
