"""`make up` / `make down` as a user meets them after a reboot, a crash or two terminals at once: the
stack's own lock says whether it is up, never a pid file that may now name another process."""

from __future__ import annotations

import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import ROOT

LOCAL = [sys.executable, str(ROOT / "scripts" / "oxolocal" / "local.py")]


def local(state: Path, *command: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*LOCAL, *command, "--state-dir", str(state), "--port", "0"], capture_output=True, text=True, timeout=120)


@pytest.fixture
def state(tmp_path: Path) -> Iterator[Path]:
    yield tmp_path
    local(tmp_path, "down")


def test_a_stale_pid_file_is_no_stack_and_down_never_signals_its_process(state: Path) -> None:
    # given the files a stack left behind (a reboot, a SIGKILL), the pid now another process's
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        (state / "stack.pid").write_text(f"{bystander.pid}\n")
        (state / "env.sh").write_text("export AWS_ENDPOINT_URL=http://127.0.0.1:9\n")
        (state / "stack.lock").write_text("")
        # when the user asks, then stops it
        assert local(state, "status").stdout.strip() == "down"
        stopped = local(state, "down")
        # then nothing was signalled: the other process lives, and env says there is no stack
        assert stopped.returncode == 0 and "no local stack is running" in stopped.stderr
        assert bystander.poll() is None
        assert local(state, "env").returncode == 2
    finally:
        bystander.kill()
        bystander.wait()


def test_two_ups_at_once_start_one_stack_and_print_the_same_environment(state: Path) -> None:
    # when two terminals run `make up` at the same moment
    results: list[subprocess.CompletedProcess[str]] = []
    threads = [threading.Thread(target=lambda: results.append(local(state, "up"))) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # then both succeeded with one and the same stack
    assert [r.returncode for r in results] == [0, 0], [r.stderr for r in results]
    endpoints = {line for r in results for line in r.stdout.splitlines() if line.startswith("export AWS_ENDPOINT_URL=")}
    assert len(endpoints) == 1
    assert sum("already up" in r.stderr for r in results) == 1
    # and one `down` stops it
    assert local(state, "down").returncode == 0 and local(state, "status").stdout.strip() == "down"


def test_a_killed_stack_is_down_and_up_starts_a_fresh_one(state: Path) -> None:
    # given a stack whose process was killed outright (no cleanup ran)
    assert local(state, "up").returncode == 0
    pid = int((state / "stack.pid").read_text())
    subprocess.run(["kill", "-9", str(pid)], check=True)
    subprocess.run(["sh", "-c", f"while kill -0 {pid} 2>/dev/null && ! grep -q Z /proc/{pid}/stat; do sleep 0.05; done"], timeout=30)
    # when the user looks and starts it again
    assert local(state, "status").stdout.strip() == "down"
    again = local(state, "up")
    # then a new stack is up, with its own environment
    assert again.returncode == 0 and "already up" not in again.stderr and int((state / "stack.pid").read_text()) != pid
    assert (state / "ca" / "local-ca.key").stat().st_mode & 0o077 == 0  # the CA's key is the user's alone
