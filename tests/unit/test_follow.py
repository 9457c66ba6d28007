"""follow: a growing JSON-lines execution log, rotation, truncation, restarts; real files, fake topic."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from oxoflow_notify.errors import EventError
from oxoflow_notify.tools.follow import Follower


class Topic:
    def __init__(self, fail: int = 0) -> None:
        self.messages: list[dict[str, Any]] = []
        self.fail = fail

    def __call__(self, message: dict[str, Any]) -> str:
        if self.fail:
            self.fail -= 1
            raise ConnectionError("topic unreachable")
        if message["event"] == "rule_started" and message.get("rule") == "invalid":
            raise EventError("field 'rule' is too long")
        self.messages.append(message)
        return f"m{len(self.messages)}"

    @property
    def events(self) -> list[str]:
        return [f"{m['event']}:{m.get('rule', '')}" for m in self.messages]


def line(event: str, **fields: Any) -> str:
    return json.dumps({"event": event, "timestamp": "2026-05-18T12:00:00Z", **fields}) + "\n"


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as handle:
        handle.writelines(lines)


def follower(log: Path, topic: Topic, messages: list[str] | None = None) -> Follower:
    sink = messages if messages is not None else []
    return Follower(log, topic, workflow="wgs", from_start=True, log=sink.append, sleep=lambda _: None)


def test_lines_are_published_in_order_as_they_are_written_and_half_lines_wait(tmp_path: Path) -> None:
    # given a run's log with two records, the second half-written
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started") + '{"event": "rule_sta', encoding="utf-8")
    f = follower(log, topic)
    # when the follower polls, then only the complete line is published
    f.poll_once()
    assert topic.events == ["workflow_started:"]
    # when the rest of the line and more records arrive
    append(
        log, 'rted", "rule": "bwa"}\n', line("rule_completed", rule="bwa", status="failed", exit_code=1), line("rule_skipped", rule="vc")
    )
    f.poll_once()
    # then each is published once, a failing rule_completed as rule_failed
    assert topic.events == ["workflow_started:", "rule_started:bwa", "rule_failed:bwa", "rule_skipped:vc"]
    assert all(m["workflow"] == "wgs" for m in topic.messages)


def test_rotation_by_rename_loses_nothing(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started"), encoding="utf-8")
    f = follower(log, topic)
    f.poll_once()
    # lines land in the old file, then it is renamed and a new one started (logrotate's default)
    append(log, line("rule_started", rule="a"))
    log.rename(tmp_path / "run.jsonl.1")
    log.write_text(line("rule_started", rule="b"), encoding="utf-8")
    f.poll_once()
    assert topic.events == ["workflow_started:", "rule_started:a", "rule_started:b"]


def test_copytruncate_starts_over_at_the_top_of_the_file(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started") + line("rule_started", rule="a"), encoding="utf-8")
    f = follower(log, topic)
    f.poll_once()
    with log.open("r+") as handle:
        handle.truncate(0)
    append(log, line("rule_started", rule="c"))
    f.poll_once()
    assert topic.events == ["workflow_started:", "rule_started:a", "rule_started:c"]


def test_a_restart_resumes_where_it_stopped_even_across_a_rotation(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started"), encoding="utf-8")
    follower(log, topic).poll_once()
    # while the follower is stopped, the run writes more and the log is rotated
    append(log, line("rule_started", rule="a"))
    log.rename(tmp_path / "run.jsonl.1")
    log.write_text(line("rule_started", rule="b"), encoding="utf-8")
    # when it starts again, it finishes the rotated file from its saved position, then the new one
    again = follower(log, topic)
    again.poll_once()
    again.poll_once()
    assert topic.events == ["workflow_started:", "rule_started:a", "rule_started:b"]


def test_without_a_saved_position_it_starts_at_the_end_unless_asked(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started"), encoding="utf-8")
    tail = Follower(log, topic, workflow="wgs", sleep=lambda _: None)
    tail.poll_once()
    append(log, line("rule_started", rule="a"))
    tail.poll_once()
    assert topic.events == ["rule_started:a"]


def test_bad_lines_are_reported_with_their_number_and_skipped(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    said: list[str] = []
    log.write_text(
        "not json\n" + line("rule_started", rule="invalid") + line("progress", pct=50) + line("workflow_started"), encoding="utf-8"
    )
    f = follower(log, topic, said)
    f.poll_once()
    assert topic.events == ["workflow_started:"] and f.rejected == 2
    assert any(s.startswith("follow: run.jsonl:1: skipped") for s in said)
    assert any("run.jsonl:2: skipped, not a valid event: field 'rule' is too long" in s for s in said)


def test_a_publish_failure_is_retried_not_skipped_and_ids_are_stable(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic(fail=2)
    log.write_text(line("workflow_started"), encoding="utf-8")
    follower(log, topic).poll_once()
    assert topic.events == ["workflow_started:"]
    # the same line published again (a crash before the position was saved) carries the same id
    os.remove(tmp_path / "run.jsonl.oxoflow-notify.json")
    again = Topic()
    follower(log, again).poll_once()
    assert again.messages[0]["id"] == topic.messages[0]["id"]


def test_until_done_stops_after_the_runs_final_record(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started") + line("workflow_completed", status="success") + line("workflow_started"), encoding="utf-8")
    assert follower(log, topic).run(poll=0, until_done=True) == 0
    assert topic.events == ["workflow_started:", "workflow_completed:"]


@pytest.mark.parametrize("status", ["failed", "error", "timeout"])
def test_a_workflow_completed_with_a_failing_status_is_workflow_failed(tmp_path: Path, status: str) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_completed", status=status), encoding="utf-8")
    follower(log, topic).poll_once()
    assert topic.events == ["workflow_failed:"]
