"""On-demand changes: manual renewal, upgrade, the auto-renewal switch, and top-ups;
and the report of one instance.

Each change is one transaction: a refused request changes nothing and fails with the
reason; an accepted one writes the order, the balance, the instance and the notice
together, then delivers the notice. The CLI calls the plain functions; the Prefect
UI runs the flows, which wrap the same functions.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Annotated, Any

from prefect.artifacts import create_markdown_artifact
from prefect.runtime import flow_run
from pydantic import Field
from pydantic.json_schema import SkipJsonSchema
from sqlmodel import Session

from dns_lifecycle.admin.instance_report import build_report
from dns_lifecycle.core.db import Database, check_ready
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.store.notifications import PendingFilter
from dns_lifecycle.store.subscriptions import renew, set_auto_renew, upgrade
from dns_lifecycle.store.top_ups import top_up
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport, change_as_of, open_run, timed, wall_clock
from flows.delivery import deliver_pending
from flows.params import RequestKey
from models import Order

InstanceId = Annotated[str, Field(min_length=1, max_length=64, description="The instance id.")]
AccountId = Annotated[str, Field(min_length=1, max_length=64, description="The account id.")]
Amount = Annotated[
    str,
    Field(
        pattern=r"^[0-9]{1,12}(\.[0-9]{1,2})?$",
        description="The amount to add to the balance, in yuan with at most 2 decimal "
        "places, e.g. 50.00.",
    ),
]
UpgradeAsOf = Annotated[
    datetime | SkipJsonSchema[None],
    Field(
        description="Leave empty: an upgrade takes effect now and is priced from now to "
        "the expiry. A moment given must be within 5 minutes of the clock, either way "
        "(an earlier one would charge for time already used).",
    ),
]


def order_summary(order: Order) -> dict[str, Any]:
    return {
        "order": order.id,
        "instance": order.instance_id,
        "kind": order.kind,
        "period_start": order.period_start.isoformat(),
        "period_end": order.period_end.isoformat(),
        "amount": str(order.amount),
        "state": order.state,
    }


def apply_change(
    ctx: RunContext,
    step: str,
    instance_id: str,
    notice_kind: str,
    change: Callable[[Session, datetime], Order | bool],
) -> StepReport:
    """Run ``change`` in one transaction at the moment ``now``, then deliver the notice
    it queued.

    A request repeated with its request key gets back the order the first one made, at
    that one's moment: the report counts it as ``orders_repeated`` and marks its row
    ``repeated``, so that nothing reads it as a second charge.
    """
    report = StepReport(step=step, as_of=ctx.as_of, dry_run=False)
    with timed(report):
        now = ctx.clock()
        with ctx.db.session() as session:
            result = change(session, now)
            session.commit()
        if isinstance(result, Order):
            repeated = result.created_at != now
            report.add("orders_repeated" if repeated else f"orders_{result.state}")
            report.planned([{**order_summary(result), "repeated": repeated}])
        else:
            report.add("switched" if result else "unchanged")
        filt = PendingFilter(kinds=(notice_kind,), instance_ids=(instance_id,))
        report.absorb(deliver_pending(ctx, filt))
    return report


def renew_now(ctx: RunContext, instance_id: str, periods: int, request_key: str) -> StepReport:
    return apply_change(
        ctx,
        "renew-instance",
        instance_id,
        "renewed",
        lambda s, now: renew(
            s,
            instance_id=instance_id,
            periods=periods,
            request_key=request_key,
            as_of=ctx.as_of,
            now=now,
            grace_days=ctx.settings.grace_days,
        ),
    )


def upgrade_now(ctx: RunContext, instance_id: str, edition: str, request_key: str) -> StepReport:
    return apply_change(
        ctx,
        "upgrade-instance",
        instance_id,
        "upgraded",
        lambda s, now: upgrade(
            s,
            instance_id=instance_id,
            edition_code=edition,
            request_key=request_key,
            as_of=ctx.as_of,
            now=now,
            grace_days=ctx.settings.grace_days,
        ),
    )


def switch_auto_renew_now(
    ctx: RunContext, instance_id: str, on: bool, request_key: str
) -> StepReport:
    return apply_change(
        ctx,
        "set-auto-renew",
        instance_id,
        "auto_renew_changed",
        lambda s, now: set_auto_renew(
            s,
            instance_id=instance_id,
            on=on,
            request_key=request_key,
            as_of=ctx.as_of,
            now=now,
            grace_days=ctx.settings.grace_days,
        ),
    )


def top_up_now(ctx: RunContext, account_id: str, amount: Decimal, request_key: str) -> StepReport:
    """Add ``amount`` to the balance of ``account_id`` once for ``request_key``; the
    report's row says the balance after it and whether an earlier request made it."""
    report = StepReport(step="top-up-account", as_of=ctx.as_of, dry_run=False)
    with timed(report):
        with ctx.db.session() as session:
            outcome = top_up(
                session,
                account_id=account_id,
                amount=amount,
                request_key=request_key,
                now=ctx.clock(),
            )
            session.commit()
        made = outcome.top_up
        report.add("top_ups_repeated" if outcome.repeated else "top_ups_added")
        report.planned(
            [
                {
                    "id": made.id,
                    "account": made.account_id,
                    "amount": str(made.amount),
                    "request_key": made.key,
                    "created_at": made.created_at.isoformat(timespec="seconds"),
                    "balance": str(outcome.balance),
                    "repeated": outcome.repeated,
                }
            ]
        )
    return report


