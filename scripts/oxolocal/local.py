"""The local stack behind `make up`: everything a deployed stack has, on loopback, until `make down`.

One background process holds it all:
- a moto server with the template's topic, bucket, queues and ledger table (read from template.yaml,
  so a resource renamed there breaks this stack as it would break a deploy);
- the three functions, wired as Lambda wires them: each message published to the topic goes to the
  dispatch handler as an SNS event (Lambda's asynchronous invocation: two more tries on an error,
  then the on-failure record in the dead-letter queue); the retry queue goes to the retry handler in
  batches with partial failures (a failed record comes back after a short visibility timeout, and
  the queue's redrive policy moves it to the dead-letter queue after five receives); the ingest
  function answers on a loopback HTTPS URL with a generated secret;
- an HTTPS sample receiver (``$OXOFLOW_LOCAL_RECEIVER_URL``) that writes each request it gets, one
  JSON line each, to ``received.jsonl`` in the state folder; any path under ``/hook/`` answers 200,
  under ``/broken/`` 404 ("no such hook"), under ``/fail/`` 503.

What moto cannot run is not here: IAM (every call is allowed), CloudWatch alarms and the dashboard,
log groups, KMS, and Lambda itself (the handlers run in this process, one invocation at a time).
"""

from __future__ import annotations

import argparse
import base64
import fcntl
import json
import logging
import os
import secrets
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]
DEFAULT_STATE = ROOT / ".local"
DEFAULT_PORT = 4566  # where LocalStack and `moto_server -p 4566` usually listen; another is taken if busy
# Not us-east-1 (moto's and many tools' fallback): a command that ignored the stack's region would miss it.
# (And the AWS CLI v1 sends SQS calls in us-east-1 to queue.amazonaws.com whatever AWS_ENDPOINT_URL says.)
REGION = "eu-west-1"
# Retries compressed so a failing webhook reaches the dead-letter queue in under a minute.
LOCAL_RETRY_SCHEDULE = "2,5,10"
RETRY_VISIBILITY_SECONDS = 3  # a failed retry record comes back after this (360 s in the template)
ASYNC_RETRY_DELAYS = (1.0, 2.0)  # Lambda's two asynchronous retries (about 1 and 2 minutes in AWS)
INGEST_SECRET_NAME = "/oxoflow-notify-ingest/secret"  # the template's IngestSecret default


@dataclass(frozen=True)
class Paths:
    """The files of one local stack, all in its state folder."""

    root: Path

    @property
    def pid(self) -> Path:
        return self.root / "stack.pid"

    @property
    def env(self) -> Path:
        return self.root / "env.sh"

    @property
    def lock(self) -> Path:
        """Held (flock) by the running stack for its whole life: the kernel lets go when it dies."""
        return self.root / "stack.lock"

    @property
    def starting(self) -> Path:
        """Held by an `up` while it starts one: two at once start one stack."""
        return self.root / "up.lock"

    @property
    def log(self) -> Path:
        return self.root / "stack.log"

    @property
    def received(self) -> Path:
        return self.root / "received.jsonl"

    @property
    def ingest_secret(self) -> Path:
        return self.root / "ingest-secret"

    @property
    def ca(self) -> Path:
        return self.root / "ca"


# -- the commands --------------------------------------------------------------------------------


