"""Renewal and upgrade decisions as plain functions (rules 2, 3, 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from dns_lifecycle.core.errors import Refused
from dns_lifecycle.lifecycle.notices.keys import auto_renewal_key, renewal_failed_key
from dns_lifecycle.lifecycle.renewal import (
    MAX_PERIODS,
    check_periods,
    check_renewable,
    is_auto_renewal_due,
    pay_from_balance,
    plan_upgrade,
    renewal_period,
    require_paid_through,
)

EXPIRY = datetime(2027, 1, 31, 16, 0, tzinfo=UTC)
PERSONAL = ("personal", 1, Decimal("9.90"))
STANDARD = ("enterprise-standard", 2, Decimal("118.00"))


def test_auto_renewal_due_from_lead_time_until_expiry():
    """Due from expiry - 7 x 24 h (inclusive) to the expiry instant (exclusive)."""
    assert not is_auto_renewal_due(EXPIRY, EXPIRY - timedelta(days=7, seconds=1), 7)
    assert is_auto_renewal_due(EXPIRY, EXPIRY - timedelta(days=7), 7)
    assert is_auto_renewal_due(EXPIRY, EXPIRY - timedelta(seconds=1), 7)
    assert not is_auto_renewal_due(EXPIRY, EXPIRY, 7)


def test_renewal_period_keeps_the_anchor():
    """A monthly subscription anchored on the 31st renews to the end of February."""
    period = renewal_period(EXPIRY, "monthly", 31, zone="UTC", instance_id="inst-1")
    assert period.start == EXPIRY
    assert period.end == datetime(2027, 2, 28, 16, 0, tzinfo=UTC)
    assert renewal_period(period.end, "monthly", 31, zone="UTC", instance_id="inst-1").end == (
        datetime(2027, 3, 31, 16, tzinfo=UTC)
    )


def test_a_renewal_past_the_last_year_an_expiry_can_reach_is_refused():
    """Renewing an expiry in 9998 by two years is a refusal naming the instance, not a
    ValueError."""
    with pytest.raises(Refused, match=r"cannot renew instance inst-far by 2 years: .*9998"):
        renewal_period(
            datetime(9998, 6, 1, tzinfo=UTC), "yearly", 1, 2, zone="UTC", instance_id="inst-far"
        )


def test_payment_covers_or_fails_without_going_negative():
    """A short balance fails with a reason naming the shortfall and stays untouched."""
    assert pay_from_balance(Decimal("10.00"), Decimal("9.90")).balance_after == Decimal("0.10")
    short = pay_from_balance(Decimal("5.00"), Decimal("9.90"))
    assert not short.paid and short.balance_after == Decimal("5.00")
    assert "top up at least ¥4.90" in short.reason


def _renewable(state, as_of=EXPIRY - timedelta(days=1), grace_days=7):
    check_renewable(
        "inst-1",
        state,
        1,
        "monthly",
        expires_at=EXPIRY,
        as_of=as_of,
        grace_days=grace_days,
        zone="Asia/Shanghai",
    )


def test_renewal_is_allowed_until_the_grace_period_ends():
    """Rule 3: an instance can be renewed up to the last instant of its grace period."""
    _renewable("expired", as_of=EXPIRY + timedelta(hours=168) - timedelta(microseconds=1))


@pytest.mark.parametrize("state", ["active", "expired"])
def test_renewal_past_the_grace_period_is_refused_with_its_end(state):
    """Past the grace period (released or not yet), renewal is refused, naming the local
    date and time the grace period ended."""
    with pytest.raises(Refused, match=r"grace period ended on 2027-02-08T00:00\+08:00"):
        _renewable(state, as_of=EXPIRY + timedelta(hours=168))


def test_renewal_that_leaves_the_instance_expired_is_refused():
    """Nothing is charged for a renewal whose new expiry is not after as_of."""
    require_paid_through("inst-1", EXPIRY + timedelta(seconds=1), EXPIRY, "UTC")
    with pytest.raises(Refused, match="nothing is charged for a period that has ended"):
        require_paid_through("inst-1", EXPIRY, EXPIRY, "UTC")


def test_released_instance_cannot_be_renewed():
    """Rule 3: a released instance is refused with the reason."""
    with pytest.raises(Refused, match="released and cannot be renewed"):
        _renewable("released")


@pytest.mark.parametrize("cycle", ["monthly", "yearly"])
@pytest.mark.parametrize("bad", [0, -1, "bad"])
def test_period_count_out_of_bounds_is_refused(cycle, bad):
    """Periods outside 1..max are refused, naming the allowed range."""
    with pytest.raises(Refused, match=f"1 to {MAX_PERIODS[cycle]}"):
        check_periods("inst-1", bad, cycle)


def test_period_count_upper_bound_depends_on_the_cycle():
    """36 months is fine, 11 years is not."""
    check_periods("inst-1", 36, "monthly")
    check_periods("inst-1", 10, "yearly")
    with pytest.raises(Refused):
        check_periods("inst-1", 11, "yearly")


def _upgrade(current, target, state="active", as_of=EXPIRY - timedelta(days=14)):
    return plan_upgrade(
        instance_id="inst-1",
        state=state,
        expires_at=EXPIRY,
        billing_cycle="monthly",
        anchor_day=31,
        zone="UTC",
        current=current,
        target=target,
        as_of=as_of,
    )


def test_upgrade_charges_the_prorated_difference():
    """Halfway through a 31-day period... here 14 of 31 days are left."""
    plan = _upgrade(PERSONAL, STANDARD)
    expected = (Decimal("108.10") * 14 / 31).quantize(Decimal("0.01"))
    assert plan.amount == expected
    assert plan.period.start == datetime(2026, 12, 31, 16, 0, tzinfo=UTC)


def test_downgrade_is_refused():
    """Rule 4: a lower edition is refused with the reason."""
    with pytest.raises(Refused, match="only upgrades"):
        _upgrade(STANDARD, PERSONAL)


def test_same_edition_is_refused():
    """Rule 4: moving to the same edition is refused."""
    with pytest.raises(Refused, match="already on edition personal"):
        _upgrade(PERSONAL, PERSONAL)


def test_upgrade_of_an_expired_instance_says_renew_first():
    """An expired instance must be renewed before it can change edition."""
    with pytest.raises(Refused, match="renew it first"):
        _upgrade(PERSONAL, STANDARD, state="expired")


def test_keys_are_per_period_and_per_day():
    """One auto-renewal order per period; one failure notice per order and UTC day."""
    key = auto_renewal_key("inst-1", EXPIRY)
    assert key == "auto_renewal:inst-1:20270131T160000Z"
    day1 = renewal_failed_key(key, datetime(2027, 1, 25, 1, tzinfo=UTC))
    same_day = renewal_failed_key(key, datetime(2027, 1, 25, 23, tzinfo=UTC))
    next_day = renewal_failed_key(key, datetime(2027, 1, 26, 1, tzinfo=UTC))
    assert day1 == same_day != next_day


@pytest.mark.parametrize("late", [timedelta(0), timedelta(days=30)])
def test_upgrade_after_the_expiry_of_an_active_instance_is_refused(late):
    """An active instance whose expiry has passed (not yet expired by a run) has no
    period left: the upgrade is refused, not priced over a period running backwards."""
    with pytest.raises(
        Refused, match="nothing is charged for a period that has ended; renew it first"
    ):
        _upgrade(PERSONAL, STANDARD, as_of=EXPIRY + late)
