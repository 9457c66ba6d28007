"""Real HTTP webhook receivers on 127.0.0.1, including ones that misbehave on purpose.

Each receiver records every request it got (method, path, headers, exact body bytes) and answers
according to its behaviour: succeed, verify a signature, fail the first N times, always fail,
stall past the client's timeout, reset the connection, or rate-limit with Retry-After.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass(frozen=True)
class Received:
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    at: float
    answered: int | str  # status code, or "reset" / "stall"

    def header(self, name: str) -> str | None:
        lowered = {k.lower(): v for k, v in self.headers.items()}
        return lowered.get(name.lower())


@dataclass(frozen=True)
class Answer:
    status: int = 200
    body: bytes = b"ok"
    headers: dict[str, str] = field(default_factory=dict)
    action: str | None = None  # "reset" closes the socket without answering; "stall" sleeps first
    stall_seconds: float = 0.0


Behaviour = Callable[[int, "Received"], Answer]


def ok(status: int = 200, body: bytes = b"ok") -> Behaviour:
    return lambda n, r: Answer(status, body)


def verify_hub(secret: str) -> Behaviour:
    """Checks X-Hub-Signature-256 the way a receiver would (independent of our signing module)."""

    def behave(n: int, r: Received) -> Answer:
        expected = "sha256=" + hmac.new(secret.encode(), r.body, hashlib.sha256).hexdigest()
        good = hmac.compare_digest(expected, r.header("X-Hub-Signature-256") or "")
        return Answer(200, b"verified") if good else Answer(401, b"bad signature")

    return behave


def fail_first(times: int, status: int = 503, then: Behaviour | None = None) -> Behaviour:
    after = then or ok()
    return lambda n, r: Answer(status, b"try later") if n < times else after(n, r)


def always(status: int, body: bytes = b"no") -> Behaviour:
    return lambda n, r: Answer(status, body)


def stall(seconds: float) -> Behaviour:
    return lambda n, r: Answer(action="stall", stall_seconds=seconds)


def reset() -> Behaviour:
    return lambda n, r: Answer(action="reset")


def rate_limit(times: int, retry_after: str = "1") -> Behaviour:
    return lambda n, r: Answer(429, b"slow down", {"Retry-After": retry_after}) if n < times else Answer(200)


class Receiver:
    """One loopback HTTP server. Use as a context manager or call start()/stop()."""

    def __init__(self, behaviour: Behaviour | None = None, name: str = "receiver") -> None:
        self.behaviour = behaviour or ok()
        self.name = name
        self.requests: list[Received] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real receivers
            # Headers and body go out in separate writes; without TCP_NODELAY the second waits for
            # the client's delayed ACK (40 ms) on every keep-alive request.
            disable_nagle_algorithm = True

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._handle(self, body)

            do_PUT = do_POST

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}/hook/{self.name}"

    def _handle(self, handler: BaseHTTPRequestHandler, body: bytes) -> None:
        with self._lock:
            n = len(self.requests)
            probe = Received(handler.command, handler.path, dict(handler.headers.items()), body, time.time(), 0)
            answer = self.behaviour(n, probe)
            answered: int | str = answer.action or answer.status
            self.requests.append(Received(probe.method, probe.path, probe.headers, body, probe.at, answered))
        if answer.action == "reset":
            # SO_LINGER 0: close with RST, as a crashed or hostile peer does.
            handler.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            handler.connection.close()
            handler.close_connection = True
            return
        if answer.action == "stall":
            time.sleep(answer.stall_seconds)
            handler.close_connection = True
            return
        handler.send_response(answer.status)
        for key, value in answer.headers.items():
            handler.send_header(key, value)
        handler.send_header("Content-Length", str(len(answer.body)))
        handler.end_headers()
        handler.wfile.write(answer.body)

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, name=f"receiver-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> Receiver:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def successes(self) -> list[Received]:
        return [r for r in self.requests if isinstance(r.answered, int) and 200 <= r.answered < 300]


def service(fmt: str) -> Behaviour:
    """Answers like the real service for that format: its success answer when the payload has
    the shape the service requires, its documented error answer when it does not."""
    from .shapes import problems_of

    def behave(n: int, r: Received) -> Answer:
        problems = problems_of(fmt, r.body)
        if fmt == "slack":
            return Answer(400, b"invalid_payload") if problems else Answer(200, b"ok")
        if fmt == "discord":
            return Answer(400, json.dumps({"code": 50035, "message": "; ".join(problems)}).encode()) if problems else Answer(204, b"")
        if fmt == "teams":
            return Answer(400, b"Bad payload received by generic incoming webhook.") if problems else Answer(202, b"")
        return Answer(400, "; ".join(problems).encode()) if problems else Answer(200, b"ok")

    return behave
