"""urllib3 connections that dial only vetted addresses and never outlive a delivery's deadline.

Three things real receivers need and a plain connection pool does not give:

- **Pinned, vetted addresses with the hostname intact.** A new connection asks the guard for the
  vetted addresses of the URL's host and connects to them itself, so DNS is read once (no
  rebinding). urllib3 keeps the URL's hostname for everything else: the certificate is checked
  against it, it is sent as SNI, and every request on the connection (first or reused) carries it
  in ``Host``. Overwriting urllib3's ``_dns_host`` instead, as this module's predecessor did,
  sends the IP address as SNI and in ``Host`` on reused connections, and fails every certificate.
- **A total deadline.** A read timeout applies per socket read: a receiver that drips one byte
  every half second keeps a POST going for ever. Our sockets (plain and TLS) cut every connect,
  handshake, send and receive to the time left before the delivery's deadline, which the sender
  sets for the thread that makes the request.
- **The platform's trust store, plus ``SSL_CERT_FILE``.** Verification is always on. The context
  trusts what the platform trusts and adds the CAs of ``SSL_CERT_FILE`` (OpenSSL's variable) when
  it is set, for private CAs and for tests; certifi is the fallback where the platform has none.
  OpenSSL also reads ``SSL_CERT_DIR`` (a directory of hashed CA certificates, in place of the
  platform's directory but beside its bundle): it too widens trust (docs/security.md says so).
- **TLS sessions resumed.** Receivers close idle keep-alive connections; the next POST would pay a
  full handshake. Each sender keeps the last session per (host, port, SNI) (``TlsSessions``) and
  offers it on the next connection to that same key only, so a receiver that issues tickets
  resumes and one that does not simply gets a full handshake. A resumed session's certificate
  was verified, against the same hostname, when it was made. The resumed handshake itself costs
  0.45x (TLS 1.3) or 0.25x (TLS 1.2) a full one's CPU, but CPython copies a session through its
  DER form each time one is offered or read (0.12-0.2 ms with OpenSSL 3.0: it decodes the peer's
  certificate again; python/cpython#123249), so a session is read
  only where a new ticket is (docs/performance.md).
"""

from __future__ import annotations

import http.client
import os
import socket
import ssl
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from contextlib import contextmanager
from typing import Any, TypeVar

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError
from urllib3.util.ssl_ import create_urllib3_context

from .guard import BlockedTarget, TargetGuard

_local = threading.local()


class DeadlineExceeded(TimeoutError):
    """The delivery's total time ran out (connect, TLS, send, answer and body together)."""


@contextmanager
def deadline(seconds: float) -> Iterator[None]:
    """Bound every socket operation of this thread, for the block's duration, to ``seconds`` in all."""
    previous = getattr(_local, "at", None)
    _local.at = time.monotonic() + seconds
    try:
        yield
    finally:
        _local.at = previous


def _time_left() -> float | None:
    at: float | None = getattr(_local, "at", None)
    return None if at is None else at - time.monotonic()


T = TypeVar("T")
# Name lookups run here so the deadline bounds them too (getaddrinfo takes no timeout, and the
# receiver's DNS server decides how long it takes). A lookup abandoned at the deadline finishes
# in the background; with every worker stuck, later lookups wait their turn and time out as well.
_RESOLVERS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="resolve")


def within_deadline(call: Callable[..., T], *args: Any) -> T:
    """``call(*args)``, abandoned with DeadlineExceeded when the thread's deadline passes first."""
    left = _time_left()
    if left is None:
        return call(*args)
    if left <= 0:
        raise DeadlineExceeded("the delivery's deadline passed")
    future = _RESOLVERS.submit(call, *args)
    try:
        return future.result(timeout=left)
    except FutureTimeout:
        raise DeadlineExceeded("the delivery's deadline passed while resolving the host") from None


class FinalResponse(http.client.HTTPResponse):
    """Reads past interim answers (102 Processing, 103 Early Hints, ...), as RFC 9110 asks.

    http.client skips only 100 Continue and would take a 103 for the answer, leaving the real one
    on the kept-alive connection for the next request to read as its own."""

    def _read_status(self) -> tuple[str, int, str]:
        for _ in range(20):
            version, status, reason = super()._read_status()  # type: ignore[misc]
            if not 102 <= status < 200:
                return version, status, reason
            for _ in range(http.client._MAXHEADERS + 1):  # type: ignore[attr-defined]
                line = self.fp.readline(http.client._MAXLINE + 1)  # type: ignore[attr-defined]
                if line in (b"\r\n", b"\n", b""):
                    break
        raise http.client.HTTPException("more than 20 interim answers")


