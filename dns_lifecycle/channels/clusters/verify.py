"""Ask a cluster's name servers for a zone, record set by record set (rule 6).

Each record set is asked of every address: all the questions to one address go out at
once over one UDP socket, and a question whose answer is truncated, lost or late is
asked again on its own (over TCP when truncated). A server passes when it answers
authoritatively (AA) with exactly the expected values and TTL. The first difference is
returned as a sentence; None means every server serves every set.

Most answers are exactly as expected, and reading each into a full message costs more
than the rest of a release's work on the zone: an answer is first read lightly
(``_exactly_as_expected``: header, question and the answer records' canonical forms),
which can only accept it. Anything else is read in full, and that reading decides.
"""

from __future__ import annotations

import random
import socket
import struct
import time
from collections.abc import Iterable
from dataclasses import dataclass

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
import dns.wire

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


@dataclass(frozen=True)
class _Expected:
    """One record set every server must answer with."""

    owner: str
    rtype: str
    qname: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    values: frozenset[dns.rdata.Rdata]
    digests: frozenset[bytes]  # the values' canonical wire forms (RFC 4034 6.2)
    ttl: int
    question: bytes  # the question section's wire form: name, type, class IN

    @classmethod
    def of(cls, owner: str, rtype: str, values: Iterable[dns.rdata.Rdata], ttl: int) -> _Expected:
        values = frozenset(values)
        rdtype = dns.rdatatype.from_text(rtype)
        qname = dns.name.from_text(owner)
        return cls(
            owner=owner,
            rtype=rtype,
            qname=qname,
            rdtype=rdtype,
            values=values,
            digests=frozenset(v.to_digestable() for v in values),
            ttl=ttl,
            question=(qname.to_wire() or b"") + struct.pack("!HH", rdtype, dns.rdataclass.IN),
        )

    def query(self, qid: int) -> bytes:
        """The question's wire form: id, no flags (RD off), one question."""
        return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + self.question


def served_difference(
    zone: str, records: list[Rr], addresses: list[str], timeout: float
) -> str | None:
    """The first way in which a server at ``addresses`` does not serve ``records`` of
    ``zone`` (names relative to it), or None when all of them serve all of it.

    Values are compared as DNS data (names without regard to case, text exactly)."""
    expected = [
        _Expected.of(owner, rtype, values, ttl)
        for (owner, rtype), (values, ttl) in sorted(expected_sets(zone, records).items())
    ]
    for address in addresses:
        host, port = parse_address(address)
        answers = _ask_at_once(expected, host, port, timeout)
        for e, (qid, wire) in zip(expected, answers, strict=True):
            if wire is not None and _exactly_as_expected(wire, qid, e):
                continue
            problem = _difference(
                e, wire, f"{address} for {e.owner} {e.rtype}", host, port, timeout
            )
            if problem is not None:
                return problem
    return None


def _difference(
    e: _Expected, wire: bytes | None, where: str, host: str, port: int, timeout: float
) -> str | None:
    """The answer ``wire`` read in full (asked again on its own when there is none, or it
    is truncated or not an answer to the question): how it differs, or None."""
    response: dns.message.Message | None = None
    if wire is not None:
        try:
            response = dns.message.from_wire(wire)
            if response.flags & dns.flags.TC or not _answers_question(response, e):
                response = None
        except dns.exception.DNSException:
            response = None
    if response is None:
        query = dns.message.make_query(e.qname, e.rdtype)
        query.flags &= ~dns.flags.RD
        try:
            response, _ = dns.query.udp_with_fallback(query, host, timeout=timeout, port=port)
        except (dns.exception.DNSException, OSError, EOFError) as exc:
            return f"{where}: no answer ({type(exc).__name__})"
    if response.rcode() != dns.rcode.NOERROR:
        return f"{where}: {dns.rcode.to_text(response.rcode())}"
    if not response.flags & dns.flags.AA:
        return f"{where}: the answer is not authoritative"
    rrset = next((s for s in response.answer if s.name == e.qname and s.rdtype == e.rdtype), None)
    if rrset is None:
        return f"{where}: no such records in the answer"
    served = set(rrset)
    if served != e.values:
        missing = sorted(r.to_text() for r in e.values - served)[:3]
        extra = sorted(r.to_text() for r in served - e.values)[:3]
        return f"{where}: missing {missing}, unexpected {extra}"
    if rrset.ttl != e.ttl:
        return f"{where}: TTL {rrset.ttl} where {e.ttl} was served before"
    return None