def running(paths: Paths) -> int | None:
    """The pid of this folder's stack if one is up, else None. A stack holds its lock file for as
    long as it lives, so a stale pid file (a reboot, a SIGKILL, a pid reused) never counts."""
    if not paths.lock.is_file():
        return None
    with paths.lock.open("a") as probe:
        try:
            fcntl.flock(probe, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pass  # held: the stack is up
        else:
            fcntl.flock(probe, fcntl.LOCK_UN)
            return None
    try:
        pid = int(paths.pid.read_text().strip())
    except (OSError, ValueError):
        return None
    return pid if paths.env.is_file() else None


def up(paths: Paths, port: int, wait: float = 90.0) -> int:
    """Start the stack in the background (or find it running) and print its export lines."""
    paths.root.mkdir(parents=True, exist_ok=True)
    with paths.starting.open("a") as starting:
        fcntl.flock(starting, fcntl.LOCK_EX)  # a second `up` at the same time waits, then finds this one's stack
        return _up(paths, port, wait)


def _up(paths: Paths, port: int, wait: float) -> int:
    if running(paths):
        print(f"the local stack is already up (pid {running(paths)}); its environment:", file=sys.stderr)
        sys.stdout.write(paths.env.read_text())
        return 0
    paths.env.unlink(missing_ok=True)
    with paths.log.open("ab") as log:
        process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), "serve", "--state-dir", str(paths.root), "--port", str(port)],
            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True, cwd=ROOT,
        )  # fmt: skip
    deadline = time.monotonic() + wait
    while not paths.env.is_file():
        if process.poll() is not None:
            print(f"the local stack did not start (exit {process.returncode}); the end of {paths.log}:", file=sys.stderr)
            print("\n".join(paths.log.read_text(errors="replace").splitlines()[-20:]), file=sys.stderr)
            return 1
        if time.monotonic() > deadline:
            process.terminate()
            print(f"the local stack did not start within {wait:.0f} s; see {paths.log}", file=sys.stderr)
            return 1
        time.sleep(0.1)
    print(f"the local stack is up (pid {process.pid}); `make down` stops it. Logs: {paths.log}", file=sys.stderr)
    print(f"what the sample receiver gets: {paths.received}", file=sys.stderr)
    print('put its environment into your shell with: eval "$(make -s env)"', file=sys.stderr)
    sys.stdout.write(paths.env.read_text())
    return 0


def down(paths: Paths, wait: float = 20.0) -> int:
    """Stop the stack of this folder, if one is up. Safe to run at any time."""
    pid = running(paths)
    if pid is None:
        print("no local stack is running", file=sys.stderr)
        paths.env.unlink(missing_ok=True)
        return 0
    os.kill(pid, signal.SIGTERM)  # the lock's holder: this folder's stack, not a process that reused a stale pid
    deadline = time.monotonic() + wait
    while running(paths) is not None:  # until its lock is let go (a zombie holds none)
        if time.monotonic() > deadline:
            os.kill(pid, signal.SIGKILL)
            break
        time.sleep(0.1)
    paths.env.unlink(missing_ok=True)
    paths.pid.unlink(missing_ok=True)
    print(f"the local stack (pid {pid}) is stopped", file=sys.stderr)
    return 0


def show_env(paths: Paths) -> int:
    if not running(paths):
        print("no local stack is running: start one with `make up`", file=sys.stderr)
        return 2
    sys.stdout.write(paths.env.read_text())
    return 0


# -- the background process ----------------------------------------------------------------------


def free_port(preferred: int) -> int:
    """``preferred`` if nothing listens there (0: any free port), else a free one."""
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", preferred))
        except OSError:
            probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve(paths: Paths, port: int) -> int:
    """Run the stack until SIGTERM or SIGINT, holding the state folder's lock all along."""
    held = paths.lock.open("a")  # kept open (so locked) until this process ends
    try:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another local stack holds {paths.lock}; not starting a second", flush=True)
        return 1
    keep_ca(paths.ca)
    from moto.server import ThreadedMotoServer

    from .receivers import local_ca
    from .stack import Stack, atomic_dynamodb, use_local_aws

    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    atomic_dynamodb()
    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # no access log of every AWS call
    moto = ThreadedMotoServer(ip_address="127.0.0.1", port=free_port(port), verbose=False)
    moto.start()
    host, moto_port = moto.get_host_and_port()
    endpoint = f"http://{host}:{moto_port}"
    use_local_aws(endpoint)
    os.environ.update({"AWS_REGION": REGION, "AWS_DEFAULT_REGION": REGION})
    ca_file = local_ca().ca_file
    stack = Stack(parameters={"RetrySchedule": LOCAL_RETRY_SCHEDULE}, name_prefix="oxoflow-local", region=REGION,
                  overrides={"RETRY_SCHEDULE": LOCAL_RETRY_SCHEDULE}).provision()  # fmt: skip
    secret = "local-" + secrets.token_urlsafe(24)
    stack_ssm(stack).put_parameter(Name=INGEST_SECRET_NAME, Value=secret, Type="SecureString", Overwrite=True)
    paths.ingest_secret.write_text(secret + "\n")
    paths.ingest_secret.chmod(0o600)
    lock = threading.Lock()  # one invocation at a time, as one Lambda container runs them
    receiver = SampleReceiver(paths.received).start()
    ingest = IngestUrl(stack, lock).start()
    pump = Pump(stack, lock, stop)
    threading.Thread(target=pump.run, name="pump", daemon=True).start()
    env = local_environment(stack, endpoint, ca_file, receiver.url, ingest.url, paths)
    paths.pid.write_text(f"{os.getpid()}\n")
    from oxoflow_notify.tools.stackenv import export_lines

    paths.env.write_text(export_lines(env))
    print(f"local stack up: AWS at {endpoint}, receiver {receiver.url}, ingest {ingest.url}", flush=True)
    stop.wait()
    receiver.stop()
    ingest.stop()
    moto.stop()
    paths.env.unlink(missing_ok=True)
    paths.pid.unlink(missing_ok=True)
    print("local stack stopped", flush=True)
    return 0


