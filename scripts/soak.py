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

    python scripts/soak.py --events 5000       # `make soak`
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

from oxoflow_notify.inbound.events import parse_event, parse_timestamp  # noqa: E402
from oxoflow_notify.outbound.delivery import Outcome, Prepared, delivery_id_for  # noqa: E402
from oxoflow_notify.pipeline.ledger import ALREADY_DELIVERED  # noqa: E402
from oxolocal.receivers import Answer, Received, Receiver  # noqa: E402
from oxolocal.stack import Stack, moto_server, sns_event, use_local_aws  # noqa: E402

# Each simulated Lambda run times out after this many seconds: a crashed run's ledger claim
# expires that soon (in AWS, after the function's timeout).
CONTEXT_SECONDS = 3.0
CONFIG_KEY = "workflows/soak.oxoflow"
HOOKS = 3


class InjectedCrash(BaseException):
    """The function dies here, as a process does: no handler of ours can catch it (it is not an
    Exception), and Powertools leaves the ledger's claim in place for it to expire."""


CRASH, LATE, OTHER = "crash between answer and record", "2xx after the timeout", "other"

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
    seen_by_us: dict[Attempt, Outcome] = field(default_factory=dict)  # the outcome our side saw of each POST


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
        self.tally.seen_by_us[attempt_of(prepared)] = outcome
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
    """A notifier's ledger, counting the re-posts it stopped."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    def register(self, context: Any) -> None:
        self.inner.register(context)

    def once(self, prepared: Prepared, send: Callable[[Prepared], Outcome], delivered: Callable[[Outcome], bool]) -> Outcome:
        outcome: Outcome = self.inner.once(prepared, send, delivered)
        with self.tally.lock:
            self.tally.reposts_stopped += outcome.error == ALREADY_DELIVERED
        return outcome


class CountingQueue:
    """A notifier's retry queue (a MessageQueue), counting its sends."""

    def __init__(self, inner: Any, tally: Tally) -> None:
        self.inner = inner
        self.tally = tally

    def send(self, message: dict[str, Any], delay_seconds: int = 0) -> None:
        with self.tally.lock:
            self.tally.queue_sends += 1
        self.inner.send(message, delay_seconds=delay_seconds)


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

    def table(self) -> str:
        rows = [
            ("events published", self.events),
            ("(event, webhook) pairs", self.pairs),
            ("delivered, signature verified", self.delivered),
            ("dead-lettered with a reason", self.dead_lettered),
            ("lost", self.lost),
            ("repeats seen by receivers", sum(self.repeats.values())),
            ("  after a crash between answer and record", self.repeats.get(CRASH, 0)),
            ("  after a 2xx that came after the timeout", self.repeats.get(LATE, 0)),
            ("  any other cause (must be 0)", self.repeats.get(OTHER, 0)),
            ("repeats per 10,000 deliveries", round(10_000 * sum(self.repeats.values()) / max(self.pairs, 1), 1)),
            ("retry-queue sends per delivery", round(self.queue_sends / max(self.pairs, 1), 2)),
            ("receiver answers that were injected faults", self.faults_injected),
            ("handler runs crashed on purpose", self.crashes_injected),
            ("  of them after a POST, before its record", self.crashes_before_record),
            ("re-posts stopped by the delivery ledger", self.reposts_stopped),
            ("bad signatures seen by receivers", self.bad_signatures),
            ("seconds", round(self.seconds, 1)),
        ]
        lines = [f"  {name:44} {value:>10}" for name, value in rows]
        lines += [f"  dead letters: {code} x {n}" for code, n in sorted(self.reasons.items())]
        return "\n".join(lines)


