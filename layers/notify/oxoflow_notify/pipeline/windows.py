"""Digest windows: the rules every window store follows, and one in memory.

Per group (webhook, workflow, run; ``digest.group_of``) there is a head, the number of the group's
current window, and the windows: state (open, closed), counts per event, total, the kept events
(failed and others, each list capped), their bytes, its close's token; and one marker per
(event, webhook) counted.

An event is counted once: the marker and the window's update happen together or not at all, so an
SNS redelivery, a second dispatcher or a run that died half way through never counts an event
twice. A window is opened by moving the head from n to n + 1 only if it still says n; before that,
the opener queues the window's close (a delayed message on the retry queue, with the window's
token): every window that exists has a close on its way.

Closing flips the state to closed and reads what it held in the same write: events added before
the flip are in the digest, events after it open the next window. Only the close that flipped it,
or the window's own close (its token) come again after a crash, hands the digest on.

Self-healing: an open window past its duration plus STALE_AFTER (its close was lost, or came before
the window existed) is closed by the next event, which opens the next window; so is a window whose
kept events would outgrow WINDOW_BYTES. A close that finds no window while the group's head has not
reached it comes back once more. An event that loses every race fails its invocation
(``WindowContention``: Lambda retries it, and the marker keeps it from counting twice).

The DynamoDB store (transactions on the ledger's table) is ``aws.windows_table``.
"""

from __future__ import annotations

import json
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from oxoflow_notify.errors import InfrastructureError
from oxoflow_notify.inbound.digests import Digest
from oxoflow_notify.inbound.timestamps import format_timestamp

from . import digest as limits
from .digest import KEEP_FAILED, KEEP_OTHER, STALE_AFTER, digest_delivery_id, kept_form, size_of
from .retry import CLOSE_SCHEMA

OPEN = "open"
CLOSED = "closed"
ADDED = "added"
OPENED = "opened"
DUPLICATE = "duplicate"
CONFLICT = "conflict"  # a transaction conflict (another write to the same item at once): look again


@dataclass(frozen=True)
class Group:
    """One digest group and what its close message must carry to find its webhook again."""

    key: str
    config_key: str
    webhook_id: str
    workflow: str
    run_id: str | None
    seconds: float

    def close_message(self, window: int, token: str | None = None, closed_by: str = "timer", again: int = 0) -> dict[str, Any]:
        """``token``: set on the window's own close (its opener's); ``again``: how often this close
        came back because the window was not there yet."""
        return {
            "schema": CLOSE_SCHEMA,
            "group": self.key,
            "window": window,
            "token": token,
            "closed_by": closed_by,
            "again": again,
            "config_key": self.config_key,
            "webhook_id": self.webhook_id,
            "workflow": self.workflow,
            "run_id": self.run_id,
            "seconds": self.seconds,
        }

    @classmethod
    def from_close_message(cls, data: dict[str, Any]) -> tuple[Group, int]:
        """The group and window number a close message names; ValueError when it is malformed."""
        try:
            group = cls(
                str(data["group"]),
                str(data["config_key"]),
                str(data["webhook_id"]),
                str(data["workflow"]),
                None if data.get("run_id") is None else str(data["run_id"]),
                float(data["seconds"]),
            )
            window = data["window"]
        except (KeyError, TypeError, ValueError) as exc:
            raise ValueError(f"malformed digest close message ({type(exc).__name__})") from None
        if isinstance(window, bool) or not isinstance(window, int) or window < 1:
            raise ValueError("malformed digest close message (window)")
        return group, window


@dataclass(frozen=True)
class Closing:
    """What a close found: the digest (None when the window holds nothing or is not there), whether
    this close flipped it, the window's token, and whether the window is not there *yet* (the
    group's head is behind it: its opener has not committed)."""

    digest: Digest | None
    newly: bool
    token: str | None = None
    not_yet: bool = False


# (group, window, delay seconds, token, closed_by): queue a window's close
Schedule = Callable[[Group, int, float, "str | None", str], None]


class WindowStore(Protocol):
    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str: ...

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing: ...

    def current(self, group: Group) -> int | None: ...


