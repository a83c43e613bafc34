"""Expiry, grace, release and name servers (rules 5, 6, 7, 8) on a real database."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import HealthCheck, given
from hypothesis import settings as hyp_settings
from hypothesis import strategies as st
from sqlalchemy import func, select

from dns_lifecycle.lifecycle.expiry import (
    is_release_due,
    is_release_warning_due,
    release_warning_window,
)
from dns_lifecycle.lifecycle.nameservers import nameserver_action
from flows.common import open_run
from flows.expire import expire_due
from flows.release import release_due
from models import Domain, DomainRelease, Instance, Notification, Record, Ticket, ZoneSnapshot
from tests.factories import make_instance

EXPIRY = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # past: real runs never evaluate the future
RELEASE = EXPIRY + timedelta(hours=168)
FREE_NS = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]


def run(settings, step, as_of, **kw):
    with open_run(as_of, kw.pop("dry_run", False), None, settings=settings) as ctx:
        return step(ctx, **kw)


# ------------------------------------------------------------------ plain decisions


def test_release_is_due_exactly_168_hours_after_expiry():
    """Nothing is released a minute early."""
    assert not is_release_due(EXPIRY, RELEASE - timedelta(minutes=1), 7)
    assert is_release_due(EXPIRY, RELEASE, 7)


def test_release_warning_is_due_in_the_last_24_hours():
    """The last warning goes out the day before release, not before and not after."""
    assert not is_release_warning_due(EXPIRY, RELEASE - timedelta(hours=24, seconds=1), 7)
    assert is_release_warning_due(EXPIRY, RELEASE - timedelta(hours=24), 7)
    assert not is_release_warning_due(EXPIRY, RELEASE, 7)


@pytest.mark.parametrize(
    ("registrar", "statuses", "action"),
    [
        ("hichina", [], "switched"),
        ("HiChina", ["clientTransferProhibited"], "switched"),
        ("hichina", ["clientUpdateProhibited"], "domain_locked"),
        ("hichina", ["serverUpdateProhibited"], "domain_locked"),
        ("godaddy", [], "external_registrar"),
        ("godaddy", ["clientUpdateProhibited"], "external_registrar"),
    ],
)
def test_nameserver_action_per_registrar_and_lock(registrar, statuses, action):
    """Rule 7: only unlocked HiChina domains are switched by us."""
    assert nameserver_action(registrar, statuses) == action


# ------------------------------------------------------------------ expiry


def test_expiry_marks_expired_and_tells_the_release_date_once(db, settings):
    """An active instance past expiry becomes expired with one notice per channel, however
    often the step runs."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        make_instance(s, "inst-2", expires_at=EXPIRY + timedelta(days=1))
        s.commit()
    for _ in range(2):
        report = run(settings, expire_due, EXPIRY + timedelta(hours=1))
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"
        assert s.get(Instance, "inst-2").state == "active"
        notices = s.execute(select(Notification)).scalars().all()
    assert sorted((n.kind, n.channel) for n in notices) == [
        ("expired", "email"),
        ("expired", "sms"),
    ]
    assert notices[0].context["release_at"] == RELEASE.isoformat()
    assert report.counts.get("instances_expired", 0) == 0  # the rerun found nothing


