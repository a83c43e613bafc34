"""Changes to subscriptions: renew, upgrade, switch auto-renewal, auto-renew a batch.

Each function is one unit of work inside the caller's transaction: it locks the rows
it will change (instance first, then account, in id order, so concurrent runs cannot
deadlock), re-reads them under the lock, asks ``lifecycle.renewal`` what to do, and
writes the order, the balance, the expiry and the notices together. On SQLite the
transaction itself is the lock (the engine begins every transaction IMMEDIATE).
Nothing here commits.
"""

# Over 500 lines on purpose: every change to a subscription takes its rows' locks in the
# same order, through the helpers here; together they keep that order one rule.
from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlmodel import Session, col

from dns_lifecycle.core.errors import LifecycleError, NotFound, Refused, shortened
from dns_lifecycle.lifecycle.calendar import zone_of
from dns_lifecycle.lifecycle.notices import (
    Addressee,
    AutoRenewChanged,
    OrderCreated,
    RenewalFailed,
    Renewed,
    Upgraded,
    iso,
    money,
)
from dns_lifecycle.lifecycle.notices.keys import (
    auto_renewal_key,
    manual_renewal_key,
    renewal_failed_day,
    renewal_failed_order_and_day,
    upgrade_key,
)
from dns_lifecycle.lifecycle.pricing import edition_price, renewal_amount
from dns_lifecycle.lifecycle.renewal import (
    check_periods,
    check_renewable,
    is_auto_renewal_due,
    local_time,
    pay_from_balance,
    plan_upgrade,
    refuse_past_grace,
    renewal_period,
    require_paid_through,
)
from dns_lifecycle.store import referenced, table_of
from dns_lifecycle.store.notifications import insert_ignoring_duplicates, insert_notices
from dns_lifecycle.store.requests import earlier_request, hold_request
from models import Account, Edition, Instance, Notification, Order
from models.types import RequestAction

ORDERS = table_of(Order)


def for_update(session: Session, stmt):
    """Lock the selected rows on PostgreSQL (SQLite's transaction already holds the
    database's write lock).

    A row another run is changing is waited for, not skipped, and then re-checked: so
    when a run leaves a step, every row that step scanned has been dealt with, and its
    next step (reminders after auto-renewal, say) sees the result even when two runs
    overlap. Rows are locked in id order, instances before accounts: no deadlock.
    """
    if session.get_bind().dialect.name == "postgresql":
        return stmt.with_for_update()
    return stmt


def lock_instance(session: Session, instance_id: str) -> Instance:
    instance = session.execute(
        for_update(session, select(Instance).where(col(Instance.id) == instance_id))
    ).scalar_one_or_none()
    if instance is None:
        raise NotFound(
            f"instance {shortened(instance_id)!r} does not exist: check the id "
            "(`dns-lifecycle export` lists every instance)"
        )
    return instance


def lock_accounts(session: Session, account_ids: list[str]) -> dict[str, Account]:
    stmt = (
        select(Account)
        .where(col(Account.id).in_(sorted(set(account_ids))))
        .order_by(col(Account.id))
    )
    return {a.id: a for a in session.execute(for_update(session, stmt)).scalars()}


def addressee(instance: Instance, account: Account) -> Addressee:
    return Addressee(
        account.id,
        account.name,
        account.locale,
        account.timezone,
        instance.id,
        instance.edition_code,
    )


def _earlier_order(
    session: Session, request_key: str, action: RequestAction, instance_id: str, params: str
) -> Order | None:
    """The order an earlier, identical request made with ``request_key``, or None for a
    new key; a key held by any other request is refused."""
    held = earlier_request(session, request_key, action, instance_id, params)
    if held is None:
        return None
    assert held.order_id is not None  # renewals and upgrades hold their order
    return session.get(Order, held.order_id)


def _create_order(session: Session, values: dict[str, Any]) -> Order | None:
    """Insert an order unless one with its key exists; returns the new order or None."""
    if not insert_ignoring_duplicates(session, ORDERS, [values], "key"):
        return None
    return session.execute(select(Order).where(Order.key == values["key"])).scalar_one()


def _paid_order(
    session: Session,
    *,
    key: str,
    instance_id: str,
    kind: str,
    period: tuple[datetime, datetime],
    amount: Decimal,
    edition_code: str,
    now: datetime,
) -> Order:
    """An order paid at once (a manual renewal or an upgrade). Its key was checked
    under the instance lock, so it is new."""
    order = _create_order(
        session,
        {
            "key": key,
            "instance_id": instance_id,
            "kind": kind,
            "period_start": period[0],
            "period_end": period[1],
            "amount": amount,
            "state": "paid",
            "edition_code": edition_code,
            "created_at": now,
            "paid_at": now,
        },
    )
    if order is None:
        raise LifecycleError(f"order {key} appeared while instance {instance_id} was locked")
    return order


