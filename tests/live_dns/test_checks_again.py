"""Every irreversible step of a live release checks again first (rule 6): the dry run
reads what the real run reads, the registrar is asked for the lock of every HiChina
domain, the switch waits for a fresh verification, and the paid copy is deleted only
once the free copy is verified again and the paid copy still equals what was moved."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from dns_lifecycle.admin.load_zones import load_zones
from dns_lifecycle.core.settings import Settings
from flows.release import release_due
from models import DomainRelease, Ticket
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
    assert "QueryDomainByDomainName" in standin.actions
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
