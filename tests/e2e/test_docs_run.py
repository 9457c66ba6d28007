"""The docs run: every shell block of the README, docs/local.md, docs/publishing.md and
docs/operations.md, as written, in a fresh copy of the checkout, against the local stack.

Blocks run in one simulated terminal per doc: each in its own bash (``set -eo pipefail``), the
variables it exported carried to the next block, as a user pasting them one after the other would
have them. The README's walk ("Try every command locally") is played first and checked step by
step by its effect: what the sample receiver got (signatures verified here, independently), what
is in the dead-letter queue, that replay delivered the same delivery ids, that `make down` stopped
the stack. Blocks marked `<!-- needs: aws -->` or `<!-- not run: ... -->` are the only ones not run.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import require_tool
from tests.docs_blocks import ROOT, Block, all_blocks, blocks

# Names of the local stack's environment a user's shell would not have before `make up`.
_FOREIGN = (
    "AWS_",
    "SSL_CERT_FILE",
    "OXOFLOW_",
    "CONFIG_",
    "RETRY_",
    "DEAD_LETTER_",
    "LEDGER_",
    "DELIVERY_",
    "ALARM_",
    "TARGET_",
    "REQUIRE_",
    "SECRETS_",
)
_LINKED = (".venv", ".venv-awscli", ".venv-sam", "scripts/examples/node_modules")
WALK = "## Try every command locally"
WAIT = 60.0  # seconds for an asynchronous effect (a dispatch, a retry) to show; each takes well under 5 s here


def fresh_copy(into: Path) -> Path:
    """The checkout as a fresh clone of it would be (tracked and untracked-but-not-ignored files),
    with the installed venvs and node_modules linked rather than installed again."""
    listed = subprocess.run(["git", "ls-files", "-co", "--exclude-standard", "-z"], cwd=ROOT, check=True, capture_output=True).stdout
    for name in filter(None, listed.decode().split("\0")):
        source = ROOT / name
        if source.is_file():
            target = into / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, target)
    for name in _LINKED:
        if (ROOT / name).exists():
            (into / name).parent.mkdir(parents=True, exist_ok=True)
            (into / name).symlink_to(ROOT / name)
    return into


@dataclass
class Terminal:
    """One user's shell: blocks run one after another in `cwd`, exported variables carried over."""

    cwd: Path
    env_file: Path
    transcript: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, cwd: Path) -> Terminal:
        base = {k: v for k, v in os.environ.items() if not k.startswith(_FOREIGN) and k not in ("PYTHONPATH", "VIRTUAL_ENV")}
        env_file = cwd / ".terminal-env"
        env_file.write_text("".join(f"export {k}={_quote(v)}\n" for k, v in base.items()))
        return cls(cwd, env_file)

    def run(self, text: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
        script = f'set -a; . "{self.env_file}"; set +a\ncd "{self.cwd}"\nset -eo pipefail\n{text}\nexport -p > "{self.env_file}"\n'
        done = subprocess.run(["bash", "-c", script], capture_output=True, text=True, timeout=timeout, stdin=subprocess.DEVNULL, env={})
        self.transcript.append(f"$ {text}\n{done.stdout}{done.stderr}(exit {done.returncode})")
        return done

    def env(self) -> dict[str, str]:
        done = subprocess.run(["bash", "-c", f'. "{self.env_file}"; env -0'], capture_output=True, check=True, env={})
        return dict(item.split("=", 1) for item in done.stdout.decode().split("\0") if "=" in item)


def _quote(value: str) -> str:
    return "'" + value.replace("'", "'\\''") + "'"


def ran_cleanly(block: Block, done: subprocess.CompletedProcess[str]) -> None:
    output = done.stdout + done.stderr
    assert "Traceback (most recent call last)" not in output, f"{block.name} ended in a traceback:\n{output[-3000:]}"
    assert done.returncode == 0, f"{block.name} exited {done.returncode}:\n{block.text}\n--- output ---\n{output[-3000:]}"


def section(doc: str, heading: str) -> list[Block]:
    """The blocks under one '## ' heading of a doc."""
    lines = (ROOT / doc).read_text(encoding="utf-8").splitlines()
    start = lines.index(heading) + 1
    end = next((i for i in range(start, len(lines)) if lines[i].startswith("## ")), len(lines))
    return [b for b in blocks(doc) if start < b.line <= end]


def eventually(check: Callable[[], Any], what: str) -> Any:
    """Poll an asynchronous effect (the local stack dispatches in the background) until it holds."""
    deadline = time.monotonic() + WAIT
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not within {WAIT:.0f} s: {what}")
        time.sleep(0.2)


def received(env: dict[str, str]) -> list[dict[str, Any]]:
    path = Path(env["OXOFLOW_LOCAL_RECEIVED"])
    if not path.is_file():
        return []
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def dead_letters(env: dict[str, str]) -> int:
    import boto3

    sqs = boto3.client("sqs", region_name=env["AWS_REGION"], endpoint_url=env["AWS_ENDPOINT_URL"],
                       aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    attributes = sqs.get_queue_attributes(QueueUrl=env["DEAD_LETTER_QUEUE_URL"], AttributeNames=["ApproximateNumberOfMessages"])
    return int(attributes["Attributes"]["ApproximateNumberOfMessages"])


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    for tool in ("node", "openssl", "jq", "curl"):
        require_tool(tool)
    if not (ROOT / ".venv-awscli" / "bin" / "aws").exists() or not (ROOT / "scripts/examples/node_modules").exists():
        pytest.fail("the docs run needs .venv-awscli and scripts/examples/node_modules: run it through `make test`")
    copy = fresh_copy(tmp_path_factory.mktemp("fresh-clone"))
    yield copy
    subprocess.run([str(ROOT / ".venv/bin/python"), "scripts/oxolocal/local.py", "down"], cwd=copy, capture_output=True, check=False)


def test_the_readme_walk_works_step_by_step_on_a_fresh_clone(checkout: Path) -> None:
    # given a fresh clone and the README's walk, block by block
    walk = section("README.md", WALK)
    assert [b.skip for b in walk] == [None] * len(walk) and len(walk) == 7, [b.name for b in walk]
    user = Terminal.open(checkout)

    # when the stack is started, it is up and its environment names every resource
    ran_cleanly(walk[0], user.run(walk[0].text))
    env = user.env()
    for name in ("OXOFLOW_NOTIFY_TOPIC_ARN", "OXOFLOW_NOTIFY_BUCKET", "DEAD_LETTER_QUEUE_URL", "AWS_ENDPOINT_URL", "AWS_REGION"):
        assert env.get(name), name
    again = user.run("make up >/dev/null")  # running it twice is safe: the same stack, the same environment
    ran_cleanly(walk[0], again)
    assert user.env()["AWS_ENDPOINT_URL"] == env["AWS_ENDPOINT_URL"]

    # when the config is validated and uploaded, it is where the Lambda reads it
    done = user.run(walk[1].text)
    ran_cleanly(walk[1], done)
    assert f"s3://{env['OXOFLOW_NOTIFY_BUCKET']}/workflows/variant-calling.oxoflow" in done.stdout

    # when one event is published four ways, the sample webhook gets four signed deliveries,
    # and the broken one four 404s
    ran_cleanly(walk[2], user.run(walk[2].text))
    eventually(lambda: len(received(env)) >= 8, "8 requests at the sample receiver")
    ok = [r for r in received(env) if r["path"] == "/hook/sample"]
    broken = [r for r in received(env) if r["path"] == "/broken/sample"]
    assert len(ok) == 4 and len(broken) == 4, [(r["path"], r["status"]) for r in received(env)]
    for request in ok:
        signature = "sha256=" + hmac.new(b"a-long-random-string", request["body"].encode(), hashlib.sha256).hexdigest()
        assert request["headers"]["X-Hub-Signature-256"] == signature
        assert json.loads(request["body"])["event"] == "RuleFailed"
    assert {r["status"] for r in broken} == {404}
    eventually(lambda: dead_letters(env) == 4, "4 dead letters")

    # when the receiver's log is read, the command shows each request
    done = user.run(walk[3].text)
    ran_cleanly(walk[3], done)
    assert done.stdout.count('"status":404') == 4

    # when the broken URL is fixed and the letters replayed, the four arrive under their own delivery ids
    done = user.run(walk[4].text)
    ran_cleanly(walk[4], done)
    assert "4 delivered" in done.stdout, done.stdout
    replayed = [r for r in received(env) if r["path"] == "/hook/sample" and r["headers"].get("X-OxoFlow-Delivery") in
                {b["headers"]["X-OxoFlow-Delivery"] for b in broken}]  # fmt: skip
    assert len(replayed) == 4 and all(r["status"] == 200 for r in replayed)
    assert dead_letters(env) == 0

    # when oxo-flow's own signed POST reaches the ingest URL, the event is published and delivered
    done = user.run(walk[5].text)
    ran_cleanly(walk[5], done)
    assert json.loads(done.stdout)["event"] == "WorkflowCompleted"
    eventually(lambda: any(r["headers"].get("X-OxoFlow-Event") == "WorkflowCompleted" for r in received(env)), "the ingested event")

    # when the stack is stopped, nothing of it answers
    ran_cleanly(walk[6], user.run(walk[6].text))
    gone = user.run("make -s env")
    assert gone.returncode == 2 and "no local stack is running" in gone.stderr


def other_blocks() -> list[Block]:
    walk = {b.name for b in section("README.md", WALK)}
    return [b for b in all_blocks() if b.name not in walk and not b.skip]  # the marked ones are counted below


@pytest.fixture(scope="module")
def terminal(checkout: Path) -> Iterator[Terminal]:
    """A shell with the local stack up and its environment exported, and the files the docs'
    examples name ('my.oxoflow', 'body.json', a run's log, ...) where they say."""
    user = Terminal.open(checkout)
    done = user.run('make -s up >/dev/null && eval "$(make -s env)" && export PATH="$PWD/.venv/bin:$PWD/.venv-awscli/bin:$PATH"')
    assert done.returncode == 0, done.stderr
    given(checkout, user.env())
    # the signature header a receiver got with body.json, and a dead letter to look at (a broken config)
    seeded = user.run(
        'export SIGNATURE="sha256=$(openssl dgst -sha256 -hmac a-long-random-string < body.json | sed "s/^.*= //")"\n'
        'printf \'[[webhooks]\\nurl = "https://example.org"\\nevents = ["RuleFailed"\' > broken.oxoflow\n'
        'aws s3 cp --quiet broken.oxoflow "s3://$OXOFLOW_NOTIFY_BUCKET/workflows/broken.oxoflow"\n'
        "oxoflow-notify publish --event WorkflowStarted --workflow broken >/dev/null\n"
        # and a delivery in the log of the workflow the delivery log's examples name (its webhook "sample")
        'aws s3 cp --quiet my.oxoflow "s3://$OXOFLOW_NOTIFY_BUCKET/workflows/variant-calling.oxoflow"\n'
        "oxoflow-notify publish --event RuleFailed --workflow variant-calling --rule align_reads >/dev/null\n"
    )
    assert seeded.returncode == 0, seeded.stderr
    eventually(lambda: dead_letters(user.env()) >= 1, "the broken config's dead letter")
    logged = "oxoflow-notify deliveries --workflow variant-calling --webhook sample --status delivered --json"
    eventually(lambda: user.run(logged).stdout.strip(), "a delivered delivery in the delivery log")
    yield user
    user.run("make -s down")


def given(cwd: Path, env: dict[str, str]) -> None:
    """What a reader of the docs has in hand when they run a block: their own files."""
    config = f'[[webhooks]]\nid = "sample"\nurl = "{env["OXOFLOW_LOCAL_RECEIVER_URL"]}"\nsecret = "a-long-random-string"\n'
    (cwd / "my.oxoflow").write_text(config)
    (cwd / "configs").mkdir(exist_ok=True)
    (cwd / "configs" / "wgs.oxoflow").write_text(config)
    (cwd / "configs" / "_default.oxoflow").write_text("")
    body = b'{"event":"RuleFailed","workflow":"wgs"}'
    (cwd / "body.json").write_bytes(body)
    (cwd / "secret").write_text("a-long-random-string\n")
    (cwd / "run").mkdir(exist_ok=True)
    (cwd / "run" / "execution.jsonl").write_text(
        '{"event": "workflow_started", "timestamp": "2026-05-18T12:00:00Z"}\n'
        '{"event": "rule_completed", "rule": "bwa_mem", "status": "failed", "timestamp": "2026-05-18T12:01:00Z"}\n'
        '{"event": "workflow_completed", "timestamp": "2026-05-18T12:02:00Z"}\n'
    )
    (cwd / "event.json").write_text((ROOT / "events" / "sns-rule-failed.json").read_text())
    (cwd / "env.json").write_text(json.dumps({"RetryFunction": {"RETRY_JITTER": "0"}}))


@pytest.mark.parametrize("block", other_blocks(), ids=lambda b: b.name)
def test_every_other_shell_block_runs_as_written(terminal: Terminal, block: Block) -> None:
    ran_cleanly(block, terminal.run(block.text))


def test_only_marked_blocks_are_left_out_and_most_blocks_run() -> None:
    every = all_blocks()
    skipped = [b for b in every if b.skip]
    assert all(b.skip and b.skip.strip() for b in skipped)
    assert len(every) - len(skipped) >= 15, f"only {len(every) - len(skipped)} of {len(every)} blocks run"
