"""Unit tests are pure: they open no socket and resolve no name. A test that needs a receiver, a
port or a DNS answer belongs in tests/integration (e.g. tests/integration/test_delivery_io.py)."""

from __future__ import annotations

import socket
from typing import Any, NoReturn

import pytest

MOVE = "unit tests open no socket: move this test to tests/integration"


@pytest.fixture(autouse=True)
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Fail any unit test that connects, binds (starts a receiver) or resolves a name.

    getaddrinfo still answers for an IP literal in any spelling (127.1, 0x7f.1, ::ffff:7f00:1): the
    outbound guard reads those through it, and they resolve nothing. pytest.fail raises an
    exception that ``except Exception`` does not catch, so code under test cannot swallow it."""

    def refuse(*args: Any, **kwargs: Any) -> NoReturn:
        pytest.fail(MOVE, pytrace=False)

    real_getaddrinfo = socket.getaddrinfo

    def numeric_only(host: Any, port: Any, family: int = 0, type: int = 0, proto: int = 0, flags: int = 0) -> Any:
        try:
            return real_getaddrinfo(host, port, family, type, proto, flags | socket.AI_NUMERICHOST)
        except socket.gaierror:
            pytest.fail(f"{MOVE} (it resolves the name {host!r})", pytrace=False)

    for name in ("connect", "connect_ex", "bind"):
        monkeypatch.setattr(socket.socket, name, refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", numeric_only)