@dataclass
class Outcome:
    """What a subscription change did, for reports and the CLI."""

    order: Order | None = None
    counts: dict[str, int] = field(default_factory=dict)
    plan: list[dict[str, Any]] = field(default_factory=list)

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n


# ------------------------------------------------------------------ manual renewal


def renew(
    session: Session,
    *,
    instance_id: str,
    periods: int,
    request_key: str,
    as_of: datetime,
    now: datetime,
    grace_days: int,
) -> Order:
    """Renew by ``periods`` from the current expiry, paid from the balance, or refuse.

    An expired instance (still inside its grace period as of ``as_of``) becomes active
    again; one past its grace period, released or not, is refused, and so is any
    renewal that would leave it expiring by ``as_of``. ``request_key`` makes a retried
    request a no-op; the same key with another instance, action or number of periods is
    refused (see ``store.requests``).
    """
    instance = lock_instance(session, instance_id)
    account = lock_accounts(session, [instance.account_id])[instance.account_id]
    zone = account.timezone
    check_periods(instance.id, periods, instance.billing_cycle)
    key = manual_renewal_key(instance.id, request_key)
    asked = f"periods={periods}"
    existing = _earlier_order(session, request_key, "manual_renewal", instance.id, asked)
    if existing is not None:
        return existing
    check_renewable(
        instance.id,
        instance.state,
        periods,
        instance.billing_cycle,
        expires_at=instance.expires_at,
        as_of=as_of,
        grace_days=grace_days,
        zone=zone,
    )
    edition = referenced(session, Edition, instance.edition_code)
    amount = renewal_amount(
        edition.monthly_price, edition.yearly_price, instance.billing_cycle, periods
    )
    period = renewal_period(
        instance.expires_at,
        instance.billing_cycle,
        instance.anchor_day,
        periods,
        zone=zone,
        instance_id=instance.id,
        anchor_time=instance.anchor_time,
    )
    require_paid_through(instance.id, period.end, as_of, zone)
    payment = pay_from_balance(account.balance, amount)
    if not payment.paid:
        raise Refused(f"cannot renew instance {instance.id}: {payment.reason}")
    order = _paid_order(
        session,
        key=key,
        instance_id=instance.id,
        kind="manual_renewal",
        period=(period.start, period.end),
        amount=amount,
        edition_code=instance.edition_code,
        now=now,
    )
    hold_request(
        session,
        key=request_key,
        action="manual_renewal",
        subject=instance.id,
        params=asked,
        now=now,
        order_id=order.id,
    )
    account.balance = payment.balance_after
    instance.expires_at, instance.anchor_time = period.end, period.anchor_time
    instance.state = "active"
    session.add_all([account, instance])
    notice = Renewed.to(
        addressee(instance, account),
        as_of=as_of,
        order_key=key,
        order_id=order.id,
        order_kind="manual_renewal",
        amount=amount,
        expires_at=period.end,
        balance=payment.balance_after,
    )
    insert_notices(session, notice.rows(now))
    session.flush()
    return order


# ------------------------------------------------------------------ upgrade


