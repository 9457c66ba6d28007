#!/usr/bin/env python3
"""Fault soak: many events x 3 webhooks through moto server, receivers failing on purpose, and
crashes injected into handler runs. Proves: every (event, webhook) pair was received with a valid
signature or sits in the dead-letter queue with a reason; none lost. Crashes land in two windows:
after a POST but before the ledger recorded it (no sender can close this one: the re-run posts
again) and after the ledger recorded the fan-out (the re-run must post nothing). Duplicates at the
receivers (the same delivery id answered 2xx twice) and re-posts the ledger stopped are reported.

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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "layers" / "notify")]

from oxoflow_notify.ledger import ALREADY_DELIVERED  # noqa: E402
from oxolocal.receivers import Answer, Received, Receiver  # noqa: E402
from oxolocal.stack import Stack, moto_server, sns_event, sqs_event, use_local_aws  # noqa: E402

# Each simulated Lambda run times out after this many seconds: a crashed run's ledger claim
# expires that soon (in AWS, after the function's timeout).
CONTEXT_SECONDS = 3.0


class InjectedCrash(BaseException):
    """The function dies here, as a process does: no handler of ours can catch it (it is not an
    Exception), and Powertools leaves the ledger's claim in place for it to expire."""


KINDS = ["RuleStarted", "RuleCompleted", "RuleFailed", "RuleSkipped", "WorkflowStarted", "WorkflowCompleted", "WorkflowFailed"]


class Faulty:
    """Answers 200, or (with probability `rate`) one of the faults real receivers produce."""

    def __init__(self, secret: str, rate: float, seed: int, stall: float) -> None:
        self.secret = secret.encode()
        self.rate = rate
        self.rng = random.Random(seed)
        self.stall = stall
        self.lock = threading.Lock()

    def __call__(self, n: int, r: Received) -> Answer:
        with self.lock:
            roll, kind = self.rng.random(), self.rng.choice(["500", "503", "429", "stall", "reset"])
        if roll < self.rate:
            if kind == "429":
                return Answer(429, b"slow down", {"Retry-After": "0"})
            if kind == "stall":
                return Answer(action="stall", stall_seconds=self.stall)
            if kind == "reset":
                return Answer(action="reset")
            return Answer(int(kind), b"try later")
        expected = "sha256=" + hmac.new(self.secret, r.body, hashlib.sha256).hexdigest()
        return Answer(200) if hmac.compare_digest(expected, r.header("X-Hub-Signature-256") or "") else Answer(401, b"bad signature")


