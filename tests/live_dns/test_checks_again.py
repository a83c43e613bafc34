"""Every irreversible step of a live release checks again first (rule 6): the dry run
reads what the real run reads, the registrar is asked for the lock of every HiChina
domain, the switch waits for a fresh verification, and the paid copy is deleted only
once the free copy is verified again and the paid copy still equals what was moved."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from dns_lifecycle.admin.load_zones import load_zones
from dns_lifecycle.core.errors import TooManyFailures
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.store.tickets import resolve_ticket
from flows.artifacts import check_failures
from flows.release import release_due
from models import DomainRelease, Ticket, ZoneSnapshot
from tests.aliyun_domain_standin import AliyunDomainStandIn
from tests.live_dns.helpers import api, expired, run, unique, zone_exists

RECORDS = [
    ("A", "@", "192.0.2.30", 300),
    ("A", "www", "192.0.2.31", 300),
    ("TXT", "@", "checked again", 300),
]
PAID_NS = ("ns1.paid-1.dns-hosting.example", "ns2.paid-1.dns-hosting.example")
FREE_NS = ("ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example")


def _domain(name, registrar="hichina", epp=()):
    return {"name": name, "registrar": registrar, "epp_statuses": list(epp), "records": RECORDS}


def run_step_now(settings: Settings, inst: str):
    """A release run whose report is checked as the flow checks it."""
    report = run(settings, release_due, instance_ids=[inst])
    check_failures(report, settings.failure_threshold)
    return report


def _row(db, instance_id) -> DomainRelease:
    with db.session() as s:
        return s.execute(
            select(DomainRelease).where(DomainRelease.instance_id == instance_id)
        ).scalar_one()


def _tickets(db, instance_id) -> list[Ticket]:
    with db.session() as s:
        return list(
            s.execute(
                select(Ticket).where(Ticket.instance_id == instance_id).order_by(Ticket.id)
            ).scalars()
        )


def test_a_dry_run_plans_the_conflict_the_real_run_finds(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A zone with other records already on the free server: the dry run plans the
    free_zone_conflict ticket the real run opens, not a switch."""
    zone = f"{unique('dryconflict')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(live_settings, live_db, "paid-1")
    stray = {"name": zone + ".", "kind": "Native", "nameservers": ["ns.stray.example."]}
    assert api(pdns_free, "POST", "/zones", json=stray).status_code == 201

    planned = run(live_settings, release_due, instance_ids=[inst], dry_run=True)
    real = run(live_settings, release_due, instance_ids=[inst])
    assert planned.plan == real.plan == []
    assert planned.counts["domains_blocked_free_zone_conflict"] == 1
    assert real.counts["domains_blocked_free_zone_conflict"] == 1
    assert [t.reason for t in _tickets(live_db, inst)] == ["free_zone_conflict"]
    assert zone_exists(pdns_paid, zone)


@pytest.fixture
def aliyun(live_settings) -> Iterator[tuple[AliyunDomainStandIn, Settings]]:
    """The provider's Domain API (a stand-in on loopback), and settings that use it."""
    with AliyunDomainStandIn() as standin:
        fields = standin.settings_fields()
        fields["aliyun_access_key_secret"] = SecretStr(fields["aliyun_access_key_secret"])
        yield standin, live_settings.model_copy(update=fields)


def _at_registrar(standin: AliyunDomainStandIn, zone: str, *, locked: bool = False) -> None:
    standin.add_domain(zone, list(PAID_NS), locked=locked)


def test_a_stale_imported_lock_is_read_again_at_the_registrar(live_db, pdns_paid, aliyun):
    """The inventory says clientUpdateProhibited, the registrar has no lock: the domain
    is switched, and no domain_locked ticket asks the customer to unlock it."""
    standin, settings = aliyun
    zone = f"{unique('stalelock')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone, epp=["clientUpdateProhibited"])])
    load_zones(settings, live_db, "paid-1")
    _at_registrar(standin, zone)

    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert "QueryDomainByDomainName" in standin.actions, (
        report.counts,
        settings.registrar_backend,
        standin.requests,
    )
    assert _tickets(live_db, inst) == []
    assert _row(live_db, inst).delegation == "switched"
    assert standin.nameservers(zone) == list(FREE_NS)


