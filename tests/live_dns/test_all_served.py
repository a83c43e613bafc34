"""All that DNS serves moves: apex NS, TXT strings one by one, disabled records and
comments, delegations, SVCB/HTTPS as served, ALIAS and binary TXT; what cannot move
opens one ticket that names it."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from dns_lifecycle.channels.clusters import ClusterConfig
from dns_lifecycle.channels.clusters.verify import free_copy_difference
from dns_lifecycle.lifecycle.zonefile import Rr
from dns_lifecycle.store.tickets import resolve_ticket, retry_ticket
from flows.release import release_due
from models import DomainRelease, Ticket, ZoneSnapshot
from tests.live_dns.helpers import (
    answer,
    api,
    expired,
    paid_zone,
    rrset,
    run,
    unique,
    zone_exists,
)

FREE_NS = ["ns1.free.dns-hosting.example.", "ns2.free.dns-hosting.example."]
DKIM = "v=DKIM1; k=rsa; p=" + "A" * 380


def _expired(db, paid, prefix, rrsets):
    """A zone on the paid server (``rrsets`` of it) and its expired instance, due."""
    zone = f"{unique(prefix)}.cn"
    inst = unique("inst")
    expired(db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(paid, zone, [rrset(o.format(zone=zone), *rest) for o, *rest in rrsets])
    return zone, inst


def _tickets(db, inst) -> list[Ticket]:
    with db.session() as s:
        return list(s.execute(select(Ticket).where(Ticket.instance_id == inst)).scalars())


def _zone_copy(db, inst) -> str:
    with db.session() as s:
        return s.execute(
            select(ZoneSnapshot.zone_text).where(ZoneSnapshot.instance_id == inst)
        ).scalar_one()


def _free_config(free) -> ClusterConfig:
    return ClusterConfig(
        code="free",
        kind="free",
        nameservers=tuple(FREE_NS),
        backend="powerdns",
        options={"api_url": free.api_url},
        nameserver_addresses=(free.dns_address,),
    )


# --- apex NS ---------------------------------------------------------------------------


def test_a_free_zone_with_the_same_records_but_other_apex_ns_is_a_conflict(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A zone already on the free cluster naming other name servers is never "the same":
    a free_zone_conflict ticket, no switch, the paid copy kept."""
    zone = f"{unique('hijack')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    records = [rrset(f"www.{zone}.", "A", 300, ["192.0.2.10"])]
    paid_zone(pdns_paid, zone, records)
    paid_zone(pdns_free, zone, records, ["ns1.hijack.example.", "ns2.hijack.example."])

    report = run(live_settings, release_due, instance_ids=[inst])
    assert "instances_released" not in report.counts
    tickets = _tickets(live_db, inst)
    assert [t.reason for t in tickets] == ["free_zone_conflict"]
    assert "ns1.hijack.example." in tickets[0].details["problem"]
    assert zone_exists(pdns_paid, zone)
    with live_db.session() as s:
        stages = s.execute(
            select(DomainRelease.stage).where(DomainRelease.instance_id == inst)
        ).scalars()
        assert list(stages) == ["read"]


def test_verification_asks_for_the_apex_ns(pdns_free):
    """A free copy serving every record but other apex NS is not verified."""
    zone = f"{unique('apexns')}.cn"
    paid_zone(
        pdns_free,
        zone,
        [rrset(f"www.{zone}.", "A", 300, ["192.0.2.10"])],
        ["ns1.hijack.example.", "ns2.hijack.example."],
    )
    records = [Rr("A", "www", "192.0.2.10", 300), Rr("NS", "@", "ns1.paid.example.", 7200)]
    problem = free_copy_difference(zone, records, _free_config(pdns_free), timeout=1)
    assert problem is not None and f"{zone}. NS" in problem and "hijack" in problem


# --- TXT strings -------------------------------------------------------------------------


