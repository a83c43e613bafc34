"""The fleet outlook: the next 30 days on the operator's calendar, counted in SQL by
day, over the (state, expires_at) index on both databases, and published by every
daily run."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from prefect.artifacts import Artifact
from sqlalchemy import text
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlmodel import select

from dns_lifecycle.lifecycle.outlook import OutlookDay, day_boundaries, outlook_days
from dns_lifecycle.store.outlook import (
    auto_renewals_query,
    expiries_query,
    fleet_outlook,
    grace_query,
    open_tickets,
    release_domains_query,
)
from flows.artifacts import outlook_markdown
from flows.daily import daily_lifecycle
from tests.factories import make_account, make_instance

SHANGHAI = ZoneInfo("Asia/Shanghai")
# The daily run of 1 December 2026, 02:00 in Shanghai: day 0 of the outlook is 1 December.
AS_OF = datetime(2026, 12, 1, 2, 0, tzinfo=SHANGHAI).astimezone(UTC)


def _local(day: int, hour: int, minute: int = 0) -> datetime:
    return datetime(2026, 12, day, hour, minute, tzinfo=SHANGHAI)


def _outlook(session, zone: str = "Asia/Shanghai") -> list[OutlookDay]:
    dates = outlook_days(AS_OF, zone)
    return fleet_outlook(
        session,
        dates=dates,
        boundaries=day_boundaries(dates, zone),
        lead_days=7,
        grace_days=7,
    )


def test_the_days_are_the_operators_calendar_days_from_the_one_as_of_falls_in():
    """1 December 02:00 in Shanghai is still 30 November in UTC: the outlook starts on
    1 December, and each day starts at a Shanghai midnight."""
    dates = outlook_days(AS_OF, "Asia/Shanghai")
    assert dates[0] == date(2026, 12, 1) and len(dates) == 30
    bounds = day_boundaries(dates, "Asia/Shanghai")
    assert bounds[0] == datetime(2026, 11, 30, 16, 0, tzinfo=UTC)
    assert len(bounds) == 31 and bounds[-1] == datetime(2026, 12, 30, 16, 0, tzinfo=UTC)


def test_a_day_across_a_daylight_saving_change_keeps_its_local_midnights():
    """In Berlin the day clocks go forward is 23 hours long, from midnight to midnight."""
    dates = outlook_days(datetime(2027, 3, 27, 12, 0, tzinfo=UTC), "Europe/Berlin")
    bounds = day_boundaries(dates, "Europe/Berlin")
    assert bounds[2] - bounds[1] == timedelta(hours=23)


def test_each_event_is_counted_on_its_local_day(db):
    """Expiries, auto-renewals (with the accounts short), grace periods ending, releases
    due and the tickets they will open land on the Shanghai day of their moment."""
    with db.session() as s:
        make_account(s, "acct-poor", balance=Decimal("15.00"))
        make_account(s, "acct-rich", balance=Decimal("1000.00"))
        # Expires on 3 December; auto-renewal off: released on 10 December.
        make_instance(s, "inst-exp", account="acct-rich", expires_at=_local(3, 10))
        # 00:30 on 4 December in Shanghai is still 3 December in UTC.
        make_instance(s, "inst-late", account="acct-rich", expires_at=_local(4, 0, 30))
        # Renewal orders due on 8 and 13 December at 9.90 each: 15.00 covers the first.
        for name, day in (("inst-poor-1", 15), ("inst-poor-2", 20)):
            make_instance(s, name, account="acct-poor", expires_at=_local(day, 12), auto_renew=True)
        make_instance(
            s, "inst-rich", account="acct-rich", expires_at=_local(15, 9), auto_renew=True
        )
        # Expired on 28 November: released on 5 December; its domain is elsewhere.
        make_instance(
            s,
            "inst-gone",
            account="acct-rich",
            expires_at=datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI),
            state="expired",
            domains=[{"name": "gone.example", "registrar": "GoDaddy", "epp_statuses": []}],
        )
        make_instance(
            s,
            "inst-released",
            account="acct-rich",
            expires_at=_local(2, 12),
            state="released",
            released_at=_local(2, 12),
        )
        s.commit()
        days = {d.day.day: d for d in _outlook(s) if d.busy}

    assert days[3] == OutlookDay(date(2026, 12, 3), expiries=1)
    assert days[4] == OutlookDay(date(2026, 12, 4), expiries=1)
    assert days[5] == OutlookDay(
        date(2026, 12, 5), grace_ending=1, releases_due=1, tickets_to_open=1
    )
    assert days[8] == OutlookDay(date(2026, 12, 8), auto_renewals=2, accounts_short=0)
    assert days[10] == OutlookDay(date(2026, 12, 10), grace_ending=1, releases_due=1)
    assert days[11] == OutlookDay(date(2026, 12, 11), grace_ending=1, releases_due=1)
    assert days[13] == OutlookDay(date(2026, 12, 13), auto_renewals=1, accounts_short=1)
    assert days[15] == OutlookDay(date(2026, 12, 15), expiries=2)
    # Grace periods of the auto-renewing ones end too; no release is due for them.
    assert days[22] == OutlookDay(date(2026, 12, 22), grace_ending=2)
    assert days[20] == OutlookDay(date(2026, 12, 20), expiries=1)
    assert days[27] == OutlookDay(date(2026, 12, 27), grace_ending=1)
    assert set(days) == {3, 4, 5, 8, 10, 11, 13, 15, 20, 22, 27}


def test_the_operators_time_zone_moves_an_event_to_its_own_day(db):
    """An expiry at 00:30 on 4 December in Shanghai is on 3 December in London."""
    with db.session() as s:
        make_instance(s, "inst-late", expires_at=_local(4, 0, 30))
        s.commit()
        london = [d.day for d in _outlook(s, "Europe/London") if d.expiries]
        shanghai = [d.day for d in _outlook(s) if d.expiries]
    assert london == [date(2026, 12, 3)] and shanghai == [date(2026, 12, 4)]


def test_open_tickets_are_counted(db):
    """The outlook says how many manual-action tickets are open now."""
    from models import Domain, Ticket

    with db.session() as s:
        make_instance(s, "inst-1", expires_at=_local(3, 10))
        domain = s.exec(select(Domain)).one()
        for state in ("open", "open", "resolved"):
            s.add(
                Ticket(
                    domain_id=domain.id,
                    instance_id="inst-1",
                    reason="domain_locked",
                    details={},
                    state=state,
                    created_at=AS_OF,
                )
            )
        s.commit()
        assert open_tickets(s) == 2


class _Explain(Executable, ClauseElement):
    """EXPLAIN (QUERY PLAN) of a statement, with its parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement, prefix: str):
        self.statement, self.prefix = statement, prefix