def test_last_warning_the_day_before_release_once(db, settings):
    """One release warning, in the 24 h before release, however often the step runs."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired")
        s.commit()
    run(settings, expire_due, RELEASE - timedelta(hours=25))
    for hours in (23, 2):
        run(settings, expire_due, RELEASE - timedelta(hours=hours))
    with db.session() as s:
        kinds = [n.kind for n in s.execute(select(Notification)).scalars()]
    assert kinds == ["release_warning", "release_warning"]


# ------------------------------------------------------------------ release

DOMAINS = [
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
        "name": "server-locked.cn",
        "registrar": "hichina",
        "epp_statuses": ["serverUpdateProhibited"],
        "records": [("TXT", "@", "v=spf1 -all", 300)],
    },
    {
        "name": "elsewhere.com",
        "registrar": "godaddy",
        "epp_statuses": [],
        "records": [("CNAME", "www", "elsewhere.com.", 600), ("A", "@", "192.0.2.12", 600)],
    },
]


def _expired_instance(db, domains=DOMAINS, instance_id="inst-1"):
    with db.session() as s:
        make_instance(s, instance_id, expires_at=EXPIRY, state="expired", domains=domains)
        s.commit()


def _served(db, cluster):
    with db.session() as s:
        rows = s.execute(
            select(Domain.name, Record.type, Record.host, Record.value, Record.ttl)
            .join(Domain, Domain.id == Record.domain_id)
            .where(Record.cluster_code == cluster)
        ).all()
    return Counter(tuple(r) for r in rows)


def test_release_is_not_due_a_minute_early(db, settings):
    """At release time minus one minute the instance stays expired on the paid cluster."""
    _expired_instance(db)
    run(settings, release_due, RELEASE - timedelta(minutes=1))
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"


def run_ahead_of_the_clock(settings, step, clock_at, ahead):
    """``step`` in a real run whose as_of lies ``ahead`` of the clock, which reads
    ``clock_at`` (the slack a real run is allowed)."""
    with open_run(clock_at, False, None, settings=settings) as ctx:
        ctx.as_of, ctx.clock = clock_at + ahead, lambda: clock_at
        return step(ctx)


def test_a_run_ahead_of_the_clock_releases_nothing_whose_grace_has_not_ended(db, settings):
    """A real run 280 s ahead of the clock, 185 s before the grace period ends by the
    clock: the instance stays expired, no release begins and no notice is queued."""
    _expired_instance(db)
    now = RELEASE - timedelta(seconds=185)
    report = run_ahead_of_the_clock(settings, release_due, now, timedelta(seconds=280))
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"
        assert s.execute(select(func.count()).select_from(DomainRelease)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(Notification)).scalar_one() == 0
    assert "has not come yet" in report.notes[0]


def test_a_run_ahead_of_the_clock_expires_nothing_before_its_expiry(db, settings):
    """A real run 280 s ahead of the clock, 100 s before an expiry by the clock: the
    instance stays active and nobody is told it expired."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY)
        s.commit()
    now = EXPIRY - timedelta(seconds=100)
    run_ahead_of_the_clock(settings, expire_due, now, timedelta(seconds=280))
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "active"
        assert s.execute(select(func.count()).select_from(Notification)).scalar_one() == 0


