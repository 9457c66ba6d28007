#!/usr/bin/env python3
"""Fault soak: many events x 3 webhooks through moto server, receivers failing on purpose, and
crashes injected into handler runs. Proves: every (event, webhook) pair was received with a valid
signature or sits in the dead-letter queue with a reason; none lost. Crashes land in two windows:
after a POST but before the ledger recorded it (no sender can close this one: the re-run posts
again) and after the ledger recorded the fan-out (the re-run must post nothing). Duplicates at the
receivers (the same delivery id answered 2xx twice) and re-posts the ledger stopped are reported.

Faults are injected through wrappers installed at the functions' seams (the notifiers' sender,
ledger and retry queue), never by patching methods: a run goes provision, inject, publish and
dispatch, drain (the local stack's own ``drain_retries``), account.

Two harder runs (`make soak` runs all three):

- ``--dynamodb-faults 0.08,0.04``: that share of the functions' DynamoDB calls is throttled, and
  that share times out (half before DynamoDB applied the call, half after). Every user of the
  table is in it: the ledger, the hand-off log, digest windows (the second webhook digests each
  run's Rule* events) and rate-limit slots (the third has a ``rate_limit``). A digest's events
  count as delivered only if a digest the receiver accepted lists them. Two more causes of a repeat
  are known, and counted: a 2xx whose ledger record DynamoDB failed, and a failed attempt whose
  hand-off mark it failed, each posted again by a later run.
- ``--big``: events of 262,000 bytes, on queues capped at SQS's 262,144: the retry messages and
  dead letters that carry them must still be kept.

    python scripts/soak.py --events 5000                               # `make soak`, with:
    python scripts/soak.py --events 1000 --dynamodb-faults 0.08,0.04
    python scripts/soak.py --events 100 --big
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "layers" / "notify")]

import boto3  # noqa: E402
from botocore.exceptions import ClientError, ReadTimeoutError  # noqa: E402

from oxoflow_notify import observability  # noqa: E402
from oxoflow_notify.aws.letters import CLAIM_SCHEMA, LETTERS_PREFIX  # noqa: E402
from oxoflow_notify.inbound.events import RULE_EVENTS, parse_event, parse_timestamp  # noqa: E402
from oxoflow_notify.outbound.delivery import Outcome, Prepared, delivery_id_for  # noqa: E402
from oxoflow_notify.outbound.failures import Failure  # noqa: E402
from oxoflow_notify.pipeline import answers  # noqa: E402
from oxolocal.receivers import Answer, Received, Receiver  # noqa: E402
from oxolocal.stack import Stack, moto_server, sns_event, use_local_aws  # noqa: E402

# Each simulated Lambda run times out after this many seconds: a crashed run's ledger claim
# expires that soon (in AWS, after the function's timeout).
CONTEXT_SECONDS = 3.0
CONFIG_KEY = "workflows/soak.oxoflow"
HOOKS = 3
SQS_LIMIT = 262_144  # bytes: SQS's MaximumMessageSize, which the --big run sets on both queues
BIG_EVENT = 262_000  # bytes of each event's message in the --big run: just under SNS's limit, as the 262,017
DIGEST_HOOK, PACED_HOOK = 1, 2  # with --dynamodb-faults: hook1 digests each run's Rule* events, hook2 is rate-limited


class InjectedCrash(BaseException):
    """The function dies here, as a process does: no handler of ours can catch it (it is not an
    Exception), and Powertools leaves the ledger's claim in place for it to expire."""


CRASH, LATE, OTHER = "crash between answer and record", "2xx after the timeout", "other"
UNRECORDED = "a 2xx DynamoDB would not let the ledger record"
UNMARKED = "a failed attempt DynamoDB would not let the hand-off log mark"

KINDS = ["RuleStarted", "RuleCompleted", "RuleFailed", "RuleSkipped", "WorkflowStarted", "WorkflowCompleted", "WorkflowFailed"]


class Faulty:
    """Answers 200, or (with probability `rate`) one of the faults real receivers produce,
    including a 200 that comes after the client stopped waiting ("late")."""

    def __init__(self, secret: str, rate: float, seed: int, stall: float) -> None:
        self.secret = secret.encode()
        self.rate = rate
        self.rng = random.Random(seed)
        self.stall = stall
        self.lock = threading.Lock()

    def __call__(self, n: int, r: Received) -> Answer:
        with self.lock:
            roll, kind = self.rng.random(), self.rng.choice(["500", "503", "429", "stall", "reset", "late"])
        if roll < self.rate:
            if kind == "429":
                return Answer(429, b"slow down", {"Retry-After": "0"})
            if kind == "stall":
                return Answer(action="stall", stall_seconds=self.stall)
            if kind == "late":
                return Answer(200, delay=self.stall)
            if kind == "reset":
                return Answer(action="reset")
            return Answer(int(kind), b"try later")
        expected = "sha256=" + hmac.new(self.secret, r.body, hashlib.sha256).hexdigest()
        return Answer(200) if hmac.compare_digest(expected, r.header("X-Hub-Signature-256") or "") else Answer(401, b"bad signature")


