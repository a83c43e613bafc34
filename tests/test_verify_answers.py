"""The light reading of a name server's answer in the release's verification
(``channels/clusters/verify.py``): it accepts an answer only when it is exactly the
expected record set, served authoritatively; every other answer goes to the full
reading, which names the difference."""

from __future__ import annotations

import dns.flags
import dns.message
import dns.name
import dns.rcode
import dns.rdatatype
import dns.rrset
import pytest

from dns_lifecycle.channels.clusters.verify import _exactly_as_expected, _Expected

ZONE = "example.cn."


def expected(owner, rtype, ttl, *values):
    return _Expected.of(owner, rtype, dns.rrset.from_text(owner, ttl, "IN", rtype, *values), ttl)


def answer(e, qid, *rrsets, aa=True, rcode=dns.rcode.NOERROR, question=None):
    query = dns.message.make_query(question or e.qname, e.rdtype)
    query.id = qid
    response = dns.message.make_response(query)
    if aa:
        response.flags |= dns.flags.AA
    response.set_rcode(rcode)
    for owner, rtype, ttl, values in rrsets:
        response.answer.append(dns.rrset.from_text(owner, ttl, "IN", rtype, *values))
    return response.to_wire()


MX = ("www.example.cn.", "MX", 600, ["10 mx1.example.net.", "20 mx2.example.net."])
CASES = {
    "A": ("a.example.cn.", "A", 300, ["192.0.2.1", "192.0.2.2"]),
    "AAAA": ("v6.example.cn.", "AAAA", 300, ["2001:db8::1"]),
    "MX, names compressed": MX,
    "TXT, two strings": ("t.example.cn.", "TXT", 60, ['"hello" "world"']),
    "CAA": ("example.cn.", "CAA", 3600, ['0 issue "letsencrypt.org"']),
    "SRV": ("_sip._tcp.example.cn.", "SRV", 600, ["10 5 5060 sip.example.net."]),
    "wildcard owner": ("*.example.cn.", "A", 300, ["192.0.2.9"]),
}


@pytest.mark.parametrize("case", list(CASES))
def test_an_exact_authoritative_answer_is_accepted(case):
    owner, rtype, ttl, values = CASES[case]
    e = expected(owner, rtype, ttl, *values)
    assert _exactly_as_expected(answer(e, 7, (owner, rtype, ttl, values)), 7, e)


def test_names_in_values_are_compared_without_regard_to_case():
    e = expected(*MX[:3], *MX[3])
    served = (MX[0], "MX", 600, ["10 MX1.Example.NET.", "20 mx2.example.net."])
    assert _exactly_as_expected(answer(e, 7, served), 7, e)


def test_a_cname_chain_before_the_set_is_passed_over():
    e = expected("a.example.cn.", "A", 300, "192.0.2.1")
    wire = answer(
        e,
        7,
        ("b.example.cn.", "CNAME", 300, ["a.example.cn."]),
        ("a.example.cn.", "A", 300, ["192.0.2.1"]),
    )
    assert _exactly_as_expected(wire, 7, e)


DIFFERENT = {
    "a value missing": lambda e: answer(e, 7, (MX[0], "MX", 600, MX[3][:1])),
    "a value more": lambda e: answer(e, 7, (MX[0], "MX", 600, [*MX[3], "30 mx3.example.net."])),
    "another value": lambda e: answer(
        e, 7, (MX[0], "MX", 600, ["10 mx1.example.net.", "20 mx9.example.net."])
    ),
    "another TTL": lambda e: answer(e, 7, (MX[0], "MX", 300, MX[3])),
    "not authoritative": lambda e: answer(e, 7, MX, aa=False),
    "REFUSED": lambda e: answer(e, 7, rcode=dns.rcode.REFUSED),
    "NXDOMAIN": lambda e: answer(e, 7, rcode=dns.rcode.NXDOMAIN),
    "no records": lambda e: answer(e, 7),
    "another id": lambda e: answer(e, 8, MX),
    "another question": lambda e: answer(e, 7, MX, question="mail.example.cn."),
    "the set under another owner": lambda e: answer(e, 7, ("mail.example.cn.", *MX[1:])),
    "truncated": lambda e: (
        answer(e, 7, MX)[:2] + bytes([answer(e, 7, MX)[2] | 0x02]) + answer(e, 7, MX)[3:]
    ),
    "cut short": lambda e: answer(e, 7, MX)[:-5],
    "a query, not an answer": lambda e: e.query(7),
}


@pytest.mark.parametrize("case", list(DIFFERENT))
def test_any_difference_goes_to_the_full_reading(case):
    e = expected(*MX[:3], *MX[3])
    assert not _exactly_as_expected(DIFFERENT[case](e), 7, e)
