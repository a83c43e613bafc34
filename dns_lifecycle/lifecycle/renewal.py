"""Renewal and upgrade decisions (rules 2, 3 and 4 of lifecycle.md), as plain functions.

Nothing here touches the database or the clock: the callers lock and read the rows,
ask these functions what to do, and write the answer in one transaction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, tzinfo
from decimal import Decimal

from dns_lifecycle.core.errors import Refused
from dns_lifecycle.lifecycle.calendar import (
    LAST_YEAR,
    BeyondTheCalendar,
    anchor_time_to_keep,
    local_time_of_day,
    next_expiry,
    period_containing,
    zone_of,
)
from dns_lifecycle.lifecycle.durations import DAY
from dns_lifecycle.lifecycle.expiry import release_at
from dns_lifecycle.lifecycle.pricing import upgrade_amount

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
    # The anchor time the instance stores once it expires at ``end`` (see
    # ``calendar.anchor_time_to_keep``); only a renewal's period sets it.
    anchor_time: time | None = None


def renewal_period(
    expires_at: datetime,
    billing_cycle: str,
    anchor_day: int,
    periods: int = 1,
    *,
    zone: str | tzinfo,
    instance_id: str,
    anchor_time: time | None = None,
) -> Period:
    """The period a renewal buys: from the current expiry, ``periods`` cycles on, counted
    on the calendar of the account's time zone ``zone``, onto the anchor day and the
    anchor time (``anchor_time``, by default the expiry's local time). A period that
    would end after the last year an expiry can hold is refused, naming the instance
    ``instance_id``."""
    anchor_time = local_time_of_day(expires_at, anchor_time, zone)
    try:
        end = next_expiry(
            expires_at, billing_cycle, anchor_day, periods, zone=zone, anchor_time=anchor_time
        )
    except BeyondTheCalendar:
        unit = "months" if billing_cycle == "monthly" else "years"
        raise Refused(
            f"cannot renew instance {instance_id} by {periods} {unit}: it expires on "
            f"{local_time(expires_at, zone)}, and the renewal would end after the year "
            f"{LAST_YEAR}, the last an expiry can reach; renew it by fewer periods, or not "
            "at all"
        ) from None
    return Period(expires_at, end, anchor_time_to_keep(end, anchor_time, zone))


def local_time(moment: datetime, zone: str | tzinfo) -> str:
    """``moment`` as the account reads it: local date and time with the offset."""
    return moment.astimezone(zone_of(zone)).isoformat(timespec="minutes")


def require_paid_through(
    instance_id: str,
    expires_after: datetime,
    as_of: datetime,
    zone: str | tzinfo,
    fix: str = "renew by more periods",
) -> None:
    """Refuse to charge for a change (renewal or upgrade) that leaves the instance
    expiring at or before ``as_of``: money is never taken for time that has passed.
    ``fix`` says what to do instead."""
    if expires_after <= as_of:
        raise Refused(
            f"instance {instance_id} would expire on {local_time(expires_after, zone)}, "
            f"not after {local_time(as_of, zone)}: nothing is charged for a period that has "
            f"ended; {fix}"
        )


@dataclass(frozen=True)
class Payment:
    paid: bool
    balance_after: Decimal
    reason: str | None = None


def pay_from_balance(balance: Decimal, amount: Decimal, *, automatic: bool = False) -> Payment:
    """Pay ``amount`` from a prepaid ``balance``; a balance never goes negative.

    A short balance fails, saying to top up by at least the shortfall. An ``automatic``
    payment (an auto-renewal) also says the instance can be renewed by hand instead; a
    request the account made itself (a manual renewal, an upgrade) needs only the top-up.
    """
    if amount < 0:
        raise ValueError(f"amount {amount} is negative")
    if balance >= amount:
        return Payment(True, balance - amount)
    fix = f"top up at least ¥{amount - balance}" + (" or renew by hand" if automatic else "")
    return Payment(False, balance, f"balance ¥{balance} does not cover ¥{amount}: {fix}")


def check_periods(instance_id: str, periods: int, billing_cycle: str) -> None:
    """Refuse a number of periods outside what one manual renewal may buy."""
    limit = MAX_PERIODS[billing_cycle]
    if isinstance(periods, bool) or not isinstance(periods, int) or not 1 <= periods <= limit:
        unit = "months" if billing_cycle == "monthly" else "years"
        raise Refused(
            f"cannot renew instance {instance_id} by {periods!r} periods: a {billing_cycle} "
            f"subscription renews by 1 to {limit} {unit} at a time"
        )


def check_renewable(
    instance_id: str,
    state: str,
    periods: int,
    billing_cycle: str,
    *,
    expires_at: datetime,
    as_of: datetime,
    grace_days: int,
    zone: str | tzinfo,
) -> None:
    """Refuse a manual renewal that the rules do not allow; say why and what to do.

    An instance can be renewed until its grace period ends (``grace_days`` after its
    expiry), whether or not a run has released it yet.
    """
    if state == "released":
        raise Refused(
            f"instance {instance_id} is released and cannot be renewed back: its records "
            "are on the free cluster; buy a new instance instead"
        )
    refuse_past_grace(
        instance_id,
        "cannot be renewed",
        expires_at=expires_at,
        as_of=as_of,
        grace_days=grace_days,
        zone=zone,
    )
    check_periods(instance_id, periods, billing_cycle)


def refuse_past_grace(
    instance_id: str,
    refused: str,
    *,
    expires_at: datetime,
    as_of: datetime,
    grace_days: int,
    zone: str | tzinfo,
) -> None:
    """Refuse a change (``refused`` says which) to an instance whose grace period has
    ended by ``as_of``, released or not yet: it can no longer be renewed, so nothing that
    a renewal would make possible (an upgrade, auto-renewal) is possible either."""
    grace_end = release_at(expires_at, grace_days)
    if as_of >= grace_end:
        raise Refused(
            f"instance {instance_id} {refused}: its grace period ended on "
            f"{local_time(grace_end, zone)}, after which an instance can no longer be renewed "
            "or upgraded; it will be released: buy a new instance to host its domains on a "
            "paid edition again"
        )


def renew_first(instance_id: str) -> str:
    """What to do with an instance past its expiry, still inside its grace period."""
    return f"renew it first (`dns-lifecycle renew {instance_id}`)"


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
    zone: str | tzinfo,
    current: tuple[str, int, Decimal],
    target: tuple[str, int, Decimal],
    as_of: datetime,
    grace_days: int,
    anchor_time: time | None = None,
) -> Upgrade:
    """Price an upgrade (edition code, rank, price of one period for the cycle), or refuse.

    The edition changes at ``as_of`` for all the paid time up to the expiry, so the
    difference is charged for all of it: the billing period that contains ``as_of``
    prorated for what is left of it, and each whole prepaid period after it (renewed
    ahead by hand, or early by auto-renewal) in full. The periods are counted back from
    the expiry on the account's calendar. The paid time must not have ended by
    ``as_of``: an instance whose expiry has passed (expired, or not yet marked so by a
    run) is renewed first, while its grace period (``grace_days``) lasts; after it, it
    can no longer be. The upgrade's period runs from the start of the period that
    contains ``as_of`` to the expiry.
    """
    (cur_code, cur_rank, cur_price), (new_code, new_rank, new_price) = current, target
    if state == "released":
        raise Refused(
            f"instance {instance_id} is released: only an active instance can change "
            "edition; buy a new instance instead"
        )
    refuse_past_grace(
        instance_id,
        "cannot change edition",
        expires_at=expires_at,
        as_of=as_of,
        grace_days=grace_days,
        zone=zone,
    )
    if state != "active":
        raise Refused(
            f"instance {instance_id} is {state}: only an active instance can change edition; "
            + renew_first(instance_id)
        )
    if new_code == cur_code:
        raise Refused(f"instance {instance_id} is already on edition {cur_code}: nothing to do")
    if new_rank < cur_rank:
        raise Refused(
            f"instance {instance_id} cannot move from {cur_code} down to {new_code}: only "
            "upgrades to a higher edition are allowed; a downgrade takes effect only as a "
            "new instance"
        )
    if new_price < cur_price:
        # Ranks and prices come from the catalogue; the import refuses a price that falls
        # as rank rises, but a database may hold such editions from before.
        raise Refused(
            f"instance {instance_id} cannot move from {cur_code} to {new_code}: {new_code} "
            f"ranks higher but costs ¥{new_price} a {billing_cycle.removesuffix('ly')} period, "
            f"less than ¥{cur_price} for {cur_code}; an upgrade never pays back: correct the "
            "editions' prices (re-import them rising with rank), then upgrade"
        )
    # An upgrade keeps the expiry: some paid time must be left to charge for.
    require_paid_through(instance_id, expires_at, as_of, zone, renew_first(instance_id))
    start, end, whole_after = period_containing(
        as_of, expires_at, billing_cycle, anchor_day, zone=zone, anchor_time=anchor_time
    )
    amount = upgrade_amount(cur_price, new_price, start, end, as_of, whole_after)
    return Upgrade(amount, Period(start, expires_at))
