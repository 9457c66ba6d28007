#!/usr/bin/env python3
"""`make bench`: speed and memory of the dispatcher, as ratios against baselines measured in the same run.

Receivers run in a separate process (they must not share the measuring process's GIL); AWS is
moto, in-process for the warm measurements and as a server for the cold starts. Prints a table
(figure, ours, baseline, ratio, target, pass/fail), writes the same as JSON, exits 1 if a target
is missed. Takes about two minutes.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import hmac
import json
import multiprocessing
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path[:0] = [str(Path(__file__).resolve().parent), str(Path(__file__).resolve().parents[1] / "layers" / "notify")]

from oxoflow_notify.ledger import NoLedger  # noqa: E402
from oxolocal.receivers import Answer, Receiver, ok  # noqa: E402
from oxolocal.stack import LOCAL_ENV, REGION, LambdaContext, Stack, moto_server, repo_path, sns_event, use_local_aws  # noqa: E402

OUT = sys.__stdout__
FANOUT = 50
FANOUT_DELAY = 0.2
EVENTS = 2000
ROWS: list[dict[str, Any]] = []


def say(text: str = "") -> None:
    print(text, file=OUT, flush=True)


def row(figure: str, ours: float, baseline: float | None, ratio: float | None, target: str, ok_: bool, unit: str = "") -> None:
    ROWS.append({"figure": figure, "ours": ours, "baseline": baseline, "ratio": ratio, "target": target, "pass": ok_, "unit": unit})
    base = "-" if baseline is None else f"{baseline:,.3f}"
    rat = "-" if ratio is None else f"{ratio:.2f}x"
    say(f"  {figure:44} {ours:>12,.3f} {base:>12} {rat:>9}  {target:28} {'PASS' if ok_ else 'FAIL'}")


# -- receivers in their own process ------------------------------------------------------------


def _serve(count: int, delay: float, pipe: Any) -> None:
    def slow(n: int, r: Any) -> Answer:
        time.sleep(delay)
        return Answer(200, b"ok")

    servers = [Receiver(slow if delay else ok(), f"r{i}").start() for i in range(count)]
    pipe.send([s.url for s in servers])
    while True:
        time.sleep(3600)


@contextlib.contextmanager
def receivers(count: int, delay: float) -> Iterator[list[str]]:
    parent, child = multiprocessing.Pipe()
    process = multiprocessing.get_context("fork").Process(target=_serve, args=(count, delay, child), daemon=True)
    process.start()
    urls: list[str] = parent.recv()
    try:
        yield urls
    finally:
        process.terminate()
        process.join()


def median_time(fn: Callable[[], Any], runs: int) -> float:
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def published(workflow: str, n: int) -> list[dict[str, Any]]:
    body = json.dumps(
        {
            "event": "RuleFailed",
            "workflow": workflow,
            "rule": "align_reads",
            "details": {"exit_code": 1, "stderr": "bwa: command not found"},
        }
    )
    return [
        sns_event(
            {
                "MessageId": f"bench-{i:06d}",
                "Message": body,
                "Timestamp": "2026-05-18T12:00:00.000Z",
                "TopicArn": "arn:aws:sns:us-east-1:1:t",
            }
        )
        for i in range(n)
    ]


def config(urls: list[str], fmt: str = "json") -> str:
    return "".join(f'[[webhooks]]\nurl = "{u}"\nformat = "{fmt}"\nsecret = "bench-secret"\n' for u in urls)


# -- targets 1, 2, 5: a warm dispatcher ----------------------------------------------------------


def warm_targets() -> None:
    # moto in server mode, not mock_aws: mock_aws patches every `requests` call (to match it against
    # AWS URLs), a cost Lambda does not have. The config is cached, so the hot path makes no AWS call.
    with moto_server() as endpoint:
        use_local_aws(endpoint)
        stack = Stack(overrides={"CONFIG_CACHE_SECONDS": "60"}).provision()
        handler = stack.handler("DispatchFunction")
        context = LambdaContext(function_name="DispatchFunction")

        notifier = stack.modules["DispatchFunction"].notifier
        with_ledger, without_ledger = notifier.ledger, NoLedger()
        ledger_io = RawLedger(stack.physical["DeliveryLedger"]["Ref"])

        # 1. fan-out
        with receivers(FANOUT, FANOUT_DELAY) as urls:
            stack.put_config("fanout", config(urls))
            events = published("fanout", 11)
            handler(events[0], context)  # warm: config cached, connections open, ledger client built
            fresh = iter(events[1:])  # a new event each run: the ledger skips deliveries already made
            notifier.ledger = without_ledger
            ours_bare = median_time(lambda: handler(next(fresh), context), 5)
            notifier.ledger = with_ledger
            ours = median_time(lambda: handler(next(fresh), context), 5)
            # The same fan-out done raw: 50 threads, each claiming, posting and recording.
            import urllib3

            pool, raw_body, keys = urllib3.PoolManager(maxsize=FANOUT), b'{"event":"RuleFailed"}', iter(range(10**6))

            def raw_one(url: str) -> None:
                key = f"fan#{next(keys)}"
                ledger_io.put(key)
                pool.request("POST", url, body=raw_body, headers={"Content-Type": "application/json"}).release_conn()
                ledger_io.update(key)

            from concurrent.futures import ThreadPoolExecutor

            with ThreadPoolExecutor(max_workers=FANOUT) as executor:
                list(executor.map(raw_one, urls))
                floor_ledger = median_time(lambda: list(executor.map(raw_one, urls)), 5)

            import requests

            body = json.dumps(json.loads(events[0]["Records"][0]["Sns"]["Message"])).encode()

            def naive() -> None:  # oxo-flow's client: a new connection per request, one after another
                for url in urls:
                    requests.post(url, data=body, headers={"Content-Type": "application/json"}, timeout=10)

            naive_time = median_time(naive, 1)
            apprise_time = apprise_fanout(urls)
        floor = FANOUT_DELAY
        row("fan-out 50 x 200 ms: wall time (s)", ours_bare, floor, ours_bare / floor, "<= 1.3x the 200 ms floor",
            ours_bare <= 1.3 * floor, "s")  # fmt: skip
        row("fan-out with the delivery ledger (s)", ours, floor_ledger, ours / floor_ledger,
            "<= 1.3x raw threads + same DynamoDB calls", ours <= 1.3 * floor_ledger, "s")  # fmt: skip
        row("fan-out: naive sender time / ours", naive_time, ours, naive_time / ours, ">= 10x faster than naive", naive_time / ours >= 10)
        if apprise_time is not None:
            row("fan-out: Apprise time / ours", apprise_time, ours, apprise_time / ours, "reported", True)

        # 2. throughput
        with receivers(1, 0) as (url,):
            stack.put_config("through", config([url]))
            events = published("through", EVENTS)
            notifier.ledger = without_ledger
            handler(events[0], context)

            import requests

            # The baseline replays the very requests the dispatcher sends (same bytes, same headers:
            # signature, delivery id, ...), recorded by the receiver, so the receiver's work is equal.
            session = requests.Session()
            session.trust_env = False
            recorded = record_requests(stack, events)
            session.post(url, data=recorded[0][0], timeout=10).close()

            # Interleaved rounds, so drift on a busy machine hits both sides alike. Each side of a
            # pair does the same I/O: POSTs only, or POSTs plus the ledger's two DynamoDB calls.
            rounds, size = 10, EVENTS // 10
            rates: dict[str, list[float]] = {"ours": [], "raw": [], "ours+ledger": [], "raw+ledger": []}

            def ours_one(i: int) -> None:
                handler(events[i], context)

            def raw_post(i: int) -> None:
                body, headers = recorded[i]
                session.post(url, data=body, headers=headers, timeout=10).close()

            def raw_one_with_ledger(i: int) -> None:
                ledger_io.put(f"bench#{i}")
                raw_post(i)
                ledger_io.update(f"bench#{i}")

            sides = [("ours", without_ledger, ours_one), ("raw", None, raw_post),
                     ("ours+ledger", with_ledger, ours_one), ("raw+ledger", None, raw_one_with_ledger)]  # fmt: skip
            for r in range(rounds):
                for name, ledger, one in sides:
                    if ledger is not None:
                        notifier.ledger = ledger
                    started = time.perf_counter()
                    for i in range(r * size, (r + 1) * size):
                        one(i)
                    rates[name].append(size / (time.perf_counter() - started))
            rate = {k: statistics.median(v) for k, v in rates.items()}
        row(
            "throughput: events/s via dispatch handler",
            rate["ours"],
            rate["raw"],
            rate["ours"] / rate["raw"],
            ">= 0.85x raw Session loop",
            rate["ours"] >= 0.85 * rate["raw"],
        )
        row(
            "throughput with the delivery ledger (events/s)",
            rate["ours+ledger"],
            rate["raw+ledger"],
            rate["ours+ledger"] / rate["raw+ledger"],
            ">= 0.85x raw loop + same DynamoDB calls",
            rate["ours+ledger"] >= 0.85 * rate["raw+ledger"],
        )
        row("ledger cost on loopback (with / without)", rate["ours+ledger"], rate["ours"],
            rate["ours+ledger"] / rate["ours"], "reported", True)  # fmt: skip

        # 5. S3 calls on a warm function
        calls: list[str] = []
        s3 = stack.modules["DispatchFunction"].notifier.store.s3
        s3.meta.events.register("before-call.s3.GetObject", lambda **kw: calls.append("get"))
        with receivers(1, 0) as (url,):
            stack.put_config("s3count", config([url]))
            for event in published("s3count", 300):
                handler(event, context)
        files = 2  # the workflow's file and _default.oxoflow
        row("S3 GetObject for 300 events in one TTL", len(calls), files, len(calls) / files, "<= 1 per file per TTL", len(calls) <= files)


class RawLedger:
    """The ledger's I/O without the ledger: the conditional put that claims a delivery id and the
    update that records its 2xx, with the expressions Powertools Idempotency sends."""

    def __init__(self, table: str) -> None:
        import boto3

        self.table = table
        self.ddb = boto3.client("dynamodb", region_name=REGION)

    def put(self, key: str) -> None:
        now = time.time()
        self.ddb.put_item(
            TableName=self.table,
            Item={"id": {"S": key}, "expiration": {"N": str(int(now) + 86400)}, "status": {"S": "INPROGRESS"},
                  "in_progress_expiration": {"N": str(int(now * 1000) + 60000)}},
            ConditionExpression="attribute_not_exists(#id) OR #expiry < :now OR (#status = :inprogress AND "
                                "attribute_exists(#in_progress_expiry) AND #in_progress_expiry < :now_in_millis)",
            ExpressionAttributeNames={"#id": "id", "#expiry": "expiration", "#in_progress_expiry": "in_progress_expiration",
                                      "#status": "status"},
            ExpressionAttributeValues={":now": {"N": str(int(now))}, ":now_in_millis": {"N": str(int(now * 1000))},
                                       ":inprogress": {"S": "INPROGRESS"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )  # fmt: skip

    def update(self, key: str) -> None:
        self.ddb.update_item(
            TableName=self.table,
            Key={"id": {"S": key}},
            UpdateExpression="SET #response_data = :response_data, #expiry = :expiry, #status = :status",
            ExpressionAttributeNames={"#expiry": "expiration", "#response_data": "data", "#status": "status"},
            ExpressionAttributeValues={":expiry": {"N": str(int(time.time()) + 86400)},
                                       ":response_data": {"S": '{"status":200}'}, ":status": {"S": "COMPLETED"}},
        )  # fmt: skip


def record_requests(stack: Stack, events: list[dict[str, Any]]) -> list[tuple[bytes, dict[str, str]]]:
    """The body and headers the dispatcher builds for each event, without sending them."""
    from oxoflow_notify.config import Config
    from oxoflow_notify.delivery import delivery_id_for, prepare
    from oxoflow_notify.events import parse_event

    store = stack.modules["DispatchFunction"].notifier.store
    out = []
    for event in events:
        sns = event["Records"][0]["Sns"]
        parsed = parse_event(sns["Message"], message_id=sns["MessageId"], received_at=datetime.now(UTC))
        config = store.load(store.key_for(parsed.workflow))
        assert isinstance(config, Config)
        webhook = config.webhooks[0]
        prepared = prepare(parsed, webhook, delivery_id_for(parsed.id, config.source, webhook.id), 1)
        out.append((prepared.body, {k: v for k, v in prepared.headers.items()}))
    return out


def apprise_fanout(urls: list[str]) -> float | None:
    try:
        import apprise
    except ImportError:
        say("  (apprise not installed: skipping its measurement)")
        return None
    notifier = apprise.Apprise()
    for url in urls:
        notifier.add(url.replace("http://", "json://"))
    notifier.notify(body="warm-up", title="RuleFailed")
    return median_time(lambda: notifier.notify(body="rule 'align_reads' failed", title="RuleFailed"), 1)


# -- 3. CPU: filter + render + sign on one core --------------------------------------------------


def cpu_targets() -> None:
    from oxoflow_notify.config import Webhook
    from oxoflow_notify.delivery import prepare
    from oxoflow_notify.events import parse_event

    event = parse_event(
        json.dumps(
            {
                "event": "RuleFailed",
                "workflow": "wf",
                "rule": "align_reads",
                "details": {"exit_code": 1, "stderr": "bwa: command not found"},
            }
        ),
        message_id="m",
        received_at=datetime.now(UTC),
    )
    for fmt, target in (("json", 20_000), ("slack", 5_000)):
        webhook = Webhook("wh", "https://x.example.org/h", fmt, frozenset({"RuleFailed"}), ("bench-secret",), "s", 1)
        n = 20_000 if fmt == "json" else 10_000
        started = time.process_time()
        for _ in range(n):
            if webhook.matches(event.event):
                prepare(event, webhook, "d", 1, now=0)
        ours = n / (time.process_time() - started)
        payload = event.to_payload()
        started = time.process_time()
        for _ in range(n):
            b = json.dumps(payload).encode()
            hmac.new(b"bench-secret", b, hashlib.sha256).hexdigest()
        base = n / (time.process_time() - started)
        row(f"CPU: {fmt} filter+render+sign per s", ours, base, ours / base, f">= {target:,}/s", ours >= target)


# -- 4. cold start, 6. memory: fresh processes ---------------------------------------------------

MINIMAL = """
import json, os, sys, time, uuid, urllib3, boto3
s3 = boto3.client("s3")
config = s3.get_object(Bucket=os.environ["CONFIG_BUCKET"], Key="workflows/cold.oxoflow")["Body"].read()
url = config.decode().split('url = "')[1].split('"')[0]
ddb, key, table = boto3.client("dynamodb"), {"id": {"S": str(uuid.uuid4())}}, os.environ["LEDGER_TABLE"]
ddb.put_item(TableName=table, Item={**key, "status": {"S": "INPROGRESS"}}, ConditionExpression="attribute_not_exists(id)")
urllib3.PoolManager().request("POST", url, body=json.dumps(json.loads(sys.argv[1])["Records"][0]["Sns"]["Message"]).encode(),
                              headers={"Content-Type": "application/json"})
