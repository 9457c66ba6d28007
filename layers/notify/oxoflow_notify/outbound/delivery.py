"""Build the HTTP request for one (event, webhook) and POST it; classify what came back.

Errors are reduced to a short class name ("read_timeout", "connection_refused", ...): the
exception text of an HTTP client quotes the URL, and the URL may be a secret.
"""

from __future__ import annotations

import hashlib
import re
import socket
import ssl
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, fields
from functools import lru_cache
from http.client import RemoteDisconnected
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import urlsplit

from urllib3 import PoolManager, Timeout
from urllib3.exceptions import (
    ConnectTimeoutError,
    HTTPError,
    LocationValueError,
    NameResolutionError,
    NewConnectionError,
    ProtocolError,
    ReadTimeoutError,
    SSLError,
)
from urllib3.util.url import Url, parse_url

from oxoflow_notify import USER_AGENT
from oxoflow_notify.config import Webhook
from oxoflow_notify.defaults import DEFAULTS
from oxoflow_notify.formats import render, render_incident
from oxoflow_notify.inbound.events import Event

if TYPE_CHECKING:
    from oxoflow_notify.inbound.digests import Digest

from .echoes import CLEAN_LIMIT, secrets_of
from .echoes import REDACTED as REDACTED  # where callers have always found it
from .failures import Failure
from .guard import BlockedTarget, InvalidHost, TargetGuard
from .signing import OXOFLOW_SIGNATURE_HEADER, SIGNATURE_HEADER, hmac_sha256_hex, standard_headers
from .transport import DeadlineExceeded, deadline, guarded_pool_classes, tls_context

# Why a certificate was refused, by OpenSSL's verify code (the message itself may quote names).
_TLS_REASONS: dict[int, tuple[Failure, str]] = {
    62: (Failure.TLS_WRONG_NAME, "TLS certificate is for another name (hostname mismatch)"),
    64: (Failure.TLS_WRONG_NAME, "TLS certificate is for another address (IP address mismatch)"),
    10: (Failure.TLS_EXPIRED, "TLS certificate has expired"),
    9: (Failure.TLS_EXPIRED, "TLS certificate is not yet valid"),
    18: (Failure.TLS_UNTRUSTED, "TLS certificate is self-signed (untrusted issuer)"),
    19: (Failure.TLS_UNTRUSTED, "TLS certificate chain has a self-signed root we do not trust (untrusted issuer)"),
    20: (Failure.TLS_UNTRUSTED, "TLS certificate is from an untrusted issuer (unable to get local issuer certificate)"),
    2: (Failure.TLS_UNTRUSTED, "TLS certificate is from an untrusted issuer (unable to get issuer certificate)"),
    21: (Failure.TLS_UNTRUSTED, "TLS certificate is from an untrusted issuer (unable to verify the first certificate)"),
}
RETRYABLE_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504}) | frozenset(range(505, 600))
_DELIVERY_NAMESPACE = uuid.UUID("6b7f0d1e-4c1a-5b8e-9d0f-0a0f10f10f10")
RESPONSE_SNIPPET = DEFAULTS.response_snippet
RESPONSE_LIMIT = DEFAULTS.response_limit


def delivery_id_for(event: Event, config_key: str, webhook_id: str) -> str:
    """Deterministic, so a redelivered SNS message or a retry carries the same id. It covers the
    event's content as well as its id: publishers choose ids, and a different event that reuses
    one (squatting it before the real one) is a delivery of its own, not "already delivered"."""
    return uuid5_text(_DELIVERY_NAMESPACE, f"{event.id}\n{event.digest}\n{config_key}\n{webhook_id}")


