"""Whatever the lifecycle writes survives `export` then `import` into a fresh database:
a small fleet lives through every step, and the second export equals the first."""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dns_lifecycle.admin.inventory import export_state, import_inventory
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import InventoryInvalid
from dns_lifecycle.store.top_ups import top_up
from flows.auto_renew import renew_due
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.expire import expire_due
from flows.on_demand import renew_now, switch_auto_renew_now, upgrade_now
from flows.release import release_due
from flows.reminders import plan_reminders
from tests.conftest import make_settings
from tests.factories import make_account, make_instance

T0 = datetime(2026, 6, 1, 1, 30, tzinfo=UTC)
HISTORY = ("orders", "top_ups", "notifications", "tickets")

RELEASED_DOMAINS = [
    {
        "name": "open-hichina.cn",
        "registrar": "hichina",
        "epp_statuses": [],
        "records": [("A", "@", "192.0.2.10", 600), ("MX", "@", "10 mx.open-hichina.cn.", 600)],
    },
    {
        "name": "client-locked.cn",
        "registrar": "hichina",
        "epp_statuses": ["clientUpdateProhibited"],
        "records": [("A", "@", "192.0.2.11", 300)],
    },
    {
        "name": "elsewhere.com",
        "registrar": "godaddy",
        "epp_statuses": [],
        "records": [("CNAME", "www", "elsewhere.com.", 600), ("TXT", "@", '"v=spf1 -all"', 300)],
    },
]


def _fleet(db):
    with db.session() as s:
        make_account(s, "acct-sh", timezone="Asia/Shanghai", balance=Decimal("5000.00"))
        make_account(s, "acct-ny", timezone="America/New_York", balance=Decimal("1000.00"))
        make_account(
            s, "acct-poor", timezone="Europe/London", locale="zh-CN", balance=Decimal("1.00")
        )
        make_instance(s, "remind", account="acct-ny", expires_at=T0 + timedelta(days=20))
        make_instance(
            s, "auto-ok", account="acct-sh", expires_at=T0 + timedelta(days=5), auto_renew=True
        )
        make_instance(
            s, "auto-fail", account="acct-poor", expires_at=T0 + timedelta(days=3), auto_renew=True
        )
        make_instance(
            s,
            "to-release",
            account="acct-sh",
            expires_at=T0 - timedelta(hours=1),
            domains=RELEASED_DOMAINS,
        )
        make_instance(
            s,
            "to-upgrade",
            account="acct-ny",
            billing_cycle="yearly",
            expires_at=T0 + timedelta(days=200),
        )
        make_instance(s, "to-switch", account="acct-sh", expires_at=T0 + timedelta(days=90))
        s.commit()


def _live_through_every_step(settings):
    def at(as_of, *steps):
        with open_run(as_of, False, None, settings=settings) as ctx:
            for step in steps:
                step(ctx)

    daily = (renew_due, expire_due, plan_reminders, release_due, deliver_pending)
    at(T0, *daily)  # auto-renewal paid and failed, expiry, reminders
    at(T0 + timedelta(days=6, hours=12), *daily)  # release warning; auto-fail expired
    at(T0 + timedelta(days=7), *daily)  # to-release released, with tickets
    with open_run(T0 + timedelta(days=7, hours=1), False, None, settings=settings) as ctx:
        with ctx.db.session() as s:
            top_up(
                s,
                account_id="acct-poor",
                amount=Decimal("99.00"),
                request_key="top-up-1",
                now=ctx.clock(),
            )
            s.commit()
        renew_now(ctx, "auto-fail", 2, "renew-1")  # inside its grace period
        upgrade_now(ctx, "to-upgrade", "enterprise-standard", "upgrade-1")
        switch_auto_renew_now(ctx, "to-switch", True, "switch-1")
        switch_auto_renew_now(ctx, "auto-ok", False, "switch-2")


def _now() -> datetime:
    """The moment of an import: a release is stamped with the clock, whatever the run's
    as_of, and an import refuses a release stamped after its own moment."""
    return datetime.now(UTC)


def _state_sections(document):
    return {k: v for k, v in document.items() if k not in HISTORY}


def test_a_fleet_that_lived_through_every_step_survives_export_and_import(
    db, settings, tmp_path, _sqlite_template
):
    """export -> import into a fresh database -> export: the same editions, clusters,
    accounts, instances, domains and records, and the history that was exported is what
    the steps wrote (every step ran)."""
    _fleet(db)
    _live_through_every_step(settings)
    with db.session() as s:
        first = json.loads(json.dumps(export_state(s), default=str))

    kinds = {n["kind"] for n in first["notifications"]}
    assert kinds >= {
        "reminder",
        "order_created",
        "renewed",
        "renewal_failed",
        "expired",
        "release_warning",
        "released",
        "upgraded",
        "auto_renew_changed",
    }
    assert {o["state"] for o in first["orders"]} >= {"paid", "failed"}
    assert [(t["account"], t["amount"]) for t in first["top_ups"]] == [("acct-poor", "99.00")]
    assert {t["reason"] for t in first["tickets"]} == {"domain_locked", "external_registrar"}
    states = {i["id"]: i["state"] for i in first["instances"]}
    assert states["to-release"] == "released" and states["auto-fail"] == "active"

    fresh_path = tmp_path / "fresh.db"
    shutil.copy(_sqlite_template, fresh_path)
    fresh = Database(make_settings(tmp_path / "fresh", f"sqlite:///{fresh_path}"))
    try:
        with fresh.session() as s:
            import_inventory(first, s, now=_now())
            s.commit()
        with fresh.session() as s:
            second = json.loads(json.dumps(export_state(s), default=str))
    finally:
        fresh.dispose()
    assert _state_sections(second) == _state_sections(first)


def test_the_current_state_imports_back_over_itself_unchanged(db, settings):
    """After every step, the export imported back into the same database is accepted,
    released instances and paid orders included, and changes nothing."""
    _fleet(db)
    _live_through_every_step(settings)
    with db.session() as s:
        first = json.loads(json.dumps(export_state(s), default=str))
    with db.session() as s:
        import_inventory(first, s, now=_now())
        s.commit()
    with db.session() as s:
        assert json.loads(json.dumps(export_state(s), default=str)) == first


def test_a_file_older_than_the_lifecycle_is_refused_whole(db, settings):
    """The state exported before the runs, imported after them, would undo renewals,
    charges, an expiry and a release: each is refused with its path, nothing changes."""
    _fleet(db)
    with db.session() as s:
        stale = json.loads(json.dumps(export_state(s), default=str))
    _live_through_every_step(settings)
    with db.session() as s:
        before = json.loads(json.dumps(export_state(s), default=str))
        with pytest.raises(InventoryInvalid) as caught:
            import_inventory(stale, s, now=_now())
    ids = [i["id"] for i in stale["instances"]]
    accounts = [a["id"] for a in stale["accounts"]]
    problems = {
        (path.split(".")[0], path.split(".", 1)[1].split(".")[0]) for path, _ in caught.value.errors
    }
    assert problems >= {
        (f"instances[{ids.index('auto-ok')}]", "expires_at"),
        (f"instances[{ids.index('to-release')}]", "state"),
        (f"instances[{ids.index('to-upgrade')}]", "edition"),
        (f"accounts[{accounts.index('acct-sh')}]", "balance"),
    }
    assert "released on" in str(caught.value) and "paid by order" in str(caught.value)
    with db.session() as s:
        assert json.loads(json.dumps(export_state(s), default=str)) == before