def test_a_run_ahead_of_the_clock_sends_the_last_warning_before_release(db, settings):
    """A real run 280 s ahead of the clock, 185 s before release by the clock: the last
    warning is sent, not skipped as overtaken by a release that has not come."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired")
        s.commit()
    from dns_lifecycle.store.notifications import PendingFilter
    from flows.delivery import deliver_pending

    def warn_and_deliver(ctx):
        expire_due(ctx)
        deliver_pending(ctx, PendingFilter(kinds=("release_warning",)))

    now = RELEASE - timedelta(seconds=185)
    run_ahead_of_the_clock(settings, warn_and_deliver, now, timedelta(seconds=280))
    with db.session() as s:
        states = {(n.kind, n.state) for n in s.execute(select(Notification)).scalars()}
    assert states == {("release_warning", "sent")}


def test_release_moves_records_switches_hichina_and_tickets_the_rest(db, settings):
    """All three name-server branches and both lock codes, end to end."""
    _expired_instance(db)
    paid_before = _served(db, "paid-1")
    report = run(settings, release_due, RELEASE)
    assert _served(db, "free") == paid_before and _served(db, "paid-1") == Counter()
    with db.session() as s:
        inst = s.get(Instance, "inst-1")
        assert inst.state == "released" and inst.released_at is not None
        ns = {d.name: d.nameservers for d in s.execute(select(Domain)).scalars()}
        tickets = {
            (s.get(Domain, t.domain_id).name, t.reason, t.state)
            for t in s.execute(select(Ticket)).scalars()
        }
        zones = {z.domain_name: z.zone_text for z in s.execute(select(ZoneSnapshot)).scalars()}
        released = (
            s.execute(select(Notification).where(Notification.kind == "released")).scalars().all()
        )
    assert ns["open-hichina.cn"] == FREE_NS
    assert ns["client-locked.cn"] != FREE_NS and ns["elsewhere.com"] != FREE_NS
    assert tickets == {
        ("client-locked.cn", "domain_locked", "open"),
        ("server-locked.cn", "domain_locked", "open"),
        ("elsewhere.com", "external_registrar", "open"),
    }
    assert set(zones) == {d["name"] for d in DOMAINS}
    assert "192.0.2.10" in zones["open-hichina.cn"]
    assert len(released) == 2
    actions = {d["name"]: d["action"] for d in released[0].context["domains"]}
    assert actions == {
        "open-hichina.cn": "switched",
        "client-locked.cn": "domain_locked",
        "server-locked.cn": "domain_locked",
        "elsewhere.com": "external_registrar",
    }
    assert released[0].context["free_nameservers"] == FREE_NS
    assert report.counts["tickets_opened"] == 3 and report.counts["records_moved"] == 6


def test_rerun_opens_no_second_ticket_and_sends_no_second_notice(db, settings):
    """Running release again changes nothing."""
    _expired_instance(db)
    run(settings, release_due, RELEASE)
    with db.session() as s:
        before = (
            s.execute(select(func.count()).select_from(Ticket)).scalar_one(),
            s.execute(select(func.count()).select_from(Notification)).scalar_one(),
        )
    report = run(settings, release_due, RELEASE + timedelta(days=1))
    with db.session() as s:
        after = (
            s.execute(select(func.count()).select_from(Ticket)).scalar_one(),
            s.execute(select(func.count()).select_from(Notification)).scalar_one(),
        )
    assert after == before and "instances_released" not in report.counts


def test_a_failure_between_stages_leaves_the_paid_copy_and_the_next_run_finishes(
    db, settings, monkeypatch
):
    """A failure after the zone was read and kept leaves the instance expired with its
    records on the paid cluster; the next run finishes the release with one zone copy."""
    _expired_instance(db)
    paid_before = _served(db, "paid-1")
    import dns_lifecycle.release.stages as release_flow

    def explode(self, w, now):
        raise RuntimeError("injected failure before creating the free zone")

    with monkeypatch.context() as m:
        m.setattr(release_flow.Stages, "create", explode)
        report = run(settings, release_due, RELEASE)
    assert report.counts["release_failures"] == len(DOMAINS)
    assert _served(db, "paid-1") == paid_before and _served(db, "free") == Counter()
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == 0
        assert s.execute(select(func.count()).select_from(ZoneSnapshot)).scalar_one() == 4
    run(settings, release_due, RELEASE)
    assert _served(db, "free") == paid_before and _served(db, "paid-1") == Counter()
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "released"
        assert s.execute(select(func.count()).select_from(ZoneSnapshot)).scalar_one() == 4


def test_a_failing_instance_does_not_stop_the_others(db, settings, monkeypatch):
    """One instance whose release raises is reported; the next one is released."""
    _expired_instance(db, [dict(DOMAINS[0])], "inst-1")
    _expired_instance(db, [dict(DOMAINS[3])], "inst-2")
    import dns_lifecycle.store.release as release_module

    real = release_module.zone_file

    def flaky(domain, records, **kw):
        if domain == "open-hichina.cn":
            raise OSError("disk full while writing the zone copy")
        return real(domain, records, **kw)

    monkeypatch.setattr(release_module, "zone_file", flaky)
    report = run(settings, release_due, RELEASE)
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"
        assert s.get(Instance, "inst-2").state == "released"
    assert report.counts["release_failures"] == 1
    assert "inst-1" in report.failures[0] and "disk full" in report.failures[0]


def test_dry_run_plans_the_release_and_changes_nothing(db, settings):
    """A dry run lists each domain's action and moves nothing."""
    _expired_instance(db)
    paid_before = _served(db, "paid-1")
    report = run(settings, release_due, RELEASE, dry_run=True)
    assert {(p["domain"], p["nameservers"]) for p in report.plan} == {
        ("open-hichina.cn", "switched"),
        ("client-locked.cn", "domain_locked"),
        ("server-locked.cn", "domain_locked"),
        ("elsewhere.com", "external_registrar"),
    }
    assert _served(db, "paid-1") == paid_before
    with db.session() as s:
        assert s.get(Instance, "inst-1").state == "expired"


hosts = st.sampled_from(["@", "www", "mail", "a.b", "*", "_dmarc"])
records = st.lists(
    st.one_of(
        st.tuples(st.just("A"), hosts, st.ip_addresses(v=4).map(str), st.integers(1, 86400)),
        st.tuples(st.just("AAAA"), hosts, st.ip_addresses(v=6).map(str), st.integers(1, 86400)),
        st.tuples(
            st.just("TXT"),
            hosts,
            st.text(st.characters(blacklist_categories=["Cs", "Cc"]), min_size=1, max_size=80),
            st.integers(1, 86400),
        ),
        st.tuples(
            st.just("MX"),
            hosts,
            st.integers(0, 100).map(lambda p: f"{p} mx.example.net."),
            st.integers(1, 86400),
        ),
    ),
    max_size=15,
)


