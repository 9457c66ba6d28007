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


def no_waiting(_: float) -> None:
    raise AssertionError("the follower waited although the run had ended")


def test_a_misspelled_event_is_reported_with_its_line_and_a_suggestion_and_other_records_once(tmp_path: Path) -> None:
    # given a log with a typo'd lifecycle event and two progress records
    log, topic = tmp_path / "run.jsonl", Topic()
    said: list[str] = []
    log.write_text(line("workflow_started") + line("rule_faild", rule="bwa") + line("progress", pct=1) + line("progress", pct=2),
                   encoding="utf-8")  # fmt: skip
    f = follower(log, topic, said)
    # when it is followed
    f.poll_once()
    # then the typo is skipped and named at its line with the right spelling; progress is mentioned once, not counted
    assert topic.events == ["workflow_started:"] and f.rejected == 1
    assert "follow: run.jsonl:2: skipped: unknown event 'rule_faild' (did you mean 'rule_failed'?)" in said
    assert [s for s in said if "progress" in s] == ["follow: run.jsonl:3: ignoring 'progress' records: not a lifecycle event"]


def test_a_run_that_skipped_a_line_exits_1_and_says_how_many(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    said: list[str] = []
    log.write_text(line("RuleFialed", rule="a") + line("workflow_completed"), encoding="utf-8")
    assert follower(log, topic, said).run(poll=0, until_done=True) == 1
    assert said[-1] == "follow: 1 published, 1 skipped (the lines named above)"


@pytest.mark.parametrize("status", ["fail", "failed", "FAILURE", "error", "errored", "timeout", "Timed-Out", "timed out",
                                    "killed", "crashed", "oom", "OOM_KILLED", "aborted"])  # fmt: skip
def test_every_failure_status_makes_a_failed_event(tmp_path: Path, status: str) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("rule_completed", rule="bwa", status=status) + line("workflow_completed", status=status), encoding="utf-8")
    follower(log, topic).poll_once()
    assert topic.events == ["rule_failed:bwa", "workflow_failed:"]


@pytest.mark.parametrize(("fields", "event"), [
    ({"status": "success"}, "rule_completed:bwa"),
    ({"status": "ok", "exit_code": 0}, "rule_completed:bwa"),
    ({}, "rule_completed:bwa"),
    ({"exit_code": 0}, "rule_completed:bwa"),
    ({"exit_code": 137}, "rule_failed:bwa"),  # no status: a non-zero exit code is a failure
])  # fmt: skip
def test_a_success_stays_completed_and_a_bare_non_zero_exit_code_fails(tmp_path: Path, fields: dict[str, Any], event: str) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("rule_completed", rule="bwa", **fields), encoding="utf-8")
    follower(log, topic).poll_once()
    assert topic.events == [event]


def test_until_done_on_a_log_that_already_ended_exits_at_once_without_a_saved_position(tmp_path: Path) -> None:
    # given a finished run's log and no saved position (the follow starts at the end)
    log, topic = tmp_path / "run.jsonl", Topic()
    said: list[str] = []
    log.write_text(line("workflow_started") + line("workflow_completed") + line("progress", pct=100), encoding="utf-8")
    f = Follower(log, topic, workflow="wgs", log=said.append, sleep=no_waiting)
    # when it is followed until done, then it ends at once, publishing nothing, and says why
    assert f.run(poll=1, until_done=True) == 0
    assert topic.events == []
    assert said == [
        "follow: the run already ended at run.jsonl:2 (workflow_completed); nothing left to publish (--from-start publishes it)"
    ]


def test_until_done_after_a_restart_past_the_final_record_exits_at_once(tmp_path: Path) -> None:
    # given a run followed to its end, whose position was saved after the final record
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started") + line("rule_completed", rule="a", status="failed") + line("workflow_completed"),
                   encoding="utf-8")  # fmt: skip
    assert follower(log, topic).run(poll=0, until_done=True) == 0
    # when it is started again with the saved position, then it ends without waiting or publishing again
    again = Follower(log, topic, workflow="wgs", from_start=True, sleep=no_waiting)
    assert again.run(poll=1, until_done=True) == 0
    assert topic.events == ["workflow_started:", "rule_failed:a", "workflow_completed:"]


def test_until_done_on_a_log_whose_run_started_again_keeps_following(tmp_path: Path) -> None:
    # given a log whose last run ended and a new one started (the final record is not the last word)
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started") + line("workflow_completed") + line("workflow_started"), encoding="utf-8")
    sleeps: list[float] = []

    def sleep(seconds: float) -> None:
        sleeps.append(seconds)
        append(log, line("workflow_failed"))

    # when followed from the end until done, then it waits for the new run's end and publishes it
    assert Follower(log, topic, workflow="wgs", sleep=sleep).run(poll=1, until_done=True) == 0
    assert topic.events == ["workflow_failed:"] and sleeps == [1]


def test_idle_exit_is_measured_on_the_injected_clock(tmp_path: Path) -> None:
    log, topic = tmp_path / "run.jsonl", Topic()
    log.write_text(line("workflow_started"), encoding="utf-8")
    now = [0.0]

    def sleep(seconds: float) -> None:
        now[0] += seconds

    f = Follower(log, topic, workflow="wgs", from_start=True, sleep=sleep, clock=lambda: now[0])
    assert f.run(poll=2, idle_exit=5) == 0
    assert topic.events == ["workflow_started:"] and now[0] == 6
