"""Renewal and upgrade decisions (rules 2, 3 and 4 of lifecycle.md), as plain functions.

Nothing here touches the database or the clock: the callers lock and read the rows,
ask these functions what to do, and write the answer in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from dns_lifecycle.core.errors import Refused
from dns_lifecycle.lifecycle.calendar import next_expiry, period_start
from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.pricing import prorated_upgrade

# Bounds on a manual renewal: three years of months, or ten years.
MAX_PERIODS = {"monthly": 36, "yearly": 10}


def is_auto_renewal_due(expires_at: datetime, as_of: datetime, lead_days: int) -> bool:
    """Due from ``lead_days`` x 24 h before expiry until the expiry instant itself."""
    return expires_at - lead_days * DAY <= as_of < expires_at


def auto_renewal_window(as_of: datetime, lead_days: int) -> tuple[datetime, datetime]:
    """Expiries in ``(after, until]`` are due for auto-renewal: the rule of
    :func:`is_auto_renewal_due`, as a range the database can scan."""
    return as_of, as_of + lead_days * DAY


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime


def renewal_period(
    expires_at: datetime, billing_cycle: str, anchor_day: int, periods: int = 1
) -> Period:
    """The period a renewal buys: from the current expiry, ``periods`` cycles on."""
    return Period(expires_at, next_expiry(expires_at, billing_cycle, anchor_day, periods))


@dataclass(frozen=True)
class Payment:
    paid: bool
    balance_after: Decimal
    reason: str | None = None


def pay_from_balance(balance: Decimal, amount: Decimal) -> Payment:
    """Pay ``amount`` from a prepaid ``balance``; a balance never goes negative."""
    if amount < 0:
        raise ValueError(f"amount {amount} is negative")
    if balance >= amount:
        return Payment(True, balance - amount)
    return Payment(
        False,
        balance,
        f"balance ¥{balance} does not cover ¥{amount}: top up at least ¥{amount - balance} "
        "or renew by hand",
    )


def check_renewable(instance_id: str, state: str, periods: int, billing_cycle: str) -> None:
    """Refuse a manual renewal that the rules do not allow; say why and what to do."""
    if state == "released":
        raise Refused(
            f"instance {instance_id} is released and cannot be renewed back: its records "
            "are on the free cluster; buy a new instance instead"
        )
    limit = MAX_PERIODS[billing_cycle]
    if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= limit:
        unit = "months" if billing_cycle == "monthly" else "years"
        raise Refused(
            f"cannot renew instance {instance_id} by {periods!r} periods: a {billing_cycle} "
            f"subscription renews by 1 to {limit} {unit} at a time"
        )


@dataclass(frozen=True)
class Upgrade:
    amount: Decimal
    period: Period


def plan_upgrade(
    *,
    instance_id: str,
    state: str,
    expires_at: datetime,
    billing_cycle: str,
    anchor_day: int,
    current: tuple[str, int, Decimal],
    target: tuple[str, int, Decimal],
    as_of: datetime,
) -> Upgrade:
    """Price an upgrade (edition code, rank, price of one period for the cycle), or refuse.

    The prorated difference is charged for what is left of the current period.
    """
    (cur_code, cur_rank, cur_price), (new_code, new_rank, new_price) = current, target
    if state != "active":
        raise Refused(
            f"instance {instance_id} is {state}: only an active instance can change edition; "
            + ("renew it first" if state == "expired" else "buy a new instance instead")
        )
    if new_code == cur_code:
        raise Refused(f"instance {instance_id} is already on edition {cur_code}: nothing to do")
    if new_rank < cur_rank:
        raise Refused(
            f"instance {instance_id} cannot move from {cur_code} down to {new_code}: only "
            "upgrades to a higher edition are allowed; a downgrade takes effect only as a "
            "new instance"
        )
    start = period_start(expires_at, billing_cycle, anchor_day)
    amount = prorated_upgrade(cur_price, new_price, start, expires_at, as_of)
    return Upgrade(amount, Period(start, expires_at))
