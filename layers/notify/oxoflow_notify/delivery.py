"""Build the HTTP request for one (event, webhook) and POST it; classify what came back.

Errors are reduced to a short class name ("read_timeout", "connection_refused", ...): the
exception text of an HTTP client quotes the URL, and the URL may be a secret.
"""

from __future__ import annotations

import socket
import ssl
import time
import uuid
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from http.client import RemoteDisconnected
from typing import Any
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter

from . import USER_AGENT
from .config import Webhook
from .events import Event
from .formats import render
from .guard import BlockedTarget, TargetGuard, guarded_pool_classes
from .signing import SIGNATURE_HEADER, hub_signature, standard_headers

SUCCESS = "success"
RETRYABLE = "retryable"
PERMANENT = "permanent"
# Refusals of ours: retrying cannot help, the config must change.
PERMANENT_ERRORS = frozenset({"blocked_target", "https_required", "unresolvable_reference"})
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))
_DELIVERY_NAMESPACE = uuid.UUID("6b7f0d1e-4c1a-5b8e-9d0f-0a0f10f10f10")
RESPONSE_SNIPPET = 512


def delivery_id_for(event_id: str, config_key: str, webhook_id: str) -> str:
    """Deterministic, so a redelivered SNS message or a retry carries the same id."""
    return str(uuid.uuid5(_DELIVERY_NAMESPACE, f"{event_id}\n{config_key}\n{webhook_id}"))


@dataclass(frozen=True)
class Prepared:
    """One POST ready to send. Holds the URL, so it is never logged or queued as a whole."""

    webhook: Webhook
    event: Event
    delivery_id: str
    attempt: int
    body: bytes
    headers: dict[str, str]


def prepare(event: Event, webhook: Webhook, delivery_id: str, attempt: int, now: float | None = None) -> Prepared:
    """Render, sign and build the headers. The Standard Webhooks id is the delivery id (stable
    across retries: the receiver's idempotency key); its timestamp is this attempt's."""
    body = render(event, webhook.format)
    headers = {
        **dict(webhook.headers),
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        "X-OxoFlow-Event": event.event,
        "X-OxoFlow-Delivery": delivery_id,
        "X-OxoFlow-Attempt": str(attempt),
    }
    if webhook.secret:
        headers[SIGNATURE_HEADER] = hub_signature(webhook.secret, body)
    if webhook.standard_webhooks:
        headers.update(standard_headers(webhook.secrets, delivery_id, int(time.time() if now is None else now), body))
    return Prepared(webhook, event, delivery_id, attempt, body, headers)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: str | None
    latency_ms: float
    retry_after: str | None = None
    snippet: str = ""  # start of the response body, for receivers that explain themselves
    detail: str | None = None  # why a delivery was refused before sending (safe to log)

    @property
    def verdict(self) -> str:
        if self.error in PERMANENT_ERRORS:
            return PERMANENT
        if self.error is not None or self.status is None:
            return RETRYABLE
        if 200 <= self.status < 300:
            return SUCCESS
        if self.status in RETRYABLE_STATUS:
            return RETRYABLE
        return PERMANENT

    def describe(self) -> str:
        if self.detail:
            return self.detail
        if self.error is not None:
            return self.error.replace("_", " ")
        assert self.status is not None
        if 300 <= self.status < 400:
            return f"HTTP {self.status} (redirects are not followed)"
        return f"HTTP {self.status}"


def error_class(exc: BaseException) -> str:
    """Name a transport failure without quoting its message (which contains the URL)."""
    if isinstance(exc, requests.exceptions.ConnectTimeout):
        return "connect_timeout"
    if isinstance(exc, requests.exceptions.ReadTimeout):
        return "read_timeout"
    if isinstance(exc, requests.exceptions.SSLError):
        return "tls_error"
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        if isinstance(current, BlockedTarget):
            return "blocked_target"
        if isinstance(current, socket.gaierror) or type(current).__name__ == "NameResolutionError":
            return "dns_failure"
        if isinstance(current, ConnectionRefusedError):
            return "connection_refused"
        if isinstance(current, (ConnectionResetError, RemoteDisconnected, BrokenPipeError)):
            return "connection_reset"
        if isinstance(current, ssl.SSLError):
            return "tls_error"
        if isinstance(current, (socket.timeout, TimeoutError)):
            return "read_timeout"
        stack.extend([current.__cause__, current.__context__, *[a for a in current.args if isinstance(a, BaseException)]])
        reason = getattr(current, "reason", None)
        if isinstance(reason, BaseException):
            stack.append(reason)
    if isinstance(exc, requests.exceptions.ConnectionError):
        text = repr(exc.args)
        if "RemoteDisconnected" in text or "Connection aborted" in text:
            return "connection_reset"
        return "connection_error"
    return "request_error"


def blocked_reason(exc: BaseException) -> str | None:
    """The guard's explanation, from anywhere in an exception's chain."""
    current: BaseException | None = exc
    for _ in range(10):
        if current is None:
            return None
        if isinstance(current, BlockedTarget):
            return str(current)
        current = current.__cause__ or current.__context__
    return None


class GuardedAdapter(HTTPAdapter):
    """requests' adapter, with connection pools that dial only addresses the guard vetted."""

    def __init__(self, guard: TargetGuard, **kwargs: Any) -> None:
        self.guard = guard
        super().__init__(**kwargs)

    def init_poolmanager(self, *args: Any, **kwargs: Any) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = guarded_pool_classes(self.guard)


class HttpSender:
    """Pooled keep-alive POSTs, many at once. One per container: connections outlive invocations."""

    def __init__(
        self,
        connect_timeout: float = 3.05,
        read_timeout: float = 10.0,
        max_concurrency: int = 32,
        guard: TargetGuard | None = None,
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.max_concurrency = max_concurrency
        self.guard = guard or TargetGuard()
        self.session = requests.Session()
        self.session.trust_env = False  # no proxy or .netrc surprises: what the config says is what we call
        adapter = GuardedAdapter(self.guard, pool_connections=64, pool_maxsize=max_concurrency, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)
        self._executor: ThreadPoolExecutor | None = None

    def send(self, prepared: Prepared) -> Outcome:
        started = time.perf_counter()
        try:
            self.guard.check_scheme(urlsplit(prepared.webhook.url).scheme)
        except BlockedTarget as exc:
            return Outcome(None, "https_required", 0.0, detail=str(exc))
        try:
            response = self.session.post(
                prepared.webhook.url,
                data=prepared.body,
                headers=prepared.headers,
                timeout=(self.timeout[0], prepared.webhook.timeout or self.timeout[1]),
                allow_redirects=False,
                stream=True,
            )
        except requests.exceptions.RequestException as exc:
            return Outcome(None, error_class(exc), (time.perf_counter() - started) * 1000, detail=blocked_reason(exc))
        try:
            raw = response.raw.read(RESPONSE_SNIPPET, decode_content=True) or b""
        except Exception:  # noqa: BLE001 - a broken body does not change the status we got
            raw = b""
        finally:
            response.close()
        return Outcome(
            status=response.status_code,
            error=None,
            latency_ms=(time.perf_counter() - started) * 1000,
            retry_after=response.headers.get("Retry-After"),
            snippet=raw.decode("utf-8", "replace"),
        )

    def send_all(self, batch: Sequence[Prepared]) -> list[Outcome]:
        """All at once: the fan-out costs the slowest receiver, not the sum of them."""
        if len(batch) <= 1:
            return [self.send(p) for p in batch]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="deliver")
        return list(self._executor.map(self.send, batch))