# -- the wrappers at the seams ---------------------------------------------------------------


Attempt = tuple[str, str]  # (delivery id, attempt number) as the receivers see them in the headers


def attempt_of(prepared: Prepared) -> Attempt:
    return prepared.delivery_id, str(prepared.attempt)


@dataclass
class Tally:
    """What the wrappers saw. They run on the senders' delivery threads, hence the lock."""

    lock: threading.Lock = field(default_factory=threading.Lock)
    crashes: int = 0
    crashes_before_record: int = 0
    reposts_stopped: int = 0  # the ledger answered "already delivered": a re-post it stopped
    queue_sends: int = 0  # retry-queue sends (retries, holds and long-wait hops)
    crashed_attempts: set[Attempt] = field(default_factory=set)  # posted, then crashed before its record
    # The outcomes our side saw of each POST, in order: one attempt can be posted twice (a digest's
    # attempt 1 by each of its carriers, a re-run), and a late 2xx hides behind a later one's 2xx.
    seen_by_us: dict[Attempt, list[Outcome]] = field(default_factory=dict)
    unrecorded: set[str] = field(default_factory=set)  # deliveries whose 2xx the ledger could not record
    ledger_trail: dict[str, list[str]] = field(default_factory=dict)  # what the ledger answered, by delivery (for a failing soak)
    unmarked: set[str] = field(default_factory=set)  # deliveries whose hand-off mark could not be read or written
    dynamodb_faults: Counter[str] = field(default_factory=Counter)  # injected, by kind
    dynamodb_users: Counter[str] = field(default_factory=Counter)  # injected, by the user of the table it failed
    failed_runs: Counter[str] = field(default_factory=Counter)  # handler runs that raised (Lambda runs them again), by error
    refused_letters: int = 0  # queue sends SQS refused (a message over its size limit)
    kept_refused: int = 0  # on-failure records SQS refused: what they kept is lost


class RecordingSender:
    """A notifier's HttpSender as it is, noting the outcome our side saw of every POST."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    def budget(self, webhook: Any) -> float:
        budget: float = self.inner.budget(webhook)
        return budget

    def send(self, prepared: Prepared, budget: float | None = None) -> Outcome:
        outcome: Outcome = self.inner.send(prepared, budget)
        with self.tally.lock:
            self.tally.seen_by_us.setdefault(attempt_of(prepared), []).append(outcome)
        return outcome

    def send_all(self, batch: Sequence[Prepared], send: Callable[[Prepared], Outcome] | None = None) -> list[Outcome]:
        outcomes: list[Outcome] = self.inner.send_all(batch, send or self.send)  # as HttpSender: its own send by default
        return outcomes


class CrashingSender(RecordingSender):
    """The dispatcher's sender, crashing its run on purpose (with probability `rate`) in two windows.

    After ``send``, one POST inside the ledger's claim: the window no sender can close (the
    receiver got it, the record was not saved). After ``send_all``, which returns once the ledger
    recorded every answer: a crash there must not cause a second POST. A crash kills the whole
    process, its other threads too: once one is injected, every POST still in flight in that run
    dies after its POST (nothing it would record or queue happens), until ``bury``."""

    def __init__(self, inner: Any, tally: Tally, rate: float, rng: random.Random) -> None:
        super().__init__(inner, tally)
        self.rate = rate
        self.rng = rng
        self.dead = threading.Event()

    def send(self, prepared: Prepared, budget: float | None = None) -> Outcome:
        outcome = super().send(prepared, budget)
        self._maybe_crash("before_record", attempt_of(prepared))
        return outcome

    def send_all(self, batch: Sequence[Prepared], send: Callable[[Prepared], Outcome] | None = None) -> list[Outcome]:
        outcomes = super().send_all(batch, send)
        self._maybe_crash("after_record", None)
        return outcomes

    def _maybe_crash(self, window: str, attempt: Attempt | None) -> None:
        tally = self.tally
        if self.dead.is_set():  # posted, then its process died: the same window as an injected crash
            if attempt is not None:
                with tally.lock:
                    tally.crashed_attempts.add(attempt)
            raise InjectedCrash("died with its process")
        with tally.lock:
            crash = self.rng.random() < self.rate
            tally.crashes += crash
            tally.crashes_before_record += crash and window == "before_record"
            if crash and attempt is not None:
                tally.crashed_attempts.add(attempt)
        if crash:
            self.dead.set()
            raise InjectedCrash(window)

    def bury(self) -> None:
        """After a crash: let the dead run's threads finish dying, then start afresh (a new process)."""
        executor = self.inner._executor
        if executor is not None:
            executor.shutdown(wait=True, cancel_futures=True)
            self.inner._executor = None
        self.dead.clear()


