"""What the live-DNS tests ask of real servers, independently of the code under test."""

from __future__ import annotations

import itertools
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import dns.flags
import dns.message
import dns.name
import dns.query
import dns.rcode
import dns.rdatatype
import httpx

from flows.common import open_run
from tests.factories import make_instance
from tests.live_dns.servers import PowerDns

EXPIRY = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # past: real runs never evaluate the future
RELEASE = EXPIRY + timedelta(hours=168)
_ids = itertools.count(1)


def unique(prefix: str = "zone") -> str:
    """A name no other test of this process uses (the servers live for the package)."""
    return f"{prefix}-{next(_ids)}"


def served(server: PowerDns, zone: str, sets: list[tuple[str, str]]) -> dict:
    """(owner, type) -> (sorted values, TTL) as ``server`` answers, authoritatively."""
    result = {}
    for owner, rtype in sets:
        q = dns.message.make_query(owner, rtype)
        q.flags &= ~dns.flags.RD
        response, _ = dns.query.udp_with_fallback(
            q, server.address, port=server.dns_port, timeout=2
        )
        assert response.flags & dns.flags.AA, (server.dns_address, owner, rtype, response)
        values = []
        ttl = None
        for rrset in response.answer:
            if (
                rrset.name == dns.name.from_text(owner)
                and dns.rdatatype.to_text(rrset.rdtype) == rtype
            ):
                values = sorted(r.to_text() for r in rrset)
                ttl = rrset.ttl
        result[(owner, rtype)] = (values, ttl)
    return result


def api(server: PowerDns, method: str, path: str, **kw) -> httpx.Response:
    return httpx.request(
        method,
        f"{server.api_url}/api/v1/servers/localhost{path}",
        headers={"X-API-Key": server.api_key},
        timeout=5,
        **kw,
    )


def zone_exists(server: PowerDns, zone: str) -> bool:
    return api(server, "GET", f"/zones/{zone}.").status_code == 200


def rrsets_of(zone: str, records) -> list[tuple[str, str]]:
    """The (absolute owner, type) of each record set of ``records`` (type, host, ...)."""
    sets = set()
    for rtype, host, *_ in records:
        owner = zone + "." if host == "@" else f"{host}.{zone}."
        sets.add((dns.name.from_text(owner).to_text(), rtype))
    return sorted(sets)


def expired(db, instance_id: str, domains: list[dict]) -> None:
    with db.session() as s:
        make_instance(
            s,
            instance_id,
            account=f"acct-{instance_id}",
            expires_at=EXPIRY,
            state="expired",
            domains=domains,
        )
        s.commit()


def run(settings, step, as_of=RELEASE, **kw):
    with open_run(as_of, kw.pop("dry_run", False), None, settings=settings) as ctx:
        return step(ctx, **kw)


def by_set(records) -> dict:
    grouped = defaultdict(list)
    for rtype, host, value, ttl in records:
        grouped[(host, rtype)].append((value, ttl))
    return grouped


def rrset(owner: str, rtype: str, ttl: int, contents, disabled=(), comments=()) -> dict:
    """One rrset of the PowerDNS API: ``disabled`` are the contents it holds unserved."""
    return {
        "name": owner,
        "type": rtype,
        "ttl": ttl,
        "records": [{"content": c, "disabled": c in disabled} for c in contents],
        "comments": [{"account": a, "content": c} for a, c in comments],
    }


def paid_zone(server: PowerDns, zone: str, rrsets: list[dict], nameservers=None) -> None:
    """Create ``zone`` on ``server`` through its API, as its operator would (every
    record type, disabled records, comments), apex NS ``nameservers`` (TTL 7200)."""
    apex = zone.rstrip(".") + "."
    ns = nameservers or ["ns1.paid.dns-hosting.example.", "ns2.paid.dns-hosting.example."]
    body = {
        "name": apex,
        "kind": "Native",
        "nameservers": [],
        "rrsets": [rrset(apex, "NS", 7200, ns), *rrsets],
    }
    response = api(server, "POST", "/zones", json=body)
    assert response.status_code == 201, response.text
    api(server, "PUT", "/cache/flush", params={"domain": apex})


def ask(server: PowerDns, qname: str, qtype: str) -> dns.message.Message:
    q = dns.message.make_query(qname, qtype)
    q.flags &= ~dns.flags.RD
    response, _ = dns.query.udp_with_fallback(q, server.address, port=server.dns_port, timeout=2)
    return response


def answer(server: PowerDns, qname: str, qtype: str) -> tuple:
    """All that ``server`` answers to one question, section by section, each set as its
    text lines (TXT string by string); the SOA as its owner alone (servers write their
    own serials)."""
    response = ask(server, qname, qtype)

    def section(rrsets) -> tuple:
        lines = []
        for s in rrsets:
            if s.rdtype == dns.rdatatype.SOA:
                lines.append(f"{s.name} SOA")
            else:
                lines += s.to_text().splitlines()
        return tuple(sorted(lines))

    return (
        dns.rcode.to_text(response.rcode()),
        bool(response.flags & dns.flags.AA),
        section(response.answer),
        section(response.authority),
        section(response.additional),
    )