def keep_ca(folder: Path) -> None:
    """The receivers' throwaway CA lives in the state folder, so a restarted stack keeps it."""
    import trustme

    folder.mkdir(parents=True, exist_ok=True)
    if not (folder / "local-ca.pem").is_file():
        ca = trustme.CA()
        ca.private_key_pem.write_to_path(str(folder / "local-ca.key"))
        (folder / "local-ca.key").chmod(0o600)
        ca.cert_pem.write_to_path(str(folder / "local-ca.pem"))
    os.environ["OXOFLOW_LOCAL_CA_DIR"] = str(folder)


def stack_ssm(stack: Any) -> Any:
    import boto3

    return boto3.client("ssm", region_name=REGION)


def local_environment(stack: Any, endpoint: str, ca_file: str, receiver_url: str, ingest_url: str, paths: Paths) -> dict[str, str]:
    """The stack's outputs and parameters as a deployed stack's `oxoflow-notify env` gives them, plus
    what reaching it locally takes: the endpoint, dummy credentials, the receivers' CA."""
    from oxoflow_notify.tools.stackenv import stack_environment

    from .stack import LOCAL_ALLOWLIST

    outputs = {
        "TopicArn": stack.topic_arn,
        "ConfigBucketName": stack.bucket,
        "RetryQueueUrl": stack.retry_queue_url,
        "DeadLetterQueueUrl": stack.dead_letter_queue_url,
        "DeliveryLedgerName": stack.physical["DeliveryLedger"]["Ref"],
        "DeliveryLogName": stack.physical["DeliveryLog"]["Ref"],
        "IngestUrl": ingest_url,
    }
    parameters = {name: str(spec.get("Default", "")) for name, spec in stack.template.get("Parameters", {}).items()}
    parameters.update({"TargetAllowlist": LOCAL_ALLOWLIST, "RetrySchedule": LOCAL_RETRY_SCHEDULE})
    env = stack_environment(outputs, parameters, REGION)
    env.update({
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "SSL_CERT_FILE": ca_file,  # replay posts to the local receiver, whose certificate this CA signed
        "OXOFLOW_LOCAL_CA": ca_file,
        "OXOFLOW_LOCAL_RECEIVER_URL": receiver_url,
        "OXOFLOW_LOCAL_RECEIVED": str(paths.received),
        "OXOFLOW_LOCAL_INGEST_SECRET_FILE": str(paths.ingest_secret),
    })  # fmt: skip
    return env