class CountingLedger:
    """A notifier's ledger, counting the re-posts it stopped, and noting each 2xx it answered
    with although DynamoDB failed its record (``DynamoFaults`` says so on this thread)."""

    def __init__(self, inner: Any, tally: Tally, faults: DynamoFaults | None = None) -> None:
        self.inner = inner
        self.tally = tally
        self.faults = faults

    def register(self, context: Any) -> None:
        self.inner.register(context)

    def once(self, prepared: Prepared, send: Callable[[Prepared], Outcome], delivered: Callable[[Outcome], bool]) -> Outcome:
        if self.faults is not None:
            self.faults.local.record_failed = False
        outcome: Outcome = self.inner.once(prepared, send, delivered)
        unrecorded = self.faults is not None and self.faults.local.record_failed and delivered(outcome)
        with self.tally.lock:
            self.tally.ledger_trail.setdefault(prepared.delivery_id, []).append(
                f"{time.time():.3f} {threading.current_thread().name} attempt {prepared.attempt}: {outcome.status} {outcome.error}"
                + (" (record failed)" if unrecorded else "")
            )
            self.tally.reposts_stopped += outcome.error == Failure.ALREADY_DELIVERED
            if unrecorded:
                self.tally.unrecorded.add(prepared.delivery_id)
        return outcome


class CountingQueue:
    """A notifier's queue (a MessageQueue), counting its sends and the ones SQS refused."""

    def __init__(self, inner: Any, tally: Tally, count: bool = True) -> None:
        self.inner = inner
        self.tally = tally
        self.count = count

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        with self.tally.lock:
            self.tally.queue_sends += self.count
        try:
            self.inner.send(message, delay_seconds=delay_seconds)
        except ClientError as exc:
            with self.tally.lock:
                self.tally.refused_letters += 1
                first = self.tally.refused_letters == 1
            if first:  # the why, once: SQS's own words
                print(f"  a letter refused ({len(json.dumps(message)):,} bytes): {exc}", file=sys.stderr)
            raise


LEDGER_KEY, HANDOFF_KEY = "oxoflow-delivery#", "oxoflow-attempt#"  # the ledger's and the hand-off log's item ids
# The users of the ledger's table, by the prefix of their items' ids (docs/operations.md lists them).
USERS = {"oxoflow-delivery": "ledger", "oxoflow-attempt": "hand-off log", "oxoflow-digest": "digest windows",
         "oxoflow-digested": "digest windows", "oxoflow-pace": "rate-limit slots"}  # fmt: skip


class DynamoFaults:
    """Fails the functions' DynamoDB calls on purpose: a share throttled (never applied), a share
    timed out (half before DynamoDB applied the call, half after: the caller cannot tell which).

    Registered on the boto3 session the functions' clients are built from, before they are built
    (the harness's own client was built earlier and is left alone). Notes what a failure may lead
    to: the ledger's COMPLETED record of a 2xx not written (on the calling thread, for
    ``CountingLedger``), and hand-off marks not read or written (by delivery id)."""

    def __init__(self, throttling: float, timeouts: float, seed: int, tally: Tally) -> None:
        self.throttling, self.timeouts = throttling, timeouts
        self.rng = random.Random(seed)
        self.tally = tally
        self.local = threading.local()

    def install(self, ctx: contextlib.ExitStack, events: Any) -> None:
        for name, handler in (("before-parameter-build.dynamodb", self.before), ("after-call.dynamodb", self.after)):
            events.register(name, handler)
            ctx.callback(events.unregister, name, handler)

    def before(self, params: dict[str, Any], model: Any, context: dict[str, Any], **_: Any) -> None:
        with self.tally.lock:
            roll, after = self.rng.random(), self.rng.random() < 0.5
        if roll >= self.throttling + self.timeouts:
            return
        throttled = roll < self.throttling
        kind = "throttled" if throttled else "timed out after it was applied" if after else "timed out before it was applied"
        with self.tally.lock:
            self.tally.dynamodb_faults[kind] += 1
        self._note(model.name, params, applied=not throttled and after)
        if not throttled and after:
            context["soak_timeout"] = True  # raised once DynamoDB has answered
            return
        if throttled:
            error = {"Code": "ThrottlingException", "Message": "Rate of requests exceeds the allowed throughput."}
            raise ClientError({"Error": error, "ResponseMetadata": {"HTTPStatusCode": 400}}, model.name)
        raise ReadTimeoutError(endpoint_url="dynamodb")

    def after(self, context: dict[str, Any], **_: Any) -> None:
        if context.pop("soak_timeout", False):
            raise ReadTimeoutError(endpoint_url="dynamodb")

    def _note(self, operation: str, params: dict[str, Any], applied: bool) -> None:
        ids = [str(k.get("id", {}).get("S", "")) for table in params.get("RequestItems", {}).values() for k in table.get("Keys", [])]
        ids += [str(params.get(where, {}).get("id", {}).get("S", "")) for where in ("Key", "Item")]
        ids += [str(item.get(where, {}).get("id", {}).get("S", "")) for one in params.get("TransactItems", [])
                for item in one.values() for where in ("Key", "Item")]  # fmt: skip
        with self.tally.lock:
            self.tally.dynamodb_users.update({USERS.get(i.split("#", 1)[0], "other") for i in ids if i})
        status = params.get("ExpressionAttributeValues", {}).get(":status", {}).get("S")
        if operation == "UpdateItem" and status == "COMPLETED" and not applied and any(i.startswith(LEDGER_KEY) for i in ids):
            self.local.record_failed = True
        if operation == "BatchGetItem" or not applied:
            marks = {i[len(HANDOFF_KEY) :].rsplit("#", 1)[0] for i in ids if i.startswith(HANDOFF_KEY)}
            with self.tally.lock:
                self.tally.unmarked |= marks


