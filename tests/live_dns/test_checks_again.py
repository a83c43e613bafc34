"""Every irreversible step of a live release checks again first (rule 6): the dry run
reads what the real run reads, the registrar is asked for the lock of every HiChina
domain, the switch waits for a fresh verification, and the paid copy is deleted only
once the free copy is verified again and the paid copy still equals what was moved."""

from __future__ import annotations

from sqlalchemy import select

from dns_lifecycle.admin.load_zones import load_zones
from flows.release import release_due
from models import DomainRelease, Ticket
from tests.live_dns.helpers import api, expired, run, unique, zone_exists

RECORDS = [
    ("A", "@", "192.0.2.30", 300),
    ("A", "www", "192.0.2.31", 300),
    ("TXT", "@", "checked again", 300),
]


def _domain(name, registrar="hichina", epp=()):
    return {"name": name, "registrar": registrar, "epp_statuses": list(epp), "records": RECORDS}


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