@compiles(_Explain)
def _explain(element, compiler, **kw):
    return f"{element.prefix} {compiler.process(element.statement, **kw)}"


@pytest.mark.parametrize(
    "query",
    [
        lambda b: expiries_query(b),
        lambda b: auto_renewals_query(b, 7),
        lambda b: grace_query(b, 7),
        lambda b: release_domains_query(b, 7),
    ],
    ids=["expiries", "auto-renewals", "grace", "release-domains"],
)
def test_every_count_scans_the_state_and_expiry_index(db, query):
    """Each query of the outlook reads instances through ix_instance_state_expires, not
    the whole table (on PostgreSQL: whenever a table scan is not the cheaper choice)."""
    bounds = day_boundaries(outlook_days(AS_OF, "Asia/Shanghai"), "Asia/Shanghai")
    with db.session() as s:
        if db.engine.dialect.name == "sqlite":
            plan = "\n".join(
                str(r[-1]) for r in s.execute(_Explain(query(bounds), "EXPLAIN QUERY PLAN"))
            )
            assert "SCAN instance" not in plan, plan
        else:
            # A table this small is cheaper to read whole; forbid that to see the index path.
            s.execute(text("SET LOCAL enable_seqscan = off"))
            plan = "\n".join(r[0] for r in s.execute(_Explain(query(bounds), "EXPLAIN")))
    assert "ix_instance_state_expires" in plan, plan


