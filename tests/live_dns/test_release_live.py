"""Release against real PowerDNS servers: the zone moves, is verified by DNS, the paid
copy drains with the free apex NS and is deleted by a later run."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from dns_lifecycle.admin.load_zones import load_zones
from dns_lifecycle.store.tickets import resolve_ticket
from flows.common import open_run
from flows.release import release_due
from models import DomainRelease, Instance, Ticket
from tests.live_dns.helpers import (
    api,
    expired,
    rrsets_of,
    run,
    served,
    unique,
    zone_exists,
)

RECORDS = [
    ("A", "@", "192.0.2.10", 300),
    ("A", "www", "192.0.2.11", 300),
    ("MX", "@", "10 mx.example.net.", 600),
    ("TXT", "@", "v=spf1 -all", 300),
]


def _domain(name, records=RECORDS, registrar="hichina", epp=()):
    return {"name": name, "registrar": registrar, "epp_statuses": list(epp), "records": records}


def _stages(db, instance_id):
    with db.session() as s:
        rows = s.execute(
            select(DomainRelease).where(DomainRelease.instance_id == instance_id)
        ).scalars()
        return {r.domain_id: r.stage for r in rows}


def test_release_moves_the_zone_verifies_it_drains_and_deletes(
    live_db, live_settings, pdns_paid, pdns_free
):
    """The free server serves every set the paid one served; the paid copy answers with
    the free NS until the drain ends, and a later run deletes it."""
    zone = f"{unique('move')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    assert load_zones(live_settings, live_db, "paid-1").created >= 1
    sets = rrsets_of(zone, RECORDS)
    before = served(pdns_paid, zone, sets)
    assert all(values for values, _ in before.values())

    settings = live_settings.model_copy(update={"drain_hours": 1.5 / 3600})
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert served(pdns_free, zone, sets) == before
    assert served(pdns_paid, zone, sets) == before  # still answering while it drains
    paid_ns = served(pdns_paid, zone, [(zone + ".", "NS")])[(zone + ".", "NS")][0]
    assert paid_ns == ["ns1.free.dns-hosting.example.", "ns2.free.dns-hosting.example."]
    assert set(_stages(live_db, inst).values()) == {"draining"}

    run(settings, release_due, instance_ids=[inst])  # the drain is not over yet
    assert zone_exists(pdns_paid, zone)
    time.sleep(1.6)
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["paid_zones_deleted"] == 1
    assert not zone_exists(pdns_paid, zone) and zone_exists(pdns_free, zone)
    assert set(_stages(live_db, inst).values()) == {"deleted"}
    with live_db.session() as s:
        assert s.get(Instance, inst).state == "released"


def test_a_zone_with_other_content_on_the_free_cluster_opens_a_ticket(
    live_db, live_settings, pdns_paid, pdns_free
):
    """free_zone_conflict: the domain stops there, the paid copy stays, and once the
    person removed the stray zone and resolved the ticket the next run finishes."""
    zone = f"{unique('conflict')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(live_settings, live_db, "paid-1")
    stray = {"name": zone + ".", "kind": "Native", "nameservers": ["ns.stray.example."]}
    assert api(pdns_free, "POST", "/zones", json=stray).status_code == 201

    report = run(live_settings, release_due, instance_ids=[inst])
    assert "instances_released" not in report.counts
    with live_db.session() as s:
        tickets = s.execute(select(Ticket)).scalars().all()
        assert [t.reason for t in tickets if t.instance_id == inst] == ["free_zone_conflict"]
        ticket_id = next(t.id for t in tickets if t.instance_id == inst)
        assert s.get(Instance, inst).state == "expired"
    assert zone_exists(pdns_paid, zone)
    again = run(live_settings, release_due, instance_ids=[inst])
    assert not again.failures  # waiting for a person is not a daily failure

    api(pdns_free, "DELETE", f"/zones/{zone}.")
    with live_db.session() as s:
        resolve_ticket(s, ticket_id, datetime.now(UTC))
        s.commit()
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert not zone_exists(pdns_paid, zone)


def test_a_record_dns_cannot_serve_opens_a_ticket_once(
    live_db, live_settings, pdns_paid, pdns_free
):
    """Two TTLs in one record set (possible in a database cluster) cannot be served: a
    zone_unwritable ticket for a person, not a failure every day."""
    from models import Cluster

    with live_db.session() as s:
        c = s.get(Cluster, "paid-1")
        c.backend, c.options, c.nameserver_addresses = "database", {}, []
        s.add(c)
        s.commit()
    zone = f"{unique('ttl')}.cn"
    inst = unique("inst")
    records = [("A", "@", "192.0.2.1", 300), ("A", "@", "192.0.2.2", 600)]
    expired(live_db, inst, [_domain(zone, records)])
    report = run(live_settings, release_due, instance_ids=[inst])
    assert report.counts["domains_blocked_zone_unwritable"] == 1
    assert any("different TTLs" in f for f in report.failures)
    again = run(live_settings, release_due, instance_ids=[inst])
    assert not again.failures and "tickets_opened" not in again.counts
    with live_db.session() as s:
        reasons = [t.reason for t in s.execute(select(Ticket)).scalars() if t.instance_id == inst]
    assert reasons == ["zone_unwritable"]
    assert not zone_exists(pdns_free, zone)


def test_dry_run_reads_and_writes_nothing(live_db, live_settings, pdns_paid, pdns_free):
    """A dry run plans the release from what the paid server serves; no zone appears on
    the free server and nothing changes on the paid one."""
    zone = f"{unique('dry')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(live_settings, live_db, "paid-1")
    report = run(live_settings, release_due, instance_ids=[inst], dry_run=True)
    assert [(p["domain"], p["nameservers"]) for p in report.plan] == [(zone, "switched")]
    assert not zone_exists(pdns_free, zone)
    paid = served(pdns_paid, zone, [(zone + ".", "NS")])[(zone + ".", "NS")][0]
    assert paid == ["ns1.paid-1.dns-hosting.example.", "ns2.paid-1.dns-hosting.example."]
    assert _stages(live_db, inst) == {}


def test_a_dry_run_ahead_plans_the_deletions_due_by_then(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A dry run for a moment after the drain ends plans the paid copy's deletion, as a
    real run then would, and deletes nothing; one for now plans none."""
    zone = f"{unique('ahead')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(live_settings, live_db, "paid-1")
    settings = live_settings.model_copy(update={"drain_hours": 2.0})
    run(settings, release_due, instance_ids=[inst])
    now = datetime.now(UTC)
    for as_of, deletions in ((now, 0), (now + timedelta(hours=3), 1)):
        report = run(settings, release_due, as_of, instance_ids=[inst], dry_run=True)
        assert report.counts.get("paid_zones_deleted", 0) == deletions
    assert zone_exists(pdns_paid, zone) and set(_stages(live_db, inst).values()) == {"draining"}