# -- the run, step by step ---------------------------------------------------------------------


@dataclass
class Result:
    events: int
    pairs: int
    delivered: int
    dead_lettered: int
    lost: int
    repeats: dict[str, int]  # a delivery id a receiver got again after a 2xx, or an attempt number it got twice, by cause
    queue_sends: int  # retry-queue sends (retries, holds and long-wait hops)
    bad_signatures: int
    faults_injected: int
    crashes_injected: int
    crashes_before_record: int
    reposts_stopped: int
    seconds: float
    reasons: dict[str, int] = field(default_factory=dict)
    dynamodb_faults: dict[str, int] = field(default_factory=dict)  # the functions' DynamoDB calls failed on purpose, by kind
    dynamodb_users: dict[str, int] = field(default_factory=dict)  # ... by the user of the table they failed
    failed_runs: dict[str, int] = field(default_factory=dict)  # handler runs that raised (Lambda ran them again), by error
    digests: int = 0  # digests the receivers accepted (distinct windows)
    digested: int = 0  # events counted in them
    double_counted: int = 0  # events counted in two digests (must be 0)
    refused_letters: int = 0  # retry messages and dead letters SQS refused (over its size limit)
    kept_refused: int = 0  # on-failure records SQS refused
    kept_in_s3: int = 0  # letter bodies too big for their queue, kept in S3 (the claim-check)

    @property
    def passed(self) -> bool:
        """Nothing lost, every signature valid, every repeat of a known cause, no event counted twice."""
        return (
            self.lost == 0
            and self.bad_signatures == 0
            and self.delivered + self.dead_lettered == self.pairs
            and self.repeats.get(OTHER, 0) == 0
            and self.double_counted == 0
        )

    def table(self) -> str:
        rows = [
            ("events published", self.events),
            ("(event, webhook) pairs", self.pairs),
            ("delivered, signature verified", self.delivered),
            ("  of them counted in a digest", self.digested),
            ("dead-lettered with a reason", self.dead_lettered),
            ("lost", self.lost),
            ("repeats seen by receivers", sum(self.repeats.values())),
            ("  after a crash between answer and record", self.repeats.get(CRASH, 0)),
            ("  after a 2xx that came after the timeout", self.repeats.get(LATE, 0)),
            ("  after a 2xx the ledger could not record", self.repeats.get(UNRECORDED, 0)),
            ("  of a failed attempt left unmarked", self.repeats.get(UNMARKED, 0)),
            ("  any other cause (must be 0)", self.repeats.get(OTHER, 0)),
            ("repeats per 10,000 deliveries", round(10_000 * sum(self.repeats.values()) / max(self.pairs, 1), 1)),
            ("retry-queue sends per delivery", round(self.queue_sends / max(self.pairs, 1), 2)),
            ("receiver answers that were injected faults", self.faults_injected),
            ("handler runs crashed on purpose", self.crashes_injected),
            ("  of them after a POST, before its record", self.crashes_before_record),
            ("DynamoDB calls failed on purpose", sum(self.dynamodb_faults.values())),
            ("handler runs failed by an AWS fault", sum(self.failed_runs.values())),
            ("re-posts stopped by the delivery ledger", self.reposts_stopped),
            ("digests accepted by the receiver", self.digests),
            ("events counted in two digests (must be 0)", self.double_counted),
            ("letters SQS refused as too large", self.refused_letters),
            ("on-failure records SQS refused", self.kept_refused),
            ("letter bodies kept in S3 (too big to queue)", self.kept_in_s3),
            ("bad signatures seen by receivers", self.bad_signatures),
            ("seconds", round(self.seconds, 1)),
        ]
        lines = [f"  {name:44} {value:>10}" for name, value in rows]
        lines += [f"  DynamoDB calls {kind}: {n}" for kind, n in sorted(self.dynamodb_faults.items())]
        lines += [f"  DynamoDB calls failed for the {user}: {n}" for user, n in sorted(self.dynamodb_users.items())]
        lines += [f"  handler runs failed by {error}: {n}" for error, n in sorted(self.failed_runs.items())]
        lines += [f"  dead letters: {code} x {n}" for code, n in sorted(self.reasons.items())]
        return "\n".join(lines)


@dataclass(frozen=True)
class Mode:
    """What a run adds to the receivers' faults and the crashes."""

    dynamodb_faults: tuple[float, float] | None = None  # shares of the functions' DynamoDB calls throttled, timed out
    big: bool = False  # events of BIG_EVENT bytes, on queues capped at SQS_LIMIT

    @property
    def digest_hook(self) -> int | None:
        return DIGEST_HOOK if self.dynamodb_faults else None