def uuid5_text(namespace: uuid.UUID, name: str) -> str:
    """``str(uuid.uuid5(namespace, name))`` (RFC 9562's name-based UUID, SHA-1), without building
    the UUID object: every delivery of every event makes one (a test checks it against uuid5)."""
    digest = bytearray(hashlib.sha1(namespace.bytes + name.encode("utf-8"), usedforsecurity=False).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x50  # version 5
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 4122 variant
    text = digest.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


@dataclass(frozen=True)
class Prepared:
    """One POST ready to send. Holds the URL, so it is never logged or queued as a whole."""

    webhook: Webhook
    event: Event | Digest
    delivery_id: str
    attempt: int
    body: bytes
    headers: dict[str, str]


def prepare(event: Event | Digest, webhook: Webhook, delivery_id: str, attempt: int, now: float | None = None) -> Prepared:
    """Render, sign and build the headers. The Standard Webhooks id is the delivery id (stable
    across retries: the receiver's idempotency key); its timestamp is this attempt's."""
    if webhook.format == "pagerduty" and event.event != "Digest":
        body = render_incident(cast(Event, event), webhook.routing_key or "", webhook.incident_per, webhook.severity)
    else:
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
        digest = hmac_sha256_hex(webhook.secret, body)  # one HMAC, however many headers carry it
        headers[SIGNATURE_HEADER] = f"sha256={digest}"
        if webhook.oxoflow_signature:
            headers[OXOFLOW_SIGNATURE_HEADER] = f"hmac-sha256={digest}"
    if webhook.standard_webhooks:
        headers.update(standard_headers(webhook.secrets, delivery_id, int(time.time() if now is None else now), body))
    return Prepared(webhook, event, delivery_id, attempt, body, headers)


@dataclass(frozen=True)
class Outcome:
    status: int | None
    error: Failure | None
    latency_ms: float
    retry_after: str | None = None
    snippet: str = ""  # start of the response body, for receivers that explain themselves
    detail: str | None = None  # why a delivery was refused before sending (safe to log)
    recovered: bool = False  # read back from the hand-off log (posted by a run that died), not posted now
    slot: float | None = None  # Failure.RATE_LIMITED: the slot reserved for this delivery (epoch seconds), carried by its retry
    hold_for: float | None = None  # Failure.RATE_LIMITED: seconds until the delivery should be looked at again
    early: float | None = None  # Failure.RATE_LIMITED: how long before its slot it is brought back

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Outcome:
        """An outcome back from its JSON record (the hand-off log): its failure read by name."""
        known = {f.name for f in fields(cls)}
        values = {k: v for k, v in record.items() if k in known}
        return cls(**{**values, "error": Failure.read(values.get("error"))})

    def describe(self) -> str:
        """A failure without an answer, in words (answers.judge words the ones with a status).
        What it means — delivered, held, retry, give up — is decided in one place: answers.decide."""
        return self.detail or (self.error or "no answer").replace("_", " ")


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """An exception and everything behind it: causes, contexts, and exceptions passed as args."""
    seen: set[int] = set()
    stack: list[BaseException | None] = [exc]
    while stack:
        current = stack.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        yield current
        stack.extend([current.__cause__, current.__context__, *[a for a in current.args if isinstance(a, BaseException)]])


def error_class(exc: BaseException) -> Failure:
    """Name a transport failure without quoting its message (which contains the URL).

    The cause chain is read first: urllib3's NewConnectionError subclasses ConnectTimeoutError, so
    the type alone would call a refused (or guard-blocked) connection a timeout."""
    chain = list(_chain(exc))
    for current in chain:  # the most telling first, wherever it sits in the chain
        if isinstance(current, DeadlineExceeded):
            return Failure.DEADLINE_EXCEEDED
        if isinstance(current, ssl.SSLCertVerificationError):
            return _TLS_REASONS.get(current.verify_code, (Failure.TLS_ERROR, ""))[0]
    in_chain = (failure for current in chain for types, failure in _IN_THE_CHAIN if isinstance(current, types))
    by_type = (failure for types, failure in _BY_TYPE if isinstance(exc, types))
    return next(in_chain, None) or next(by_type, Failure.REQUEST_ERROR)


# What an exception anywhere in the chain says, in this order for each link ...
_IN_THE_CHAIN: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Failure], ...] = (
    (InvalidHost, Failure.INVALID_HOST),
    (BlockedTarget, Failure.BLOCKED_TARGET),
    ((socket.gaierror, NameResolutionError), Failure.DNS_FAILURE),
    (ConnectionRefusedError, Failure.CONNECTION_REFUSED),
    ((ConnectionResetError, RemoteDisconnected, BrokenPipeError), Failure.CONNECTION_RESET),
    ((ssl.SSLError, SSLError), Failure.TLS_ERROR),
)
# ... and, when none does, what the exception itself is (NewConnectionError before its base ConnectTimeoutError).
_BY_TYPE: tuple[tuple[type[BaseException] | tuple[type[BaseException], ...], Failure], ...] = (
    ((ReadTimeoutError, TimeoutError, socket.timeout), Failure.READ_TIMEOUT),
    (NewConnectionError, Failure.CONNECTION_ERROR),
    (ConnectTimeoutError, Failure.CONNECT_TIMEOUT),
    (ProtocolError, Failure.CONNECTION_RESET),
    (OSError, Failure.CONNECTION_ERROR),
)