def test_txt_strings_are_served_and_copied_one_by_one(live_db, live_settings, pdns_paid, pdns_free):
    """TXT strings "a" "b" "c", "" "x" and a DKIM key cut at 200 bytes stay as they were,
    served by the free servers and in the zone-file copy."""
    dkim = f'"{DKIM[:200]}" "{DKIM[200:]}"'
    zone, inst = _expired(
        live_db, pdns_paid, "txt", [("t.{zone}.", "TXT", 300, ['"a" "b" "c"', '"" "x"', dkim])]
    )
    before = answer(pdns_paid, f"t.{zone}.", "TXT")
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert answer(pdns_free, f"t.{zone}.", "TXT") == before
    copy = _zone_copy(live_db, inst)
    assert '"a" "b" "c"' in copy and '"" "x"' in copy and dkim in copy


def test_the_comparison_tells_split_strings_from_joined_ones(pdns_free):
    """A free copy serving "abc" where "a" "b" "c" was served differs."""
    zone = f"{unique('joined')}.cn"
    paid_zone(pdns_free, zone, [rrset(f"t.{zone}.", "TXT", 300, ['"abc"'])], FREE_NS)
    records = [
        Rr("TXT", "t", '"a" "b" "c"', 300, quoted=True),
        Rr("NS", "@", "ns1.paid.example.", 7200),
    ]
    problem = free_copy_difference(zone, records, _free_config(pdns_free), timeout=1)
    assert problem is not None and '"a" "b" "c"' in problem


# --- disabled records and comments --------------------------------------------------------


def test_disabled_records_and_comments_are_carried_over_and_kept_in_the_copy(
    live_db, live_settings, pdns_paid, pdns_free
):
    """The free PowerDNS holds the disabled record and the set's comment; the zone-file
    copy keeps both as comment lines."""
    zone, inst = _expired(
        live_db,
        pdns_paid,
        "disabled",
        [("d.{zone}.", "A", 300, ["192.0.2.1", "192.0.2.2"], ["192.0.2.2"], [("ops", "old web")])],
    )
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    held = api(pdns_free, "GET", f"/zones/{zone}.").json()["rrsets"]
    d = next(r for r in held if r["name"] == f"d.{zone}." and r["type"] == "A")
    assert sorted((r["content"], r["disabled"]) for r in d["records"]) == [
        ("192.0.2.1", False),
        ("192.0.2.2", True),
    ]
    assert [(c["account"], c["content"]) for c in d["comments"]] == [("ops", "old web")]
    copy = _zone_copy(live_db, inst)
    assert "; d 300 IN A 192.0.2.2" in copy
    assert '; d A "ops": "old web"' in copy


# --- delegations ---------------------------------------------------------------------------


