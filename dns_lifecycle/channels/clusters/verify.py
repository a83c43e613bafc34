"""Ask a cluster's name servers for a zone, record set by record set (rule 6).

Each record set is asked of every address, over UDP and again over TCP when the answer
is truncated. A server passes when it answers authoritatively (AA) with exactly the
expected values and TTL. The first difference is returned as a sentence; None means
every server serves every set.
"""

from __future__ import annotations

import dns.exception
import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.lifecycle.zonefile import Rr, presentation

__all__ = ["expected_sets", "served_difference"]


def expected_sets(zone: str, records: list[Rr]) -> dict[tuple[str, str], tuple[set, int]]:
    """(absolute owner, type) -> (rdata, TTL): what every server must answer, from
    ``records`` as a name server takes them; the TTL of a set is its smallest."""
    sets: dict[tuple[str, str], tuple[set, int]] = {}
    for rr in records:
        owner, rtype, content = presentation(rr, zone)
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN,
            dns.rdatatype.from_text(rtype),
            content,
            origin=dns.name.root,
            relativize=False,
        )
        values, ttl = sets.get((owner, rtype), (set(), rr.ttl))
        values.add(rdata)
        sets[(owner, rtype)] = (values, min(ttl, rr.ttl))
    return sets


def served_difference(
    zone: str, records: list[Rr], addresses: list[str], timeout: float
) -> str | None:
    """The first way in which a server at ``addresses`` does not serve ``records`` of
    ``zone`` (names relative to it), or None when all of them serve all of it.

    Values are compared as DNS data (names without regard to case, text exactly)."""
    expected = sorted(expected_sets(zone, records).items())
    for address in addresses:
        host, port = parse_address(address)
        for (owner, rtype), (values, ttl) in expected:
            qname = dns.name.from_text(owner)
            rdtype = dns.rdatatype.from_text(rtype)
            query = dns.message.make_query(qname, rdtype)
            query.flags &= ~dns.flags.RD
            where = f"{address} for {owner} {rtype}"
            try:
                response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
            except (dns.exception.DNSException, OSError, EOFError) as exc:
                return f"{where}: no answer ({type(exc).__name__})"
            if response.rcode() != dns.rcode.NOERROR:
                return f"{where}: {dns.rcode.to_text(response.rcode())}"
            if not response.flags & dns.flags.AA:
                return f"{where}: the answer is not authoritative"
            rrset = next(
                (s for s in response.answer if s.name == qname and s.rdtype == rdtype), None
            )
            if rrset is None:
                return f"{where}: no such records in the answer"
            served = set(rrset)
            if served != values:
                missing = sorted(r.to_text() for r in values - served)[:3]
                extra = sorted(r.to_text() for r in served - values)[:3]
                return f"{where}: missing {missing}, unexpected {extra}"
            if rrset.ttl != ttl:
                return f"{where}: TTL {rrset.ttl} where {ttl} was served before"
    return None