class _Bounded:
    """Socket methods that first cut the socket's timeout to the time left before the deadline.

    CPython bounds each socket call (connect, sendall, recv_into, an SSL handshake or read) by
    the socket's timeout as a whole, so cutting the timeout before each call bounds the request."""

    _wanted: float | None = None  # the timeout urllib3 asked for (connect or read timeout)
    _cut = False  # the last call ran on the deadline's time, not the timeout urllib3 asked for

    def settimeout(self, value: float | None) -> None:
        self._wanted = value
        super().settimeout(value)  # type: ignore[misc]

    def _bounded(self, call: Any, *args: Any) -> Any:
        left = _time_left()
        if left is not None:
            if left <= 0:
                raise DeadlineExceeded("the delivery's deadline passed")
            wanted = self._wanted
            self._cut = wanted is None or left < wanted
            super().settimeout(left if self._cut else wanted)  # type: ignore[misc]
        try:
            return call(*args)
        except TimeoutError as exc:
            if self._cut and left is not None and not isinstance(exc, DeadlineExceeded):
                raise DeadlineExceeded("the delivery's deadline passed") from exc
            raise

    # Signatures differ between socket and SSLSocket (recv_into's nbytes defaults to 0 or None):
    # pass the arguments through untouched.
    def connect(self, *args: Any) -> Any:
        return self._bounded(super().connect, *args)  # type: ignore[misc]

    def send(self, *args: Any) -> Any:
        return self._bounded(super().send, *args)  # type: ignore[misc]

    def sendall(self, *args: Any) -> Any:
        return self._bounded(super().sendall, *args)  # type: ignore[misc]

    def recv(self, *args: Any) -> Any:
        return self._bounded(super().recv, *args)  # type: ignore[misc]

    def recv_into(self, *args: Any) -> Any:
        return self._bounded(super().recv_into, *args)  # type: ignore[misc]


class BoundedSocket(_Bounded, socket.socket):
    pass


class BoundedSSLSocket(_Bounded, ssl.SSLSocket):
    on_close: Callable[[ssl.SSLSession | None], None] | None = None  # told the session as the socket closes

    def do_handshake(self, *args: Any) -> None:
        offered: ssl.SSLSession | None = getattr(_local, "session", None)
        if offered is not None and not self.server_side:
            self.session = offered  # the connection being made asked to resume this one (TlsSessions)
        self._bounded(super().do_handshake, *args)

    def close(self) -> None:
        # TLS 1.3 tickets arrive after the handshake and are read with the first answer: by the
        # time a connection closes, its session holds them.
        told, self.on_close = self.on_close, None
        if told is not None:
            told(self.session)
        super().close()


SessionKey = tuple[str, int, str]  # (host, port, SNI): a session is offered to the same server name only


class TlsSessions:
    """The last TLS session per (host, port, SNI), for one sender (sessions belong to its context),
    and how many new connections resumed one: ``resumed`` and ``full`` (handshakes) count them."""

    def __init__(self, limit: int = 256) -> None:
        self._kept: OrderedDict[SessionKey, ssl.SSLSession] = OrderedDict()
        self._lock = threading.Lock()
        self.limit = limit  # receivers, not requests: a bounded cache, oldest dropped first
        self.resumed = 0
        self.full = 0

    def offer(self, key: SessionKey) -> ssl.SSLSession | None:
        with self._lock:
            return self._kept.get(key)

    def keep(self, key: SessionKey, session: ssl.SSLSession | None) -> None:
        """Keep ``session`` for ``key`` if it can be resumed (TLS 1.3's has a ticket only once read)."""
        if session is None or not (session.has_ticket or session.id):
            return
        with self._lock:
            self._kept[key] = session
            self._kept.move_to_end(key)
            while len(self._kept) > self.limit:
                self._kept.popitem(last=False)

    def count(self, reused: bool) -> None:
        with self._lock:
            if reused:
                self.resumed += 1
            else:
                self.full += 1


@contextmanager
def _offering(session: ssl.SSLSession | None) -> Iterator[None]:
    """The handshakes this thread makes in the block offer ``session`` (BoundedSSLSocket reads it)."""
    _local.session = session
    try:
        yield
    finally:
        _local.session = None


