"""Whether a cluster's public name servers have caught up with a zone (rule 6).

A cluster's public servers may be secondaries that copy each zone from a hidden primary
by zone transfer, a few seconds after the primary has it. While a secondary does not
serve the zone yet (no answer, a refusal, an answer that is not authoritative) or
serves an older version of it (a lower SOA serial than another of the servers), a
difference in what it serves is a copy on its way, not a fault of the zone.
"""

from __future__ import annotations

from collections.abc import Iterator

import dns.exception
import dns.flags
import dns.message
import dns.query
import dns.rcode
import dns.rdatatype

from dns_lifecycle.core.addresses import parse_address

__all__ = ["behind", "delays"]

_SERIAL_HALF = 2**31


def _older(a: int, b: int) -> bool:
    """Whether serial ``a`` comes before ``b`` in serial number arithmetic (RFC 1982)."""
    return a != b and (b - a) % 2**32 < _SERIAL_HALF


def behind(
    zone: str, addresses: list[str], timeout: float, silent: set[str] | None = None
) -> dict[str, str]:
    """address -> how it is behind, for each of ``addresses`` that does not serve
    ``zone`` yet or serves an older SOA serial than another of them; empty when all of
    them serve the same version. ``silent`` (when given) holds the addresses that did
    not answer: they are not asked again, and one that does not answer now joins them."""
    lagging: dict[str, str] = {}
    serials: dict[str, int] = {}
    for address in addresses:
        if silent is not None and address in silent:
            lagging[address] = "no answer"
            continue
        host, port = parse_address(address, "name-server address")
        query = dns.message.make_query(zone.rstrip(".") + ".", dns.rdatatype.SOA)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            lagging[address] = f"no answer ({type(exc).__name__})"
            if silent is not None:
                silent.add(address)
            continue
        if response.rcode() != dns.rcode.NOERROR:
            lagging[address] = (
                f"does not serve the zone yet ({dns.rcode.to_text(response.rcode())})"
            )
            continue
        if not response.flags & dns.flags.AA:
            lagging[address] = "does not serve the zone yet (not authoritative)"
            continue
        soa = next((s for s in response.answer if s.rdtype == dns.rdatatype.SOA), None)
        if soa is None:
            lagging[address] = "does not serve the zone yet (no SOA)"
            continue
        serials[address] = soa[0].serial
    newest = next(
        (s for s in serials.values() if not any(_older(s, o) for o in serials.values())), None
    )
    for address, serial in serials.items():
        if newest is not None and _older(serial, newest):
            lagging[address] = f"serves serial {serial}, older than {newest}"
    return lagging


def delays(
    budget: float, first: float = 0.5, factor: float = 2.0, cap: float = 15.0
) -> Iterator[float]:
    """The waits between asking again, growing from ``first`` by ``factor`` up to
    ``cap``, that fit in ``budget`` seconds in all (the last one shortened to fit)."""
    spent, delay = 0.0, first
    while spent < budget:
        step = min(delay, cap, budget - spent)
        yield step
        spent += step
        delay *= factor