def _request_key(request_key: str | None) -> str:
    return request_key or str(flow_run.get_id())


@lifecycle_flow(name="renew-instance")
def renew_instance(
    instance_id: InstanceId,
    periods: Annotated[
        int, Field(ge=1, le=36, description="Periods to buy: 1-36 months, or 1-10 years.")
    ] = 1,
    request_key: RequestKey = None,
) -> StepReport:
    """Renew an instance by a number of periods, paid from the account balance.

    An active instance extends from its expiry; an expired one (inside the grace
    period) extends from the old expiry and becomes active again; a released one is
    refused.
    """
    with open_run(None, False, None) as ctx:
        return renew_now(ctx, instance_id, periods, _request_key(request_key))


@lifecycle_flow(name="upgrade-instance")
def upgrade_instance(
    instance_id: InstanceId,
    edition: Annotated[
        str, Field(min_length=1, max_length=64, description="The higher edition to move to.")
    ],
    as_of: UpgradeAsOf = None,
    request_key: RequestKey = None,
) -> StepReport:
    """Move an instance to a higher edition now, paying the price difference for the
    paid time until its expiry: prorated for the rest of the current period, in full for
    each period paid ahead. A downgrade, the same edition, or an expired instance is
    refused."""
    with open_run(change_as_of(as_of, "an upgrade", wall_clock), False, None) as ctx:
        return upgrade_now(ctx, instance_id, edition, _request_key(request_key))


@lifecycle_flow(name="top-up-account")
def top_up_account(
    account_id: AccountId, amount: Amount, request_key: RequestKey = None
) -> StepReport:
    """Add money to an account's balance, once per request key: a repeated request adds
    nothing. A failed auto-renewal is paid by the next daily run once the balance
    covers it."""
    with open_run(None, False, None) as ctx:
        # Whole cents, as the CLI reads it: "5" is ¥5.00 in every message.
        cents = Decimal(amount).quantize(Decimal("0.01"))
        return top_up_now(ctx, account_id, cents, _request_key(request_key))


@lifecycle_flow(name="set-auto-renew")
def set_auto_renew_flow(
    instance_id: InstanceId,
    on: Annotated[bool, Field(description="On (checked) or off (unchecked).")],
    request_key: RequestKey = None,
) -> StepReport:
    """Switch auto-renewal of an instance on or off; the account is told."""
    with open_run(None, False, None) as ctx:
        return switch_auto_renew_now(ctx, instance_id, on, _request_key(request_key))


def report_key(instance_id: str) -> str:
    """The artifact key of an instance's report: ``instance-report-`` and the id, in
    the lower-case letters, digits and dashes a key allows. An id that needs changing
    to fit also gets a digest of itself, so that two ids never share a key."""
    slug = re.sub(r"[^a-z0-9-]+", "-", instance_id.lower()).strip("-")
    if slug != instance_id:
        slug = f"{slug[:40]}-{hashlib.sha256(instance_id.encode()).hexdigest()[:12]}".lstrip("-")
    return f"instance-report-{slug}"


@lifecycle_flow(name="instance-report")
def instance_report(instance_id: InstanceId) -> str:
    """Publish what `dns-lifecycle instances show` prints of one instance as a markdown
    artifact keyed by the instance: its account and balance, its domains with their
    release stage, orders, tickets, notices and zone-file copies. Nothing changes."""
    settings = Settings()
    check_ready(settings)
    db = Database(settings)
    try:
        with db.session() as session:
            report = build_report(session, instance_id)
    finally:
        db.dispose()
    key = report_key(report.instance_id)
    create_markdown_artifact(
        report.markdown(),
        key=key,
        description=f"instance-report: instance {report.instance_id}",
    )
    return key