ddb.update_item(TableName=table, Key=key, UpdateExpression="SET #s = :s", ExpressionAttributeNames={"#s": "status"},
                ExpressionAttributeValues={":s": {"S": "COMPLETED"}})
"""

# A fresh process loading the dispatch handler as Lambda would: argv = event(s), layer dir, code dir.
LOAD_HANDLER = """
import importlib.util, json, sys
sys.path[:0] = [sys.argv[2], sys.argv[3]]
spec = importlib.util.spec_from_file_location("app", sys.argv[3] + "/app.py")
app = importlib.util.module_from_spec(spec); spec.loader.exec_module(app)
class Context:
    function_name, memory_limit_in_mb, invoked_function_arn, aws_request_id = "DispatchFunction", 256, "arn", "r"
"""

OURS = (
    LOAD_HANDLER
    + """
result = app.lambda_handler(json.loads(sys.argv[1]), Context())
assert result["delivered"] == 1, result
"""
)

PEAK = (
    LOAD_HANDLER
    + """
for event in json.loads(sys.argv[1]):
    assert app.lambda_handler(event, Context())["delivered"] == 50
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""
)


# Linux keeps ru_maxrss across exec (a child reports its parent's peak); VmHWM is the process's own.
HWM_BASELINE = """
import boto3, urllib3
boto3.client("s3")
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM")))
"""


