"""Shared fixtures: sample events from events/, the signature vectors in tests/vectors/, loopback receivers
(and in_flight_counter() to see how many requests they hold at once), and require_tool() for tests that
run a command-line tool (node, openssl)."""

from __future__ import annotations

import json
import os
import re
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from oxolocal.receivers import Answer, Behaviour, Receiver, trust_local_ca
from oxolocal.stack import LOCAL_ALLOWLIST

# Every sender built in the tests trusts the receivers' throwaway CA the way a private-CA user
# would (SSL_CERT_FILE), with certificate and hostname checks on.
trust_local_ca()

ROOT = Path(__file__).resolve().parents[1]
EVENTS = ROOT / "events"
# The known-answer vectors, a byte-identical copy of ../shared/vectors/signatures.json kept in the repo
# so a fresh clone tests itself (tests/unit/test_vectors.py checks the copy when ../shared exists).
VECTORS = ROOT / "tests" / "vectors" / "signatures.json"
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
GOLDEN = ROOT / "tests" / "golden"
UPDATE_GOLDEN = os.environ.get("UPDATE_GOLDEN") == "1"


def assert_golden(fmt: str, name: str, body: bytes) -> None:
    """tests/golden/<fmt>/<name>.json holds a body, pretty-printed for review; the body sent must
    be exactly its compact UTF-8 form, and the receiver's shape check must pass. With
    UPDATE_GOLDEN=1 the file is rewritten and the test fails on purpose: review the diff and run
    again without it, so a run that rewrote the goldens is never green."""
    from oxolocal.shapes import problems_of

    path = GOLDEN / fmt / f"{name}.json"
    pretty = json.dumps(json.loads(body), indent=2, ensure_ascii=False) + "\n"
    if UPDATE_GOLDEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(pretty, encoding="utf-8")
        assert problems_of(fmt, body) == []
        pytest.fail("goldens rewritten: review the diff and run again without UPDATE_GOLDEN", pytrace=False)
    golden = path.read_text(encoding="utf-8")
    assert golden == pretty, f"{path} differs from what {fmt} renders now"
    assert json.dumps(json.loads(golden), ensure_ascii=False, separators=(",", ":")).encode() == body
    assert problems_of(fmt, body) == []


def sns_event(kind: str) -> dict[str, Any]:
    """A sample SNS Lambda event from events/ (the same files `sam local invoke -e` takes)."""
    data: dict[str, Any] = json.loads((EVENTS / f"sns-{kind}.json").read_text(encoding="utf-8"))
    return data


def message(kind: str) -> dict[str, Any]:
    data: dict[str, Any] = json.loads((EVENTS / "messages" / f"{kind}.json").read_text(encoding="utf-8"))
    return data


@pytest.fixture(scope="session")
def vectors() -> dict[str, Any]:
    if not VECTORS.exists():
        pytest.fail(f"signature vectors not found at {VECTORS}; they are part of the repository (git checkout tests/vectors)")
    data: dict[str, Any] = json.loads(VECTORS.read_text(encoding="utf-8"))
    return data


# `make test` gives each worker a whole file (--dist loadfile) in the order collected
# (--no-loadscope-reorder: xdist would otherwise order files by their number of tests, which puts
# the few-but-long end-to-end files last and leaves one worker running them alone). So the files
# that take longest start first, then end-to-end, integration and unit files: the short ones fill
# the gaps at the end. Seconds measured with CI=true on 2 cores; the order only affects wall time.
LONGEST_FIRST = (
    "tests/e2e/test_soak.py",  # ~65-90 s
    "tests/e2e/test_commands.py",  # ~75 s (the demo)
    "tests/e2e/test_live.py",  # ~60 s
    "tests/integration/test_digests.py",  # ~60 s
    "tests/e2e/test_docs_run.py",  # ~25 s
    "tests/e2e/test_storms.py",  # ~24 s
    "tests/e2e/test_secrets_canaries.py",  # ~21 s
    "tests/e2e/test_formats_delivered.py",  # ~17 s
    "tests/integration/test_live_clock.py",  # ~16 s
)
TIERS = ("tests/e2e/", "tests/integration/", "tests/unit/")