def _answers_question(response: dns.message.Message, e: _Expected) -> bool:
    return (
        bool(response.flags & dns.flags.QR)
        and len(response.question) == 1
        and response.question[0].name == e.qname
        and response.question[0].rdtype == e.rdtype
        and response.question[0].rdclass == dns.rdataclass.IN
    )


# Types whose rdata holds no domain name: their wire form is their canonical form.
_NAMELESS = frozenset(
    {dns.rdatatype.A, dns.rdatatype.AAAA, dns.rdatatype.TXT, dns.rdatatype.SPF, dns.rdatatype.CAA}
)
_QR, _AA, _TC, _OPCODE_RCODE = 0x8000, 0x0400, 0x0200, 0x780F


def _exactly_as_expected(wire: bytes, qid: int, e: _Expected) -> bool:
    """Whether ``wire`` is, beyond doubt, an authoritative NOERROR answer to ``e``'s
    question with exactly its values and TTL. False means "read it in full"."""
    try:
        parser = dns.wire.Parser(wire)
        rid, flags, qdcount, ancount, _, _ = parser.get_struct("!HHHHHH")
        if rid != qid or flags & (_QR | _AA | _TC | _OPCODE_RCODE) != _QR | _AA or qdcount != 1:
            return False
        qname = dns.name.from_wire_parser(parser)
        qtype, qclass = parser.get_struct("!HH")
        if qname != e.qname or qtype != e.rdtype or qclass != dns.rdataclass.IN:
            return False
        digests: set[bytes] = set()
        ttls: set[int] = set()
        for _ in range(ancount):
            owner = dns.name.from_wire_parser(parser)
            rdtype, rdclass, ttl, rdlen = parser.get_struct("!HHIH")
            if owner != e.qname or rdtype != e.rdtype or rdclass != dns.rdataclass.IN:
                parser.get_bytes(rdlen)  # another set (a CNAME chain, say)
                continue
            if rdtype in _NAMELESS:
                digests.add(parser.get_bytes(rdlen))
            else:
                with parser.restrict_to(rdlen):
                    rdata = dns.rdata.from_wire_parser(rdclass, rdtype, parser)
                digests.add(rdata.to_digestable())
            ttls.add(ttl)
    except (dns.exception.DNSException, struct.error, ValueError):
        return False
    return digests == e.digests and bool(ttls) and min(ttls) == e.ttl


def _ask_at_once(
    expected: list[_Expected], host: str, port: int, timeout: float
) -> list[tuple[int, bytes | None]]:
    """(question id, answer) for each of ``expected``, in order, all asked at once over
    one UDP socket: no answer where none came within ``timeout`` (the caller reads each
    answer and asks again on its own where it must)."""
    # Distinct ids, so that each answer finds its question on the shared socket.
    if not expected:
        return []
    ids = random.sample(range(65536), len(expected))
    answers: list[bytes | None] = [None] * len(expected)
    by_id = {qid: i for i, qid in enumerate(ids)}
    try:
        sock = socket.socket(dns.inet.af_for_address(host), socket.SOCK_DGRAM)
    except (OSError, ValueError):
        return list(zip(ids, answers, strict=True))
    with sock:
        try:
            sock.connect((host, port))  # only the server's own datagrams are read
            for e, qid in zip(expected, ids, strict=True):
                sock.send(e.query(qid))
            waiting = len(expected)
            deadline = time.monotonic() + timeout
            while waiting:
                left = deadline - time.monotonic()
                if left <= 0:
                    break
                sock.settimeout(left)
                wire = sock.recv(65535)
                if len(wire) < 12:
                    continue
                i = by_id.get(int.from_bytes(wire[:2], "big"))
                if i is None or answers[i] is not None:
                    continue
                answers[i] = wire
                waiting -= 1
        except OSError:
            pass  # what did not come is asked again on its own
    return list(zip(ids, answers, strict=True))