def run(events: int = 500, fault_rate: float = 0.3, crash_rate: float = 0.03, seed: int = 7) -> Result:
    """Provision, inject, publish and dispatch, drain, account."""
    started = time.time()
    with contextlib.ExitStack() as ctx:
        stack, receivers = provision(ctx, fault_rate, seed)
        tally = Tally()
        sender = inject(stack, tally, crash_rate, random.Random(seed))
        published = publish_and_dispatch(stack, sender, events, started)
        # The retry function as SQS drives it, until nothing is left to retry (the bound only
        # stops a hung run: 500 events drain in well under a minute).
        stack.drain_retries(timeout_seconds=CONTEXT_SECONDS, on_crash=(InjectedCrash,), until_empty=max(600.0, 0.2 * events))
        letters = stack.drain(stack.dead_letter_queue_url)
        return account(published, receivers, letters, tally, seconds=time.time() - started)


def provision(ctx: contextlib.ExitStack, fault_rate: float, seed: int) -> tuple[Stack, list[Receiver]]:
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
    secrets = [f"soak-secret-{i}" for i in range(HOOKS)]
    faulty = [Faulty(s, fault_rate, seed + i, stall=0.3) for i, s in enumerate(secrets)]
    receivers = [ctx.enter_context(Receiver(f, f"soak{i}")) for i, f in enumerate(faulty)]
    stack.put_config(
        "soak",
        "".join(
            f'[[webhooks]]\nid = "hook{i}"\nurl = "{r.url}"\nsecret = "{s}"\n'
            for i, (r, s) in enumerate(zip(receivers, secrets, strict=True))
        ),
    )
    stack.handler("DispatchFunction")
    stack.handler("RetryFunction")
    return stack, receivers


def inject(stack: Stack, tally: Tally, crash_rate: float, rng: random.Random) -> CrashingSender:
    """Install the wrappers: the dispatcher's sender crashes its runs, the retry function's notes
    what it saw; both functions' ledgers and retry queues count. Returns the crashing sender."""
    dispatcher = stack.modules["DispatchFunction"].notifier
    retrier = stack.modules["RetryFunction"].notifier
    sender = dispatcher.sender = CrashingSender(dispatcher.sender, tally, crash_rate, rng)
    retrier.sender = RecordingSender(retrier.sender, tally)
    for notifier in (dispatcher, retrier):
        notifier.ledger = CountingLedger(notifier.ledger, tally)
        notifier.retry_queue = CountingQueue(notifier.retry_queue, tally)
    return sender


def publish_and_dispatch(stack: Stack, sender: CrashingSender, events: int, started: float) -> dict[str, dict[str, Any]]:
    """Each event to the dispatcher as Lambda's async invocation runs it: the first run and up to two
    retries, each after a crash. Returns the SNS envelopes published, by message id."""
    published: dict[str, dict[str, Any]] = {}
    for n in range(events):
        if n and n % 250 == 0:
            print(f"  {n} events dispatched, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
        envelope = envelope_for(n)
        published[envelope["MessageId"]] = envelope
        if not dispatch(stack, sender, envelope):
            # Every run crashed: Lambda's on-failure destination keeps the SNS event in the
            # dead-letter queue (the shape Lambda uses: requestContext + requestPayload).
            record = {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                      "requestPayload": sns_event(envelope)}  # fmt: skip
            stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(record))
    return published


def envelope_for(n: int) -> dict[str, Any]:
    """The SNS envelope of the n-th event: the seven kinds in turn, rules among 17."""
    kind = KINDS[n % len(KINDS)]
    message: dict[str, Any] = {"event": kind, "workflow": "soak", "details": {"n": n}}
    if kind.startswith("Rule"):
        message["rule"] = f"rule_{n % 17}"
    return {"MessageId": f"soak-{n:06d}", "Message": json.dumps(message), "Timestamp": "2026-05-18T12:00:00.000Z", "TopicArn": "t"}


def dispatch(stack: Stack, sender: CrashingSender, envelope: dict[str, Any]) -> bool:
    """Run the dispatcher on one SNS event until a run does not crash, three runs at most.
    Whether one finished."""
    for _try in range(3):  # Lambda's async invocation: the first run and two retries
        try:
            stack.invoke("DispatchFunction", sns_event(envelope), timeout_seconds=CONTEXT_SECONDS)
            return True
        except InjectedCrash:
            sender.bury()
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


