"""The on-demand commands of ``dns-lifecycle``: ``renew``, ``upgrade``, ``auto-renew``,
``top-up``, and ``orders list``."""

from __future__ import annotations

import sys
from decimal import Decimal

from dns_lifecycle.admin.cli_support import (
    MAX_LIMIT,
    _json,
    _on_demand,
    _session,
    counted,
)
from dns_lifecycle.core.settings import Settings


def _print_change(report, as_json: bool) -> None:
    if as_json:
        print(_json(report.model_dump(mode="json")))
        return
    for row in report.plan:
        repeated = (
            " by an earlier request with this request key: nothing was charged now"
            if row.get("repeated")
            else ""
        )
        print(
            f"order {row['order']}: {row['kind']} of {row['instance']} "
            f"{row['period_start']} -> {row['period_end']}, ¥{row['amount']}, {row['state']}"
            + repeated
        )
    for name, n in sorted(report.counts.items()):
        print(f"  {name}: {n}")
    for failure in report.failures:
        print(f"  ! {failure}")


def cmd_renew(args, settings: Settings) -> int:
    import uuid

    from flows.on_demand import renew_now

    with _on_demand(settings) as ctx:
        report = renew_now(ctx, args.instance, args.periods, args.request_key or uuid.uuid4().hex)
    _print_change(report, args.json)
    return 0


def cmd_upgrade(args, settings: Settings) -> int:
    import uuid

    from flows.common import change_as_of, wall_clock
    from flows.on_demand import upgrade_now

    with _on_demand(settings, change_as_of(args.as_of, "an upgrade", wall_clock)) as ctx:
        report = upgrade_now(ctx, args.instance, args.edition, args.request_key or uuid.uuid4().hex)
    _print_change(report, args.json)
    return 0


def cmd_auto_renew(args, settings: Settings) -> int:
    import uuid

    from flows.on_demand import switch_auto_renew_now

    with _on_demand(settings) as ctx:
        report = switch_auto_renew_now(ctx, args.instance, args.on, uuid.uuid4().hex)
    state = "on" if args.on else "off"
    if report.counts.get("switched"):
        print(f"auto-renewal of {args.instance} is now {state}; {_notice_outcome(report.counts)}")
    else:
        print(f"auto-renewal of {args.instance} was already {state}: nothing changed")
    for failure in report.failures:
        print(f"  ! {failure}")
    return 0


def _notice_outcome(counts: dict[str, int]) -> str:
    """What became of the notice a change queued, per channel: sent, queued (not sent
    yet: the next run sends it) or failed (refused: not retried)."""
    said = []
    for channel, name in (("email", "email"), ("sms", "SMS")):
        if counts.get(f"{channel}_sent"):
            said.append(f"{name} sent")
        elif counts.get(f"{channel}_permanent"):
            said.append(f"{name} failed (refused, not retried)")
        else:
            said.append(f"{name} queued (not sent yet; the next run sends it)")
    return "the account's notice: " + ", ".join(said)


def cmd_top_up(args, settings: Settings) -> int:
    from flows.on_demand import top_up_now

    with _on_demand(settings, tells=False) as ctx:  # a top-up sends no notice
        report = top_up_now(ctx, args.account, args.amount, args.request_key)
    [row] = report.plan
    if args.json:
        print(_json(row))
        return 0
    what = f"top-up {row['id']}: ¥{Decimal(row['amount']):,} to account {row['account']}"
    balance = f"balance ¥{Decimal(row['balance']):,}"
    if row["repeated"]:
        print(
            f"{what}, added {row['created_at']} by an earlier request with this request key: "
            f"nothing was added now; {balance}"
        )
    else:
        print(f"{what}; {balance}")
    return 0


def cmd_orders_list(args, settings: Settings) -> int:
    from dns_lifecycle.store.queries import list_orders

    with _session(settings) as session:
        orders, total = list_orders(
            session, instance_id=args.instance, state=args.state, limit=args.limit
        )
    if args.json:
        from dns_lifecycle.admin.inventory import order_row

        print(_json([order_row(o) for o in orders]))
    else:
        print(f"{'id':>6}  {'instance':<16} {'kind':<15} {'period_end':<26} {'amount':>10}  state")
        for o in orders:
            print(
                f"{o.id:>6}  {o.instance_id:<16} {o.kind:<15} {o.period_end.isoformat():<26} "
                f"{o.amount:>10}  {o.state}{'  (' + o.reason + ')' if o.reason else ''}"
            )
    if total > len(orders):
        # On stderr, so that the listing (and its JSON) stays what a script reads.
        more = (
            f"`--limit {total}` shows them all"
            if total <= MAX_LIMIT
            else "--instance or --state narrows them down"
        )
        print(
            f"(the newest {len(orders):,} of {counted(total, 'order')}: "
            f"{total - len(orders):,} older not shown; {more})",
            file=sys.stderr,
        )
    return 0
