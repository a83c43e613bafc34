"""The fleet outlook that every daily run publishes: the coming days, day by day."""

from __future__ import annotations

from datetime import datetime

from prefect import get_run_logger
from prefect.artifacts import create_markdown_artifact

from dns_lifecycle.lifecycle.outlook import day_boundaries, outlook_days
from dns_lifecycle.store.outlook import fleet_outlook, open_tickets
from flows.artifacts import outlook_markdown
from flows.common import open_run

OUTLOOK_KEY = "fleet-outlook"


def publish_outlook(as_of: datetime, dry_run: bool) -> list[str]:
    """Publish the ``fleet-outlook`` artifact as of ``as_of``; the failures to report
    (none, or one line). A dry run inside a shared sandbox sees the fleet as its plan
    left it. A failed outlook does not undo the day's steps: it fails the run with
    its reason after them."""
    try:
        with open_run(as_of, dry_run, None) as ctx:
            settings = ctx.settings
            zone = settings.operator_timezone
            dates = outlook_days(as_of, zone)
            with ctx.db.session() as session:
                days = fleet_outlook(
                    session,
                    dates=dates,
                    boundaries=day_boundaries(dates, zone),
                    lead_days=settings.renewal_lead_days,
                    grace_days=settings.grace_days,
                )
                tickets = open_tickets(session)
    except Exception as exc:
        get_run_logger().exception("fleet-outlook could not be computed")
        return [f"fleet-outlook: {' '.join(str(exc).split())[:300]}"]
    create_markdown_artifact(
        outlook_markdown(as_of, zone, days, tickets, dry_run),
        key=OUTLOOK_KEY,
        description=f"fleet-outlook: the next {len(days)} days on the {zone} calendar",
    )
    return []