class WindowContention(InfrastructureError):
    """An event lost every race for its window (a storm of openers, closers and transaction
    conflicts): its invocation fails and Lambda retries it; its marker keeps it from counting twice."""


def is_failed(event: dict[str, Any]) -> bool:
    return event.get("event") == "RuleFailed"


def overdue(opened: float, group: Group, now: float) -> bool:
    """Open past its duration and STALE_AFTER more: its close was lost, or came before it existed."""
    return opened + group.seconds + STALE_AFTER < now


def fresh_since(group: Group, now: float) -> float:
    """The earliest opening time of a window still open for new events (``overdue``'s other side)."""
    return now - group.seconds - STALE_AFTER


def digest_of(group: Group, window: int, state: dict[str, Any]) -> Digest | None:
    """A window's state (as the store holds it, plain Python) as the digest it sends."""
    if not state.get("total"):
        return None
    failed = [json.loads(e) for e in state.get("failed", [])]
    others = [json.loads(e) for e in state.get("others", [])]
    return Digest(
        id=digest_delivery_id(group.key, window, float(state["opened"])),
        workflow=group.workflow,
        run_id=group.run_id,
        opened=format_timestamp_at(float(state["opened"])),
        closed=format_timestamp_at(float(state.get("closed_at") or state["opened"])),
        seconds=group.seconds,
        closed_by=str(state.get("closed_by") or "timer"),
        counts={k: int(v) for k, v in state.get("counts", {}).items() if int(v) > 0},
        events=tuple(failed + others),
        total=int(state["total"]),
        window=window,
    )


def format_timestamp_at(seconds: float) -> str:
    from datetime import UTC, datetime

    return format_timestamp(datetime.fromtimestamp(round(seconds, 3), tz=UTC))


class MemoryWindowStore:
    """The same rules in memory, for unit tests (one process only)."""

    def __init__(self) -> None:
        self.heads: dict[str, int] = {}
        self.windows: dict[tuple[str, int], dict[str, Any]] = {}
        self.markers: set[str] = set()
        self._lock = threading.Lock()

    def add(self, group: Group, event: dict[str, Any], event_key: str, now: float, schedule: Schedule) -> str:
        kept = json.dumps(kept_form(event), ensure_ascii=False, separators=(",", ":"))
        size = size_of(json.loads(kept))
        lst, cap = ("failed", KEEP_FAILED) if is_failed(event) else ("others", KEEP_OTHER)
        with self._lock:
            if event_key in self.markers:
                return DUPLICATE
            n = self.heads.get(group.key, 0)
            state = self.windows.get((group.key, n))
            if state is not None and state["state"] == OPEN:
                if overdue(state["opened"], group, now):
                    schedule(group, n, 0, state["token"], "timer")  # its close was lost: close it now, open the next
                elif len(state[lst]) < cap and state["bytes"] + size > limits.WINDOW_BYTES:
                    schedule(group, n, 0, state["token"], "full")  # would outgrow: close it now, open the next
                else:
                    if len(state[lst]) < cap:
                        state[lst].append(kept)
                        state["bytes"] += size
                    state["counts"][event["event"]] = state["counts"].get(event["event"], 0) + 1
                    state["total"] += 1
                    self.markers.add(event_key)
                    return ADDED
            token = uuid.uuid4().hex
            schedule(group, n + 1, group.seconds, token, "timer")
            self.heads[group.key] = n + 1
            self.windows[(group.key, n + 1)] = {
                "state": OPEN,
                "opened": now,
                "counts": {event["event"]: 1},
                "total": 1,
                "failed": [kept] if lst == "failed" else [],
                "others": [kept] if lst == "others" else [],
                "bytes": size,
                "token": token,
            }
            self.markers.add(event_key)
            return OPENED

    def close(self, group: Group, window: int, now: float, closed_by: str) -> Closing:
        with self._lock:
            state = self.windows.get((group.key, window))
            if state is None:
                return Closing(None, False, not_yet=self.heads.get(group.key, 0) < window)
            newly = state["state"] == OPEN
            if newly:
                state.update(state=CLOSED, closed_at=now, closed_by=closed_by)
            return Closing(digest_of(group, window, state), newly, state["token"])

    def current(self, group: Group) -> int | None:
        with self._lock:
            return self.heads.get(group.key)