def failure_detail(exc: BaseException) -> str | None:
    """Words for a failure, safe to log: the guard's explanation, why a certificate was refused,
    or that the deadline passed. None where the class name says it all."""
    for current in _chain(exc):
        if isinstance(current, BlockedTarget):
            return str(current)
        if isinstance(current, DeadlineExceeded):
            return "no complete answer within the delivery's deadline (connect + timeout)"
        if isinstance(current, ssl.SSLCertVerificationError):
            return _TLS_REASONS.get(
                current.verify_code, (Failure.TLS_ERROR, f"TLS certificate refused (verify code {current.verify_code})")
            )[1]
    return None


class HttpSender:
    """Pooled keep-alive POSTs, many at once. One per container: connections outlive invocations.

    Built on urllib3 directly (requests' own transport, and already in the runtime with botocore):
    the dispatcher needs none of requests' conveniences, and skipping them saves import time at
    every cold start and bookkeeping on every POST. No redirects, no retries here (the retry queue
    does that), no proxies or .netrc from the environment. TLS is verified against the URL's
    hostname, always (``transport.tls_context``).
    """

    def __init__(
        self,
        connect_timeout: float = DEFAULTS.connect_timeout,
        read_timeout: float = DEFAULTS.read_timeout,
        max_concurrency: int = DEFAULTS.max_concurrency,
        guard: TargetGuard | None = None,
    ) -> None:
        self.timeout = (connect_timeout, read_timeout)
        self.max_concurrency = max_concurrency
        self.guard = guard or TargetGuard()
        self.pool = PoolManager(num_pools=128, maxsize=max_concurrency, block=False, retries=False, ssl_context=tls_context())
        self.pool.pool_classes_by_scheme = guarded_pool_classes(self.guard)
        self._executor: ThreadPoolExecutor | None = None

    def budget(self, webhook: Webhook) -> float:
        """A delivery's whole allowance: connect, TLS, send, answer and body together."""
        return self.timeout[0] + (webhook.timeout or self.timeout[1])

    def send(self, prepared: Prepared, budget: float | None = None) -> Outcome:
        """POST once, within ``budget`` seconds in all (default: connect + the webhook's timeout).

        Never raises: whatever goes wrong becomes an Outcome with an error class."""
        return self.call(prepared, budget)[0]

    def call(self, prepared: Prepared, budget: float | None = None) -> tuple[Outcome, bytes]:
        """``send``, with the answer's body as read (at most RESPONSE_LIMIT bytes; b"" without one):
        for the calls whose answer carries what comes next (a live message's id). Never logged."""
        started = time.perf_counter()
        try:
            self.guard.check_scheme(urlsplit(prepared.webhook.url).scheme)
        except BlockedTarget as exc:
            return Outcome(None, Failure.HTTPS_REQUIRED, 0.0, detail=str(exc)), b""
        except ValueError:
            return Outcome(None, Failure.INVALID_REQUEST, 0.0, detail="the URL cannot be parsed"), b""
        timeout = Timeout(connect=self.timeout[0], read=prepared.webhook.timeout or self.timeout[1])
        with deadline(self.budget(prepared.webhook) if budget is None else budget):
            try:
                # What PoolManager.request does, less what a prepared POST never needs (field
                # encoding, a header copy, redirect handling), as requests' adapter calls it too.
                target = _parsed(prepared.webhook.url)
                pool = self.pool.connection_from_host(target.host, port=target.port, scheme=target.scheme)
                response = pool.urlopen(
                    prepared.webhook.method.upper(),
                    target.request_uri,
                    body=prepared.body,
                    headers=prepared.headers,
                    timeout=timeout,
                    redirect=False,
                    assert_same_host=False,
                    retries=False,
                    preload_content=False,
                    release_conn=False,
                )
            except LocationValueError:
                # A host urllib3 cannot encode (IDNA 2008 refuses some that the config's check lets by).
                detail = "the URL's host cannot be encoded as a host name"
                return Outcome(None, Failure.INVALID_HOST, _ms_since(started), detail=detail), b""
            except (HTTPError, OSError) as exc:
                return Outcome(None, error_class(exc), _ms_since(started), detail=failure_detail(exc)), b""
            except (UnicodeError, ValueError, TypeError) as exc:
                # What HTTP cannot carry (a header value outside latin-1, a newline in a name, a URL
                # urllib3 cannot parse): the request is malformed, retrying cannot help.
                detail = f"the request could not be built ({type(exc).__name__})"
                return Outcome(None, Failure.INVALID_REQUEST, _ms_since(started), detail=detail), b""
            except Exception as exc:  # noqa: BLE001 - one webhook's surprise must not end the fan-out
                detail = f"unexpected {type(exc).__name__} while sending"
                return Outcome(None, Failure.REQUEST_ERROR, _ms_since(started), detail=detail), b""
            try:
                if response.status < 200:  # 101 (or worse) to a POST that asked for no upgrade: drop the connection
                    raise ConnectionAbortedError("no final answer")
                # Read a bounded amount: enough to explain a failure, never a hostile multi-GB body.
                # A plain body whose length is announced and within the bound (nearly every answer)
                # is read whole in one call; a bounded read would call again to see the end.
                # (Not an encoded one: a small gzip body can inflate to any size.)
                left = response.length_remaining
                if left is not None and left <= RESPONSE_LIMIT and not response.headers.get("Content-Encoding"):
                    raw = response.read() or b""
                    response.release_conn()
                else:
                    raw = response.read(RESPONSE_LIMIT, decode_content=True) or b""
                    if response.read(1):
                        response.close()  # longer than we read: drop this connection rather than drain it
                    else:
                        response.release_conn()  # fully read: the connection goes back to the pool
            except Exception:  # noqa: BLE001 - a broken or dripping body does not change the status we got
                raw = b""
                response.close()
        outcome = Outcome(
            status=response.status,
            error=None,
            latency_ms=_ms_since(started),
            retry_after=response.headers.get("Retry-After"),
            snippet=_snippet(raw, response.status, prepared),
        )
        return outcome, raw

    def send_all(self, batch: Sequence[Prepared], send: Callable[[Prepared], Outcome] | None = None) -> list[Outcome]:
        """All at once: the fan-out costs the slowest receiver, not the sum of them.

        ``send`` wraps each POST (the notifier passes one that goes through the delivery ledger)."""
        send = send or self.send
        if len(batch) <= 1:
            return [send(p) for p in batch]
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=self.max_concurrency, thread_name_prefix="deliver")
        return list(self._executor.map(send, batch))