def run(
    events: int = 500,
    fault_rate: float = 0.3,
    crash_rate: float = 0.03,
    seed: int = 7,
    dynamodb_faults: tuple[float, float] | None = None,
    big: bool = False,
) -> Result:
    """Provision, inject, publish and dispatch, drain, account."""
    started = time.time()
    mode = Mode(dynamodb_faults, big)
    with contextlib.ExitStack() as ctx:
        stack, receivers = provision(ctx, fault_rate, seed, mode)
        tally = Tally()
        faults = None
        if mode.dynamodb_faults:
            faults = DynamoFaults(*mode.dynamodb_faults, seed, tally)
            assert boto3.DEFAULT_SESSION is not None  # use_local_aws set it up; the functions build their clients from it
            faults.install(ctx, boto3.DEFAULT_SESSION.events)
        # The functions' log lines would bury the table (the accounting is the soak's output).
        ctx.callback(observability.logger.setLevel, observability.logger.log_level)
        observability.logger.setLevel("CRITICAL")
        # A store's hiccup holds a delivery for about 30 s; compressed here like the retry schedule.
        ctx.callback(setattr, answers, "SECRET_HOLD_SECONDS", answers.SECRET_HOLD_SECONDS)
        answers.SECRET_HOLD_SECONDS = 1.0
        sender = inject(stack, tally, crash_rate, random.Random(seed), faults)
        published = publish_and_dispatch(stack, sender, tally, events, started, mode)
        # The retry function as SQS drives it, until nothing is left to retry (the bound only
        # stops a hung run: 500 events drain in well under a minute). A run that raised failed
        # its whole batch, as one that crashed: SQS delivers it again.
        stack.drain_retries(timeout_seconds=CONTEXT_SECONDS, on_crash=(InjectedCrash, Exception), until_empty=max(600.0, 0.2 * events))
        letters = [claimed(stack, letter) for letter in stack.drain(stack.dead_letter_queue_url)]
        result = account(published, receivers, letters, tally, time.time() - started, mode.digest_hook)
        result.kept_in_s3 = stack.s3.list_objects_v2(Bucket=stack.bucket, Prefix=LETTERS_PREFIX).get("KeyCount", 0)
        return result


def claimed(stack: Stack, letter: dict[str, Any]) -> dict[str, Any]:
    """A dead letter as replay reads it: one too big for the queue is a pointer to its body in S3
    (aws.letters), which must be there; one that cannot be read keeps nothing (counted lost)."""
    if letter.get("schema") != CLAIM_SCHEMA:
        return letter
    try:
        body = stack.s3.get_object(Bucket=letter["s3"]["bucket"], Key=letter["s3"]["key"])["Body"].read()
        kept: dict[str, Any] = json.loads(body)
    except (ClientError, KeyError, ValueError) as exc:
        print(f"  a dead letter's body is not where its pointer says: {exc}", file=sys.stderr)
        return {"reason_code": "unreadable claim-check pointer"}
    return kept


def provision(ctx: contextlib.ExitStack, fault_rate: float, seed: int, mode: Mode) -> tuple[Stack, list[Receiver]]:
    """A moto server with the template's resources, and three receivers faulty at `fault_rate`,
    configured as the webhooks of the workflow "soak"; both functions' handlers imported."""
    use_local_aws(ctx.enter_context(moto_server()))
    stack = Stack(
        name_prefix=f"soak-{seed}",
        # Functions time out after CONTEXT_SECONDS here, so a crashed run's ledger claim expires
        # that soon and a delivery held behind it is looked at again after CLAIM_WAIT_SECONDS.
        overrides={"RETRY_SCHEDULE": "0,0,0,0,0", "READ_TIMEOUT_SECONDS": "0.15", "CONNECT_TIMEOUT_SECONDS": "1",
                   "POWERTOOLS_LOG_LEVEL": "ERROR", "INVOCATION_RESERVE_SECONDS": "0.5",
                   "CLAIM_WAIT_SECONDS": str(CONTEXT_SECONDS)},
    ).provision()  # fmt: skip
    if mode.big:  # SQS's limit, whatever the template or the fake's default says
        for url in (stack.retry_queue_url, stack.dead_letter_queue_url):
            stack.sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": str(SQS_LIMIT)})
    secrets = [f"soak-secret-{i}" for i in range(HOOKS)]
    faulty = [Faulty(s, fault_rate, seed + i, stall=0.3) for i, s in enumerate(secrets)]
    receivers = [ctx.enter_context(Receiver(f, f"soak{i}")) for i, f in enumerate(faulty)]
    stack.put_config("soak", "".join(webhook_entry(i, r.url, s, mode) for i, (r, s) in enumerate(zip(receivers, secrets, strict=True))))
    stack.handler("DispatchFunction")
    stack.handler("RetryFunction")
    return stack, receivers


