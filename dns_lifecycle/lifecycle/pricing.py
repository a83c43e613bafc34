"""What renewals and upgrades cost (rules 2, 3 and 4 of lifecycle.md).

All money is ``Decimal``; a float is refused rather than converted, because a float
price has already lost its cents. Amounts are rounded to cents, half up.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, Inexact, localcontext
from typing import Protocol

from dns_lifecycle.lifecycle.calendar import period_months

CENT = Decimal("0.01")

_MICROSECOND = timedelta(microseconds=1)


def period_price(monthly_price: Decimal, yearly_price: Decimal, billing_cycle: str) -> Decimal:
    """The price of one billing period: the monthly price for "monthly", else yearly."""
    _require_price(monthly_price, "monthly_price")
    _require_price(yearly_price, "yearly_price")
    price = monthly_price if period_months(billing_cycle) == 1 else yearly_price
    return price.quantize(CENT, rounding=ROUND_HALF_UP)


class PricedEdition(Protocol):
    monthly_price: Decimal
    yearly_price: Decimal


def edition_price(edition: PricedEdition, billing_cycle: str) -> Decimal:
    """The price of one billing period of ``edition`` (anything with the two prices)."""
    return period_price(edition.monthly_price, edition.yearly_price, billing_cycle)


def renewal_amount(
    monthly_price: Decimal, yearly_price: Decimal, billing_cycle: str, periods: int
) -> Decimal:
    """The amount of a renewal order buying ``periods`` billing periods."""
    if isinstance(periods, bool) or not isinstance(periods, int):
        raise TypeError(f"periods must be an int, not {type(periods).__name__}")
    if periods < 1:
        raise ValueError(f"periods {periods!r} must be at least 1: a renewal buys whole periods")
    # Each period costs the (rounded) period price, so n periods cost exactly n times it.
    return period_price(monthly_price, yearly_price, billing_cycle) * periods


def prorated_upgrade(
    old_price: Decimal,
    new_price: Decimal,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
) -> Decimal:
    """The price difference for what is left of the current period, as of ``as_of``.

    ``(new - old) x remaining / total``, where ``total`` is the length of the period and
    ``remaining`` is the time from ``as_of`` (or from the period start, if earlier) to
    the period end, never below zero. Times are counted exactly, to the microsecond, and
    the result is rounded half up to cents: at the start of the period the upgrade costs
    the whole difference, at (or after) its end nothing.

    ``old_price`` and ``new_price`` are prices of the same billing period (see
    :func:`period_price`). An upgrade never costs less, so ``new < old`` is refused.
    """
    _require_price(old_price, "old_price")
    _require_price(new_price, "new_price")
    for name, moment in (
        ("period_start", period_start),
        ("period_end", period_end),
        ("as_of", as_of),
    ):
        if not isinstance(moment, datetime):
            raise TypeError(f"{name} must be a datetime, not {type(moment).__name__}")
        if moment.tzinfo is None or moment.utcoffset() is None:
            raise ValueError(f"{name} {moment.isoformat()} is naive: give it a time zone")
    if new_price < old_price:
        raise ValueError(
            f"new price {new_price} is below the old price {old_price}: an upgrade never "
            "costs less; a move to a cheaper edition is a downgrade, which is not allowed"
        )
    if period_end <= period_start:
        raise ValueError(
            f"period {period_start.isoformat()} .. {period_end.isoformat()} is empty or "
            "reversed: the period must end after it starts"
        )

    total = (period_end - period_start) // _MICROSECOND
    remaining = max((period_end - max(as_of, period_start)) // _MICROSECOND, 0)
    difference = new_price - old_price

    # In cents: difference x 100 x remaining / total, rounded half up. The product is
    # made exact by giving the context enough digits (Inexact is trapped to prove it);
    # the division is an exact divmod, so the only rounding is the final half-up one.
    with localcontext() as ctx:
        ctx.prec = len(difference.as_tuple().digits) + len(str(remaining)) + len(str(total)) + 8
        ctx.traps[Inexact] = True
        scaled = difference * 100 * remaining
        cents, rest = divmod(scaled, total)
        if rest * 2 >= total:
            cents += 1
    return (cents * CENT).quantize(CENT)


def upgrade_amount(
    old_price: Decimal,
    new_price: Decimal,
    period_start: datetime,
    period_end: datetime,
    as_of: datetime,
    whole_periods_after: int,
) -> Decimal:
    """The price difference for all the paid time from ``as_of`` to the expiry.

    The period that contains ``as_of`` (``period_start`` .. ``period_end``) costs its
    prorated difference (:func:`prorated_upgrade`); each of the ``whole_periods_after``
    prepaid periods after it, up to the expiry, costs the whole difference. Prices are
    of one billing period, as for :func:`prorated_upgrade`.
    """
    if isinstance(whole_periods_after, bool) or not isinstance(whole_periods_after, int):
        raise TypeError(
            f"whole_periods_after must be an int, not {type(whole_periods_after).__name__}"
        )
    if whole_periods_after < 0:
        raise ValueError(f"whole_periods_after {whole_periods_after!r} must be 0 or more")
    prorated = prorated_upgrade(old_price, new_price, period_start, period_end, as_of)
    # Period prices are whole cents (see period_price), so the whole periods add exact
    # cents and the only rounding is the prorated part's, half up as everywhere.
    whole = (new_price - old_price) * whole_periods_after
    return (prorated + whole).quantize(CENT, rounding=ROUND_HALF_UP)


def _require_price(price: Decimal, name: str) -> None:
    if not isinstance(price, Decimal):
        raise TypeError(
            f"{name} must be a Decimal, not {type(price).__name__}: money is never a float"
        )
    if not price.is_finite() or price < 0:
        raise ValueError(f"{name} {price} is not a price: give a finite amount of zero or more")
