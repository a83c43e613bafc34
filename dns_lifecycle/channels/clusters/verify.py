"""Ask a cluster's name servers for a zone, record set by record set (rule 6).

``free_copy_difference`` is the one question the release asks before each step that
cannot be undone: does the free cluster serve exactly what the paid one served?
"Exactly" is what DNS serves, all of it: the apex NS (the free cluster's own), the SOA,
TXT character-strings one by one, every type, and a delegation as DNS serves it, a
referral (not authoritative, the child's NS in the authority section and their glue in
the additional one).

Each record set is asked of every address: all the questions to one address go out at
once over one UDP socket, and a question whose answer is truncated, lost or late is
asked again on its own (over TCP when truncated). A server passes when it answers
authoritatively (AA) with exactly the expected values and TTL, or with exactly the
expected referral. The first difference is returned as a sentence; None means every
server serves every set.

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
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

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
import dns.rrset
import dns.wire

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.lifecycle.expiry import is_apex_ns, zone_content
from dns_lifecycle.lifecycle.zonefile import Rr, normalise, served_form

if TYPE_CHECKING:
    from dns_lifecycle.channels.clusters import ClusterBackend, ClusterConfig

__all__ = ["expected_sets", "free_copy_difference", "held_difference", "served_difference"]


def free_copy_difference(
    zone: str,
    records: list[Rr],
    free: ClusterConfig,
    *,
    timeout: float,
    backend: ClusterBackend | None = None,
) -> str | None:
    """The first way in which the free cluster does not serve exactly what the paid
    cluster served as ``records`` (the zone as its ``read_zone`` gave them), or None.

    The free cluster's public name servers are asked, every address of them
    (``served_difference``); and the zone the cluster holds is read through ``backend``
    (``held_difference``): DNS answers only the questions asked, so a record added
    there under another name, or a disabled record or comment changed, shows only in
    what the cluster holds. A cluster without name-server addresses (the database
    backend) is read alone. The apex NS must be the free cluster's own, with the TTL
    the paid apex NS had.
    """
    kept, ns_ttl = zone_content(records)
    if free.nameserver_addresses:
        served = served_difference(
            zone,
            kept,
            list(free.nameserver_addresses),
            timeout,
            nameservers=free.nameservers,
            ns_ttl=ns_ttl,
        )
        if served is not None or backend is None:
            return served
    if backend is None:
        raise ValueError(f"cluster {free.code} has no name-server address: pass its backend")
    there = backend.read_zone(zone)
    if there is None:
        return f"the free cluster {free.code} has no zone {zone}"
    return held_difference(zone, records, there, free.nameservers if free.live else None)


def held_difference(
    zone: str, records: list[Rr], there: list[Rr], nameservers: Sequence[str] | None
) -> str | None:
    """How the zone a cluster holds (``there``, as its ``read_zone`` gives it) differs
    from ``records`` moved to it, or None: its apex NS must be exactly ``nameservers``,
    and every other record but SOA the same, disabled records and record-set comments
    included. Values as sets, as DNS serves them. ``nameservers`` None is a database
    cluster: apex NS implied, disabled records and comments not kept."""
    if nameservers is None:
        records = [replace(r, comments=()) for r in records if not r.disabled]
    else:
        apex = sorted(
            {
                normalise(r, zone).value
                for r in there
                if is_apex_ns(r.type, r.host) and not r.disabled
            }
        )
        own = sorted({ns.rstrip(".").lower() + "." for ns in nameservers})
        if apex != own:
            return (
                f"its apex NS are {', '.join(apex) or 'none'}, not the free cluster's "
                f"{', '.join(own)}"
            )
    want = {normalise(r, zone) for r in zone_content(records)[0]}
    held = {normalise(r, zone) for r in zone_content(there)[0]}
    if want == held:
        return None
    missing = [_show(r) for r in sorted(want - held)[:3]]
    extra = [_show(r) for r in sorted(held - want)[:3]]
    return f"it lacks {missing or 'nothing'} and holds {extra or 'nothing more'}"


def _show(rr: Rr) -> str:
    flags = " (disabled)" if rr.disabled else ""
    comments = f" comments {list(rr.comments)}" if rr.comments else ""
    return f"{rr.host} {rr.ttl} {rr.type} {rr.value[:60]}{flags}{comments}"


def expected_sets(zone: str, records: list[Rr]) -> dict[tuple[str, str], tuple[set, int]]:
    """(absolute owner, type) -> (rdata, TTL): what every server must serve, from
    ``records`` as a name server takes them (disabled ones left out); the TTL of a set
    is its smallest."""
    sets: dict[tuple[str, str], tuple[set, int]] = {}
    for rr in records:
        if rr.disabled:
            continue
        owner, rtype, rdata = served_form(rr, zone)
        values, ttl = sets.get((owner, rtype), (set(), rr.ttl))
        values.add(rdata)
        sets[(owner, rtype)] = (values, min(ttl, rr.ttl))
    return sets


@dataclass(frozen=True)
class _Referral:
    """The delegation a question at or below ``cut`` is answered with."""

    cut: dns.name.Name
    ns: frozenset[dns.rdata.Rdata]
    ttl: int
    glue: bool  # the question's values are glue: in the additional section


@dataclass(frozen=True)
class _Expected:
    """One record set every server must answer with (the SOA: only that there is one)."""

    owner: str
    rtype: str
    qname: dns.name.Name
    rdtype: dns.rdatatype.RdataType
    values: frozenset[dns.rdata.Rdata]
    digests: frozenset[bytes]  # the values' canonical wire forms (RFC 4034 6.2)
    ttl: int
    question: bytes  # the question section's wire form: name, type, class IN
    referral: _Referral | None = None

    @classmethod
    def of(
        cls,
        owner: str,
        rtype: str,
        values: Iterable[dns.rdata.Rdata],
        ttl: int,
        referral: _Referral | None = None,
    ) -> _Expected:
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
            referral=referral,
        )

    def query(self, qid: int) -> bytes:
        """The question's wire form: id, no flags (RD off), one question."""
        return struct.pack("!HHHHHH", qid, 0, 1, 0, 0, 0) + self.question