def webhook_entry(i: int, url: str, secret: str, mode: Mode) -> str:
    """One webhook of the soak's config; with DynamoDB faults, one digests and one is rate-limited,
    so windows and slots are in the run."""
    extra = ""
    if mode.dynamodb_faults and i == DIGEST_HOOK:
        extra = 'digest = "2s"\n'
    elif mode.dynamodb_faults and i == PACED_HOOK:
        extra = "rate_limit = 20\n"
    return f'[[webhooks]]\nid = "hook{i}"\nurl = "{url}"\nsecret = "{secret}"\n{extra}'


def inject(stack: Stack, tally: Tally, crash_rate: float, rng: random.Random, faults: DynamoFaults | None) -> CrashingSender:
    """Install the wrappers: the dispatcher's sender crashes its runs, the retry function's notes
    what it saw; both functions' ledgers and queues count. Returns the crashing sender."""
    dispatcher = stack.modules["DispatchFunction"].notifier
    retrier = stack.modules["RetryFunction"].notifier
    sender = dispatcher.sender = CrashingSender(dispatcher.sender, tally, crash_rate, rng)
    retrier.sender = RecordingSender(retrier.sender, tally)
    for notifier in (dispatcher, retrier):
        notifier.ledger = CountingLedger(notifier.ledger, tally, faults)
        notifier.retry_queue = CountingQueue(notifier.retry_queue, tally)
        notifier.dead_letters = CountingQueue(notifier.dead_letters, tally, count=False)
    return sender


def publish_and_dispatch(
    stack: Stack, sender: CrashingSender, tally: Tally, events: int, started: float, mode: Mode
) -> dict[str, dict[str, Any]]:
    """Each event to the dispatcher as Lambda's async invocation runs it: the first run and up to two
    retries, each after a crash or an AWS fault. Returns the SNS envelopes published, by message id."""
    published: dict[str, dict[str, Any]] = {}
    for n in range(events):
        if n and n % 250 == 0:
            print(f"  {n} events dispatched, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        envelope = envelope_for(n, runs=mode.dynamodb_faults is not None, big=mode.big)
        published[envelope["MessageId"]] = envelope
        if not dispatch(stack, sender, tally, envelope):
            # Every run failed: Lambda's on-failure destination keeps the SNS event in the
            # dead-letter queue (the shape Lambda uses: requestContext + requestPayload).
            record = {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                      "requestPayload": sns_event(envelope)}  # fmt: skip
            try:
                stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(record))
            except ClientError as exc:  # too large for the queue: Lambda could not keep it either
                tally.kept_refused += 1
                print(f"  on-failure record of {envelope['MessageId']} refused: {exc}", file=sys.stderr)
    return published


def envelope_for(n: int, runs: bool = False, big: bool = False) -> dict[str, Any]:
    """The SNS envelope of the n-th event: the seven kinds in turn, rules among 17. ``runs``: each
    seven events are one run (four Rule* events, then WorkflowStarted and two endings), so every
    digest window holds few enough events to list them all. ``big``: a message of BIG_EVENT bytes
    (compact JSON, as a publisher near the limit sends it)."""
    kind = KINDS[n % len(KINDS)]
    message: dict[str, Any] = {"event": kind, "workflow": "soak", "details": {"n": n}}
    if kind.startswith("Rule"):
        message["rule"] = f"rule_{n % 17}"
    if runs:
        message["run_id"] = f"run-{n // len(KINDS)}"
    if big:
        message["details"]["pad"] = ""
        message["details"]["pad"] = "x" * (BIG_EVENT - len(json.dumps(message, separators=(",", ":"))))
    text = json.dumps(message, separators=(",", ":"))
    return {"MessageId": f"soak-{n:06d}", "Message": text, "Timestamp": "2026-05-18T12:00:00.000Z", "TopicArn": "t"}


def dispatch(stack: Stack, sender: CrashingSender, tally: Tally, envelope: dict[str, Any]) -> bool:
    """Run the dispatcher on one SNS event until a run succeeds, three runs at most (a run fails
    when it crashes, or raises an AWS fault for Lambda to retry). Whether one succeeded."""
    for _try in range(3):  # Lambda's async invocation: the first run and two retries
        try:
            stack.invoke("DispatchFunction", sns_event(envelope), timeout_seconds=CONTEXT_SECONDS)
            return True
        except InjectedCrash:
            sender.bury()
        except Exception as exc:  # noqa: BLE001 - the handler raised: Lambda runs the event again
            with tally.lock:
                tally.failed_runs[type(exc).__name__] += 1
    return False


# -- accounting ----------------------------------------------------------------------------------


@dataclass
class Seen:
    """What the receivers saw, against what our side saw."""

    delivered: Counter[str] = field(default_factory=Counter)  # delivery id -> 2xx answers
    repeats: Counter[str] = field(default_factory=Counter)  # by cause
    unexplained: list[str] = field(default_factory=list)  # deliveries repeated for no cause we know
    faults: int = 0
    bad_signatures: int = 0