class Pump:
    """Lambda's event sources: the topic to the dispatcher (asynchronous invocation), the retry
    queue to the retry function (SQS event source mapping with partial batch responses)."""

    def __init__(self, stack: Any, lock: threading.Lock, stop: threading.Event) -> None:
        self.stack, self.lock, self.stop = stack, lock, stop
        self.pending: list[tuple[float, dict[str, Any], int]] = []  # (due, SNS envelope, attempt) for async retries

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                busy = self.dispatch_published() + self.dispatch_due() + self.retry_batch()
            except Exception as exc:  # noqa: BLE001 - the stack stays up; the cause goes to the log
                print(f"pump: {type(exc).__name__}: {exc}", flush=True)
                busy = 0
            if not busy:
                self.stop.wait(0.2)

    def dispatch_published(self) -> int:
        batch = self.stack.receive(self.stack.tap_url)
        for message in batch:
            self.invoke_dispatch(json.loads(message["Body"]), attempt=1)
            self.stack.sqs.delete_message(QueueUrl=self.stack.tap_url, ReceiptHandle=message["ReceiptHandle"])
        return len(batch)

    def dispatch_due(self) -> int:
        now = time.monotonic()
        due = [p for p in self.pending if p[0] <= now]
        self.pending = [p for p in self.pending if p[0] > now]
        for _, envelope, attempt in due:
            self.invoke_dispatch(envelope, attempt)
        return len(due)

    def invoke_dispatch(self, envelope: dict[str, Any], attempt: int) -> None:
        from .stack import sns_event

        event = sns_event(envelope)
        try:
            with self.lock:
                result = self.stack.invoke("DispatchFunction", event)
            print(f"dispatch {envelope['MessageId']}: {json.dumps(result)}", flush=True)
        except Exception as exc:  # noqa: BLE001 - Lambda's asynchronous invocation: retry, then on-failure record
            print(f"dispatch {envelope['MessageId']} failed (try {attempt} of 3): {type(exc).__name__}: {exc}", flush=True)
            if attempt <= len(ASYNC_RETRY_DELAYS):
                self.pending.append((time.monotonic() + ASYNC_RETRY_DELAYS[attempt - 1], envelope, attempt + 1))
            else:
                self.stack.sqs.send_message(
                    QueueUrl=self.stack.dead_letter_queue_url, MessageBody=json.dumps(on_failure_record(event, exc))
                )

    def retry_batch(self) -> int:
        batch = self.stack.receive(self.stack.retry_queue_url)
        if not batch:
            return 0
        with self.lock:
            failed = self.stack._retry_batch("RetryFunction", batch, None, (Exception,))
        for message in failed:  # back after a (compressed) visibility timeout; the redrive policy counts receives
            self.stack.sqs.change_message_visibility(
                QueueUrl=self.stack.retry_queue_url, ReceiptHandle=message["ReceiptHandle"], VisibilityTimeout=RETRY_VISIBILITY_SECONDS
            )
        print(f"retry: {len(batch)} records, {len(failed)} to come back", flush=True)
        return len(batch)


def on_failure_record(event: dict[str, Any], exc: BaseException) -> dict[str, Any]:
    """What Lambda's on-failure destination writes after the last asynchronous try failed."""
    return {
        "version": "1.0",
        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()),
        "requestContext": {
            "requestId": secrets.token_hex(16),
            "functionArn": f"arn:aws:lambda:{REGION}:123456789012:function:oxoflow-local-DispatchFunction:$LATEST",
            "condition": "RetriesExhausted",
            "approximateInvokeCount": 1 + len(ASYNC_RETRY_DELAYS),
        },
        "requestPayload": event,
        "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
        "responsePayload": {"errorType": type(exc).__name__, "errorMessage": str(exc)[:1000]},
    }


