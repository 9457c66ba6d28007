"""Outbound guard: webhook URLs are typed by users, so a delivery must not become a way into the VPC
or the instance metadata service (SSRF).

Each new connection resolves the host once, refuses it if *any* address is not globally routable
(or is inside the operator's ``TARGET_ALLOWLIST``), and connects to the vetted addresses itself, so
a DNS answer cannot change between the check and the connect (no rebinding). This module decides;
``transport`` dials. TLS (certificate check and SNI) and the Host header keep the URL's hostname.
IP literals in any spelling (``2130706433``, ``0x7f.1``, ``017700000001``,
``[::ffff:127.0.0.1]``) go through the same resolver and the same check.
"""

from __future__ import annotations

import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

_NAMED: list[tuple[IPNetwork, str]] = [
    (ipaddress.ip_network("169.254.169.254/32"), "the instance metadata service (link-local)"),
    (ipaddress.ip_network("fd00:ec2::254/128"), "the instance metadata service (IPv6)"),
    (ipaddress.ip_network("100.64.0.0/10"), "shared address space (CGNAT)"),
    (ipaddress.ip_network("198.18.0.0/15"), "reserved for benchmarking"),
    (ipaddress.ip_network("192.0.2.0/24"), "reserved for documentation"),
    (ipaddress.ip_network("198.51.100.0/24"), "reserved for documentation"),
    (ipaddress.ip_network("203.0.113.0/24"), "reserved for documentation"),
    (ipaddress.ip_network("2001:db8::/32"), "reserved for documentation"),
]
_NAT64 = [ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48")]


class BlockedTarget(Exception):
    """The target resolves to an address we must not contact. The message is safe to log."""


class InvalidHost(BlockedTarget):
    """The URL's host is not a name DNS could ever answer for. The message is safe to log."""


def parse_allowlist(text: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.0/8, 10.1.0.0/16"`` -> networks. Raises ValueError naming the bad entry."""
    networks = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            networks.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"TARGET_ALLOWLIST entry {part!r} is not a CIDR range") from None
    return tuple(networks)


def embedded_ipv4(ip: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address carries (mapped, NAT64, 6to4, Teredo client), if any."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return None
    if ip.ipv4_mapped:
        return ip.ipv4_mapped
    if any(ip in net for net in _NAT64):
        return ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF)
    if ip.sixtofour:
        return ip.sixtofour
    if ip.teredo:
        return ip.teredo[1]
    return None


def why_blocked(ip: IPAddress) -> str | None:
    """What kind of address this is, when it is not one a webhook may live at; None when global."""
    for network, name in _NAMED:
        if ip.version == network.version and ip in network:
            return name
    inner = embedded_ipv4(ip)
    if inner is not None:
        reason = why_blocked(inner)
        return f"{reason}, embedded in an IPv6 address" if reason else None
    for attribute, name in (
        ("is_unspecified", "unspecified"),
        ("is_loopback", "loopback"),
        ("is_link_local", "link-local"),
        ("is_multicast", "multicast"),
        ("is_reserved", "reserved"),
        ("is_private", "private"),
    ):
        if getattr(ip, attribute):
            return name
    if not ip.is_global:
        return "not globally routable"
    return None


class TargetGuard:
    def __init__(self, allowlist: Iterable[IPNetwork] = (), require_https: bool = True) -> None:
        self.allowlist = tuple(allowlist)
        self.require_https = require_https

    def allowed(self, ip: IPAddress) -> bool:
        candidates = [ip, *([embedded_ipv4(ip)] if embedded_ipv4(ip) else [])]
        return any(c.version == net.version and c in net for c in candidates if c for net in self.allowlist)

    def vet(self, ip: IPAddress) -> None:
        """Refuse one address unless it is globally routable or allowlisted (BlockedTarget, safe to log)."""
        reason = None if self.allowed(ip) else why_blocked(ip)
        if reason:
            raise BlockedTarget(f"target resolves to {ip}, which is {reason} and blocked")

    def check_scheme(self, scheme: str) -> None:
        if self.require_https and scheme != "https":
            raise BlockedTarget("plain http is refused (REQUIRE_HTTPS is on); use an https URL")

    def vetted_addresses(self, host: str, port: int) -> list[tuple[socket.AddressFamily, tuple[Any, ...]]]:
        """Resolve once; refuse if *any* address is blocked; return every address to try, in order.

        The caller connects to these addresses and never resolves the name again (no rebinding)."""
        try:
            ascii_host = host.encode("idna").decode("ascii") if not host.isascii() else host
            infos = socket.getaddrinfo(ascii_host, port, type=socket.SOCK_STREAM)
        except UnicodeError:
            # IDNA refuses empty labels, labels over 63 characters and other non-names.
            raise InvalidHost("the URL's host is not a valid hostname (IDNA: empty or over-long label)") from None
        addresses: list[tuple[socket.AddressFamily, tuple[Any, ...]]] = []
        for family, _, _, _, sockaddr in infos:
            self.vet(ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0]))
            if (family, sockaddr) not in addresses:
                addresses.append((family, sockaddr))
        if not addresses:
            raise socket.gaierror(socket.EAI_NONAME, "no address")
        return addresses