@lru_cache(maxsize=1024)  # a webhook's URL is parsed once, not on every POST (a Url is immutable)
def _parsed(url: str) -> Url:
    return parse_url(url)


def _snippet(raw: bytes, status: int, prepared: Prepared) -> str:
    """The start of an answer, as reasons may quote it: the one place a receiver's words enter an
    Outcome, so every answer is cleaned here (a plain 2xx keeps only a short start, cleaned too).
    Only the first CLEAN_LIMIT characters are read, less a short word cut in two at the limit."""
    text = raw.decode("utf-8", "replace")
    if 200 <= status < 300 and prepared.webhook.format != "teams":
        return redact(text[:16], prepared)
    head = text[:CLEAN_LIMIT]
    if len(text) > CLEAN_LIMIT:
        head = _CUT_WORD.sub("", head)  # an echo cut short at the limit is no longer recognisable whole
    return redact(head, prepared)[:RESPONSE_SNIPPET]


_CUT_WORD = re.compile(r"\S{1,64}\Z")  # a longer run keeps enough of itself to be recognised


def redact(text: str, prepared: Prepared) -> str:
    """A receiver's answer, with everything secret it could echo back removed: every header value
    we sent that carries a secret (custom headers, signatures) and each word of it, the URL and
    each of its path segments, query values and user info, and the webhook's secrets — in any
    case, in their percent-encoded, JSON-escaped and base64 forms, and (``echoes.scrub``) any 8
    characters of them in any form a receiver may re-encode them in (hex, percent, \\u and HTML
    escapes, base64 and base64url at any offset, reversed, rot13, split by whitespace or joined by
    zero-width characters), and any long token that looks like a key. A fragment that is a plain
    word ("hook", "Bearer") is kept. The rest may enter logs and dead letters.

    Every answer pays for this, a 2xx too: the webhook's part is built once (``echoes.secrets_of``),
    the request's signatures are searched for directly (they change with every request)."""
    webhook = prepared.webhook
    known = secrets_of(webhook.url, (*(v for _, v in webhook.headers), *webhook.secrets))
    return known.redact(text, sent=[value for name, value in prepared.headers.items() if name.lower() in _SECRET_HEADERS])


# Headers of ours whose values carry a secret's work (ours are otherwise the event name, the delivery id, ...).
_SECRET_HEADERS = frozenset({"x-hub-signature-256", "x-oxoflow-signature", "webhook-signature"})


def _ms_since(started: float) -> float:
    return (time.perf_counter() - started) * 1000
