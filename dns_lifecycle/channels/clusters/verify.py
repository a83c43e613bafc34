"""Ask a cluster's name servers for a zone, record set by record set (rule 6).

Each record set is asked of every address: all the questions to one address go out at
once over one UDP socket, and a question whose answer is truncated, lost or late is
asked again on its own (over TCP when truncated). A server passes when it answers
authoritatively (AA) with exactly the expected values and TTL. The first difference is
returned as a sentence; None means every server serves every set.
"""

from __future__ import annotations

import random
import socket
import time

import dns.exception
import dns.flags
import dns.inet
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdata
import dns.rdataclass
import dns.rdatatype

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.lifecycle.zonefile import Rr, served_form

__all__ = ["expected_sets", "served_difference"]


def expected_sets(zone: str, records: list[Rr]) -> dict[tuple[str, str], tuple[set, int]]:
    """(absolute owner, type) -> (rdata, TTL): what every server must answer, from
    ``records`` as a name server takes them; the TTL of a set is its smallest."""
    sets: dict[tuple[str, str], tuple[set, int]] = {}
    for rr in records:
        owner, rtype, rdata = served_form(rr, zone)
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
        queries: list[dns.message.Message] = []
        for (owner, rtype), _ in expected:
            question = dns.message.make_query(
                dns.name.from_text(owner), dns.rdatatype.from_text(rtype)
            )
            question.flags &= ~dns.flags.RD
            queries.append(question)
        answers = _ask_at_once(queries, host, port, timeout)
        for ((owner, rtype), (values, ttl)), query, answer in zip(
            expected, queries, answers, strict=True
        ):
            qname, rdtype = query.question[0].name, query.question[0].rdtype
            where = f"{address} for {owner} {rtype}"
            response = answer
            if response is None:
                try:
                    response, _ = dns.query.udp_with_fallback(
                        query, host, timeout=timeout, port=port
                    )
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


def _ask_at_once(
    queries: list[dns.message.Message], host: str, port: int, timeout: float
) -> list[dns.message.Message | None]:
    """The answers to ``queries``, in their order, all sent at once over one UDP socket:
    None where an answer is truncated, does not match its question, or has not come
    within ``timeout`` (the caller asks that one again on its own)."""
    answers: list[dns.message.Message | None] = [None] * len(queries)
    if not queries:
        return answers
    # Distinct ids, so that each answer finds its question on the shared socket.
    for query, qid in zip(queries, random.sample(range(65536), len(queries)), strict=True):
        query.id = qid
    by_id = {q.id: i for i, q in enumerate(queries)}
    try:
        sock = socket.socket(dns.inet.af_for_address(host), socket.SOCK_DGRAM)
    except (OSError, ValueError):
        return answers
    with sock:
        try:
            sock.connect((host, port))  # only the server's own datagrams are read
            for query in queries:
                sock.send(query.to_wire())
            waiting = len(queries)
            deadline = time.monotonic() + timeout
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                wire = sock.recv(65535)
                if len(wire) < 2:
                    continue
                i = by_id.get(int.from_bytes(wire[:2], "big"))
                if i is None or answers[i] is not None:
                    continue
                try:
                    response = dns.message.from_wire(wire)
                except dns.exception.DNSException:
                    continue  # asked again on its own, where the error is named
                if response.flags & dns.flags.TC or not queries[i].is_response(response):
                    continue
                answers[i] = response
                waiting -= 1
        except OSError:
            pass  # what did not come is asked again on its own
    return answers
