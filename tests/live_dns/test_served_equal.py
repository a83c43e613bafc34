"""Equal is what DNS serves: for random zones, every question the paid PowerDNS answered
before the release, the free one answers the same way after it, section by section (TXT
string by string, delegations as referrals), the apex NS being the free cluster's own."""

from __future__ import annotations

import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.ANY.TXT
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st

from flows.release import release_due
from tests.live_dns.helpers import answer, expired, paid_zone, run, unique, zone_exists

FREE_NS = ["ns1.free.dns-hosting.example.", "ns2.free.dns-hosting.example."]
HOSTS = ["@", "www", "*", "*.wild", "mail", "a.b"]
# Every type the zones hold, and what an empty name answers.
TYPES = ["A", "AAAA", "TXT", "CAA", "HTTPS", "SVCB", "NS", "TYPE65401", "SOA", "MX"]
# Names no record is at: under a wildcard, under the delegation, nowhere.
ELSEWHERE = ["x.wild", "x.sub", "deep.x.sub", "nothere", "b"]

txt = st.lists(st.binary(max_size=255), min_size=1, max_size=4).map(
    lambda strings: dns.rdtypes.ANY.TXT.TXT(dns.rdataclass.IN, dns.rdatatype.TXT, strings).to_text()
)
svcb = st.sampled_from(
    [
        "1 . alpn=h2,h3",
        "1 . alpn=h3 port=8443",
        "2 svc.example.net. ipv4hint=192.0.2.1,192.0.2.2",
        "0 target.example.net.",
        "1 . alpn=h2 ipv6hint=2001:db8::1",
    ]
)
caa = st.tuples(
    st.sampled_from([0, 128]),
    st.sampled_from(["issue", "issuewild", "iodef"]),
    st.sampled_from(["letsencrypt.org", "pki.goog; cansignhttpexchanges=yes", ""]),
).map(lambda t: f'{t[0]} {t[1]} "{t[2]}"')
rdata = st.one_of(
    st.tuples(st.just("A"), st.ip_addresses(v=4).map(str)),
    st.tuples(st.just("AAAA"), st.sampled_from(["2001:db8::1", "2001:db8::53", "fe80::1"])),
    st.tuples(st.just("TXT"), txt),
    st.tuples(st.just("CAA"), caa),
    st.tuples(st.just("HTTPS"), svcb),
    st.tuples(st.just("SVCB"), svcb),
)


@st.composite
def zones(draw) -> list[dict]:
    """API rrsets of a zone (owners relative, '{zone}' filled in later): random sets
    with disabled records and comments, maybe an ALIAS and a delegation with glue."""
    sets: dict[tuple[str, str], dict] = {}
    for host, (rtype, value), disabled in draw(
        st.lists(st.tuples(st.sampled_from(HOSTS), rdata, st.booleans()), min_size=1, max_size=14)
    ):
        entry = sets.setdefault(
            (host, rtype),
            {"ttl": draw(st.integers(1, 86400)), "records": [], "comments": []},
        )
        if all(r["content"] != value for r in entry["records"]):
            entry["records"].append({"content": value, "disabled": disabled})
    for entry in sets.values():
        if draw(st.booleans()):
            entry["comments"].append({"account": "ops", "content": draw(st.text(max_size=40))})
    if draw(st.booleans()):
        sets[("al", "ALIAS")] = {
            "ttl": 300,
            "records": [{"content": "lb.example.net.", "disabled": False}],
            "comments": [],
        }
    if draw(st.booleans()):
        ttl = draw(st.integers(60, 86400))
        glue = [{"content": draw(st.ip_addresses(v=4).map(str)), "disabled": False}]
        sets[("sub", "NS")] = {
            "ttl": ttl,
            "records": [
                {"content": "ns1.sub.{zone}.", "disabled": False},
                {"content": "ns.example.net.", "disabled": False},
            ],
            "comments": [],
        }
        sets[("ns1.sub", "A")] = {"ttl": ttl, "records": glue, "comments": []}
    return [{"host": host, "type": rtype, **entry} for (host, rtype), entry in sets.items()]


def _rrsets(zone: str, spec: list[dict]) -> list[dict]:
    out = []
    for s in spec:
        owner = f"{zone}." if s["host"] == "@" else f"{s['host']}.{zone}."
        out.append(
            {
                "name": owner,
                "type": s["type"],
                "ttl": s["ttl"],
                "records": [
                    {"content": r["content"].replace("{zone}", zone), "disabled": r["disabled"]}
                    for r in s["records"]
                ],
                "comments": s["comments"],
            }
        )
    return out


@hyp_settings(
    max_examples=10,
    deadline=None,
    suppress_health_check=list(HealthCheck),
    derandomize=False,
    # Each example is a release against real servers: a failing zone is reported as
    # drawn, not shrunk over minutes.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
)
@given(spec=zones())
def test_the_free_servers_answer_every_question_as_the_paid_one_did(
    live_db, live_settings, pdns_paid, pdns_free, spec
):
    """Every name and type, every section: the same answers after the release, but for
    the apex NS, which are the free cluster's own with the paid apex NS's TTL."""
    zone = f"{unique('equal')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(pdns_paid, zone, _rrsets(zone, spec))
    hosts = {s["host"] for s in spec} | set(ELSEWHERE) | {"@"}
    questions = [
        (f"{zone}." if h == "@" else f"{h}.{zone}.", t)
        for h in sorted(hosts)
        for t in TYPES
        if (h, t) != ("@", "NS")
    ]
    before = {q: answer(pdns_paid, *q) for q in questions}

    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert not zone_exists(pdns_paid, zone)
    after = {q: answer(pdns_free, *q) for q in questions}
    assert {q: a for q, a in after.items() if a != before[q]} == {}
    apex_ns = answer(pdns_free, f"{zone}.", "NS")
    assert apex_ns[:2] == ("NOERROR", True)
    assert apex_ns[2] == tuple(f"{zone}. 7200 IN NS {ns}" for ns in FREE_NS)