@dataclass
class Result:
    events: int
    pairs: int
    delivered: int
    dead_lettered: int
    lost: int
    duplicates: int
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
            ("duplicate 2xx deliveries at receivers", self.duplicates),
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
    rng = random.Random(seed)
    started = time.time()
    with contextlib.ExitStack() as ctx:
        endpoint = ctx.enter_context(moto_server())
        use_local_aws(endpoint)
        stack = Stack(
            name_prefix=f"soak-{seed}",
            # Functions time out after CONTEXT_SECONDS here, so a crashed run's ledger claim expires
            # that soon and a delivery held behind it is looked at again after CLAIM_WAIT_SECONDS.
            overrides={"RETRY_SCHEDULE": "0,0,0,0,0", "READ_TIMEOUT_SECONDS": "0.15", "CONNECT_TIMEOUT_SECONDS": "1",
                       "CIRCUIT_THRESHOLD": "1000", "POWERTOOLS_LOG_LEVEL": "ERROR", "INVOCATION_RESERVE_SECONDS": "0.5",
                       "CLAIM_WAIT_SECONDS": str(CONTEXT_SECONDS)},
        ).provision()  # fmt: skip
        secrets = [f"soak-secret-{i}" for i in range(3)]
        receivers = [ctx.enter_context(Receiver(Faulty(s, fault_rate, seed + i, stall=0.3), f"soak{i}")) for i, s in enumerate(secrets)]
        stack.put_config(
            "soak",
            "".join(
                f'[[webhooks]]\nid = "hook{i}"\nurl = "{r.url}"\nsecret = "{s}"\n'
                for i, (r, s) in enumerate(zip(receivers, secrets, strict=True))
            ),
        )
        dispatch = stack.handler("DispatchFunction")
        retry = stack.handler("RetryFunction")
        notifier = stack.modules["DispatchFunction"].notifier
        crashes = before_record = stopped = 0
        on_failure: set[str] = set()  # event ids Lambda would have handed to its on-failure destination

        # Crash injection. `send` is one POST inside the ledger's claim: a crash there is the window
        # no sender can close (the receiver got it, the record was not saved). `send_all` returns
        # after the ledger recorded every answer: a crash there must not cause a second POST.
        # Lambda then retries the invocation (async: up to twice more).
        lock = threading.Lock()

        def crash_after(post: Any, window: str) -> Any:
            def posted_then_maybe_crashed(*args: Any) -> Any:
                nonlocal crashes, before_record
                result = post(*args)
                with lock:
                    crash = rng.random() < crash_rate
                    crashes += crash
                    before_record += crash and window == "before_record"
                if crash:
                    raise InjectedCrash(window)
                return result

            return posted_then_maybe_crashed

        notifier.sender.send_all = crash_after(notifier.sender.send_all, "after_record")
        notifier.sender.send = crash_after(notifier.sender.send, "before_record")

        def counting(once: Any) -> Any:
            def once_counted(*args: Any) -> Any:
                nonlocal stopped
                outcome = once(*args)
                with lock:
                    stopped += outcome.error == ALREADY_DELIVERED
                return outcome

            return once_counted

        for function in ("DispatchFunction", "RetryFunction"):
            ledger = stack.modules[function].notifier.ledger
            ledger.once = counting(ledger.once)
        from oxolocal.stack import LambdaContext

        for n in range(events):
            if n and n % 250 == 0:
                print(f"  {n} events dispatched, {time.time() - started:.0f} s", file=sys.stderr, flush=True)
            kind = KINDS[n % len(KINDS)]
            message = {"event": kind, "workflow": "soak", "details": {"n": n}}
            if kind.startswith("Rule"):
                message["rule"] = f"rule_{n % 17}"
            envelope = {
                "MessageId": f"soak-{n:06d}",
                "Message": json.dumps(message),
                "Timestamp": "2026-05-18T12:00:00.000Z",
                "TopicArn": "t",
            }
            for _try in range(3):  # Lambda's async invocation: the first run and two retries
                try:
                    dispatch(sns_event(envelope), LambdaContext("DispatchFunction", timeout_seconds=CONTEXT_SECONDS))
                    break
                except InjectedCrash:
                    continue
            else:
                # Every run crashed: Lambda's on-failure destination keeps the SNS event in the
                # dead-letter queue (the shape Lambda uses: requestContext + requestPayload).
                on_failure.add(envelope["MessageId"])
                record = {"requestContext": {"condition": "RetriesExhausted", "approximateInvokeCount": 3},
                          "requestPayload": sns_event(envelope)}  # fmt: skip
                stack.sqs.send_message(QueueUrl=stack.dead_letter_queue_url, MessageBody=json.dumps(record))

        arn = stack.physical["RetryQueue"]["Arn"]
        idle = 0
        while idle < 3:  # play the SQS event source until the queue stays empty, delayed messages included
            batch = stack.receive(stack.retry_queue_url)
            if not batch:
                idle = idle + 1 if not any(stack.depth(stack.retry_queue_url).values()) else 0
                time.sleep(0.2)
                continue
            idle = 0
            try:
                outcome = retry(sqs_event(batch, arn), LambdaContext("RetryFunction", timeout_seconds=CONTEXT_SECONDS))
                failed = {f["itemIdentifier"] for f in outcome.get("batchItemFailures", [])}
            except InjectedCrash:  # the function died: SQS delivers the whole batch again
                failed = {m["MessageId"] for m in batch}
            for m in batch:
                if m["MessageId"] in failed:
                    stack.sqs.change_message_visibility(
                        QueueUrl=stack.retry_queue_url, ReceiptHandle=m["ReceiptHandle"], VisibilityTimeout=0
                    )
                else:
                    stack.sqs.delete_message(QueueUrl=stack.retry_queue_url, ReceiptHandle=m["ReceiptHandle"])
        letters = stack.drain(stack.dead_letter_queue_url)
        from oxoflow_notify.delivery import delivery_id_for

        delivered_ids: Counter[str] = Counter()
        faults = bad = 0
        for receiver in receivers:
            for r in receiver.requests:
                if r.answered == 200:
                    delivered_ids[r.header("X-OxoFlow-Delivery") or ""] += 1
                elif r.answered == 401:
                    bad += 1
                else:
                    faults += 1
        dead_ids = {letter.get("delivery_id") for letter in letters}
        kept_events = {
            letter["requestPayload"]["Records"][0]["Sns"]["MessageId"] for letter in letters if "requestPayload" in letter
        }  # the on-failure destination's records, found in the queue
        dead_ids |= {delivery_id_for(e, "workflows/soak.oxoflow", f"hook{i}") for e in kept_events for i in range(3)}
        reasons = Counter(str(letter.get("reason_code", "lambda_on_failure")) for letter in letters)
        expected = {delivery_id_for(f"soak-{n:06d}", "workflows/soak.oxoflow", f"hook{i}") for n in range(events) for i in range(3)}
        accounted = {d for d in expected if d in delivered_ids or d in dead_ids}
        return Result(
            events=events,
            pairs=len(expected),
            delivered=len(expected & set(delivered_ids)),
            dead_lettered=len((expected - set(delivered_ids)) & dead_ids),
            lost=len(expected - accounted),
            duplicates=sum(c - 1 for c in delivered_ids.values() if c > 1),
            bad_signatures=bad,
            faults_injected=faults,
            crashes_injected=crashes,
            crashes_before_record=before_record,
            reposts_stopped=stopped,
            seconds=time.time() - started,
            reasons=dict(reasons),
        )


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
    ok = result.lost == 0 and result.bad_signatures == 0 and result.delivered + result.dead_lettered == result.pairs
    print("\nsoak passed: nothing lost" if ok else "\nsoak FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