@pytest.hookimpl(tryfirst=True)  # before --stepwise/--lf choose from the list: they see it in its final order
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def rank(item: pytest.Item) -> tuple[int, int]:
        found = Path(item.path).resolve()
        if not found.is_relative_to(ROOT):
            return (2, 0)  # a test file named from outside the repository: last
        path = found.relative_to(ROOT).as_posix()
        if path in LONGEST_FIRST:
            return (0, LONGEST_FIRST.index(path))
        return (1, next((i for i, tier in enumerate(TIERS) if path.startswith(tier)), len(TIERS)))

    items.sort(key=rank)  # stable: within a file (and a tier) the collected order stays


INSTALL_HINTS = {
    "node": "install Node.js 18 or later (Debian/Ubuntu: apt-get install nodejs; macOS: brew install node)",
    "openssl": "install OpenSSL (Debian/Ubuntu: apt-get install openssl; macOS: brew install openssl)",
    "chromium": "install headless Chromium (Debian/Ubuntu: apt-get install chromium)",
}


def in_ci() -> bool:
    """CI runs with CI=true (as GitHub Actions, GitLab CI and .ci/run's callers set it)."""
    return os.environ.get("CI", "").strip().lower() == "true"


def require_tool(name: str) -> str:
    """The path of a command-line tool the calling test needs.

    When it is not on PATH, the test fails under CI=true (a CI machine must have it: .ci/run installs
    it) and is skipped elsewhere, with a message saying how to install it.
    """
    path = shutil.which(name)
    if path is not None:
        return path
    hint = INSTALL_HINTS.get(name, f"install {name} and put it on PATH")
    if in_ci():
        pytest.fail(f"{name} is not on PATH, and CI=true needs it: {hint}", pytrace=False)
    pytest.skip(f"{name} is not on PATH: {hint} (under CI=true this test fails instead)")


@pytest.fixture
def receivers() -> Iterator[Callable[..., Receiver]]:
    """Start loopback receivers on demand; all are stopped when the test ends."""
    started: list[Receiver] = []

    def start(behaviour: Behaviour | None = None, name: str = "hook", **options: Any) -> Receiver:
        receiver = Receiver(behaviour, name, **options).start()
        started.append(receiver)
        return receiver

    yield start
    for receiver in started:
        receiver.stop()


def in_flight_counter() -> tuple[Callable[[float], Behaviour], dict[str, int]]:
    """Receivers that hold each request for a while and count how many are held at once, across all
    of them: ``seen["most"]`` is how many requests were in flight together (concurrency, asserted by
    what the receivers saw rather than by the wall clock)."""
    lock = threading.Lock()
    seen = {"now": 0, "most": 0}

    def holding(seconds: float) -> Behaviour:
        def behave(n: int, r: object) -> Answer:
            with lock:
                seen["now"] += 1
                seen["most"] = max(seen["most"], seen["now"])
            time.sleep(seconds)
            with lock:
                seen["now"] -= 1
            return Answer(200)

        return behave

    return holding, seen


@pytest.fixture
def restore_environ() -> Iterator[None]:
    """Handlers read os.environ at import; put it back after the test."""
    saved = dict(os.environ)
    yield
    os.environ.clear()
    os.environ.update(saved)


def names_a_field(text: str, raw: str | bytes) -> bool:
    """Whether an EventError's message names the field it is about, as the parser quotes it (one of
    the event's fields, or a key found in ``raw``, alone or as the head of a path like
    details.runs[3]; an entry of a top-level array as [0]), or says the message as a whole is wrong
    ("message is not valid JSON", ...)."""
    from oxoflow_notify.errors import shown
    from oxoflow_notify.inbound.events import FIELDS, scrub

    if text.startswith("message "):
        return True
    source = raw.decode("utf-8", "replace") if isinstance(raw, bytes) else raw
    keys: set[str] = set(FIELDS)
    for quoted in re.findall(r'"((?:[^"\\]|\\.)*)"\s*:', source):  # every key in the text, at any depth
        try:
            keys.add(json.loads(f'"{quoted}"'))
        except ValueError:
            keys.add(quoted)
    quoted_keys = {shown(k) for k in keys} | {shown(scrub(k)) for k in keys}
    if source.lstrip().startswith("[") and re.search(r"field '\[\d+\]", text):
        return True
    return any(re.search("field '" + re.escape(q) + r"['.\[…]", text) for q in quoted_keys)


def local_guard(require_https: bool = True) -> Any:
    """The guard as the local stack configures it: loopback allowed, https required (the default)."""
    from oxoflow_notify.outbound.guard import TargetGuard, parse_allowlist

    return TargetGuard(parse_allowlist(LOCAL_ALLOWLIST), require_https=require_https)