@dataclass
class Digested:
    """What the digest receiver accepted: each event id, and the digests that counted it."""

    counted: dict[str, set[str]] = field(default_factory=dict)  # event id -> digest ids
    digests: int = 0
    events: int = 0  # the digests' totals
    left_out: int = 0  # events a digest counted without listing (cannot be traced: must be 0 here)


def account(
    published: dict[str, dict[str, Any]],
    receivers: list[Receiver],
    letters: list[dict[str, Any]],
    tally: Tally,
    seconds: float,
    digest_hook: int | None = None,
) -> Result:
    """Every (event, webhook) pair delivered, dead-lettered or lost; repeats by cause. A digested
    pair is delivered when a digest the receiver accepted lists its event, dead-lettered when a
    dead-lettered digest does."""
    seen = seen_by_receivers(receivers, tally)
    delivered = set(seen.delivered)
    dead = dead_lettered(letters, published)
    expected = {d for envelope in published.values() for d in delivery_ids(envelope)}
    digested = Digested()
    if digest_hook is not None:
        pair_of = digest_pairs(published, digest_hook)
        digested = digests_received(receivers[digest_hook])
        delivered |= {pair_of[e] for e in digested.counted if e in pair_of}
        dead |= {pair_of[e] for e in digests_dead_lettered(letters) if e in pair_of}
    accounted = {d for d in expected if d in delivered or d in dead}
    for delivery in [*seen.unexplained, *(expected - accounted)]:  # what a failing soak must show
        trail = [
            (x.header("X-OxoFlow-Attempt"), x.answered) for r in receivers for x in r.requests if x.header("X-OxoFlow-Delivery") == delivery
        ]
        print(f"unexplained: {delivery} attempts and answers {trail}", file=sys.stderr)
        for x in (x for r in receivers for x in r.requests if x.header("X-OxoFlow-Delivery") == delivery):
            print(f"  received at {x.at:.3f}: {x.header('X-OxoFlow-Event')} {x.body[:300]!r}", file=sys.stderr)
        for line in tally.ledger_trail.get(delivery, []):
            print(f"  ledger: {line}", file=sys.stderr)
        print(f"  in the hand-off log's failures: {delivery in tally.unmarked}", file=sys.stderr)
    return Result(
        events=len(published),
        pairs=len(expected),
        delivered=len(expected & delivered),
        dead_lettered=len((expected - delivered) & dead),
        lost=len(expected - accounted),
        repeats=dict(seen.repeats),
        queue_sends=tally.queue_sends,
        bad_signatures=seen.bad_signatures,
        faults_injected=seen.faults,
        crashes_injected=tally.crashes,
        crashes_before_record=tally.crashes_before_record,
        reposts_stopped=tally.reposts_stopped,
        seconds=seconds,
        reasons=dict(Counter(reason_of(letter) for letter in letters)),
        dynamodb_faults=dict(tally.dynamodb_faults),
        dynamodb_users=dict(tally.dynamodb_users),
        failed_runs=dict(tally.failed_runs),
        digests=digested.digests,
        digested=digested.events,
        double_counted=sum(len(ids) > 1 for ids in digested.counted.values()),
        refused_letters=tally.refused_letters,
        kept_refused=tally.kept_refused,
    )


def reason_of(letter: dict[str, Any]) -> str:
    if "requestPayload" in letter:
        return "lambda_on_failure"
    return str(letter.get("reason_code", "retry_redriven"))  # a bare retry or close message: SQS's redrive moved it


def seen_by_receivers(receivers: list[Receiver], tally: Tally) -> Seen:
    """Each receiver's requests in order: answers counted, and every repeat (a delivery id again
    after its 2xx, or an attempt number again) put down to the first cause that explains it."""
    seen = Seen()
    crashed = {d for d, _ in tally.crashed_attempts}
    for receiver in receivers:
        attempts: dict[str, set[str]] = {}
        late_2xx: set[str] = set()  # deliveries the receiver answered 2xx while our side saw no 2xx
        posts: Counter[Attempt] = Counter()  # how often the receiver got each attempt so far
        for r in receiver.requests:
            delivery, attempt = r.header("X-OxoFlow-Delivery") or "", r.header("X-OxoFlow-Attempt") or ""
            if attempt in attempts.get(delivery, set()) or seen.delivered[delivery]:
                # The first cause that made this delivery repeat explains what follows from it.
                cause = repeat_cause(delivery, bool(seen.delivered[delivery]), crashed, late_2xx, tally)
                seen.repeats[cause] += 1
                if cause == OTHER:
                    seen.unexplained.append(delivery)
            attempts.setdefault(delivery, set()).add(attempt)
            ours = ours_of(tally, (delivery, attempt), posts)
            if r.answered == 200 and ours is not None and ours.status != 200:
                late_2xx.add(delivery)
            if r.answered == 200:
                seen.delivered[delivery] += 1
            elif r.answered == 401:
                seen.bad_signatures += 1
            else:
                seen.faults += 1
    return seen


