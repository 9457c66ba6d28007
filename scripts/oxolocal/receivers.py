"""Real webhook receivers on loopback, as real ones are: HTTPS on a hostname, some hostile.

Each receiver serves TLS for ``localhost`` (and ``127.0.0.1``, ``::1``) with a certificate from a
throwaway CA made by trustme; the process that posts to it trusts that CA through
``SSL_CERT_FILE`` (``trust_local_ca()``), exactly as a private-CA user would, with certificate
and hostname checks on. It records the SNI of every handshake and every request it got (method,
path, headers, exact body bytes), and answers according to its behaviour: succeed, verify a
signature, fail the first N times, always fail, stall past the client's timeout, drip its answer
a byte at a time, reset the connection, or rate-limit with Retry-After. A receiver can also
present a certificate for another name, from an untrusted CA, or expired; or serve plain http.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import os
import socket
import ssl
import struct
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import cache
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import trustme

LOCAL_NAMES = ("localhost", "127.0.0.1", "::1")


@dataclass(frozen=True)
class LocalCA:
    """A throwaway CA, its certificate on disk for SSL_CERT_FILE, and a leaf for localhost."""

    ca: trustme.CA
    ca_file: str
    leaf: trustme.LeafCert

    def server_context(self, leaf: trustme.LeafCert | None = None) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        (leaf or self.leaf).configure_cert(context)
        return context


@cache
def local_ca() -> LocalCA:
    """One CA per process tree: every receiver's certificate chains to it. The CA is written to a
    throwaway folder named in OXOFLOW_LOCAL_CA_DIR, so child processes (receivers in a bench
    subprocess, a script run by a test) load the same one instead of making another."""
    folder = os.environ.get("OXOFLOW_LOCAL_CA_DIR", "")
    cert_path, key_path = os.path.join(folder, "local-ca.pem"), os.path.join(folder, "local-ca.key")
    if folder and os.path.isfile(cert_path) and os.path.isfile(key_path):
        with open(cert_path, "rb") as cert, open(key_path, "rb") as key:
            ca = trustme.CA.from_pem(cert.read(), key.read())
    else:
        ca = trustme.CA()
        folder = tempfile.mkdtemp(prefix="oxoflow-ca-")
        cert_path, key_path = os.path.join(folder, "local-ca.pem"), os.path.join(folder, "local-ca.key")
        ca.cert_pem.write_to_path(cert_path)
        ca.private_key_pem.write_to_path(key_path)
        os.environ["OXOFLOW_LOCAL_CA_DIR"] = folder
    return LocalCA(ca, cert_path, ca.issue_cert(*LOCAL_NAMES))


def trust_local_ca(env: dict[str, str] | None = None) -> str:
    """Make this process (or the given environment) trust the local CA, as a private-CA user does."""
    path = local_ca().ca_file
    (os.environ if env is None else env)["SSL_CERT_FILE"] = path
    return path


def wrong_name_cert() -> trustme.LeafCert:
    """Chains to the trusted local CA, but for another name."""
    return local_ca().ca.issue_cert("other.example")


def untrusted_cert() -> trustme.LeafCert:
    """For localhost, from a CA nobody trusts."""
    return trustme.CA().issue_cert(*LOCAL_NAMES)


def expired_cert() -> trustme.LeafCert:
    """For localhost, from the trusted CA, expired yesterday."""
    now = datetime.datetime.now(datetime.UTC)
    return local_ca().ca.issue_cert(*LOCAL_NAMES, not_before=now - datetime.timedelta(days=30), not_after=now - datetime.timedelta(days=1))


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
    action: str | None = None  # "reset": close without answering; "stall": sleep first; "drip": a byte at a time
    stall_seconds: float = 0.0  # for "drip": the pause between bytes
    delay: float = 0.0  # answer normally, but only after this many seconds (a 2xx the client may no longer wait for)
    interim: tuple[int, ...] = ()  # interim answers sent first (102 Processing, 103 Early Hints), `delay` before the final one


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


def drip(interval: float = 0.5) -> Behaviour:
    """Answers 200, one byte of the status line every ``interval`` seconds: each read is quick,
    the whole answer takes for ever."""
    return lambda n, r: Answer(action="drip", stall_seconds=interval)


def reset() -> Behaviour:
    return lambda n, r: Answer(action="reset")


def rate_limit(times: int, retry_after: str = "1") -> Behaviour:
    return lambda n, r: Answer(429, b"slow down", {"Retry-After": retry_after}) if n < times else Answer(200)


def slack_like(per_second: float = 1.0, burst: int = 1, retry_after: str = "1") -> Behaviour:
    """Enforces a rate the way Slack does: more than ``per_second`` (plus ``burst``) requests within
    any one second get 429 with Retry-After. Arrival times are what the receiver saw."""
    arrivals: list[float] = []

    def behave(n: int, r: Received) -> Answer:
        arrivals.append(r.at)  # the receiver calls behaviours under its lock: arrivals are in order
        recent = [t for t in arrivals if r.at - t < 1.0]
        if len(recent) > per_second + burst:
            return Answer(429, b"rate_limited", {"Retry-After": retry_after})
        return Answer(200, b"ok")

    return behave


class PagerDutyLike:
    """PagerDuty's Events API v2 as a receiver sees it: an event the API would refuse gets 400
    {"status": "invalid event", "errors": [...]}; an accepted one 202 {"status": "success",
    "message": "Event processed", "dedup_key": ...}. Incidents are deduplicated by dedup_key as
    PagerDuty does: a trigger opens one (or adds to the open one), a resolve closes it (and is
    accepted, changing nothing, when none is open). ``opened`` counts incidents ever opened."""

    def __init__(self) -> None:
        self.incidents: dict[str, str] = {}  # dedup_key -> "triggered" | "resolved"
        self.opened = 0
        self.alerts: dict[str, int] = {}  # dedup_key -> triggers received while open

    def __call__(self, n: int, r: Received) -> Answer:
        from .shapes import pagerduty

        try:
            event = json.loads(r.body)
        except ValueError:
            event = None
        problems = pagerduty(event, r.body, placeholder_ok=False) if isinstance(event, dict) else ["not a JSON object"]
        if problems:
            refusal = {"status": "invalid event", "message": "Event object is invalid", "errors": problems}
            return Answer(400, json.dumps(refusal).encode(), {"Content-Type": "application/json"})
        key, action = event["dedup_key"], event["event_action"]
        if action == "trigger":
            if self.incidents.get(key) != "triggered":
                self.incidents[key] = "triggered"
                self.opened += 1
            self.alerts[key] = self.alerts.get(key, 0) + 1
        elif action == "resolve" and self.incidents.get(key) == "triggered":
            self.incidents[key] = "resolved"
        accepted = {"status": "success", "message": "Event processed", "dedup_key": key}
        return Answer(202, json.dumps(accepted).encode(), {"Content-Type": "application/json"})


class DiscordMessages:
    """A Discord webhook's message API as a receiver sees it: ``POST ?wait=true`` creates a message
    and answers it (``id``: a snowflake), without ``wait`` 204; ``PATCH .../messages/{id}`` edits
    one (404 ``{"code": 10008}`` for a message that does not exist, or was deleted). Bodies are
    checked as Discord checks them (400 code 50035). More than ``per_two_seconds`` requests within
    any two seconds get 429 with ``retry_after`` in JSON and Retry-After, as Discord's webhook bucket
    does. ``messages`` holds each message as it is now; ``edits`` every state each one went through."""

    def __init__(self, per_two_seconds: int = 5) -> None:
        self.per_two_seconds = per_two_seconds
        self.messages: dict[str, dict[str, Any]] = {}
        self.edits: dict[str, list[dict[str, Any]]] = {}
        self.arrivals: list[float] = []
        self.limited = 0
        self.fail: dict[int, int] = {}  # request number -> a status to answer it with instead (faults a test injects)
        self._next = 1_100_000_000_000_000_000

    def delete(self, message_id: str) -> None:
        self.messages.pop(message_id, None)

    def __call__(self, n: int, r: Received) -> Answer:
        from .shapes import problems_of

        if n in self.fail:
            return Answer(self.fail[n], b'{"message": "injected", "code": 0}')
        self.arrivals.append(r.at)
        if len([t for t in self.arrivals if r.at - t < 2.0]) > self.per_two_seconds:
            self.limited += 1
            body = {"message": "You are being rate limited.", "retry_after": 1.0, "global": False}
            return Answer(429, json.dumps(body).encode(), {"Retry-After": "1", "Content-Type": "application/json"})
        problems = problems_of("discord", r.body)
        if problems:
            return Answer(400, json.dumps({"code": 50035, "message": "Invalid Form Body", "errors": problems}).encode())
        path, _, query = r.path.partition("?")
        if r.method == "PATCH":
            message_id = path.rsplit("/messages/", 1)[-1]
            if message_id not in self.messages:
                return Answer(404, json.dumps({"message": "Unknown Message", "code": 10008}).encode())
        elif r.method == "POST" and "/messages/" not in path:
            self._next += 1
            message_id = str(self._next)
        else:
            return Answer(405, json.dumps({"message": "405: Method Not Allowed", "code": 0}).encode())
        message = {**json.loads(r.body), "id": message_id}
        self.messages[message_id] = message
        self.edits.setdefault(message_id, []).append(message)
        if r.method == "POST" and "wait=true" not in query:
            return Answer(204, b"")
        return Answer(200, json.dumps(message).encode(), {"Content-Type": "application/json"})


class SlackWebApi:
    """Slack's chat.postMessage and chat.update as a receiver sees them: a bearer ``token`` and a
    ``channel`` it knows, else HTTP 200 ``{"ok": false, "error": "invalid_auth" | "channel_not_found"}``;
    a post answers ``ts``; a post with ``thread_ts`` is a reply in that message's thread; an update of
    a ``ts`` it does not have (or that was deleted) answers ``message_not_found``. Bodies are checked
    as Slack checks blocks (``invalid_blocks``). chat.update past ``updates_per_minute`` within any
    minute, and more than ``posts_per_second`` posts (plus a ``burst``, as Slack allows short ones)
    in any second, get HTTP 429 with Retry-After."""

    def __init__(self, token: str, channel: str, updates_per_minute: int = 50, posts_per_second: int = 1, burst: int = 1) -> None:
        self.token, self.channel = token, channel
        self.updates_per_minute, self.posts_per_second = updates_per_minute, posts_per_second + burst
        self.messages: dict[str, dict[str, Any]] = {}
        self.edits: dict[str, list[dict[str, Any]]] = {}
        self.threads: dict[str, list[dict[str, Any]]] = {}
        self.updates: list[float] = []
        self.posts: list[float] = []
        self.limited = 0
        self.fail: dict[int, str] = {}  # request number -> an error code to answer it with instead (faults a test injects)
        self._next = 0

    def delete(self, ts: str) -> None:
        self.messages.pop(ts, None)

    @staticmethod
    def _ok(**fields: Any) -> Answer:
        return Answer(200, json.dumps({"ok": True, **fields}).encode(), {"Content-Type": "application/json; charset=utf-8"})

    @staticmethod
    def _error(code: str) -> Answer:
        return Answer(200, json.dumps({"ok": False, "error": code}).encode(), {"Content-Type": "application/json; charset=utf-8"})

    def __call__(self, n: int, r: Received) -> Answer:
        from .shapes import problems_of

        method = r.path.partition("?")[0].rsplit("/", 1)[-1]
        if n in self.fail:
            return self._error(self.fail[n])
        if r.header("Authorization") != f"Bearer {self.token}":
            return self._error("invalid_auth")
        try:
            payload = json.loads(r.body)
        except ValueError:
            return self._error("invalid_json")
        if payload.get("channel") != self.channel:
            return self._error("channel_not_found")
        updating = method == "chat.update"
        window, limit = (self.updates, (60.0, self.updates_per_minute)) if updating else (self.posts, (1.0, self.posts_per_second))
        window.append(r.at)
        if len([t for t in window if r.at - t < limit[0]]) > limit[1]:
            self.limited += 1
            return Answer(429, b"", {"Retry-After": "1"})
        if problems_of("slack", r.body):
            return self._error("invalid_blocks")
        if method == "chat.postMessage":
            self._next += 1
            ts = f"{1_900_000_000 + self._next}.{self._next:06d}"
            thread = payload.get("thread_ts")
            if thread is not None:
                if thread not in self.messages:
                    return self._error("thread_not_found")
                self.threads.setdefault(thread, []).append(payload)
            else:
                self.messages[ts] = payload
                self.edits[ts] = [payload]
            return self._ok(channel=self.channel, ts=ts)
        if method == "chat.update":
            ts = payload.get("ts")
            if ts not in self.messages:
                return self._error("message_not_found")
            self.messages[ts] = payload
            self.edits[ts].append(payload)
            return self._ok(channel=self.channel, ts=ts)
        return self._error("unknown_method")


def most_in_any_second(times: list[float]) -> int:
    """The most arrivals within any one-second span (a sliding window, not calendar seconds)."""
    ordered = sorted(times)
    most, start = 0, 0
    for end, t in enumerate(ordered):
        while t - ordered[start] >= 1.0:
            start += 1
        most = max(most, end - start + 1)
    return most


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:  # quiet: refused handshakes are expected
        pass


class _Server6(_Server):
    address_family = socket.AF_INET6


class Receiver:
    """One loopback receiver, HTTPS by default. Use as a context manager or call start()/stop().

    ``tls=False`` serves plain http; ``certificate`` replaces the localhost certificate (wrong
    name, untrusted, expired); ``ipv6=True`` listens on ``::1`` instead of 127.0.0.1;
    ``tickets=False`` issues no TLS session tickets (no client can resume a session);
    ``max_tls`` caps the TLS version it speaks (TLS 1.2, as older receivers do)."""

    def __init__(
        self,
        behaviour: Behaviour | None = None,
        name: str = "receiver",
        tls: bool = True,
        certificate: trustme.LeafCert | None = None,
        ipv6: bool = False,
        tickets: bool = True,
        max_tls: ssl.TLSVersion | None = None,
    ) -> None:
        self.behaviour = behaviour or ok()
        self.name = name
        self.tls = tls
        self.ipv6 = ipv6
        self.requests: list[Received] = []
        self.handshakes: list[str | None] = []  # the SNI of every completed TLS handshake
        self.resumed = 0  # handshakes that resumed a session instead of a full handshake
        self.refused_handshakes = 0
        self.connections = 0
        self._lock = threading.Lock()
        receiver = self
        context = local_ca().server_context(certificate) if tls else None
        if context is not None:
            context.sni_callback = self._record_sni
            if not tickets:
                context.num_tickets = 0  # TLS 1.3
                context.options |= ssl.OP_NO_TICKET  # TLS 1.2
            if max_tls is not None:
                context.maximum_version = max_tls

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"  # keep-alive, like real receivers
            # Headers and body go out in separate writes; without TCP_NODELAY the second waits for
            # the client's delayed ACK (40 ms) on every keep-alive request.
            disable_nagle_algorithm = True

            def setup(self) -> None:
                with receiver._lock:
                    receiver.connections += 1
                if context is not None:
                    # The handshake runs in this connection's thread: a slow client stalls no one else.
                    self.request.settimeout(10)
                    try:
                        self.request = context.wrap_socket(self.request, server_side=True)
                    except (ssl.SSLError, OSError):
                        with receiver._lock:
                            receiver.refused_handshakes += 1
                        raise
                    self.request.settimeout(None)
                    with receiver._lock:
                        receiver.handshakes.append(getattr(self.request, "sni", None))
                        receiver.resumed += int(self.request.session_reused)
                super().setup()

            def log_message(self, format: str, *args: Any) -> None:  # quiet
                pass

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else b""
                receiver._handle(self, body)

            do_PUT = do_POST
            do_PATCH = do_POST

        server_class = _Server6 if ipv6 else _Server
        self._server = server_class(("::1" if ipv6 else "127.0.0.1", 0), Handler)
        self._thread: threading.Thread | None = None

    @staticmethod
    def _record_sni(sock: Any, server_name: str | None, context: ssl.SSLContext) -> None:
        sock.sni = server_name

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """``https://localhost:PORT/hook/NAME`` (``https://[::1]:PORT/...`` for IPv6), or plain http."""
        if not self.tls:
            return f"http://{'[::1]' if self.ipv6 else 'localhost'}:{self.port}/hook/{self.name}"
        return f"https://{'[::1]' if self.ipv6 else 'localhost'}:{self.port}/hook/{self.name}"

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
        if answer.action == "drip":
            handler.close_connection = True
            try:
                for byte in b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok":
                    handler.wfile.write(bytes([byte]))
                    handler.wfile.flush()
                    time.sleep(answer.stall_seconds)
            except OSError:
                pass  # the client gave up, as it should
            return
        try:
            for status in answer.interim:
                handler.wfile.write(f"HTTP/1.1 {status} Interim\r\n\r\n".encode())
            if answer.delay:
                time.sleep(answer.delay)
            handler.send_response(answer.status)
            for key, value in answer.headers.items():
                handler.send_header(key, value)
            handler.send_header("Content-Length", str(len(answer.body)))
            handler.end_headers()
            handler.wfile.write(answer.body)
        except OSError:
            handler.close_connection = True  # the client gave up waiting: the answer went nowhere

    def start(self) -> Receiver:
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), name=f"receiver-{self.name}", daemon=True)
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
        if fmt == "pagerduty":
            return PagerDutyLike()(n, r)
        if fmt == "teams":
            return Answer(400, b"Bad payload received by generic incoming webhook.") if problems else Answer(202, b"")
        return Answer(400, "; ".join(problems).encode()) if problems else Answer(200, b"ok")

    return behave
