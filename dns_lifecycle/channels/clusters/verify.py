"""Ask a cluster's name servers for a zone, record set by record set (rule 6).

Each record set is asked of every address, over UDP and again over TCP when the answer
is truncated. A server passes when it answers authoritatively (AA) with exactly the
expected values and TTL. The first difference is returned as a sentence; None means
every server serves every set.
"""

from __future__ import annotations

from collections import defaultdict

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.core.errors import ZoneFileError
from dns_lifecycle.lifecycle.zonefile import Rr, from_presentation, normalise

__all__ = ["expected_sets", "served_difference"]


def expected_sets(zone: str, records: list[Rr]) -> dict[tuple[str, str], tuple[set[str], int]]:
    """(host, type) -> (values, TTL), records normalised; the TTL of a set is its smallest."""
    sets: dict[tuple[str, str], tuple[set[str], int]] = {}
    values: dict[tuple[str, str], set[str]] = defaultdict(set)
    for rr in records:
        n = normalise(rr, zone)
        values[(n.host, n.type)].add(n.value)
        prev = sets.get((n.host, n.type))
        sets[(n.host, n.type)] = (values[(n.host, n.type)], min(n.ttl, prev[1]) if prev else n.ttl)
    return sets


def served_difference(
    zone: str, records: list[Rr], addresses: list[str], timeout: float
) -> str | None:
    """The first way in which a server at ``addresses`` does not serve ``records`` of
    ``zone`` (names relative to it), or None when all of them serve all of it."""
    origin = dns.name.from_text(zone)
    for address in addresses:
        host, port = parse_address(address)
        for (owner, rtype), (values, ttl) in sorted(expected_sets(zone, records).items()):
            qname = origin if owner == "@" else dns.name.from_text(owner, origin)
            query = dns.message.make_query(qname, dns.rdatatype.from_text(rtype))
            query.flags &= ~dns.flags.RD
            where = f"{address} for {qname.to_text()} {rtype}"
            try:
                response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                return f"{where}: no answer ({type(exc).__name__})"
            if response.rcode() != dns.rcode.NOERROR:
                return f"{where}: {dns.rcode.to_text(response.rcode())}"
            if not response.flags & dns.flags.AA:
                return f"{where}: the answer is not authoritative"
            rrset = next(
                (
                    s
                    for s in response.answer
                    if s.name == qname and dns.rdatatype.to_text(s.rdtype) == rtype
                ),
                None,
            )
            if rrset is None:
                return f"{where}: no such records in the answer"
            try:
                served = {
                    from_presentation(qname.to_text(), rtype, rrset.ttl, r.to_text(), zone).value
                    for r in rrset
                }
            except ZoneFileError as exc:
                return f"{where}: {exc}"
            if served != values:
                missing = sorted(values - served)[:3]
                extra = sorted(served - values)[:3]
                return f"{where}: missing {missing}, unexpected {extra}"
            if rrset.ttl != ttl:
                return f"{where}: TTL {rrset.ttl} where {ttl} was served before"
    return None