def test_a_ticketed_domain_drains_once_dns_shows_the_new_delegation(
    live_db, live_settings, pdns_paid, pdns_free
):
    """Another registrar: the ticket and the notice give the change-by date, the paid
    copy keeps serving with its own NS; once verify-delegations sees the free name
    servers, the drain starts and a later run deletes the paid copy."""
    from dns_lifecycle.lifecycle.expiry import change_by
    from flows.verify import verify_open_tickets
    from models import Notification
    from tests.dns_server import DnsServer
    from tests.live_dns.helpers import RELEASE

    zone = f"{unique('ticketed')}.com"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone, registrar="namecheap")])
    load_zones(live_settings, live_db, "paid-1")
    apex_ns = (zone + ".", "NS")
    paid_ns = served(pdns_paid, zone, [apex_ns])[apex_ns]
    settings = live_settings.model_copy(update={"drain_hours": 1 / 3600})
    started = datetime.now(UTC)
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    with live_db.session() as s:
        ticket = next(t for t in s.execute(select(Ticket)).scalars() if t.instance_id == inst)
        row = s.execute(select(DomainRelease).where(DomainRelease.instance_id == inst)).scalar_one()
        notice = (
            s.execute(
                select(Notification).where(
                    Notification.instance_id == inst, Notification.kind == "released"
                )
            )
            .scalars()
            .first()
        )
    deadline = datetime.fromisoformat(ticket.details["change_by"])
    assert ticket.reason == "external_registrar"
    assert started + timedelta(days=14) <= deadline <= change_by(datetime.now(UTC), 14)
    assert notice.context["domains"][0]["change_by"] == deadline.isoformat()
    assert row.stage == "draining" and row.drain_until >= deadline
    # The parent still delegates to the paid servers: their copy keeps its own NS, so
    # a resolver asking it does not read the free servers as the new delegation.
    assert served(pdns_paid, zone, [apex_ns])[apex_ns] == paid_ns
    run(settings, release_due, instance_ids=[inst])
    assert zone_exists(pdns_paid, zone)  # two weeks to go

    free_ns = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
    with DnsServer({zone: free_ns}) as dns_server:
        verify = live_settings.model_copy(
            update={"dns_resolvers": [dns_server.address], "drain_hours": 1 / 3600}
        )
        with open_run(RELEASE, False, None, settings=verify) as ctx:
            assert verify_open_tickets(ctx, [inst]).counts["tickets_resolved"] == 1
    time.sleep(1.1)
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["paid_zones_deleted"] == 1
    assert not zone_exists(pdns_paid, zone)


def test_release_processes_share_a_batch_and_report_as_one_run(
    live_db, live_settings, pdns_paid, pdns_free, monkeypatch
):
    """With two processes, a worker process releases its share of the chunks: every zone
    moves, each once, and the run's report counts both processes' work."""
    import dns_lifecycle.release.chunks as release_chunks
    import dns_lifecycle.release.pool as release_pool

    started = []
    real_start = release_pool.start_worker

    def start_worker(*args, **kwargs):
        started.append(kwargs.get("name"))
        return real_start(*args, **kwargs)

    monkeypatch.setattr(release_chunks, "CHUNK", 2)
    monkeypatch.setattr(release_pool, "MIN_CHUNKS_PER_PROCESS", 1)
    monkeypatch.setattr(release_pool, "start_worker", start_worker)
    zones = {unique("inst"): f"{unique('pool')}.cn" for _ in range(8)}
    for inst, zone in zones.items():
        expired(live_db, inst, [_domain(zone)])
    load_zones(live_settings, live_db, "paid-1")
    sets = {zone: rrsets_of(zone, RECORDS) for zone in zones.values()}
    before = {zone: served(pdns_paid, zone, sets[zone]) for zone in zones.values()}

    settings = live_settings.model_copy(update={"release_processes": 2})
    report = run(settings, release_due, instance_ids=list(zones))
    assert started == ["dns-lifecycle-release-1"]
    assert not report.failures
    assert report.counts["instances_released"] == 8
    assert report.counts["paid_zones_deleted"] == 8
    assert report.counts["records_moved"] == 8 * len(RECORDS)
    assert len(report.plan) == 8
    for zone in zones.values():
        assert served(pdns_free, zone, sets[zone]) == before[zone]
        assert not zone_exists(pdns_paid, zone)
    for inst in zones:
        assert set(_stages(live_db, inst).values()) == {"deleted"}
