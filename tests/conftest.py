"""Shared fixtures: sample events from events/, the shared signature vectors, loopback receivers."""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oxolocal.receivers import Behaviour, Receiver

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
SHARED = Path(os.environ.get("OXOFLOW_SHARED_DIR", ROOT.parent / "shared"))
EVENT_KINDS = [
    "workflow-started",
    "workflow-completed",
    "workflow-failed",
    "workflow-cancelled",
    "rule-started",
    "rule-completed",
    "rule-failed",
    "rule-skipped",
]
RECEIVED_AT = datetime(2026, 5, 18, 12, 0, 1, tzinfo=UTC)


def sns_event(kind: str) -> dict[str, Any]:
    """A sample SNS Lambda event from events/ (the same files `sam local invoke -e` takes)."""
    data: dict[str, Any] = json.loads((EVENTS / f"sns-{kind}.json").read_text(encoding="utf-8"))
    return data


def message(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / "messages" / f"{kind}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    path = SHARED / "vectors" / "signatures.json"
    if not path.exists():
        pytest.fail(f"signature vectors not found at {path}; set OXOFLOW_SHARED_DIR to the shared/ folder")
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start loopback receivers on demand; all are stopped when the test ends."""
    started: list[Receiver] = []

    def start(behaviour: Behaviour | None = None, name: str = "hook") -> Receiver:
        receiver = Receiver(behaviour, name).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """Handlers read os.environ at import; put it back after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def local_guard() -> Any:
    """The guard as the local stack configures it: loopback allowed, plain http allowed."""
    from oxoflow_notify.guard import TargetGuard, parse_allowlist

    return TargetGuard(parse_allowlist("127.0.0.0/8"), require_https=False)