def served_difference(
    zone: str,
    records: list[Rr],
    addresses: list[str],
    timeout: float,
    *,
    nameservers: Sequence[str] = (),
    ns_ttl: int | None = None,
) -> str | None:
    """The first way in which a server at ``addresses`` does not serve ``records`` of
    ``zone`` (names relative to it), or None when all of them serve all of it. With
    ``nameservers``, the apex NS must be exactly those (TTL ``ns_ttl``) and a SOA must
    be served too.

    Values are compared as DNS data (names without regard to case, TXT string for
    string); a record set at or below a delegation (other than the apex) must be served
    as the referral to it, glue included."""
    expected = _expected(zone, records, nameservers, ns_ttl)
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


def _expected(
    zone: str, records: list[Rr], nameservers: Sequence[str], ns_ttl: int | None
) -> list[_Expected]:
    sets = expected_sets(zone, records)
    apex = dns.name.from_text(zone.rstrip(".") + ".").canonicalize()
    if nameservers:
        ns = {dns.rdata.from_text("IN", "NS", n.rstrip(".") + ".") for n in nameservers}
        sets[(apex.to_text(), "NS")] = (ns, 3600 if ns_ttl is None else ns_ttl)
    # Delegations: a record set at or below a child zone's NS is served by the parent
    # as a referral to the topmost of them.
    cuts = {
        dns.name.from_text(owner): (values, ttl)
        for (owner, rtype), (values, ttl) in sets.items()
        if rtype == "NS" and dns.name.from_text(owner) != apex
    }
    expected = []
    for (owner, rtype), (values, ttl) in sorted(sets.items()):
        name = dns.name.from_text(owner)
        above = [c for c in cuts if name.is_subdomain(c) and not (name == c and rtype == "DS")]
        referral = None
        if above:
            cut = min(above, key=len)
            ns, cut_ttl = cuts[cut]
            targets = {v.target for v in ns}  # type: ignore[attr-defined]
            glue = rtype in ("A", "AAAA") and name in targets and name != cut
            referral = _Referral(cut, frozenset(ns), cut_ttl, glue)
        expected.append(_Expected.of(owner, rtype, values, ttl, referral))
    if nameservers:
        expected.append(_Expected.of(apex.to_text(), "SOA", (), 0))
    return expected


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
    if e.referral is not None:
        return _referral_difference(e, e.referral, response, where)
    if not response.flags & dns.flags.AA:
        return f"{where}: the answer is not authoritative"
    rrset = next((s for s in response.answer if s.name == e.qname and s.rdtype == e.rdtype), None)
    if rrset is None:
        return f"{where}: no such records in the answer"
    if e.rdtype == dns.rdatatype.SOA:  # the server writes its own: there is one
        return None if len(rrset) == 1 else f"{where}: {len(rrset)} SOA records"
    return _set_difference(e, rrset, where)


def _referral_difference(
    e: _Expected, referral: _Referral, response: dns.message.Message, where: str
) -> str | None:
    cut = referral.cut.to_text()
    if response.flags & dns.flags.AA or response.answer:
        return f"{where}: an answer where the referral to {cut} was served"
    ns = next(
        (s for s in response.authority if s.name == referral.cut and s.rdtype == dns.rdatatype.NS),
        None,
    )
    if ns is None:
        return f"{where}: no referral to {cut} in the authority section"
    problem = _set_difference(
        _Expected.of(cut, "NS", referral.ns, referral.ttl), ns, f"{where} (referral to {cut})"
    )
    if problem is not None or not referral.glue:
        return problem
    glue = next(
        (s for s in response.additional if s.name == e.qname and s.rdtype == e.rdtype), None
    )
    if glue is None:
        return f"{where}: no glue in the referral to {cut}"
    return _set_difference(e, glue, f"{where} (glue)")


def _set_difference(e: _Expected, rrset: dns.rrset.RRset, where: str) -> str | None:
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
    if e.referral is not None or e.rdtype == dns.rdatatype.SOA:
        return False  # not an answer with these values
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