def cold_targets() -> None:
    layer, code = str(repo_path("layers", "notify")), str(repo_path("functions", "dispatch"))
    with moto_server() as endpoint:
        use_local_aws(endpoint)
        stack = Stack(name_prefix="bench-cold").provision()
        env = {
            **os.environ,
            **stack.function_env("DispatchFunction"),
            "POWERTOOLS_LOG_LEVEL": "WARNING",
            "POWERTOOLS_METRICS_DISABLED": "true",
        }
        with receivers(1, 0) as (url,):
            stack.put_config("cold", config([url]))
            fresh = iter(published("cold", 20))  # a new event each run: the ledger skips deliveries already made

            def run(code_text: str, *args: str) -> None:
                event = json.dumps(next(fresh))
                subprocess.run([sys.executable, "-c", code_text, event, *args], env=env, check=True, stdout=subprocess.DEVNULL)

            run(MINIMAL)
            run(OURS, layer, code)  # both warm the OS file cache first
            minimal = median_time(lambda: run(MINIMAL), 7)
            ours = median_time(lambda: run(OURS, layer, code), 7)
        row("cold start: import + first event (s)", ours, minimal, ours / minimal, "<= 1.25x boto3+urllib3", ours <= 1.25 * minimal, "s")

        with receivers(FANOUT, FANOUT_DELAY) as urls:
            stack.put_config("peak", config(urls))
            events = json.dumps(published("peak", 5))
            result = subprocess.run([sys.executable, "-c", PEAK, events, layer, code], env=env, check=True, capture_output=True, text=True)
            peak_mb = int(result.stdout.strip().splitlines()[-1]) / 1024
            baseline = subprocess.run(
                [sys.executable, "-c", HWM_BASELINE],
                env=env, check=True, capture_output=True, text=True,
            )  # fmt: skip
            base_mb = int(baseline.stdout.strip()) / 1024
        row(
            "memory: peak RSS under fan-out (MB)",
            peak_mb,
            base_mb,
            peak_mb / base_mb,
            "fits 256 MB with 2x headroom",
            peak_mb * 2 <= 256,
            "MB",
        )


