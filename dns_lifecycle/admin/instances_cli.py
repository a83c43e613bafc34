"""``dns-lifecycle instances``: ``list`` the fleet, filtered, soonest expiry first, or
``show`` one instance."""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, date, datetime
from typing import Any

from dns_lifecycle.admin.cli_support import (
    MAX_LIMIT,
    _an_id,
    _json,
    _session,
    _whole_number,
    counted,
)
from dns_lifecycle.core.errors import shortened
from dns_lifecycle.core.settings import Settings
from models.types import INSTANCE_STATES


def add_list_command(instances_sub: Any) -> None:
    """Add ``list`` to the ``instances`` subcommands."""
    p = instances_sub.add_parser(
        "list",
        help="list instances, soonest expiry first (released ones alone: newest release first)",
    )
    p.set_defaults(handler=cmd_instances_list)
    p.add_argument("--state", choices=INSTANCE_STATES)
    p.add_argument(
        "--expiring-before",
        type=_moment,
        metavar="DATE",
        help="only those whose expiry is before DATE: YYYY-MM-DD (00:00 UTC) or an ISO "
        "datetime with an offset",
    )
    p.add_argument("--account", type=_an_id, metavar="ID", help="only this account's")
    p.add_argument(
        "--limit",
        type=_whole_number(1, MAX_LIMIT),
        default=1000,
        metavar="N",
        help="the first N (default 1000; stderr says how many more there are)",
    )
    p.add_argument("--json", action="store_true")


def _moment(text: str) -> datetime:
    """An argument type: a date (00:00 UTC) or an ISO 8601 datetime with an offset."""
    shown = shortened(text)
    try:
        value: date | datetime = (
            date.fromisoformat(text) if len(text) == 10 else datetime.fromisoformat(text)
        )
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{shown!r} is not a date: give YYYY-MM-DD (00:00 UTC) or an ISO 8601 datetime "
            "with an offset, e.g. 2026-12-31T00:00:00+08:00"
        ) from None
    if not isinstance(value, datetime):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    if value.tzinfo is None:
        raise argparse.ArgumentTypeError(
            f"{shown!r} has no time zone: add an offset such as +08:00 or Z"
        )
    return value.astimezone(UTC)


def instance_row(instance: Any) -> dict[str, Any]:
    """One instance as ``instances list --json`` shows it."""
    return {
        "id": instance.id,
        "account": instance.account_id,
        "edition": instance.edition_code,
        "billing_cycle": instance.billing_cycle,
        "auto_renew": instance.auto_renew,
        "state": instance.state,
        "expires_at": instance.expires_at.isoformat(),
        "released_at": instance.released_at.isoformat() if instance.released_at else None,
        "cluster": instance.cluster_code,
    }


def cmd_instances_list(args, settings: Settings) -> int:
    from dns_lifecycle.store.queries import list_instances

    with _session(settings) as session:
        instances, total = list_instances(
            session,
            state=args.state,
            expiring_before=args.expiring_before,
            account_id=args.account,
            limit=args.limit,
        )
    if args.json:
        print(_json([instance_row(i) for i in instances]))
    else:
        print(
            f"{'id':<16} {'account':<16} {'edition':<20} {'cycle':<7} {'auto':<4} "
            f"{'state':<8} expires_at"
        )
        for i in instances:
            released = f"  released {i.released_at.isoformat()}" if i.released_at else ""
            print(
                f"{i.id:<16} {i.account_id:<16} {i.edition_code:<20} {i.billing_cycle:<7} "
                f"{'on' if i.auto_renew else 'off':<4} {i.state:<8} "
                f"{i.expires_at.isoformat()}{released}"
            )
    if total > len(instances):
        # On stderr, so that the listing (and its JSON) stays what a script reads.
        order = "most recently released" if args.state == "released" else "soonest expiring"
        more = (
            f"`--limit {total}` shows them all"
            if total <= MAX_LIMIT
            else "--state, --expiring-before or --account narrows them down"
        )
        print(
            f"(the {order} {len(instances):,} of {counted(total, 'instance')}: "
            f"{total - len(instances):,} more not shown; {more})",
            file=sys.stderr,
        )
    return 0


def cmd_instances_show(args, settings: Settings) -> int:
    from dns_lifecycle.admin.instance_report import build_report

    with _session(settings) as session:
        report = build_report(session, args.id)
    print(report.text())
    return 0