def ours_of(tally: Tally, attempt: Attempt, posts: Counter[Attempt]) -> Outcome | None:
    """What our side saw of the receiver's n-th copy of this attempt: our n-th outcome of it (the
    copies of one attempt are posted one after another, as the soak runs the functions)."""
    outcomes = tally.seen_by_us.get(attempt, [])
    posts[attempt] += 1
    return outcomes[min(posts[attempt], len(outcomes)) - 1] if outcomes else None


def repeat_cause(delivery: str, after_2xx: bool, crashed: set[str], late_2xx: set[str], tally: Tally) -> str:
    """Why a receiver saw this delivery again: after its 2xx, a crash before our record, a 2xx we
    never saw, or a record DynamoDB failed; before one, a crash or a hand-off mark DynamoDB failed."""
    if delivery in crashed:
        return CRASH
    if delivery in late_2xx:
        return LATE
    if after_2xx:
        return UNRECORDED if delivery in tally.unrecorded else OTHER
    return UNMARKED if delivery in tally.unmarked else OTHER


def delivery_ids(envelope: dict[str, Any]) -> set[str]:
    """The delivery ids of one published event, as the dispatcher derives them (id and content)."""
    event = event_of(envelope)
    return {delivery_id_for(event, CONFIG_KEY, f"hook{i}") for i in range(HOOKS)}


def event_of(envelope: dict[str, Any]) -> Any:
    return parse_event(envelope["Message"], message_id=envelope["MessageId"], received_at=parse_timestamp(envelope["Timestamp"]))


def digest_pairs(published: dict[str, dict[str, Any]], hook: int) -> dict[str, str]:
    """For each Rule* event, the id of its (event, digest webhook) pair, by event id."""
    events = [event_of(envelope) for envelope in published.values()]
    return {e.id: delivery_id_for(e, CONFIG_KEY, f"hook{hook}") for e in events if e.event in RULE_EVENTS}


def digests_received(receiver: Receiver) -> Digested:
    """The digests a receiver answered 2xx, once per window, and the events each lists."""
    digested = Digested()
    windows: set[str] = set()
    for r in receiver.requests:
        body = json.loads(r.body) if r.answered == 200 else {}
        if body.get("event") != "Digest":
            continue
        for listed in body["events"]:
            digested.counted.setdefault(str(listed["id"]), set()).add(str(body["id"]))
        if body["id"] not in windows:
            windows.add(body["id"])
            digested.digests += 1
            digested.events += int(body["total"])
            digested.left_out += int(body["left_out"])
    return digested


def digests_dead_lettered(letters: list[dict[str, Any]]) -> set[str]:
    """The event ids listed in the digests kept in the dead-letter queue."""
    payloads = [letter.get("event") for letter in letters]
    return {str(e["id"]) for p in payloads if isinstance(p, dict) and p.get("event") == "Digest" for e in p["events"]}


def dead_lettered(letters: list[dict[str, Any]], published: dict[str, dict[str, Any]]) -> set[str]:
    """The delivery ids in the dead-letter queue: the retry path's letters name theirs; the
    on-failure destination's records hold a whole SNS event, all of whose deliveries it keeps."""
    ids = {str(letter["delivery_id"]) for letter in letters if letter.get("delivery_id")}
    # a retry message the retry function kept whole after failing on its every receive names its delivery inside
    kept = [json.loads(letter["raw_message"]) for letter in letters if letter.get("reason_code") == "retry_faulted"]
    ids |= {str(k["delivery_id"]) for k in kept if isinstance(k, dict) and k.get("delivery_id")}
    kept_events = {letter["requestPayload"]["Records"][0]["Sns"]["MessageId"] for letter in letters if "requestPayload" in letter}
    return ids | {d for message_id in kept_events for d in delivery_ids(published[message_id])}


def dynamodb_rates(text: str) -> tuple[float, float]:
    """`--dynamodb-faults THROTTLING,TIMEOUTS`: two shares between 0 and 1."""
    try:
        throttling, timeouts = (float(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r}: give two shares, throttling and timeouts, e.g. 0.08,0.04") from None
    if min(throttling, timeouts) < 0 or throttling + timeouts >= 1:
        raise argparse.ArgumentTypeError(f"{text!r}: each share is 0 or more and together they are less than 1, e.g. 0.08,0.04")
    return throttling, timeouts


def main() -> int:
    parser = argparse.ArgumentParser(description="Fault soak of the whole pipeline on moto server and loopback receivers.")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--crash-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dynamodb-faults", type=dynamodb_rates, metavar="THROTTLING,TIMEOUTS",
                        help="these shares of the functions' DynamoDB calls throttled and timed out (e.g. 0.08,0.04)")  # fmt: skip
    parser.add_argument("--big", action="store_true", help=f"events of {BIG_EVENT:,} bytes, on queues capped at {SQS_LIMIT:,}")
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        result = run(args.events, args.fault_rate, args.crash_rate, args.seed, args.dynamodb_faults, args.big)
    print(result.table())
    print("\nsoak passed: nothing lost" if result.passed else "\nsoak FAILED")
    return 0 if result.passed else 1


if __name__ == "__main__":
    sys.exit(main())
