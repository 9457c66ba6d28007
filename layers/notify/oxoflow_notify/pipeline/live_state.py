"""A live message's state and its store (``pipeline.live`` drives them): what one event changes
(``change_of``), what the store keeps per (webhook, run) (``LiveState``) and the conditional writes
it offers (``LiveStore``, on the ledger's table in ``aws.live_table``)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any, Protocol

from oxoflow_notify.inbound.events import RUN_ENDINGS, Event
from oxoflow_notify.inbound.timestamps import epoch_seconds

from .ports import SQS_MAX_DELAY

RUNNING = "running"
_ENDING_STATE = {"WorkflowCompleted": "completed", "WorkflowFailed": "failed", "WorkflowCancelled": "cancelled"}
STALE_TIMER = SQS_MAX_DELAY + 300  # a timer not heard of this long is taken for lost: the next event starts another
KEEP_STDERR = 1000  # characters of a kept failure's stderr (its tail): the state item stays small (its size is each write's price)


@dataclass(frozen=True)
class Change:
    """What one event changes in its run's live state."""

    counted: str | None = None  # the rule event to count
    state: str | None = None  # an ending's state (completed, failed, cancelled)
    total: int | None = None  # details.total_rules of WorkflowStarted
    started: float | None = None
    ended: float | None = None
    last_failure: dict[str, Any] | None = None
    failed_at: float = 0.0  # the failure's own time: the newest is shown, whichever instance counts it last


@dataclass(frozen=True)
class LiveState:
    """A run's live message as the store has it."""

    version: int = 0
    counts: dict[str, int] = field(default_factory=dict)
    state: str = RUNNING
    total: int | None = None
    started: float | None = None
    ended: float | None = None
    last_failure: dict[str, Any] | None = None
    failures: tuple[dict[str, Any], ...] = ()  # RuleFailed payloads kept for the thread (Slack), at most live_replies
    message: str | None = None  # the platform's id (Discord) or ts (Slack), once posted
    sent_version: int = 0
    last_edit: float = 0.0
    threaded: int = 0  # of ``failures``, how many were replied in the thread
    reposted: bool = False  # posted anew once already (the first was deleted)
    timer: str | None = None  # the pending timer's token
    broken: str | None = None  # why its updates stopped (dead-lettered), until a replay revives them


class LiveStore(Protocol):
    def record(self, group: str, key: str, change: Change, now: float) -> bool:
        """Count the event once (False: ``key`` was counted before) and raise the version."""
        ...

    def newest_failure(self, group: str, failure: dict[str, Any], at: float, key: str) -> None:
        """Show ``failure`` as the run's last one unless one that happened later is shown (raising the
        version); of two at the same time, the one with the greater ``key``, whatever order they come in."""
        ...

    def keep_failure(self, group: str, key: str, payload: dict[str, Any], most: int) -> None:
        """Keep a RuleFailed for the thread (once per key, ``most`` in all)."""
        ...

    def overdue(self, group: str) -> bool:
        """Mark a running run overdue (raising the version); False when it is not running."""
        ...

    def schedule(self, group: str, token: str, now: float) -> LiveState | None:
        """Make ``token`` the pending timer unless another one is (not stale); the state, or None."""
        ...

    def get(self, group: str) -> LiveState | None: ...

    def touch(self, group: str, token: str, now: float) -> None:
        """The timer ``token``'s time, if it is the timer: ``now`` while it goes on; 0 makes it stale at once."""
        ...

    def lease(self, group: str, token: str, lease: str, now: float, until: float) -> LiveState | None:
        """Take the message for one edit while ``token`` is the timer and no lease holds; the state, or None."""
        ...

    def edited(self, group: str, lease: str, version: int, message: str, threaded: int, now: float) -> LiveState | None:
        """Record what was shown and give the lease back; the state after, or None if the lease was lost."""
        ...

    def release(self, group: str, lease: str) -> None: ...

    def lost(self, group: str, lease: str) -> bool:
        """The message was deleted: forget it so the next edit posts anew; False if it was already reposted once."""
        ...

    def end_timer(self, group: str, token: str, version: int | None) -> bool:
        """No timer pending any more, if ``token`` is it and (``version`` given) nothing came since."""
        ...

    def broke(self, group: str, token: str, reason: str) -> None:
        """Updates stop (dead-lettered) until a replay revives them."""
        ...

    def revive(self, group: str, token: str, now: float) -> None:
        """A replay: updates go on, ``token`` the timer."""
        ...


def group_of(config_key: str, webhook_id: str, workflow: str, run_id: str | None) -> str:
    """One live message per (webhook, workflow, run); a digest as the item's key, never the names."""
    text = f"live\n{config_key}\n{webhook_id}\n{workflow}\n{run_id if run_id is not None else ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


def change_of(event: Event) -> Change:
    """What the event changes: a rule event is counted (a failure kept as the last one); a start
    gives the run's start and total; an ending its state and end."""
    at = epoch_seconds(event.timestamp)
    if event.is_rule_event:
        failure = None
        if event.event == "RuleFailed":
            stderr = event.details.get("stderr")
            failure = {"rule": event.rule, "exit_code": event.details.get("exit_code"),
                       "stderr": stderr[-KEEP_STDERR:] if isinstance(stderr, str) else None}  # fmt: skip
        return Change(counted=event.event, last_failure=failure, failed_at=at or 0.0)
    if event.event == "WorkflowStarted":
        total = event.details.get("total_rules")
        return Change(started=at, total=total if isinstance(total, int) and not isinstance(total, bool) and total > 0 else None)
    if event.event in RUN_ENDINGS:
        return Change(state=_ENDING_STATE[event.event], ended=at)
    return Change()


def kept_failure(event: Event) -> dict[str, Any]:
    """A RuleFailed as its thread reply renders it, bounded whatever the event carried (the state
    item holds ten and must stay far from DynamoDB's 400 KB): its message's head, and of its details
    only the exit code and the stderr's tail."""
    payload = event.to_payload()
    details = payload.get("details", {})
    stderr = details.get("stderr")
    exit_code = details.get("exit_code")
    kept: dict[str, Any] = {}
    if isinstance(exit_code, (int, str)) and not isinstance(exit_code, bool) and len(str(exit_code)) <= 20:
        kept["exit_code"] = exit_code
    if isinstance(stderr, str):
        kept["stderr"] = stderr[-KEEP_STDERR:]
    payload["details"] = kept
    payload["message"] = str(payload.get("message", ""))[:KEEP_STDERR]
    return payload
