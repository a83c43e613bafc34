"""Delegation checks against a real DNS server on loopback."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import pytest

from dns_lifecycle.channels.dns_lookup import delegated_nameservers
from dns_lifecycle.core.addresses import parse_address
from tests.dns_server import DnsServer, dead_udp_port

FREE = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
TIMEOUT = 0.3


@pytest.fixture
def server() -> Iterator[DnsServer]:
    with DnsServer({"example.com": list(FREE)}) as running:
        yield running


@pytest.fixture
def dead() -> Iterator[str]:
    sock = dead_udp_port()
    try:
        yield f"127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()


def test_returns_the_configured_name_servers(server):
    """The NS records the server holds come back as lower-case names without the dot."""
    server.nameservers["example.com"] = ["NS1.Free.DNS-hosting.example", FREE[1]]
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) == set(FREE)


def test_reflects_a_change_while_running(server):
    """A delegation changed on the server is seen by the next lookup."""
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) == set(FREE)
    server.nameservers["example.com"] = ["ns1.registrar.example"]
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) == {
        "ns1.registrar.example"
    }


def test_domain_name_is_matched_without_case_or_final_dot(server):
    """The domain may be asked in any case, with or without the final dot."""
    assert delegated_nameservers("Example.COM.", [server.address], TIMEOUT) == set(FREE)


def test_silent_server_gives_none(dead):
    """A resolver that never answers gives None (unknown), after the timeout."""
    assert delegated_nameservers("example.com", [dead], TIMEOUT) is None


def test_closed_port_gives_none():
    """A resolver port nobody listens on gives None."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    sock.close()
    assert delegated_nameservers("example.com", [f"127.0.0.1:{port}"], TIMEOUT) is None


def test_next_resolver_is_asked_when_one_is_dead(server, dead):
    """When the first resolver does not answer, the next one's answer is used."""
    assert delegated_nameservers("example.com", [dead, server.address], TIMEOUT) == set(FREE)


def test_servfail_gives_none(server):
    """SERVFAIL is not an answer: None when no other resolver answers."""
    server.rcodes["example.com"] = "SERVFAIL"
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) is None


def test_servfail_falls_through_to_the_next_resolver(server):
    """After a SERVFAIL the next resolver is asked."""
    with DnsServer({"example.com": ["ns1.other.example"]}) as other:
        server.rcodes["example.com"] = "SERVFAIL"
        assert delegated_nameservers("example.com", [server.address, other.address], TIMEOUT) == {
            "ns1.other.example"
        }


def test_nxdomain_gives_the_empty_set(server):
    """A domain that does not exist in DNS is delegated nowhere: the empty set."""
    assert delegated_nameservers("unknown.test", [server.address], TIMEOUT) == set()


def test_name_without_ns_records_gives_the_empty_set(server):
    """A name that exists but has no NS records gives the empty set."""
    assert delegated_nameservers("www.example.com", [server.address], TIMEOUT) == set()


def test_referral_from_the_parent_zone_is_read(server):
    """NS records in the authority section of a referral count as the delegation."""
    server.referral = True
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) == set(FREE)


def test_truncated_answer_is_asked_again_over_tcp(server):
    """A truncated UDP answer is followed by the same question over TCP."""
    server.truncate_udp = True
    assert delegated_nameservers("example.com", [server.address], TIMEOUT) == set(FREE)
    assert [q[2] for q in server.queries] == ["udp", "tcp"]


def test_invalid_domain_gives_none(server):
    """A name that cannot be put in a query gives None rather than raising."""
    assert delegated_nameservers("a" * 64 + ".example", [server.address], TIMEOUT) is None


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1", ("127.0.0.1", 53)),
        ("127.0.0.1:5353", ("127.0.0.1", 5353)),
        ("::1", ("::1", 53)),
        ("[::1]:5353", ("::1", 5353)),
        ("[2001:db8::1]", ("2001:db8::1", 53)),
    ],
)
def test_resolver_forms(text, expected):
    """Resolvers are given as address, address:port, or bracketed IPv6 with a port."""
    assert parse_address(text) == expected


@pytest.mark.parametrize("text", ["dns.example", "127.0.0.1:0", "127.0.0.1:x", "[::1]x"])
def test_unusable_resolver_is_a_configuration_error(text):
    """A resolver that is not an IP address with a valid port raises ValueError."""
    with pytest.raises(ValueError, match="resolver"):
        parse_address(text)