def test_the_markdown_has_a_chart_and_a_row_per_day():
    """The artifact has a mermaid bar chart and a table row per day with a text bar as
    long as the day is busy."""
    dates = outlook_days(AS_OF, "Asia/Shanghai")
    days = [OutlookDay(d) for d in dates]
    days[2] = OutlookDay(dates[2], expiries=4, auto_renewals=2, grace_ending=2, releases_due=1)
    days[5] = OutlookDay(dates[5], expiries=2, accounts_short=1, auto_renewals=2)
    md = outlook_markdown(AS_OF, "Asia/Shanghai", days, 3, dry_run=False)
    assert "```mermaid\nxychart-beta" in md
    assert "    bar [0, 0, 4, 0, 0, 2, " in md
    rows = [line for line in md.splitlines() if re.match(r"\| 2026-12-\d\d ", line)]
    assert len(rows) == 30
    assert rows[2].startswith(f"| 2026-12-03 Thu | {'█' * 12} | 4 | 2 | 0 | 2 | 1 | 0 |")
    assert rows[5].startswith(f"| 2026-12-06 Sun | {'█' * 6} | 2 | 2 | 1 | 0 | 0 | 0 |")
    assert rows[0] == "| 2026-12-01 Tue |  | 0 | 0 | 0 | 0 | 0 | 0 |"
    assert "3 manual-action tickets open now" in md


def test_every_daily_run_publishes_the_outlook(db, flow_env):
    """A daily run publishes the fleet-outlook artifact with the coming expiries."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=_local(3, 10))
        s.commit()
    daily_lifecycle(as_of=AS_OF)
    artifact = Artifact.get("fleet-outlook")
    assert artifact is not None
    row = next(line for line in str(artifact.data).splitlines() if line.startswith("| 2026-12-03"))
    assert row.endswith("| 1 | 0 | 0 | 0 | 0 | 0 |") and "█" in row


def test_a_dry_runs_outlook_counts_the_fleet_as_its_plan_leaves_it(db, flow_env):
    """An instance that expired an hour before a dry run is expired in its plan: the
    dry run's outlook counts no expiry for it, only the end of its grace period."""
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=_local(1, 1))
        s.commit()
    daily_lifecycle(as_of=AS_OF, dry_run=True)
    data = str(Artifact.get("fleet-outlook").data)  # type: ignore[union-attr]
    assert "(dry run)" in data
    assert "| 2026-12-01 Tue |  | 0 | 0 | 0 | 0 | 0 | 0 |" in data
    assert "| 0 | 0 | 0 | 1 | 1 | 0 |" in data.split("| 2026-12-08 Tue |")[1].splitlines()[0]


def test_an_operator_time_zone_that_does_not_exist_is_refused(monkeypatch, capsys):
    """DNSL_OPERATOR_TIMEZONE must name an IANA zone: the command refuses in one line."""
    from dns_lifecycle.admin.cli import main

    monkeypatch.setenv("DNSL_OPERATOR_TIMEZONE", "Asia/Atlantis")
    assert main(["instances", "list"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "DNSL_OPERATOR_TIMEZONE" in err and "'Asia/Atlantis' is not an IANA time zone" in err


def test_an_outlook_that_fails_fails_the_run_after_its_steps(db, flow_env, monkeypatch):
    """The day's steps are done and reported; the run ends Failed naming the outlook."""
    from flows import outlook

    def broken(*args, **kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr(outlook, "fleet_outlook", broken)
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=_local(1, 1))
        s.commit()
    state = daily_lifecycle(as_of=AS_OF, return_state=True)
    assert state.is_failed()
    assert "fleet-outlook: the database went away" in state.message
    report = state.result(raise_on_failure=False).report
    assert report.steps and any(s.counts.get("instances_expired") for s in report.steps)