def tls_context() -> ssl.SSLContext:
    """Certificates and hostnames always verified (TLS 1.2+), against the platform's CAs plus
    ``SSL_CERT_FILE``'s. Built once per sender: every connection shares it."""
    context = create_urllib3_context()  # CERT_REQUIRED, check_hostname, urllib3's ciphers and minimum version
    defaults = ssl.get_default_verify_paths()
    context.load_default_certs()  # the platform's CAs; with SSL_CERT_FILE set, OpenSSL reads that file *instead*
    if os.environ.get("SSL_CERT_FILE", "").strip() and defaults.openssl_cafile and os.path.isfile(defaults.openssl_cafile):
        # SSL_CERT_FILE adds a CA here; it does not take away the public ones.
        context.load_verify_locations(cafile=defaults.openssl_cafile)
    if not context.cert_store_stats().get("x509_ca") and not _has_ca_dir(defaults.openssl_capath):
        try:
            import certifi

            context.load_verify_locations(cafile=certifi.where())
        except ImportError:  # pragma: no cover - every runtime we ship to has one or the other
            pass
    context.sslsocket_class = BoundedSSLSocket
    # urllib3 asks TLS 1.2 servers for no tickets (to save bytes); we ask, to resume (TlsSessions).
    context.options &= ~ssl.OP_NO_TICKET
    return context


def _has_ca_dir(path: str | None) -> bool:
    return bool(path) and os.path.isdir(str(path)) and any(os.scandir(str(path)))


def _dial(addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]], timeout: float | None, options: Any) -> socket.socket:
    """Connect to the first vetted address that answers, as urllib3's create_connection would."""
    error: OSError | None = None
    for family, sockaddr in addresses:
        sock = BoundedSocket(family, socket.SOCK_STREAM)
        try:
            for option in options or ():
                sock.setsockopt(*option)
            sock.settimeout(timeout)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            error = exc
            sock.close()
            if isinstance(exc, DeadlineExceeded):
                break
    raise error or OSError("no address to connect to")


def _guarded(base: type[HTTPConnection], guard: TargetGuard) -> type[HTTPConnection]:
    class Guarded(base):  # type: ignore[valid-type,misc]
        """Dials the guard's vetted addresses; the hostname stays for TLS, SNI and ``Host``."""

        response_class = FinalResponse

        def _new_conn(self) -> socket.socket:
            try:
                addresses = within_deadline(guard.vetted_addresses, self._dns_host, self.port)
                return _dial(addresses, self.timeout, self.socket_options)
            except BlockedTarget as exc:
                raise NewConnectionError(self, "refused by the outbound guard") from exc
            except socket.gaierror as exc:
                raise NameResolutionError(self.host, self, exc) from exc
            except TimeoutError as exc:
                raise ConnectTimeoutError(self, "connection timed out") from exc
            except OSError as exc:
                raise NewConnectionError(self, "failed to establish a new connection") from exc

    return Guarded


def _resuming(base: type[HTTPConnection], sessions: TlsSessions) -> type[HTTPConnection]:
    class Resuming(base):  # type: ignore[valid-type,misc]
        """Offers the last session made with the same (host, port, SNI), and keeps the newest."""

        def _session_key(self) -> SessionKey:
            return (str(self.host), int(self.port or 443), str(getattr(self, "server_hostname", None) or self.host))

        def connect(self) -> None:
            key = self._session_key()
            with _offering(sessions.offer(key)):
                super().connect()
            sock = self.sock
            if not isinstance(sock, ssl.SSLSocket):
                return
            reused = bool(sock.session_reused)
            sessions.count(reused)
            # Reading ``sock.session`` costs as much as the resumed handshake (CPython copies the
            # session through its DER form), so it is read only where a new ticket is: TLS 1.3's
            # come after the handshake (read at close: one ticket per connection, RFC 8446 C.4);
            # TLS 1.2's in a full handshake, and a resumed one keeps the session it resumed.
            if sock.version() == "TLSv1.3" and isinstance(sock, BoundedSSLSocket):
                sock.on_close = lambda session: sessions.keep(key, session)
            elif not reused:
                sessions.keep(key, sock.session)

    return Resuming


def guarded_pool_classes(guard: TargetGuard, sessions: TlsSessions | None = None) -> dict[str, type[HTTPConnectionPool]]:
    """Connection pools whose connections dial only vetted addresses, within the deadline; https
    connections resume the sender's TLS sessions (``HttpsPool.sessions`` counts them)."""
    http_conn = _guarded(HTTPConnection, guard)
    tls_sessions = sessions or TlsSessions()
    https_conn = _resuming(_guarded(HTTPSConnection, guard), tls_sessions)

    class HttpPool(HTTPConnectionPool):
        ConnectionCls = http_conn

    class HttpsPool(HTTPSConnectionPool):
        ConnectionCls = https_conn  # type: ignore[assignment]
        sessions = tls_sessions

    return {"http": HttpPool, "https": HttpsPool}


def sessions_of(pool_classes: Mapping[str, type[HTTPConnectionPool]]) -> TlsSessions:
    """The TLS sessions (and their counters) of the https pools ``guarded_pool_classes`` made."""
    sessions = getattr(pool_classes.get("https"), "sessions", None)
    if not isinstance(sessions, TlsSessions):
        raise TypeError("these pools were not made by guarded_pool_classes")
    return sessions
