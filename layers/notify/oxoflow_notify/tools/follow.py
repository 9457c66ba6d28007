"""Tail a run's JSON-lines execution log and publish each lifecycle record as it is written.

What it promises:
- Every complete line is published once, in order; a half-written last line waits for its newline.
- Rotation (rename + new file, or copy + truncate) loses nothing: the old file is read to its end
  before the new one is opened, and a log shorter than our position means it was truncated.
- The position (file identity and byte offset) is saved after each published line, so a restart
  resumes there, even if the log was rotated meanwhile (the rotated file is found by identity).
- Each event's id is derived from the workflow and the line, so publishing a line twice (a crash
  between publishing and saving the position) yields the same delivery ids, which the delivery
  ledger does not post twice.
- A line that is not a valid event is reported with its line number and skipped, never fatal; so
  is a misspelled lifecycle event (``rule_faild``: did you mean ``rule_failed``?). Records of other
  kinds (progress, resource samples) are not events: each such name is mentioned once, then ignored.
- With ``until_done``, a log whose run already ended before the starting position (a saved
  position after the final record, or the end of a finished log) ends the follow at once.
"""

from __future__ import annotations

import difflib
import json
import os
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from oxoflow_notify.errors import EventError, shown
from oxoflow_notify.inbound.events import EVENT_NAMES, snake_name
from oxoflow_notify.inbound.json_input import load_json
from oxoflow_notify.inbound.oxoflow import from_log_record

_NAMESPACE = uuid.UUID("0b7c3f0e-93a5-5a3e-8d0c-5f0d3b1f6a21")
FINAL = ("workflow_completed", "workflow_failed", "workflow_cancelled")
PUBLISH_RETRY_SECONDS = (1, 2, 5, 10, 30)
# Lifecycle names in both spellings, lowered: a record named close to one of these is a typo, not
# another kind of record. 0.8 catches a dropped or swapped letter ("rule_faild") but not
# "resource_sample" or "progress".
_LIFECYCLE = {n.lower(): n for n in (*EVENT_NAMES, *(snake_name(n) for n in EVENT_NAMES))}
_TYPO_CUTOFF = 0.8


@dataclass
class Position:
    device: int
    inode: int
    offset: int
    line: int = 0  # line number of the next line, for error messages


def event_id(workflow: str, raw: bytes) -> str:
    return str(uuid.uuid5(_NAMESPACE, workflow + "\n" + raw.decode("utf-8", "replace")))


