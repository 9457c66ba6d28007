"""`scripts/bench.py --only NAME` runs one measurement of `make bench` (docs/performance.md, Reproduce),
and leaves the full run's bench-results.json alone. The `cpu` measurement needs no AWS, receiver
or socket, and takes about a second."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
BENCH = ROOT / "scripts" / "bench.py"
RESULTS = ROOT / "bench-results.json"


def bench(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, str(BENCH), *args], capture_output=True, text=True, timeout=120, check=False)


def test_only_runs_the_measurement_named_and_writes_no_results() -> None:
    # given the full run's results as they are
    before = RESULTS.read_bytes() if RESULTS.exists() else None
    # when one measurement is asked for
    done = bench("--only", "cpu")
    # then only its rows are printed, it says nothing was written, and nothing was
    figures = [line.split()[0:2] for line in done.stdout.splitlines() if line.startswith("  ") and "figure" not in line]
    assert done.returncode == 0, done.stdout + done.stderr
    assert figures == [["CPU:", "json"], ["CPU:", "slack"]], done.stdout
    assert "2 of 2 targets met" in done.stdout and "results in (not written)" in done.stdout
    assert (RESULTS.read_bytes() if RESULTS.exists() else None) == before


def test_an_unknown_measurement_is_named_with_the_choices_and_exits_2() -> None:
    # when a measurement that does not exist is asked for
    done = bench("--only", "thruput")
    # then it says which, lists the names it knows, and runs nothing (no traceback)
    assert done.returncode == 2
    assert "no measurement named thruput; choose from" in done.stdout and "throughput" in done.stdout
    assert "Traceback" not in done.stdout + done.stderr and "figure" not in done.stdout