def test_a_delegation_with_glue_is_verified_as_a_referral(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A child zone's NS and glue verify as the referral DNS serves: no
    free_zone_unverified ticket, and the free servers refer as the paid one did."""
    zone = f"{unique('deleg')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(
        pdns_paid,
        zone,
        [
            rrset(f"sub.{zone}.", "NS", 600, [f"ns1.sub.{zone}.", "ns.example.net."]),
            rrset(f"ns1.sub.{zone}.", "A", 600, ["192.0.2.53"]),
            rrset(f"www.{zone}.", "A", 300, ["192.0.2.80"]),
        ],
    )
    questions = [(f"sub.{zone}.", "NS"), (f"ns1.sub.{zone}.", "A"), (f"x.sub.{zone}.", "A")]
    before = [answer(pdns_paid, q, t) for q, t in questions]
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert not _tickets(live_db, inst)
    assert [answer(pdns_free, q, t) for q, t in questions] == before


# --- SVCB/HTTPS ------------------------------------------------------------------------------


def test_an_https_record_is_sent_as_the_paid_server_served_it(
    live_db, live_settings, pdns_paid, pdns_free
):
    """HTTPS 1 . alpn=h2,h3 and SVCB with hints move without a refusal and are served
    the same."""
    zone = f"{unique('https')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(
        pdns_paid,
        zone,
        [
            rrset(f"{zone}.", "HTTPS", 300, ["1 . alpn=h2,h3"]),
            rrset(
                f"_8443._svc.{zone}.",
                "SVCB",
                300,
                ["2 svc.example.net. port=8443 ipv4hint=192.0.2.1,192.0.2.2"],
            ),
        ],
    )
    questions = [(f"{zone}.", "HTTPS"), (f"_8443._svc.{zone}.", "SVCB")]
    before = [answer(pdns_paid, q, t) for q, t in questions]
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert not _tickets(live_db, inst)
    assert [answer(pdns_free, q, t) for q, t in questions] == before


# --- every type, or a ticket -------------------------------------------------------------


def test_alias_and_binary_txt_are_moved(live_db, live_settings, pdns_paid, pdns_free):
    """An ALIAS record and a TXT record that is not UTF-8 move like any other."""
    zone = f"{unique('alias')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(
        pdns_paid,
        zone,
        [
            rrset(f"{zone}.", "ALIAS", 300, ["lb.example.net."]),
            rrset(f"bin.{zone}.", "TXT", 300, ['"\\200\\255" "\\000ok"']),
        ],
    )
    questions = [(f"{zone}.", "TYPE65401"), (f"bin.{zone}.", "TXT")]
    before = [answer(pdns_paid, q, t) for q, t in questions]
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert [answer(pdns_free, q, t) for q, t in questions] == before
    assert "lb.example.net." in _zone_copy(live_db, inst)


def test_a_record_that_cannot_move_opens_one_ticket_naming_it(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A LUA record (code no other server runs) opens zone_unwritable naming it, once."""
    zone = f"{unique('lua')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(pdns_paid, zone, [rrset(f"dyn.{zone}.", "LUA", 60, ["A \"return '192.0.2.1'\""])])
    run(live_settings, release_due, instance_ids=[inst])
    again = run(live_settings, release_due, instance_ids=[inst])
    assert "tickets_opened" not in again.counts
    tickets = _tickets(live_db, inst)
    assert [t.reason for t in tickets] == ["zone_unwritable"]
    assert f"dyn.{zone}. LUA" in tickets[0].details["problem"]
    assert not zone_exists(pdns_free, zone)


def test_a_resolved_ticket_with_its_cause_unchanged_waits_for_the_operators_retry(
    live_db, live_settings, pdns_paid, pdns_free
):
    """Resolved with the same record still there, the ticket does not open again on the
    next run; after `tickets retry` it does."""
    zone = f"{unique('wait')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(pdns_paid, zone, [rrset(f"dyn.{zone}.", "LUA", 60, ["A \"return '192.0.2.1'\""])])
    run(live_settings, release_due, instance_ids=[inst])
    (ticket,) = _tickets(live_db, inst)
    with live_db.session() as s:
        resolve_ticket(s, ticket.id, datetime.now(UTC))
        s.commit()

    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["tickets_not_reopened"] == 1
    assert [t.state for t in _tickets(live_db, inst)] == ["resolved"]

    with live_db.session() as s:
        retry_ticket(s, ticket.id, datetime.now(UTC))
        s.commit()
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["tickets_opened"] == 1
    assert sorted(t.state for t in _tickets(live_db, inst)) == ["open", "resolved"]


def test_a_resolved_ticket_opens_again_at_once_when_its_cause_changed(
    live_db, live_settings, pdns_paid, pdns_free
):
    """Another record that cannot move, after the ticket was resolved, opens a new one."""
    zone = f"{unique('changed')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [{"name": zone, "registrar": "hichina", "records": []}])
    paid_zone(pdns_paid, zone, [rrset(f"dyn.{zone}.", "LUA", 60, ["A \"return '192.0.2.1'\""])])
    run(live_settings, release_due, instance_ids=[inst])
    (ticket,) = _tickets(live_db, inst)
    with live_db.session() as s:
        resolve_ticket(s, ticket.id, datetime.now(UTC))
        s.commit()
    api(
        pdns_paid,
        "PATCH",
        f"/zones/{zone}.",
        json={
            "rrsets": [
                dict(
                    rrset(f"dyn.{zone}.", "LUA", 60, ["A \"return '192.0.2.2'\""]),
                    changetype="REPLACE",
                )
            ]
        },
    ).raise_for_status()
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["tickets_opened"] == 1
    assert sorted(t.state for t in _tickets(live_db, inst)) == ["open", "resolved"]