class Follower:
    def __init__(
        self,
        path: Path,
        publish: Callable[[dict[str, Any]], str],
        workflow: str | None = None,
        state: Path | None = None,
        from_start: bool = False,
        log: Callable[[str], None] = lambda _: None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.path = path
        self.publish = publish
        self.workflow = workflow
        self.state = state or path.with_name(path.name + ".oxoflow-notify.json")
        self.from_start = from_start
        self.log = log
        self.sleep = sleep
        self.clock = clock
        self.published = 0
        self.rejected = 0
        self.done = False  # the run's final record was published
        self.until_done = False
        self._file: IO[bytes] | None = None
        self._position: Position | None = None
        self._ignored: set[str] = set()  # names of non-lifecycle records already mentioned

    # -- position ---------------------------------------------------------------------------

    def _saved(self) -> Position | None:
        try:
            data = json.loads(self.state.read_text(encoding="utf-8"))
            return Position(int(data["device"]), int(data["inode"]), int(data["offset"]), int(data.get("line", 0)))
        except (OSError, ValueError, KeyError, TypeError):
            return None

    def _save(self) -> None:
        assert self._position is not None
        tmp = self.state.with_name(self.state.name + ".tmp")
        tmp.write_text(json.dumps(self._position.__dict__), encoding="utf-8")
        os.replace(tmp, self.state)  # atomic: a crash leaves the old position or the new one

    def _open(self, path: Path, offset: int, line: int) -> bool:
        try:
            handle = path.open("rb")
        except FileNotFoundError:
            return False
        stat = os.fstat(handle.fileno())
        if offset > stat.st_size:  # truncated in place (copytruncate): start over
            self.log(f"follow: {path} is shorter than the saved position; it was truncated, reading from its start")
            offset, line = 0, 0
        if self.until_done and offset and not self.done:
            self._check_ended(handle, path, offset)
        handle.seek(offset)
        if self._file is not None:
            self._file.close()
        self._file = handle
        self._position = Position(stat.st_dev, stat.st_ino, offset, line)
        return True

    def _start(self) -> bool:
        saved = self._saved()
        if saved is not None:
            try:
                current = self.path.stat()
            except FileNotFoundError:
                current = None
            if current is not None and (current.st_dev, current.st_ino) == (saved.device, saved.inode):
                return self._open(self.path, saved.offset, saved.line)
            rotated = self._find_rotated(saved)
            if rotated is not None:  # rotated while we were stopped: finish the old file first
                self.log(f"follow: resuming in the rotated {rotated.name}")
                return self._open(rotated, saved.offset, saved.line)
        if not self.path.exists():
            return False
        size = 0 if self.from_start or saved is not None else self.path.stat().st_size
        return self._open(self.path, size, 0)

    def _check_ended(self, handle: IO[bytes], path: Path, offset: int) -> None:
        """Before ``offset``: if the last lifecycle record is the run's final one, the run has ended
        and there is nothing left to wait for (a finished log, or a position saved after its end)."""
        last: tuple[int, str] | None = None
        for number, raw in enumerate(iter(lambda: handle.readline(), b""), start=1):
            if handle.tell() > offset:
                break
            message = self._quiet(raw)
            if message is not None:
                last = (number, str(message["event"]))
        if last is not None and last[1] in FINAL:
            self.done = True
            again = f"remove {self.state} to publish it again" if self.state.exists() else "--from-start publishes it"
            self.log(f"follow: the run already ended at {path.name}:{last[0]} ({last[1]}); nothing left to publish ({again})")

    def _quiet(self, raw: bytes) -> dict[str, Any] | None:
        try:
            return from_log_record(load_json(raw.rstrip(b"\r\n"), "the record"), self.workflow or "-")
        except (ValueError, EventError):
            return None

    def _find_rotated(self, saved: Position) -> Path | None:
        for candidate in sorted(self.path.parent.glob(self.path.name + "*")):
            if candidate == self.path or candidate == self.state:
                continue
            try:
                stat = candidate.stat()
            except OSError:
                continue
            if (stat.st_dev, stat.st_ino) == (saved.device, saved.inode):
                return candidate
        return None

    # -- reading ----------------------------------------------------------------------------

    def _rotated_away(self) -> bool:
        """The path now names another file (or none): the one we hold was rotated."""
        assert self._position is not None
        try:
            current = self.path.stat()
        except FileNotFoundError:
            return False  # between the rename and the new file's creation: keep reading the old one
        return (current.st_dev, current.st_ino) != (self._position.device, self._position.inode)

    def _truncated(self) -> bool:
        assert self._file is not None and self._position is not None
        return os.fstat(self._file.fileno()).st_size < self._position.offset

    def poll_once(self) -> int:
        """Publish every complete new line; return how many lines were handled."""
        if self._file is None and not self._start():
            return 0
        handled = self._drain()
        if self._truncated():
            assert self._position is not None
            self.log(f"follow: {self.path} was truncated; reading from its start")
            self._open(self.path, 0, 0)
            handled += self._drain()
        elif self._rotated_away():
            handled += self._drain()  # whatever was written before the rename
            if self._open(self.path, 0, 0):
                self.log(f"follow: {self.path} was rotated; following the new file")
                self._save()
                handled += self._drain()
        return handled

    def _drain(self) -> int:
        assert self._file is not None and self._position is not None
        handled = 0
        while not (self.done and self.until_done):
            start = self._file.tell()
            raw = self._file.readline()
            if not raw.endswith(b"\n"):
                self._file.seek(start)  # a half-written line: wait for the rest
                break
            self._handle(raw.rstrip(b"\r\n"), self._position.line + 1)
            self._position.offset = self._file.tell()
            self._position.line += 1
            self._save()
            handled += 1
        return handled

    def _handle(self, raw: bytes, number: int) -> None:
        if not raw.strip():
            return
        where = f"{self.path.name}:{number}"
        try:
            record = load_json(raw, "the record")  # a hostile line is skipped with its reason, never a crash
            message = from_log_record(record, self.workflow)
        except (ValueError, EventError) as exc:
            self.rejected += 1
            self.log(f"follow: {where}: skipped: {exc}")
            return
        if message is None:
            self._not_lifecycle(record["event"], where)
            return
        message.setdefault("id", event_id(str(message["workflow"]), raw))
        for attempt, wait in enumerate((*PUBLISH_RETRY_SECONDS, None), start=1):
            try:
                message_id = self.publish(message)
                break
            except EventError as exc:
                self.rejected += 1
                self.log(f"follow: {where}: skipped, not a valid event: {exc}")
                return
            except Exception as exc:
                if wait is None or getattr(exc, "final", False):  # out of tries, or one that waiting cannot fix
                    raise
                self.log(f"follow: {where}: publish failed ({type(exc).__name__}), attempt {attempt}; retrying in {wait} s")
                self.sleep(wait)
        self.published += 1
        self.log(f"follow: {where}: {message['event']} published ({message_id})")
        if message["event"] in FINAL:
            self.done = True

    def _not_lifecycle(self, name: str, where: str) -> None:
        """A record that is no lifecycle event: a near miss of one is a typo, reported and counted
        on every line; any other name (progress, resource samples) is mentioned once, then ignored."""
        near = difflib.get_close_matches(name.lower(), list(_LIFECYCLE), n=1, cutoff=_TYPO_CUTOFF)
        if near:
            self.rejected += 1
            self.log(f"follow: {where}: skipped: unknown event '{shown(name)}' (did you mean '{_LIFECYCLE[near[0]]}'?)")
        elif name not in self._ignored and len(self._ignored) < 100:
            self._ignored.add(name)
            self.log(f"follow: {where}: ignoring '{shown(name)}' records: not a lifecycle event")

    def run(self, poll: float = 0.5, until_done: bool = False, idle_exit: float | None = None) -> int:
        """Follow until the run's final record (``until_done``) or ``idle_exit`` seconds without a
        line; 1 if any line was skipped (reported above), else 0."""
        self.until_done = until_done
        idle_since = self.clock()
        while True:
            if self.poll_once():
                idle_since = self.clock()
            if (until_done and self.done) or (idle_exit is not None and self.clock() - idle_since >= idle_exit):
                return self._finish()
            self.sleep(poll)

    def _finish(self) -> int:
        if not self.rejected:
            return 0
        self.log(f"follow: {self.published} published, {self.rejected} skipped (the lines named above)")
        return 1