class _HttpsServer:
    """A loopback HTTPS server whose certificate (localhost) chains to the stack's CA."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], name: str) -> None:
        from .receivers import _Server, local_ca

        context = local_ca().server_context()

        class Secure(_Server):
            def get_request(self) -> tuple[socket.socket, Any]:
                sock, address = super().get_request()
                return context.wrap_socket(sock, server_side=True), address

        self._server = Secure(("127.0.0.1", 0), handler)
        self.name = name

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def start(self) -> Any:
        threading.Thread(target=self._server.serve_forever, args=(0.1,), name=self.name, daemon=True).start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SampleReceiver(_HttpsServer):
    """Prints (to ``received.jsonl``) every request it gets; answers by path."""

    def __init__(self, record: Path) -> None:
        lock = threading.Lock()

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                status, answer = answer_for(self.path)
                line = {"at": time.time(), "method": self.command, "path": self.path, "status": status,
                        "headers": dict(self.headers.items()), "body": body.decode("utf-8", "replace")}  # fmt: skip
                with lock, record.open("a", encoding="utf-8") as out:
                    out.write(json.dumps(line) + "\n")
                self.send_response(status)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            do_PUT = do_POST

        super().__init__(Handler, "sample-receiver")

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/hook/sample"


def answer_for(path: str) -> tuple[int, bytes]:
    if path.startswith("/broken/"):
        return 404, b"no such hook"
    if path.startswith("/fail/"):
        return 503, b"temporarily unavailable"
    if path.startswith("/hook/"):
        return 200, b"ok"
    return 404, b"no such hook (the sample receiver answers /hook/..., /broken/... and /fail/...)"


class IngestUrl(_HttpsServer):
    """The ingest function's Function URL: each request becomes the payload-2.0 event Lambda builds."""

    def __init__(self, stack: Any, lock: threading.Lock) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                pass

            def _any(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with lock:
                    result = stack.invoke("IngestFunction", function_url_event(self.command, self.path, dict(self.headers.items()), body))
                payload = str(result.get("body") or "").encode()
                self.send_response(int(result.get("statusCode", 200)))
                for name, value in (result.get("headers") or {}).items():
                    self.send_header(name, str(value))
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            do_POST = do_GET = do_PUT = do_DELETE = do_PATCH = _any

        super().__init__(Handler, "ingest-url")

    @property
    def url(self) -> str:
        return f"https://localhost:{self.port}/"


def function_url_event(method: str, path: str, headers: dict[str, str], body: bytes) -> dict[str, Any]:
    """A Lambda Function URL request (payload format 2.0), as AWS builds it."""
    raw_path, _, query = path.partition("?")
    try:
        text, encoded = body.decode("utf-8"), False
    except UnicodeDecodeError:
        text, encoded = base64.b64encode(body).decode("ascii"), True
    return {
        "version": "2.0",
        "routeKey": "$default",
        "rawPath": raw_path,
        "rawQueryString": query,
        "headers": {name.lower(): value for name, value in headers.items()},
        "requestContext": {
            "accountId": "anonymous",
            "domainName": "localhost",
            "http": {
                "method": method,
                "path": raw_path,
                "protocol": "HTTP/1.1",
                "sourceIp": "127.0.0.1",
                "userAgent": headers.get("User-Agent", ""),
            },
            "requestId": secrets.token_hex(16),
            "routeKey": "$default",
            "stage": "$default",
            "timeEpoch": int(time.time() * 1000),
        },
        "body": text,
        "isBase64Encoded": encoded,
    }


# -- entry point ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="make up", description="A local oxoflow-notify stack on loopback (moto, the functions, receivers)."
    )
    parser.add_argument("command", choices=["up", "down", "env", "serve", "status"])
    parser.add_argument(
        "--state-dir", default=os.environ.get("OXOFLOW_LOCAL_STATE", str(DEFAULT_STATE)), help="where the stack keeps its files"
    )
    parser.add_argument("--port", type=int, default=DEFAULT_PORT, help="moto's port (0: any free port; a busy one is replaced)")
    args = parser.parse_args(argv)
    paths = Paths(Path(args.state_dir).resolve())
    commands = {
        "up": lambda: up(paths, args.port),
        "down": lambda: down(paths),
        "env": lambda: show_env(paths),
        "status": lambda: status(paths),
        "serve": lambda: serve(paths, args.port),
    }
    try:
        return commands[args.command]()
    except BrokenPipeError:  # `make -s env | head`
        return 0


def status(paths: Paths) -> int:
    pid = running(paths)
    print(f"up (pid {pid})" if pid else "down")
    return 0 if pid else 1


if __name__ == "__main__":
    here = str(Path(__file__).resolve().parent)
    sys.path[:] = [p for p in sys.path if p != here]  # as a package module, not as loose files
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
    from oxolocal.local import main as _main  # the package's own module, so relative imports work

    sys.exit(_main())