def test_a_lock_the_registrar_holds_opens_a_ticket(live_db, pdns_paid, aliyun):
    """No lock in the inventory, locked at the registrar: domain_locked, no switch."""
    standin, settings = aliyun
    zone = f"{unique('livelock')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(settings, live_db, "paid-1")
    _at_registrar(standin, zone, locked=True)

    run(settings, release_due, instance_ids=[inst])
    assert [t.reason for t in _tickets(live_db, inst)] == ["domain_locked"]
    assert "SaveBatchTaskForModifyingDomainDns" not in standin.actions


def _drained(db, settings, inst: str, zone: str) -> None:
    """Release ``zone`` (switched, its paid copy draining), then end its drain by
    moving its end into the past, as the clock would."""
    expired(db, inst, [_domain(zone)])
    load_zones(settings, db, "paid-1")
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["instances_released"] == 1, report.failures
    assert _row(db, inst).stage == "draining"
    with db.session() as s:
        row = s.execute(select(DomainRelease).where(DomainRelease.instance_id == inst)).scalar_one()
        row.drain_until = datetime.now(UTC) - timedelta(seconds=1)
        s.commit()


def _set_rrset(server, zone: str, host: str, rtype: str, values: list[str]) -> None:
    owner = f"{host}.{zone}." if host != "@" else f"{zone}."
    rrset = {
        "name": owner,
        "type": rtype,
        "ttl": 300,
        "changetype": "REPLACE",
        "records": [{"content": v, "disabled": False} for v in values],
    }
    assert api(server, "PATCH", f"/zones/{zone}.", json={"rrsets": [rrset]}).status_code == 204


CHANGES = {
    "the free zone deleted": (
        lambda paid, free, zone: api(free, "DELETE", f"/zones/{zone}."),
        "REFUSED",
    ),
    "a free record edited": (
        lambda paid, free, zone: _set_rrset(free, zone, "www", "A", ["192.0.2.99"]),
        "192.0.2.99",
    ),
    "a paid record added": (
        lambda paid, free, zone: _set_rrset(paid, zone, "extra", "A", ["192.0.2.77"]),
        "192.0.2.77",
    ),
    # DNS answers only what is asked: these show in what the free cluster holds.
    "a free record added under a new name": (
        lambda paid, free, zone: _set_rrset(free, zone, "evil", "A", ["203.0.113.66"]),
        "203.0.113.66",
    ),
    "a free wildcard added": (
        lambda paid, free, zone: _set_rrset(free, zone, "*", "A", ["203.0.113.7"]),
        "203.0.113.7",
    ),
    "a free record of a new type at a moved name": (
        lambda paid, free, zone: _set_rrset(free, zone, "www", "TXT", ['"injected"']),
        "injected",
    ),
}


@pytest.mark.parametrize("change", list(CHANGES))
def test_a_change_during_the_drain_keeps_the_paid_copy(
    live_db, live_settings, pdns_paid, pdns_free, change
):
    """The world changes under a draining release: at the end of the drain the paid
    copy is kept, a copies_differ ticket names the change, and the run fails saying so."""
    make_change, named = CHANGES[change]
    settings = live_settings.model_copy(update={"drain_hours": 1.0})
    zone = f"{unique('changed')}.cn"
    inst = unique("inst")
    _drained(live_db, settings, inst, zone)
    make_change(pdns_paid, pdns_free, zone)

    with pytest.raises(TooManyFailures) as failed:
        run_step_now(settings, inst)
    assert "1 paid copy kept" in str(failed.value) and zone in str(failed.value)
    report = failed.value.report
    assert "paid_zones_deleted" not in report.counts
    assert any(named in f for f in report.failures), report.failures
    assert zone_exists(pdns_paid, zone)
    (ticket,) = _tickets(live_db, inst)
    assert ticket.reason == "copies_differ" and named in ticket.details["problem"]
    assert _row(live_db, inst).stage == "draining"

    again = run(settings, release_due, instance_ids=[inst])  # waits for the person
    assert not again.failures and zone_exists(pdns_paid, zone)


