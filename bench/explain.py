"""The daily run's main queries under EXPLAIN (ANALYZE, BUFFERS), on a PostgreSQL fleet.

    .venv/bin/python bench/explain.py DATABASE_URL [AS_OF] [--only NAME] [--repeat N]

By hand only. Each query is the one the step builds (the store's own functions, the
first batch as ``scan_batches`` asks for it, the settings' defaults); each runs in a
transaction that is rolled back, so the database is left as it was (writes included).
Prints, per query, the plan and its execution time. Use a copy of a cached fleet
(bench/fleet.py keeps them as ``bench_fleet_*``): ``CREATE DATABASE x TEMPLATE ...``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import update
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.sql.expression import ClauseElement, Executable
from sqlmodel import col

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))


EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS)"


class Explain(Executable, ClauseElement):
    """``EXPLAIN (ANALYZE, BUFFERS)`` of a statement, its parameters bound as usual."""

    inherit_cache = False

    def __init__(self, statement: Any) -> None:
        self.statement = statement


@compiles(Explain, "postgresql")
def _explain(element: Explain, compiler: Any, **kw: Any) -> str:
    return f"{EXPLAIN} " + compiler.process(element.statement, **kw)


def explain(conn: Any, statement: Any) -> list[str]:
    """The plan's lines. A write is compiled alone (the construct above cannot wrap it);
    its parameters are plain values, so the driver takes them as they are."""
    if isinstance(statement, UpdateBase):
        compiled = statement.compile(dialect=conn.dialect)
        result = conn.exec_driver_sql(f"{EXPLAIN} {compiled.string}", compiled.params)
    else:
        result = conn.execute(Explain(statement))
    return [row[0] for row in result]


def run_once(db: Any, statement: Any) -> list[str]:
    with db.engine.connect() as conn:
        try:
            return explain(conn, statement)
        finally:
            conn.rollback()


def execution_ms(plan: list[str]) -> float:
    last = next((line for line in reversed(plan) if line.startswith("Execution Time")), "")
    return float(last.split()[2]) if last else 0.0


def first_batch(query: Callable[[], Any], batch_size: int) -> Any:
    """The first statement ``scan_batches`` runs for ``query``."""
    from models import Instance

    return query().order_by(col(Instance.expires_at), col(Instance.id)).limit(batch_size)


def statements(as_of: datetime, settings: Any) -> dict[str, Any]:
    """Name -> statement, in the order the run issues them."""
    from sqlalchemy import func, select

    from dns_lifecycle.lifecycle.outlook import day_boundaries, outlook_days
    from dns_lifecycle.lifecycle.reminders import reminder_windows
    from dns_lifecycle.store import outlook
    from dns_lifecycle.store.auto_renewal import auto_renewal_due
    from dns_lifecycle.store.expiry import past_expiry, release_warning_due
    from dns_lifecycle.store.notifications import TABLE
    from dns_lifecycle.store.release import expired_due, released_unfinished
    from dns_lifecycle.store.reminders import reminders_due

    batch, lead, grace = settings.batch_size, settings.renewal_lead_days, settings.grace_days
    found: dict[str, Any] = {
        "auto-renewal scan": first_batch(auto_renewal_due(as_of, lead), batch),
        "expiry scan": first_batch(past_expiry(as_of), batch),
        "release-warning scan": first_batch(release_warning_due(as_of, grace), batch),
    }
    for window in reminder_windows(as_of, settings.reminder_offsets_days):
        query = reminders_due(window)
        found[f"reminder scan, {window.offset_days} d"] = first_batch(query, batch)
        found[f"reminder count, {window.offset_days} d (progress)"] = select(
            func.count()
        ).select_from(query().subquery())
    found["release scan"] = first_batch(expired_due(as_of, grace, None), batch)
    found["release drain scan"] = first_batch(released_unfinished(None), batch)
    # The claim's candidates (as claim_pending builds them) and its write; on a fleet
    # brought to the day before, nothing is pending yet: the plan is what matters.
    now = as_of + timedelta(hours=2)
    claimable = (TABLE.c.state == "pending") & (
        TABLE.c.claimed_until.is_(None) | (TABLE.c.claimed_until < now)
    )
    found["notice claim, FOR UPDATE SKIP LOCKED"] = (
        select(TABLE.c.id)
        .where(claimable, TABLE.c.id > 0)
        .order_by(TABLE.c.id)
        .limit(batch)
        .with_for_update(skip_locked=True)
    )
    ids = select(TABLE.c.id).order_by(TABLE.c.id.desc()).limit(batch).scalar_subquery()
    found["outcome write (sent), a batch of the last notices"] = (
        update(TABLE)
        .where(TABLE.c.id.in_(ids))
        .values(state="sent", sent_at=now, attempts=TABLE.c.attempts + 1, claim_token=None)
    )
    dates = outlook_days(as_of, settings.operator_timezone)
    boundaries = day_boundaries(dates, settings.operator_timezone)
    found["outlook: expiries"] = outlook.expiries_query(boundaries)
    found["outlook: auto-renewals"] = outlook.auto_renewals_query(boundaries, lead)
    found["outlook: grace"] = outlook.grace_query(boundaries, grace)
    found["outlook: release domains"] = outlook.release_domains_query(boundaries, grace)
    return found


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("url", help="a PostgreSQL fleet (a copy: nothing is kept, all the same)")
    p.add_argument("as_of", nargs="?", default="2026-11-26")
    p.add_argument("--only", help="the queries whose name contains this")
    p.add_argument("--repeat", type=int, default=1, help="runs of each; the fastest is shown")
    args = p.parse_args(argv)

    from dns_lifecycle.core.db import Database
    from dns_lifecycle.core.settings import Settings

    settings = Settings(database_url=args.url)
    as_of = datetime.fromisoformat(args.as_of).replace(tzinfo=UTC)
    db = Database(settings)
    try:
        for name, statement in statements(as_of, settings).items():
            if args.only and args.only not in name:
                continue
            plan = min((run_once(db, statement) for _ in range(args.repeat)), key=execution_ms)
            print(f"## {name}\n")
            print("\n".join(plan), end="\n\n")
    finally:
        db.dispose()
    return 0


if __name__ == "__main__":
    sys.exit(main())