def upgrade(
    session: Session,
    *,
    instance_id: str,
    edition_code: str,
    request_key: str,
    as_of: datetime,
    now: datetime,
    grace_days: int,
) -> Order:
    """Move to a higher edition, paying the difference for the paid time until the
    expiry (see :func:`plan_upgrade`), or refuse.

    The upgrade takes effect at ``now``, the clock: it is judged and priced at the later
    of ``as_of`` and ``now``, so an ``as_of`` given a little in the past neither accepts an
    instance that has expired since nor charges for time already used.
    """
    # An earlier as_of would price a period that has ended, or pass an instance that
    # expired between that moment and the clock.
    as_of = max(as_of, now)
    instance = lock_instance(session, instance_id)
    target = session.get(Edition, edition_code)
    if target is None:
        codes = ", ".join(
            session.execute(select(col(Edition.code)).order_by(col(Edition.rank))).scalars()
        )
        raise NotFound(f"edition {shortened(edition_code)!r} does not exist: choose one of {codes}")
    key = upgrade_key(instance.id, request_key)
    asked = f"edition={target.code}"
    existing = _earlier_order(session, request_key, "upgrade", instance.id, asked)
    if existing is not None:
        return existing
    account = lock_accounts(session, [instance.account_id])[instance.account_id]
    current = referenced(session, Edition, instance.edition_code)
    cycle = instance.billing_cycle
    plan = plan_upgrade(
        instance_id=instance.id,
        state=instance.state,
        expires_at=instance.expires_at,
        billing_cycle=cycle,
        anchor_day=instance.anchor_day,
        zone=account.timezone,
        current=(current.code, current.rank, edition_price(current, cycle)),
        target=(target.code, target.rank, edition_price(target, cycle)),
        as_of=as_of,
        grace_days=grace_days,
        anchor_time=instance.anchor_time,
    )
    payment = pay_from_balance(account.balance, plan.amount)
    if not payment.paid:
        raise Refused(f"cannot upgrade instance {instance.id} to {target.code}: {payment.reason}")
    order = _paid_order(
        session,
        key=key,
        instance_id=instance.id,
        kind="upgrade",
        period=(plan.period.start, plan.period.end),
        amount=plan.amount,
        edition_code=target.code,
        now=now,
    )
    hold_request(
        session,
        key=request_key,
        action="upgrade",
        subject=instance.id,
        params=asked,
        now=now,
        order_id=order.id,
    )
    account.balance = payment.balance_after
    instance.edition_code = target.code
    session.add_all([account, instance])
    # Addressed after the change: the notice speaks of the edition the instance now has.
    notice = Upgraded.to(
        addressee(instance, account),
        as_of=as_of,
        order_key=key,
        order_id=order.id,
        from_edition=current.code,
        to_edition=target.code,
        amount=plan.amount,
        expires_at=instance.expires_at,
    )
    insert_notices(session, notice.rows(now))
    session.flush()
    return order


# ------------------------------------------------------------------ auto-renew switch


def set_auto_renew(
    session: Session,
    *,
    instance_id: str,
    on: bool,
    request_key: str,
    as_of: datetime,
    now: datetime,
    grace_days: int,
) -> bool:
    """Switch auto-renewal; returns False (and tells nobody) when it already was so.

    Switching it on for an instance whose expiry has passed (as of ``as_of``) is refused:
    auto-renewal only acts before expiry, so such an instance is renewed by hand, until
    its grace period (``grace_days``) ends; after that it can no longer be renewed.
    """
    instance = lock_instance(session, instance_id)
    if instance.state == "released":
        raise Refused(
            f"instance {instance.id} is released: it can no longer be renewed, so "
            "auto-renewal cannot be switched; its records are on the free cluster: buy a "
            "new instance to host its domains on a paid edition again"
        )
    if on and (instance.state == "expired" or instance.expires_at <= as_of):
        zone = referenced(session, Account, instance.account_id).timezone
        refuse_past_grace(
            instance.id,
            "cannot have auto-renewal switched on",
            expires_at=instance.expires_at,
            as_of=as_of,
            grace_days=grace_days,
            zone=zone,
        )
        raise Refused(
            f"instance {instance.id} expired on {local_time(instance.expires_at, zone)}: "
            "auto-renewal only renews before expiry; renew it by hand "
            f"(`dns-lifecycle renew {instance.id}`), then switch auto-renewal on"
        )
    asked = f"auto_renew={'on' if on else 'off'}"
    if earlier_request(session, request_key, "auto_renew", instance.id, asked) is not None:
        return False
    if instance.auto_renew == on:
        return False
    hold_request(
        session,
        key=request_key,
        action="auto_renew",
        subject=instance.id,
        params=asked,
        now=now,
    )
    instance.auto_renew = on
    session.add(instance)
    account = referenced(session, Account, instance.account_id)
    notice = AutoRenewChanged.to(
        addressee(instance, account),
        as_of=as_of,
        request_key=request_key,
        auto_renew=on,
        expires_at=instance.expires_at,
    )
    insert_notices(session, notice.rows(now))
    session.flush()
    return True


# ------------------------------------------------------------------ auto-renewal batch


def _failures_told(session: Session, instance_ids: list[str]) -> dict[str, str]:
    """The latest day each order of these instances had a "renewal failed" notice, by
    order key."""
    latest: dict[str, str] = {}
    for (ledger_key,) in session.execute(
        select(col(Notification.key)).where(
            col(Notification.instance_id).in_(instance_ids),
            col(Notification.kind) == RenewalFailed.kind,
        )
    ):
        order_key, day = renewal_failed_order_and_day(ledger_key)
        latest[order_key] = max(day, latest.get(order_key, ""))
    return latest