def layer_size() -> float | None:
    """Unzipped size of the layer as `sam build` makes it (arm64 wheels for python3.13)."""
    target = Path(tempfile.mkdtemp(prefix="layer-"))
    try:
        subprocess.run(
            [sys.executable, "-m", "pip", "install", "--quiet", "--target", str(target), "--platform", "manylinux2014_aarch64",
             "--only-binary=:all:", "--python-version", "3.13", "-r", str(repo_path("layers", "notify", "requirements.txt"))],
            check=True, capture_output=True,
        )  # fmt: skip
        shutil.copytree(
            repo_path("layers", "notify", "oxoflow_notify"), target / "oxoflow_notify", ignore=shutil.ignore_patterns("__pycache__")
        )
        return sum(p.stat().st_size for p in target.rglob("*") if p.is_file()) / 1e6
    except subprocess.CalledProcessError:
        return None
    finally:
        shutil.rmtree(target, ignore_errors=True)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--out", default=str(repo_path("bench-results.json")), help="where to write the JSON results")
    args = parser.parse_args()
    os.environ.update({**LOCAL_ENV, "AWS_DEFAULT_REGION": REGION})
    started = time.time()
    say(f"  {'figure':44} {'ours':>12} {'baseline':>12} {'ratio':>9}  {'target':28} result")
    with open(os.devnull, "w") as devnull, contextlib.redirect_stdout(devnull):  # the handlers' logs and EMF
        warm_targets()
        cpu_targets()
        cold_targets()
    size = layer_size()
    if size is not None:
        say(f"  layer size (unzipped, arm64): {size:.1f} MB")
    machine = {"python": platform.python_version(), "machine": platform.machine(), "cpus": os.cpu_count(), "system": platform.platform()}
    report = {"when": datetime.now(UTC).isoformat(timespec="seconds"), "machine": machine, "layer_mb": size, "rows": ROWS}
    Path(args.out).write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    failed = [r["figure"] for r in ROWS if not r["pass"]]
    say(f"\n{len(ROWS) - len(failed)} of {len(ROWS)} targets met in {time.time() - started:.0f} s; results in {args.out}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