def account(
    published: dict[str, dict[str, Any]], receivers: list[Receiver], letters: list[dict[str, Any]], tally: Tally, seconds: float
) -> Result:
    """Every (event, webhook) pair delivered, dead-lettered or lost; repeats by cause."""
    seen = seen_by_receivers(receivers, tally)
    delivered = set(seen.delivered)
    dead = dead_lettered(letters, published)
    expected = {d for envelope in published.values() for d in delivery_ids(envelope)}
    accounted = {d for d in expected if d in delivered or d in dead}
    for delivery in [*seen.unexplained, *(expected - accounted)]:  # what a failing soak must show
        trail = [
            (x.header("X-OxoFlow-Attempt"), x.answered) for r in receivers for x in r.requests if x.header("X-OxoFlow-Delivery") == delivery
        ]
        print(f"unexplained: {delivery} attempts and answers {trail}", file=sys.stderr)
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
        reasons=dict(Counter(str(letter.get("reason_code", "lambda_on_failure")) for letter in letters)),
    )


def seen_by_receivers(receivers: list[Receiver], tally: Tally) -> Seen:
    """Each receiver's requests in order: answers counted, and every repeat (a delivery id again
    after its 2xx, or an attempt number again) put down to the first cause that explains it."""
    seen = Seen()
    crashed = {d for d, _ in tally.crashed_attempts}
    for receiver in receivers:
        attempts: dict[str, set[str]] = {}
        late_2xx: set[str] = set()  # deliveries the receiver answered 2xx while our side saw no 2xx
        for r in receiver.requests:
            delivery, attempt = r.header("X-OxoFlow-Delivery") or "", r.header("X-OxoFlow-Attempt") or ""
            if attempt in attempts.get(delivery, set()) or seen.delivered[delivery]:
                # The first cause that made this delivery repeat explains what follows from it.
                cause = CRASH if delivery in crashed else LATE if delivery in late_2xx else OTHER
                seen.repeats[cause] += 1
                if cause == OTHER:
                    seen.unexplained.append(delivery)
            attempts.setdefault(delivery, set()).add(attempt)
            ours = tally.seen_by_us.get((delivery, attempt))
            if r.answered == 200 and ours is not None and ours.status != 200:
                late_2xx.add(delivery)
            if r.answered == 200:
                seen.delivered[delivery] += 1
            elif r.answered == 401:
                seen.bad_signatures += 1
            else:
                seen.faults += 1
    return seen


def delivery_ids(envelope: dict[str, Any]) -> set[str]:
    """The delivery ids of one published event, as the dispatcher derives them (id and content)."""
    event = parse_event(envelope["Message"], message_id=envelope["MessageId"], received_at=parse_timestamp(envelope["Timestamp"]))
    return {delivery_id_for(event, CONFIG_KEY, f"hook{i}") for i in range(HOOKS)}


def dead_lettered(letters: list[dict[str, Any]], published: dict[str, dict[str, Any]]) -> set[str]:
    """The delivery ids in the dead-letter queue: the retry path's letters name theirs; the
    on-failure destination's records hold a whole SNS event, all of whose deliveries it keeps."""
    ids = {str(letter["delivery_id"]) for letter in letters if letter.get("delivery_id")}
    kept_events = {letter["requestPayload"]["Records"][0]["Sns"]["MessageId"] for letter in letters if "requestPayload" in letter}
    return ids | {d for message_id in kept_events for d in delivery_ids(published[message_id])}


def main() -> int:
    parser = argparse.ArgumentParser(description="Fault soak of the whole pipeline on moto server and loopback receivers.")
    parser.add_argument("--events", type=int, default=5000)
    parser.add_argument("--fault-rate", type=float, default=0.3)
    parser.add_argument("--crash-rate", type=float, default=0.03)
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):
        result = run(args.events, args.fault_rate, args.crash_rate, args.seed)
    print(result.table())
    ok = (
        result.lost == 0
        and result.bad_signatures == 0
        and result.delivered + result.dead_lettered == result.pairs
        and result.repeats.get(OTHER, 0) == 0
    )
    print("\nsoak passed: nothing lost" if ok else "\nsoak FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