@hyp_settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(zone=records)
def test_release_preserves_every_record_for_random_zones(tmp_path_factory, zone):
    """Property: the free cluster serves exactly the multiset the paid cluster served,
    and the zone-file copy holds the same records."""
    import shutil

    from dns_lifecycle.core.db import Database, upgrade
    from dns_lifecycle.core.settings import Settings
    from dns_lifecycle.lifecycle.zonefile import Rr, parse_zone_file, same_records

    folder = tmp_path_factory.mktemp("zone")
    url = f"sqlite:///{folder / 'z.db'}"
    upgrade(Settings(database_url=url))
    settings = Settings(
        database_url=url, outbox_dir=folder / "out", email_backend="memory", sms_backend="memory"
    )
    db = Database(settings)
    try:
        domains = [
            {"name": "random-zone.cn", "registrar": "hichina", "epp_statuses": [], "records": zone}
        ]
        _expired_instance(db, domains)
        before = _served(db, "paid-1")
        run(settings, release_due, RELEASE)
        assert _served(db, "free") == before
        with db.session() as s:
            text = s.execute(select(ZoneSnapshot.zone_text)).scalar_one()
        assert same_records(parse_zone_file(text, "random-zone.cn"), [Rr(*r) for r in zone])
    finally:
        db.dispose()
        shutil.rmtree(folder, ignore_errors=True)


@given(
    as_of=st.datetimes(
        min_value=datetime(2025, 1, 1), max_value=datetime(2028, 1, 1), timezones=st.just(UTC)
    ),
    minutes=st.integers(min_value=-60 * 24 * 12, max_value=60 * 24 * 12),
    grace=st.integers(1, 30),
)
def test_warning_window_agrees_with_the_per_instance_rule(as_of, minutes, grace):
    """The range the expiry step scans holds exactly the expiries whose warning is due."""
    expires_at = as_of + timedelta(minutes=minutes)
    after, until = release_warning_window(as_of, grace)
    assert (after < expires_at <= until) == is_release_warning_due(expires_at, as_of, grace)


def test_export_and_instances_show_give_each_domains_release_stage(
    db, settings, monkeypatch, capsys
):
    """After release every domain shows its stage (deleted: the database cluster has no
    caches to drain), and the export still imports back."""
    from dns_lifecycle.admin.cli import main
    from dns_lifecycle.admin.inventory import export_state, import_inventory

    _expired_instance(db)
    run(settings, release_due, RELEASE)
    with db.session() as s:
        exported = export_state(s)
    [instance] = exported["instances"]
    stages = {d["name"]: d["release"]["stage"] for d in instance["domains"]}
    delegations = {d["name"]: d["release"]["delegation"] for d in instance["domains"]}
    assert set(stages.values()) == {"deleted"}
    assert delegations["open-hichina.cn"] == "switched"
    assert delegations["elsewhere.com"] == "external_registrar"
    instance.pop("released_at")  # stamped by the wall clock, before this test's expiry
    with db.session() as s:
        import_inventory(exported, s, now=RELEASE)  # the "release" entries are read, not imported
        s.commit()

    monkeypatch.setenv("DATABASE_URL", settings.database_url)
    assert main(["instances", "show", "inst-1"]) == 0
    out = capsys.readouterr().out
    assert "release: deleted, delegation switched" in out
    assert "release: deleted, delegation domain_locked" in out


def test_a_verification_is_fresh_for_the_switch_up_to_its_age_limit():
    """The switch goes ahead on a verification at most the configured minutes old."""
    from dns_lifecycle.lifecycle.expiry import verification_fresh

    at = RELEASE
    assert verification_fresh(at, at + timedelta(minutes=10), 10)
    assert not verification_fresh(at, at + timedelta(minutes=10, microseconds=1), 10)
    assert not verification_fresh(None, at, 10)


def test_a_paid_copy_changed_during_the_drain_is_named():
    """The difference names the records added to and removed from the paid copy."""
    from dns_lifecycle.lifecycle.expiry import paid_copy_difference
    from dns_lifecycle.lifecycle.zonefile import Rr

    moved = [Rr("A", "www", "192.0.2.1", 300)]
    assert paid_copy_difference("example.cn", moved, list(moved)) is None
    added = paid_copy_difference("example.cn", moved, [*moved, Rr("A", "new", "192.0.2.2", 300)])
    assert added is not None and "added new A 192.0.2.2" in added and "removed nothing" in added


def test_a_ticketed_domain_whose_owner_has_not_acted_is_not_shown_draining():
    """A domain whose delegation ticket is open reads as waiting for its owner, with the
    latest moment its paid copy is kept, not as draining."""
    from dns_lifecycle.lifecycle.expiry import describe_stage

    stage = {
        "stage": "draining",
        "delegation": "domain_locked",
        "drain_until": "2026-03-24T04:00:00+00:00",
    }
    assert describe_stage(stage, open_ticket=7) == (
        "waiting for the owner to change the name servers (ticket 7, domain_locked), "
        "paid copy kept until 2026-03-24T04:00:00+00:00 at the latest"
    )
    assert describe_stage(stage).startswith("draining")  # once the ticket is closed