def auto_renew_batch(
    session: Session,
    instance_ids: list[str],
    *,
    as_of: datetime,
    now: datetime,
    lead_days: int,
) -> Outcome:
    """Create and pay (or fail) the auto-renewal orders of a batch of instances.

    The batch was found by a scan outside this transaction; here every row is locked
    and re-checked, so an instance renewed by hand in between is left alone.
    """
    outcome = Outcome()
    stmt = (
        select(Instance)
        .where(col(Instance.id).in_(sorted(instance_ids)))
        .order_by(col(Instance.id))
    )
    instances = [
        i
        for i in session.execute(for_update(session, stmt)).scalars()
        if i.state == "active"
        and i.auto_renew
        and is_auto_renewal_due(i.expires_at, as_of, lead_days)
    ]
    if not instances:
        return outcome
    accounts = lock_accounts(session, [i.account_id for i in instances])
    editions = {e.code: e for e in session.execute(select(Edition)).scalars()}
    keys = [auto_renewal_key(i.id, i.expires_at) for i in instances]
    orders = {
        o.key: o for o in session.execute(select(Order).where(col(Order.key).in_(keys))).scalars()
    }
    balances = {a.id: a.balance for a in accounts.values()}
    told = _failures_told(session, [i.id for i in instances])
    notices: list[dict[str, Any]] = []

    for instance, key in zip(instances, keys, strict=True):
        account = accounts[instance.account_id]
        edition = editions[instance.edition_code]
        amount = edition_price(edition, instance.billing_cycle)
        period = renewal_period(
            instance.expires_at,
            instance.billing_cycle,
            instance.anchor_day,
            zone=account.timezone,
            instance_id=instance.id,
            anchor_time=instance.anchor_time,
        )
        payment = pay_from_balance(balances[account.id], amount, automatic=True)
        order = orders.get(key)
        to = addressee(instance, account)
        outcome.plan.append(
            {
                "action": "auto_renewal",
                "instance": instance.id,
                "order": "new" if order is None else f"retry #{order.id}",
                "amount": money(amount),
                "period_end": iso(period.end),
                "result": "paid" if payment.paid else "failed",
                "reason": payment.reason or "",
            }
        )
        # What this run did: an order failed before and failing again is a standing
        # failure, not a new one (every run until the expiry retries it).
        outcome.add(
            "orders_paid"
            if payment.paid
            else "orders_failed"
            if order is None
            else "orders_still_failed"
        )
        if order is None:
            order = _create_order(
                session,
                {
                    "key": key,
                    "instance_id": instance.id,
                    "kind": "auto_renewal",
                    "period_start": period.start,
                    "period_end": period.end,
                    "amount": amount,
                    "state": "pending",
                    "edition_code": instance.edition_code,
                    "created_at": now,
                },
            )
            assert order is not None  # the instance lock keeps the key ours
            outcome.add("orders_created")
            notices += OrderCreated.to(
                to,
                as_of=as_of,
                order_key=key,
                order_id=order.id,
                order_kind="auto_renewal",
                period_start=period.start,
                period_end=period.end,
                amount=amount,
            ).rows(now)
        else:
            # A retry charges what the period costs now: the instance may have moved to a
            # higher edition since the order failed. The order says what was charged.
            order.amount, order.edition_code = amount, instance.edition_code
        balances[account.id] = payment.balance_after
        if payment.paid:
            order.state, order.paid_at, order.reason = "paid", now, None
            instance.expires_at, instance.anchor_time = period.end, period.anchor_time
            notices += Renewed.to(
                to,
                as_of=as_of,
                order_key=key,
                order_id=order.id,
                order_kind="auto_renewal",
                amount=amount,
                expires_at=period.end,
                balance=payment.balance_after,
            ).rows(now)
        else:
            order.state, order.reason = "failed", payment.reason
            # Not in a backfill when the account was told of this failure on a later day
            # already, with the time then left: a notice as of this day would be stale.
            if told.get(key, "") <= renewal_failed_day(as_of, zone_of(account.timezone)):
                notices += RenewalFailed.to(
                    to,
                    order_key=key,
                    as_of=as_of,
                    order_id=order.id,
                    amount=amount,
                    balance=payment.balance_after,
                    expires_at=instance.expires_at,
                    # A code, worded by the template in the account's language.
                    reason="insufficient_balance",
                ).rows(now)
        session.add_all([order, instance])

    for account in accounts.values():
        account.balance = balances[account.id]
        session.add(account)
    outcome.add("notices_queued", insert_notices(session, notices))
    session.flush()
    return outcome
