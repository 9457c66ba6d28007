"""The outbound guard refuses every address a webhook must not reach, in every spelling (IP literals only:
resolving a name and sending are in tests/integration/test_guard_io.py)."""

from __future__ import annotations

import ipaddress
import socket

import pytest

from oxoflow_notify.outbound.guard import BlockedTarget, TargetGuard, parse_allowlist, why_blocked


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("127.0.0.1", "loopback"),
        ("::1", "loopback"),
        ("10.1.2.3", "private"),
        ("172.16.0.1", "private"),
        ("192.168.1.1", "private"),
        ("fd12::1", "private"),
        ("169.254.169.254", "instance metadata service"),
        ("fd00:ec2::254", "instance metadata service (IPv6)"),
        ("169.254.1.1", "link-local"),
        ("fe80::1", "link-local"),
        ("100.64.0.1", "shared address space (CGNAT)"),
        ("224.0.0.1", "multicast"),
        ("ff02::1", "multicast"),
        ("198.18.0.1", "benchmarking"),
        ("192.0.2.1", "documentation"),
        ("2001:db8::1", "documentation"),
        ("0.0.0.0", "unspecified"),
        ("::", "unspecified"),
        ("240.0.0.1", "reserved"),
        ("::ffff:127.0.0.1", "loopback, embedded in an IPv6 address"),
        ("::ffff:169.254.169.254", "instance metadata service (link-local), embedded"),
        ("64:ff9b::a9fe:a9fe", "instance metadata service (link-local), embedded"),
        ("2002:a00:1::", "private, embedded"),
    ],
)
def test_non_global_addresses_are_named(address: str, kind: str) -> None:
    reason = why_blocked(ipaddress.ip_address(address))
    assert reason is not None and kind in reason


@pytest.mark.parametrize("address", ["8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "64:ff9b::808:808"])
def test_public_addresses_pass(address: str) -> None:
    assert why_blocked(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize("host", ["2130706433", "0x7f.1", "017700000001", "127.1", "0177.0.0.1", "::ffff:7f00:1"])
def test_odd_spellings_of_loopback_are_caught(host: str) -> None:
    with pytest.raises(BlockedTarget, match="loopback"):
        TargetGuard().vetted_addresses(host, 80)


def test_any_blocked_address_in_an_answer_blocks_the_host(monkeypatch: pytest.MonkeyPatch) -> None:
    answers = [
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", 443)),
        (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("10.0.0.5", 443)),
    ]
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: answers)
    with pytest.raises(BlockedTarget, match=r"10\.0\.0\.5, which is private"):
        TargetGuard().vetted_addresses("mixed.example", 443)


def test_the_allowlist_opens_only_its_ranges() -> None:
    guard = TargetGuard(parse_allowlist("127.0.0.0/8"))
    assert [sockaddr[0] for _, sockaddr in guard.vetted_addresses("127.0.0.1", 80)] == ["127.0.0.1"]
    assert [sockaddr[0] for _, sockaddr in guard.vetted_addresses("::ffff:127.0.0.1", 80)] == ["::ffff:127.0.0.1"]
    with pytest.raises(BlockedTarget):
        guard.vetted_addresses("10.0.0.1", 80)
    with pytest.raises(ValueError, match=r"'10\.0\.0/33'"):
        parse_allowlist("127.0.0.0/8, 10.0.0/33")


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        # deprecated site-local: Python's ipaddress calls it global, the guard does not
        ("fec0::1", "site-local (deprecated, fec0::/10)"),
        ("feff:ffff::1", "site-local (deprecated, fec0::/10)"),
        # NAT64 local-use /48 read by every RFC 6052 layout: 169.254.169.254 in the /48 layout hides
        # behind 8.8.8.8 in the /96 one
        ("64:ff9b:1:a9fe:a9:fe00:808:808", "instance metadata service (link-local), embedded"),
        ("64:ff9b:1:a9:fe:a9fe::", "instance metadata service (link-local), embedded"),  # /56
        ("64:ff9b:1:0:a9:fea9:fe00:0", "instance metadata service (link-local), embedded"),  # /64
        ("64:ff9b:1:0:a9:fea9:fe00:808", "instance metadata service (link-local), embedded"),  # /64
        ("64:ff9b:1::a9fe:a9fe", "instance metadata service (link-local), embedded"),  # /96
        ("64:ff9b:1:a00:1::", "private, embedded"),  # 10.0.0.1 in the /48 layout
        ("64:ff9b:1::", "unspecified, embedded"),
    ],
)
def test_site_local_and_every_nat64_layout_are_refused(address: str, kind: str) -> None:
    # given an address that Python's ipaddress (3.11) or a /96-only NAT64 reading would call public
    # when it is vetted, then the guard names what it really is
    reason = why_blocked(ipaddress.ip_address(address))
    assert reason is not None and kind in reason, reason
    with pytest.raises(BlockedTarget, match="and blocked"):
        TargetGuard().vetted_addresses(address, 443)