def test_a_resolved_difference_is_checked_again_before_the_paid_copy_goes(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A record added to the paid copy during the drain: resolving the ticket without
    giving it to the free copy opens another; once the free copy serves it, the paid
    copy is deleted and a zone-file copy of what it held then is kept."""
    settings = live_settings.model_copy(update={"drain_hours": 1.0})
    zone = f"{unique('resolved')}.cn"
    inst = unique("inst")
    _drained(live_db, settings, inst, zone)
    _set_rrset(pdns_paid, zone, "extra", "A", ["192.0.2.77"])
    run(settings, release_due, instance_ids=[inst])

    for fixed in (False, True):
        (ticket,) = [t for t in _tickets(live_db, inst) if t.state == "open"]
        if fixed:
            _set_rrset(pdns_free, zone, "extra", "A", ["192.0.2.77"])
        with live_db.session() as s:
            resolve_ticket(s, ticket.id, datetime.now(UTC))
            s.commit()
        report = run(settings, release_due, instance_ids=[inst])
        assert zone_exists(pdns_paid, zone) is not fixed, report.failures
    assert [t.reason for t in _tickets(live_db, inst)] == ["copies_differ"] * 2
    assert _row(live_db, inst).stage == "deleted"
    with live_db.session() as s:
        copies = s.execute(
            select(ZoneSnapshot.zone_text)
            .where(ZoneSnapshot.instance_id == inst)
            .order_by(ZoneSnapshot.id)
        ).scalars()
        assert ["192.0.2.77" in text for text in copies] == [False, True]


def test_a_stale_verification_is_made_again_before_the_switch(
    live_db, pdns_paid, pdns_free, aliyun
):
    """The registrar was unreachable after the verification; by the next run a free
    record has changed: the verification, too old, is made again and the domain is not
    switched."""
    standin, settings = aliyun
    zone = f"{unique('stale')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(settings, live_db, "paid-1")
    _at_registrar(standin, zone)
    standin.throttle("QueryDomainByDomainName")
    run(settings, release_due, instance_ids=[inst])
    assert _row(live_db, inst).stage == "verified"
    with live_db.session() as s:
        row = s.execute(select(DomainRelease).where(DomainRelease.instance_id == inst)).scalar_one()
        row.verified_at -= timedelta(minutes=settings.verify_fresh_minutes + 1)
        s.commit()
    _set_rrset(pdns_free, zone, "www", "A", ["192.0.2.99"])

    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts["switches_held"] == 1
    assert any("192.0.2.99" in f for f in report.failures), report.failures
    assert "SaveBatchTaskForModifyingDomainDns" not in standin.actions
    assert standin.nameservers(zone) == list(PAID_NS)
    assert _row(live_db, inst).stage == "verified"


def test_a_lost_switch_answer_is_found_and_not_asked_for_twice(
    live_db, pdns_paid, pdns_free, aliyun
):
    """The registrar applies the switch but its answer is lost: the next run finds the
    task it created (QueryTaskList, QueryTaskDetailList) and follows it, and the domain
    gets one switch task, not two."""
    standin, settings = aliyun
    standin.pending_polls = 1  # the first task is still running when the next run comes
    zone = f"{unique('lost')}.cn"
    inst = unique("inst")
    expired(live_db, inst, [_domain(zone)])
    load_zones(settings, live_db, "paid-1")
    _at_registrar(standin, zone)
    standin.lose_answer("SaveBatchTaskForModifyingDomainDns")

    first = run(settings, release_due, instance_ids=[inst])
    assert any("SaveBatchTaskForModifyingDomainDns" in f for f in first.failures), first.failures
    assert len(standin.tasks) == 1 and _row(live_db, inst).stage == "verified"
    report = run(settings, release_due, instance_ids=[inst])
    assert len(standin.tasks) == 1 and "QueryTaskList" in standin.actions
    assert report.counts["instances_released"] == 1, report.failures
    assert standin.actions.count("SaveBatchTaskForModifyingDomainDns") == 1
    assert standin.nameservers(zone) == list(FREE_NS)


def test_a_silent_free_server_at_the_end_of_the_drain_is_no_difference(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A free server that does not answer when the drain ends keeps the paid copy with
    no ticket (it is the server's fault, not the zone's); once it answers again, the
    next run deletes the paid copy."""
    import os
    import signal

    settings = live_settings.model_copy(update={"drain_hours": 1.0})
    zone, inst = f"{unique('silent')}.cn", unique("inst")
    _drained(live_db, settings, inst, zone)
    os.kill(pdns_free.process.pid, signal.SIGSTOP)
    try:
        report = run(settings, release_due, instance_ids=[inst])
    finally:
        os.kill(pdns_free.process.pid, signal.SIGCONT)
    assert report.counts.get("paid_copies_waiting_for_free_servers") == 1, report
    assert "paid_zones_deleted" not in report.counts
    assert _tickets(live_db, inst) == [] and zone_exists(pdns_paid, zone)
    assert (_row(live_db, inst).stage, _row(live_db, inst).blocked) == ("draining", None)
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts.get("paid_zones_deleted") == 1, report
    assert not zone_exists(pdns_paid, zone)


def test_a_locked_domain_keeps_its_paid_copy_until_its_account_is_told(
    live_db, live_settings, pdns_paid, pdns_free
):
    """A locked domain of an instance whose release another domain holds back (a
    conflict on the free cluster) keeps its paid copy after its drain: its owner has
    not been told what to change. Once the instance is released, the notice gives the
    owner the whole time from then, and the paid copy is kept that long."""
    from models import Notification

    settings = live_settings.model_copy(update={"drain_hours": 1.0, "manual_drain_days": 14})
    locked, taken = f"{unique('locked')}.cn", f"{unique('taken')}.cn"
    inst = unique("inst")
    expired(
        live_db,
        inst,
        [_domain(locked, epp=("clientUpdateProhibited",)), _domain(taken)],
    )
    load_zones(settings, live_db, "paid-1")
    # Another zone of that name already on the free cluster, with other name servers.
    body = {"name": f"{taken}.", "kind": "Native", "nameservers": ["ns1.hijack.example."]}
    assert api(pdns_free, "POST", "/zones", json=body).status_code == 201
    run(settings, release_due, instance_ids=[inst])
    with live_db.session() as s:
        rows = {
            r.domain_id: r
            for r in s.execute(
                select(DomainRelease).where(DomainRelease.instance_id == inst)
            ).scalars()
        }
        for r in rows.values():
            if r.delegation == "domain_locked":
                r.drain_until = datetime.now(UTC) - timedelta(seconds=1)
                r.delegated_at = datetime.now(UTC) - timedelta(days=15)
                s.add(r)
        s.commit()
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts.get("paid_copies_kept_until_told") == 1, report
    assert "paid_zones_deleted" not in report.counts
    assert zone_exists(pdns_paid, locked)
    with live_db.session() as s:
        assert not s.execute(select(Notification).where(Notification.kind == "released")).first()
    # The conflict is cleared and its ticket resolved: the instance is released now.
    assert api(pdns_free, "DELETE", f"/zones/{taken}.").status_code == 204
    with live_db.session() as s:
        (conflict,) = [t for t in _tickets(live_db, inst) if t.reason == "free_zone_conflict"]
        resolve_ticket(s, conflict.id, datetime.now(UTC))
        s.commit()
    report = run(settings, release_due, instance_ids=[inst])
    assert report.counts.get("instances_released") == 1, report
    assert zone_exists(pdns_paid, locked)
    with live_db.session() as s:
        row = s.execute(
            select(DomainRelease).where(
                DomainRelease.instance_id == inst, DomainRelease.delegation == "domain_locked"
            )
        ).scalar_one()
        assert row.drain_until > datetime.now(UTC) + timedelta(days=13)
