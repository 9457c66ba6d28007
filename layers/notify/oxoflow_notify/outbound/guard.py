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
    # Deprecated by RFC 3879 but still routed inside some networks; Python's ipaddress calls it global.
    (ipaddress.ip_network("fec0::/10"), "site-local (deprecated, fec0::/10)"),
]
# RFC 6052: where the IPv4 address sits in a NAT64 address, by prefix length (byte offsets; byte 8,
# bits 64..71, is always skipped). The well-known prefix is a /96; inside the local-use /48 (RFC
# 8215) an operator may use a /48, /56, /64 or /96, and we cannot know which: every layout is read.
_RFC6052_BYTES = {
    32: (4, 5, 6, 7),
    40: (5, 6, 7, 9),
    48: (6, 7, 9, 10),
    56: (7, 9, 10, 11),
    64: (9, 10, 11, 12),
    96: (12, 13, 14, 15),
}
_THIS_NETWORK = ipaddress.ip_network("0.0.0.0/8")
_NAT64: list[tuple[IPNetwork, tuple[int, ...]]] = [
    (ipaddress.ip_network("64:ff9b::/96"), (96,)),
    (ipaddress.ip_network("64:ff9b:1::/48"), (48, 56, 64, 96)),
]


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


def nat64_ipv4s(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """Every IPv4 address a NAT64 address can carry, read by each RFC 6052 layout its prefix allows.

    A reading inside 0.0.0.0/8 is the zero padding of another layout, not a destination (no
    translator forwards to it), so it counts only when every reading is one."""
    packed = ip.packed
    for network, lengths in _NAT64:
        if ip in network:
            readings = [ipaddress.IPv4Address(bytes(packed[i] for i in _RFC6052_BYTES[n])) for n in lengths]
            return [r for r in readings if r not in _THIS_NETWORK] or readings
    return []


def embedded_ipv4s(ip: IPAddress) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries (mapped, NAT64 in every layout, 6to4, Teredo client)."""
    if not isinstance(ip, ipaddress.IPv6Address):
        return []
    if ip.ipv4_mapped:
        return [ip.ipv4_mapped]
    if ip.sixtofour:
        return [ip.sixtofour]
    if ip.teredo:
        return [ip.teredo[1]]
    return nat64_ipv4s(ip)


def _named(ip: IPAddress) -> str | None:
    return next((name for network, name in _NAMED if ip.version == network.version and ip in network), None)


def why_blocked(ip: IPAddress) -> str | None:
    """What kind of address this is, when it is not one a webhook may live at; None when global.

    A translating IPv6 address (mapped, NAT64, 6to4, Teredo) is vetted itself (the named ranges)
    and by every IPv4 address it can carry: one blocked IPv4 reading blocks it."""
    named = _named(ip)
    if named:
        return named
    inner = embedded_ipv4s(ip)
    if inner:
        reason = next((r for r in map(why_blocked, inner) if r), None)
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
        """Whether the address actually dialled is inside the allowlist. An IPv4-mapped address is
        that IPv4 address on the wire; a NAT64, 6to4 or Teredo address is not its IPv4 address (it is
        routed as IPv6, through a translator), so it is not admitted by an IPv4 range."""
        dialled = ip.ipv4_mapped if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped else ip
        return any(dialled.version == net.version and dialled in net for net in self.allowlist)

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