@pytest.mark.parametrize("address", ["64:ff9b:1::808:808", "64:ff9b:1:ab:cd00:0:808:808", "64:ff9b::101:101"])
def test_a_nat64_address_of_a_public_ipv4_passes_in_every_layout(address: str) -> None:
    # the zero padding another layout reads (0.0.0.0/8) is not a destination: a public target still passes
    assert why_blocked(ipaddress.ip_address(address)) is None


@pytest.mark.parametrize(
    "address",
    [
        "2002:7f00:1::",
        "2002:a00:1::1",
        "64:ff9b::7f00:1",
        "64:ff9b::a00:1",
        "64:ff9b:1:7f00:0:100::",
        "2001:0:4136:e378:8000:63bf:80ff:fffe",
    ],
)
def test_the_allowlist_matches_the_address_dialled_not_the_ipv4_a_wrapper_carries(address: str) -> None:
    # given an allowlist of IPv4 ranges (loopback and a peered VPC)
    guard = TargetGuard(parse_allowlist("127.0.0.0/8, 10.0.0.0/8"))
    # when a 6to4, NAT64 or Teredo address that carries one of them is dialled (as IPv6, through a
    # translator), then it is not admitted as if it were the IPv4 address
    with pytest.raises(BlockedTarget, match="embedded in an IPv6 address and blocked"):
        guard.vetted_addresses(address, 443)
    # while the IPv4 address itself, and its IPv4-mapped form (the IPv4 address on the wire), are
    assert guard.vetted_addresses("10.0.0.1", 443) and guard.vetted_addresses("::ffff:10.0.0.1", 443)


def test_the_preflight_and_the_guard_give_the_same_verdict_on_the_new_refusals() -> None:
    from oxoflow_notify.aws.settings import guard_from
    from oxoflow_notify.outbound.preflight import Preflight

    preflight = Preflight(guard_from({"TARGET_ALLOWLIST": "127.0.0.0/8"}))
    for url, says in [
        ("https://[fec0::1]/x", "site-local (deprecated, fec0::/10)"),
        ("https://[64:ff9b:1:a9fe:a9:fe00:808:808]/x", "instance metadata service"),
        ("https://[2002:7f00:1::]/x", "loopback, embedded in an IPv6 address"),
    ]:
        verdict = preflight(url)
        assert verdict is not None and says in verdict, verdict


@pytest.mark.parametrize("url", ["https://127.0.0.1./x", "https://2130706433./x", "https://0x7f.1./x", "https://10.0.0.1.:8443/x"])
def test_an_ip_literal_with_a_trailing_dot_is_refused_offline_as_the_resolver_would_fail_it(url: str) -> None:
    from oxoflow_notify.aws.settings import guard_from
    from oxoflow_notify.outbound.preflight import Preflight

    opened = guard_from({"TARGET_ALLOWLIST": "10.0.0.0/8,127.0.0.0/8"})
    verdict = Preflight(opened)(url)
    assert verdict is not None and "trailing dot" in verdict and "drop the dot" in verdict


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("http://hooks.example.org/x", "plain http is refused (REQUIRE_HTTPS is on); use an https URL"),
        ("https://0x7f.1/x", "target resolves to 127.0.0.1, which is loopback and blocked"),
        ("https://017700000001:8443/x", "target resolves to 127.0.0.1, which is loopback and blocked"),
        ("https://[::ffff:10.1.2.3]/x", "target resolves to ::ffff:a01:203, which is private, embedded in an IPv6 address and blocked"),
        ("https://LOCALHOST/x", "target resolves to 127.0.0.1, which is loopback and blocked"),
        ("https://localhost./x", None),  # a name the resolver looks up in DNS (no /etc/hosts line has the dot)
        ("https://app.localhost/x", None),  # likewise: glibc gives *.localhost no special meaning
        ("https://ip6-localhost/x", "target resolves to ::1, which is loopback and blocked"),
        ("https://169.254.169.254/x", "the instance metadata service (link-local)"),
        ("https://hooks.example.org/x", None),  # a name: looked up only with resolve (unit tests open no socket)
    ],
)
def test_preflight_says_offline_what_the_guard_will_say_at_send_time(url: str, says: str | None) -> None:
    from oxoflow_notify.aws.settings import guard_from
    from oxoflow_notify.outbound.preflight import Preflight

    verdict = Preflight(guard_from({}))(url)
    assert verdict is None if says is None else (verdict is not None and says in verdict), verdict
    # with the parameters opened, the same URLs pass (the metadata service stays outside 10/8 and 127/8)
    opened = Preflight(guard_from({"REQUIRE_HTTPS": "false", "TARGET_ALLOWLIST": "10.0.0.0/8,127.0.0.0/8,::1/128"}))(url)
    assert (opened is None) == ("169.254" not in url)
