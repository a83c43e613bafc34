"""Renewal and upgrade decisions as plain functions (rules 2, 3, 4)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dns_lifecycle.core.errors import Refused
from dns_lifecycle.lifecycle.calendar import add_months, period_start
from dns_lifecycle.lifecycle.notices.keys import auto_renewal_key, renewal_failed_key
from dns_lifecycle.lifecycle.pricing import prorated_upgrade
from dns_lifecycle.lifecycle.renewal import (
    MAX_PERIODS,
    Period,
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


def test_only_an_automatic_payment_says_renew_by_hand():
    """A request the account made (manual renewal, upgrade) is told only to top up; an
    auto-renewal may also be renewed by hand."""
    asked = pay_from_balance(Decimal("5.00"), Decimal("9.90"))
    assert asked.reason == "balance ¥5.00 does not cover ¥9.90: top up at least ¥4.90"
    automatic = pay_from_balance(Decimal("5.00"), Decimal("9.90"), automatic=True)
    assert automatic.reason == asked.reason + " or renew by hand"


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
        grace_days=7,
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


def test_a_higher_edition_with_a_lower_price_is_refused_in_one_line():
    """A higher-ranked edition that costs less (a catalogue from before the import
    checked prices) is a refusal, not a ValueError from the pricing."""
    cheap_top = ("cheap-top", 9, Decimal("1.00"))
    with pytest.raises(Refused, match="ranks higher but costs ¥1.00 a month") as exc:
        _upgrade(STANDARD, cheap_top)
    assert "\n" not in str(exc.value)


def test_same_edition_is_refused():
    """Rule 4: moving to the same edition is refused."""
    with pytest.raises(Refused, match="already on edition personal"):
        _upgrade(PERSONAL, PERSONAL)


def test_upgrade_of_an_expired_instance_says_renew_first():
    """An expired instance must be renewed before it can change edition."""
    with pytest.raises(Refused, match="renew it first"):
        _upgrade(PERSONAL, STANDARD, state="expired")


@pytest.mark.parametrize("state", ["active", "expired"])
@pytest.mark.parametrize("late", [timedelta(days=7), timedelta(days=30)])
def test_upgrade_past_the_grace_period_does_not_say_renew_first(state, late):
    """Past its grace period an instance can no longer be renewed: the upgrade's refusal
    says so, with the end of the grace period, instead of asking for a renewal first."""
    with pytest.raises(Refused) as refused:
        _upgrade(PERSONAL, STANDARD, state=state, as_of=EXPIRY + late)
    message = str(refused.value)
    assert "grace period ended on 2027-02-07T16:00+00:00" in message
    assert "can no longer be renewed or upgraded" in message and "renew it first" not in message


def test_keys_are_per_period_and_per_day():
    """One auto-renewal order per period; one failure notice per order and local day."""
    key = auto_renewal_key("inst-1", EXPIRY)
    assert key == "auto_renewal:inst-1:20270131T160000Z"
    utc = ZoneInfo("UTC")
    day1 = renewal_failed_key(key, datetime(2027, 1, 25, 1, tzinfo=UTC), utc)
    same_day = renewal_failed_key(key, datetime(2027, 1, 25, 23, tzinfo=UTC), utc)
    next_day = renewal_failed_key(key, datetime(2027, 1, 26, 1, tzinfo=UTC), utc)
    assert day1 == same_day != next_day


def test_a_failed_renewal_is_told_once_per_day_of_the_accounts_calendar():
    """Two runs on one Kiritimati day (UTC+14) but two UTC days make one key; two runs
    on one UTC day but two Kiritimati days make two."""
    key = auto_renewal_key("inst-1", EXPIRY)
    kiritimati = ZoneInfo("Pacific/Kiritimati")
    late_20th_utc = datetime(2026, 11, 20, 11, tzinfo=UTC)  # 21 Nov 01:00 there
    early_21st_utc = datetime(2026, 11, 21, 9, tzinfo=UTC)  # 21 Nov 23:00 there
    assert renewal_failed_key(key, late_20th_utc, kiritimati) == renewal_failed_key(
        key, early_21st_utc, kiritimati
    )
    assert renewal_failed_key(key, late_20th_utc, kiritimati).endswith(":20261121")
    assert renewal_failed_key(
        key, datetime(2026, 11, 20, 9, tzinfo=UTC), kiritimati
    ) != renewal_failed_key(key, late_20th_utc, kiritimati)


@pytest.mark.parametrize("late", [timedelta(0), timedelta(days=7) - timedelta(microseconds=1)])
def test_upgrade_after_the_expiry_of_an_active_instance_is_refused(late):
    """An active instance whose expiry has passed (not yet expired by a run) has no
    period left: the upgrade is refused, not priced over a period running backwards."""
    with pytest.raises(
        Refused, match="nothing is charged for a period that has ended; renew it first"
    ):
        _upgrade(PERSONAL, STANDARD, as_of=EXPIRY + late)


# --- an upgrade prices all the paid time up to the expiry ---------------------------------

DIFFERENCE = STANDARD[2] - PERSONAL[2]  # 108.10 a month


def _plan(expires_at, as_of, *, zone="UTC", anchor_day=31, cycle="monthly", prices=None):
    current, target = prices or (PERSONAL, STANDARD)
    return plan_upgrade(
        instance_id="inst-1",
        state="active",
        expires_at=expires_at,
        billing_cycle=cycle,
        anchor_day=anchor_day,
        zone=zone,
        current=current,
        target=target,
        as_of=as_of,
        grace_days=7,
    )


def test_a_prepaid_upgrade_charges_every_whole_period_and_the_prorated_rest():
    """Paid to 31 March, upgraded on 3 December: the three whole months after December
    cost the whole difference each, and December the 28 of its 31 days that are left."""
    expiry = datetime(2027, 3, 31, 16, tzinfo=UTC)
    plan = _plan(expiry, datetime(2026, 12, 3, 16, tzinfo=UTC))
    prorated = (DIFFERENCE * 28 / 31).quantize(Decimal("0.01"))  # 97.64
    assert plan.amount == 3 * DIFFERENCE + prorated == Decimal("421.94")


def test_a_prepaid_upgrade_covers_the_period_that_contains_as_of_to_the_expiry():
    """The upgrade's period runs from the start of the billing period that contains
    as_of (30 November, the anchor 31 in a 30-day month) to the expiry."""
    expiry = datetime(2027, 3, 31, 16, tzinfo=UTC)
    plan = _plan(expiry, datetime(2026, 12, 3, 16, tzinfo=UTC))
    assert plan.period == Period(datetime(2026, 11, 30, 16, tzinfo=UTC), expiry)


def test_an_upgrade_on_a_period_boundary_charges_whole_periods_only():
    """At the very start of a period (28 February, anchor 31) nothing is prorated: the
    period and the three after it cost four whole differences."""
    expiry = datetime(2027, 6, 30, tzinfo=UTC)
    plan = _plan(expiry, datetime(2027, 2, 28, tzinfo=UTC))
    assert plan.amount == 4 * DIFFERENCE
    assert plan.period.start == datetime(2027, 2, 28, tzinfo=UTC)


def test_month_end_anchors_count_back_through_short_months_on_the_local_calendar():
    """Anchored on the 31st in Shanghai, paid to 31 May 00:00 local, upgraded on
    14 February 00:00 local: February (28 days, 14 left) is half, March, April and May
    are whole."""
    local = ZoneInfo("Asia/Shanghai")
    expiry = datetime(2027, 5, 31, tzinfo=local).astimezone(UTC)
    plan = _plan(expiry, datetime(2027, 2, 14, tzinfo=local), zone="Asia/Shanghai")
    assert plan.amount == 3 * DIFFERENCE + (DIFFERENCE / 2).quantize(Decimal("0.01"))
    assert plan.period.start == datetime(2027, 1, 31, tzinfo=local)


def test_a_yearly_prepaid_upgrade_counts_years_back_from_a_29_february_anchor():
    """Yearly, anchored on 29 February, paid to 29 February 2032, upgraded on
    28 August 2029: the period 28 Feb 2029 .. 28 Feb 2030 is half left (182.5 of 365
    days), the two years after it are whole."""
    personal, standard = ("personal", 1, Decimal("99.00")), ("standard", 2, Decimal("1199.00"))
    expiry = datetime(2032, 2, 29, tzinfo=UTC)
    as_of = datetime(2029, 8, 29, 12, tzinfo=UTC)  # 182.5 days before 28 Feb 2030
    plan = _plan(expiry, as_of, anchor_day=29, cycle="yearly", prices=(personal, standard))
    assert plan.amount == 2 * Decimal("1100.00") + Decimal("550.00")
    assert plan.period.start == datetime(2029, 2, 28, tzinfo=UTC)


@pytest.mark.parametrize("days_left", [0.5, 1, 14, 30])
def test_an_upgrade_within_the_last_period_costs_what_one_period_prorated_costs(days_left):
    """With nothing paid ahead, the amount is the single-period proration it always was."""
    as_of = EXPIRY - timedelta(days=days_left)
    start = period_start(EXPIRY, "monthly", 31, zone="UTC")
    plan = _plan(EXPIRY, as_of)
    assert plan.amount == prorated_upgrade(PERSONAL[2], STANDARD[2], start, EXPIRY, as_of)
    assert plan.period == Period(start, EXPIRY)


@settings(deadline=None)
@given(
    ahead=st.integers(min_value=1, max_value=36 * 31 * 24 * 3600),
    zone=st.sampled_from(["UTC", "Asia/Shanghai", "America/New_York", "Australia/Sydney"]),
    cycle=st.sampled_from(["monthly", "yearly"]),
)
def test_the_amount_is_each_period_prorated_on_its_own(ahead, zone, cycle):
    """Whatever is paid ahead, the amount is the sum over every period up to the expiry
    of that period's own proration as of as_of (whole for those not begun), in whole
    cents, never more than one difference per period."""
    expiry = datetime(2030, 1, 31, tzinfo=ZoneInfo(zone)).astimezone(UTC)
    as_of = expiry - timedelta(seconds=ahead)
    plan = _plan(expiry, as_of, zone=zone, cycle=cycle)
    step = 12 if cycle == "yearly" else 1
    bounds = [expiry]
    while bounds[-1] > plan.period.start:
        bounds.append(add_months(expiry, -step * len(bounds), 31, zone))
    assert bounds[-1] == plan.period.start <= as_of
    parts = [
        prorated_upgrade(PERSONAL[2], STANDARD[2], start, end, as_of)
        for start, end in zip(bounds[1:], bounds, strict=False)
    ]
    assert plan.amount == sum(parts)
    assert plan.amount.as_tuple().exponent == -2
    assert plan.amount <= DIFFERENCE * len(parts)
