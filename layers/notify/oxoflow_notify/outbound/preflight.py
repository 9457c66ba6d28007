"""The outbound guard's verdict on a webhook URL before anything is sent, so that ``validate`` passes
only what the deployed functions will send to.

The verdict comes from the guard itself (``TargetGuard``), built as the functions build it from
REQUIRE_HTTPS and TARGET_ALLOWLIST (the template's RequireHttps and TargetAllowlist;
``aws.settings.guard_from``): the scheme
first, then every address. Offline only what needs no DNS is known: IP literals in any spelling the
resolver reads (parsed as numeric hosts, never looked up) and the loopback names of the Lambda
runtime's /etc/hosts (``localhost`` and its aliases, spelled exactly: ``localhost.`` or
``x.localhost`` are names its resolver looks up in DNS). Any other name is looked up, and its
addresses vetted, only when asked (``resolve``). An IP literal with a trailing dot is refused: the
resolver takes it for a name, and DNS has none.
"""

from __future__ import annotations

import ipaddress
import socket
from dataclasses import dataclass
from urllib.parse import urlsplit

from .guard import BlockedTarget, IPAddress, TargetGuard

_V4 = ipaddress.ip_address("127.0.0.1")
_V6 = ipaddress.ip_address("::1")
# Names every resolver answers with loopback (RFC 6761, and Linux's /etc/hosts aliases, Lambda's included).
LOOPBACK_NAMES: dict[str, IPAddress] = {
    "localhost": _V4,
    "localhost.localdomain": _V4,
    "localhost4": _V4,
    "localhost4.localdomain4": _V4,
    "localhost6": _V6,
    "localhost6.localdomain6": _V6,
    "ip6-localhost": _V6,
    "ip6-loopback": _V6,
}
HTTPS_HINT = "only a stack deployed with RequireHttps=false sends to it: --allow-http checks against one"
ADDRESS_HINT = "only a stack whose TargetAllowlist covers it sends to it: --allowlist checks against one"


@dataclass(frozen=True)
class Preflight:
    """Calls to it answer what the guard would refuse about one URL (its own words, then how to allow
    it), or None. The URL has passed the config's own check (``urls.check_url``)."""

    guard: TargetGuard
    resolve: bool = False

    def __call__(self, url: str) -> str | None:
        parts = urlsplit(url)
        try:
            self.guard.check_scheme(parts.scheme)
        except BlockedTarget as exc:
            return f"{exc} ({HTTPS_HINT})"
        host = parts.hostname or ""
        port = parts.port or (443 if parts.scheme == "https" else 80)
        if host.endswith(".") and ip_literal(host[:-1]) is not None:
            return (f"host {host!r} is an IP address with a trailing dot, which the functions' resolver takes for a "
                    "host name that DNS cannot resolve: drop the dot")  # fmt: skip
        try:
            known = known_addresses(host)
            for ip in known or ():
                self.guard.vet(ip)
            if known is None and self.resolve:
                self.guard.vetted_addresses(host, port)
        except BlockedTarget as exc:  # InvalidHost too: its words are the Lambda's
            return f"{exc} ({ADDRESS_HINT})" if str(exc).startswith("target resolves") else str(exc)
        except OSError:
            return "names a host that does not resolve now (DNS); the functions retry it, then dead-letter it"
        return None


def known_addresses(host: str) -> list[IPAddress] | None:
    """The addresses a host stands for without DNS (parsed, never looked up): an IP literal's, in any
    spelling the resolver reads, or a loopback name's; None for any other name."""
    name = host.lower()
    if name in LOOPBACK_NAMES:
        return [LOOPBACK_NAMES[name]]
    literal = ip_literal(host)
    return None if literal is None else [literal]


def ip_literal(host: str) -> IPAddress | None:
    """The address an IP literal stands for, in any spelling the resolver reads; None for a name."""
    try:  # the resolver reads IPv4 literals as inet_aton does (2130706433, 0x7f.1, 017700000001, 127.1)
        return ipaddress.IPv4Address(socket.inet_aton(host))
    except (OSError, UnicodeError, ValueError):
        pass
    try:  # IPv6, with an optional zone (fe80::1%25eth0)
        return ipaddress.IPv6Address(host.split("%", 1)[0])
    except ValueError:
        return None
