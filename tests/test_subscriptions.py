"""Auto-renewal, manual renewal, upgrade and the auto-renew switch on a real database
(rules 2, 3, 4 and 8), on SQLite and PostgreSQL."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import func, select

from dns_lifecycle.core.errors import NotFound, Refused
from dns_lifecycle.store.subscriptions import auto_renew_batch, renew, set_auto_renew, upgrade
from flows.auto_renew import renew_due
from flows.common import open_run
from models import Account, Instance, Notification, Order
from tests.factories import make_account, make_instance

AS_OF = datetime(2027, 1, 26, 2, 0, tzinfo=UTC)
EXPIRY = datetime(2027, 1, 30, 16, 0, tzinfo=UTC)  # 31 Jan 00:00 in Shanghai; auto-renewal due


def _setup(db, *, balance=Decimal("100.00"), auto_renew=True, state="active", expires_at=EXPIRY):
    with db.session() as s:
        make_account(s, "acct-1", balance=balance)
        make_instance(
            s, "inst-1", expires_at=expires_at, auto_renew=auto_renew, state=state, anchor_day=31
        )
        s.commit()


def _manual(instance_id, periods, request_key, as_of=AS_OF):
    """The arguments of a manual renewal request made at ``as_of``."""
    return dict(
        instance_id=instance_id,
        periods=periods,
        request_key=request_key,
        as_of=as_of,
        now=as_of,
        grace_days=7,
    )


def _state(db):
    """Everything a refusal must leave untouched."""
    with db.session() as s:
        inst = s.get(Instance, "inst-1")
        return (
            inst.expires_at,
            inst.state,
            inst.edition_code,
            inst.auto_renew,
            s.get(Account, "acct-1").balance,
            s.execute(select(func.count()).select_from(Order)).scalar_one(),
            s.execute(select(func.count()).select_from(Notification)).scalar_one(),
        )


def _auto(db, as_of=AS_OF):
    with db.session() as s:
        out = auto_renew_batch(s, ["inst-1"], as_of=as_of, now=as_of, lead_days=7)
        s.commit()
    return out


def test_auto_renewal_pays_extends_and_tells(db):
    """A covered auto-renewal: one paid order, expiry +1 month on the anchor, balance debited,
    and order-created and renewed notices by email and SMS."""
    _setup(db)
    _auto(db)
    with db.session() as s:
        order = s.execute(select(Order)).scalar_one()
        assert (order.kind, order.state, order.amount) == ("auto_renewal", "paid", Decimal("9.90"))
        assert s.get(Instance, "inst-1").expires_at == datetime(
            2027, 2, 27, 16, tzinfo=UTC
        )  # 28 Feb 00:00 local
        assert s.get(Account, "acct-1").balance == Decimal("90.10")
        kinds = sorted((n.kind, n.channel) for n in s.execute(select(Notification)).scalars())
    assert kinds == [
        ("order_created", "email"),
        ("order_created", "sms"),
        ("renewed", "email"),
        ("renewed", "sms"),
    ]


def test_rerun_for_the_same_as_of_creates_no_second_order_or_charge(db):
    """Running auto-renewal twice for the same moment changes nothing the second time."""
    _setup(db)
    _auto(db)
    before = _state(db)
    _auto(db)
    assert _state(db) == before


def test_failed_payment_is_retried_next_day_and_succeeds_after_top_up(db):
    """A short balance fails the order and tells the account once a day; after a top-up
    the next run pays the same order."""
    _setup(db, balance=Decimal("5.00"))
    _auto(db)
    _auto(db, AS_OF + timedelta(hours=3))  # same day: no second failure notice
    with db.session() as s:
        order = s.execute(select(Order)).scalar_one()
        assert order.state == "failed" and "top up" in order.reason
        failures = s.execute(
            select(func.count()).where(Notification.kind == "renewal_failed")
        ).scalar_one()
        assert failures == 2  # one email + one SMS
        s.get(Account, "acct-1").balance = Decimal("50.00")
        s.commit()
    _auto(db, AS_OF + timedelta(days=1))
    with db.session() as s:
        orders = s.execute(select(Order)).scalars().all()
        assert [(o.state, o.amount) for o in orders] == [("paid", Decimal("9.90"))]
        assert s.get(Account, "acct-1").balance == Decimal("40.10")
        assert s.get(Instance, "inst-1").expires_at == datetime(
            2027, 2, 27, 16, tzinfo=UTC
        )  # 28 Feb 00:00 local


def test_a_run_ahead_of_the_clock_charges_no_auto_renewal_not_yet_due(db, settings):
    """A real run 280 s ahead of the clock, 100 s before the auto-renewal's lead time
    begins by the clock: no order, no charge, no notice."""
    _setup(db)
    before = _state(db)
    now = EXPIRY - timedelta(days=7, seconds=100)
    with open_run(None, False, None, settings=settings) as ctx:
        ctx.as_of, ctx.clock = now + timedelta(seconds=280), lambda: now
        renew_due(ctx)
    assert _state(db) == before


def test_a_failed_auto_renewal_retried_and_failing_again_is_counted_as_standing(db):
    """The run that fails an order counts it orders_failed; a later run whose retry fails
    again counts it orders_still_failed, not as a new failure."""
    _setup(db, balance=Decimal("5.00"))
    assert _auto(db).counts == {"orders_failed": 1, "orders_created": 1, "notices_queued": 4}
    again = _auto(db, AS_OF + timedelta(days=1))
    assert again.counts["orders_still_failed"] == 1 and "orders_failed" not in again.counts


def test_dry_run_auto_renewal_changes_nothing(db, settings):
    """A dry run plans the order and writes nothing."""
    _setup(db)
    before = _state(db)
    with open_run(AS_OF, True, None, settings=settings) as ctx:
        report = renew_due(ctx)
    assert report.plan[0]["result"] == "paid" and report.counts["orders_created"] == 1
    assert _state(db) == before


def test_manual_renewal_of_an_expired_instance_extends_from_the_old_expiry(db):
    """Inside the grace period, renewal counts from the old expiry and reactivates."""
    _setup(db, state="expired", auto_renew=False, expires_at=AS_OF - timedelta(days=3))
    with db.session() as s:
        order = renew(s, **_manual("inst-1", 2, "r1"))
        s.commit()
    with db.session() as s:
        inst = s.get(Instance, "inst-1")
        assert inst.state == "active"
        assert inst.expires_at == datetime(2027, 3, 31, 2, tzinfo=UTC)  # anchor 31 kept
        assert order.amount == Decimal("19.80")
        assert s.get(Account, "acct-1").balance == Decimal("80.20")


def test_the_same_manual_request_twice_renews_once(db):
    """A retried request (same request key) is a no-op."""
    _setup(db, auto_renew=False)
    for _ in range(2):
        with db.session() as s:
            renew(s, **_manual("inst-1", 1, "same"))
            s.commit()
    with db.session() as s:
        assert s.execute(select(func.count()).select_from(Order)).scalar_one() == 1


@pytest.mark.parametrize(
    ("change", "error", "message"),
    [
        (
            lambda s: renew(s, **_manual("nope", 1, "k")),
            NotFound,
            "instance 'nope' does not exist",
        ),
        (
            lambda s: renew(s, **_manual("inst-1", 0, "k")),
            Refused,
            "renews by 1 to 36 months",
        ),
        (
            lambda s: renew(s, **_manual("inst-1", 37, "k")),
            Refused,
            "renews by 1 to 36 months",
        ),
        (
            lambda s: upgrade(
                s,
                instance_id="inst-1",
                edition_code="personal",
                request_key="k",
                as_of=AS_OF,
                now=AS_OF,
                grace_days=7,
            ),
            Refused,
            "already on edition personal",
        ),
        (
            lambda s: upgrade(
                s,
                instance_id="inst-1",
                edition_code="platinum",
                request_key="k",
                as_of=AS_OF,
                now=AS_OF,
                grace_days=7,
            ),
            NotFound,
            "edition 'platinum' does not exist",
        ),
        (
            lambda s: renew(s, **_manual("inst-1", 36, "k")),
            Refused,
            "does not cover",
        ),
    ],
    ids=[
        "unknown-instance",
        "zero-periods",
        "too-many-periods",
        "same-edition",
        "unknown-edition",
        "balance-short",
    ],
)
def test_refusals_say_why_and_change_nothing(db, change, error, message):
    """Each refusal names the object and the fix, and leaves every row as it was."""
    _setup(db, balance=Decimal("50.00"))
    before = _state(db)
    with pytest.raises(error, match=message), db.session() as s:
        change(s)
        s.commit()
    assert _state(db) == before


def test_released_instance_renewal_is_refused_and_nothing_changes(db):
    """Rule 3: released instances cannot be renewed back."""
    _setup(db, state="released", auto_renew=False)
    before = _state(db)
    with pytest.raises(Refused, match="released"), db.session() as s:
        renew(s, **_manual("inst-1", 1, "k"))
    assert _state(db) == before


def test_downgrade_is_refused_and_nothing_changes(db):
    """Rule 4: enterprise-standard -> personal is refused."""
    with db.session() as s:
        make_account(s, "acct-1", balance=Decimal("500.00"))
        make_instance(s, "inst-1", edition="enterprise-standard", expires_at=EXPIRY)
        s.commit()
    before = _state(db)
    with pytest.raises(Refused, match="down to personal"), db.session() as s:
        upgrade(
            s,
            instance_id="inst-1",
            edition_code="personal",
            request_key="k",
            as_of=AS_OF,
            now=AS_OF,
            grace_days=7,
        )
    assert _state(db) == before


def test_upgrade_moves_edition_and_charges_prorated(db):
    """An upgrade changes the edition, keeps the expiry and debits the prorated difference."""
    _setup(db, balance=Decimal("500.00"))
    with db.session() as s:
        order = upgrade(
            s,
            instance_id="inst-1",
            edition_code="enterprise-standard",
            request_key="k",
            as_of=AS_OF,
            now=AS_OF,
            grace_days=7,
        )
        s.commit()
    with db.session() as s:
        inst = s.get(Instance, "inst-1")
        assert (inst.edition_code, inst.expires_at) == ("enterprise-standard", EXPIRY)
        assert Decimal("0") < order.amount < Decimal("108.10")
        assert s.get(Account, "acct-1").balance == Decimal("500.00") - order.amount


def test_auto_renew_switch_tells_once(db):
    """Switching off tells the account; switching off again changes nothing."""
    _setup(db)
    with db.session() as s:
        assert set_auto_renew(
            s, instance_id="inst-1", on=False, request_key="a", as_of=AS_OF, now=AS_OF, grace_days=7
        )
        s.commit()
    with db.session() as s:
        assert not set_auto_renew(
            s, instance_id="inst-1", on=False, request_key="b", as_of=AS_OF, now=AS_OF, grace_days=7
        )
        s.commit()
        assert not s.get(Instance, "inst-1").auto_renew
        assert s.execute(select(func.count()).select_from(Notification)).scalar_one() == 2


def test_manual_renewal_racing_auto_renewal_extends_once_per_order(db):
    """Concurrent sessions: each paid order extends the expiry exactly once, and the
    balance is debited exactly by the paid orders."""
    for attempt in range(5):
        inst, acct = f"inst-r{attempt}", f"acct-r{attempt}"
        with db.session() as s:
            make_account(s, acct, balance=Decimal("1000.00"))
            make_instance(s, inst, account=acct, expires_at=EXPIRY, auto_renew=True, anchor_day=31)
            s.commit()
        barrier = threading.Barrier(2)
        errors: list[BaseException] = []

        def manual(inst=inst, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                with db.session() as s:
                    renew(s, **_manual(inst, 1, f"m-{inst}"))
                    s.commit()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        def automatic(inst=inst, barrier=barrier, errors=errors):
            try:
                barrier.wait()
                with db.session() as s:
                    auto_renew_batch(s, [inst], as_of=AS_OF, now=AS_OF, lead_days=7)
                    s.commit()
            except BaseException as exc:  # pragma: no cover - reported below
                errors.append(exc)

        threads = [threading.Thread(target=manual), threading.Thread(target=automatic)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(60)
        assert not errors, errors
        with db.session() as s:
            paid = (
                s.execute(select(Order).where(Order.state == "paid", Order.instance_id == inst))
                .scalars()
                .all()
            )
            expires_at = s.get(Instance, inst).expires_at
            balance = s.get(Account, acct).balance
        # Orders chain: each starts where the previous one ended, and the expiry is the
        # end of the last: no payment extended twice, no extension went unpaid.
        chain = sorted(paid, key=lambda o: o.period_start)
        assert chain and chain[0].period_start == EXPIRY
        for before, after in zip(chain, chain[1:], strict=False):
            assert after.period_start == before.period_end
        assert expires_at == chain[-1].period_end
        assert balance == Decimal("1000.00") - sum(o.amount for o in paid)


def test_a_failed_auto_renewal_says_why_in_the_actions_table(db):
    """The actions row of an auto-renewal the balance cannot cover gives the reason."""
    _setup(db, balance=Decimal("1.00"))
    row = _auto(db).plan[0]
    assert row["result"] == "failed"
    assert "does not cover" in row["reason"] and "top up" in row["reason"]


def _upgrade(s, edition="enterprise-standard", request_key="k", as_of=AS_OF):
    return upgrade(
        s,
        instance_id="inst-1",
        edition_code=edition,
        request_key=request_key,
        as_of=as_of,
        now=as_of,
        grace_days=7,
    )


@pytest.mark.parametrize("state", ["active", "expired"])
def test_renewal_past_the_grace_period_is_refused_and_charges_nothing(db, state):
    """An instance past its grace period that no run has released yet cannot be renewed:
    refused with the local end of the grace period, balance and expiry untouched."""
    _setup(db, state=state, auto_renew=False, expires_at=AS_OF - timedelta(days=8))
    before = _state(db)
    with (
        pytest.raises(Refused, match="grace period ended on 2027-01-25T10:00\\+08:00"),
        db.session() as s,
    ):
        renew(s, **_manual("inst-1", 1, "late"))
    assert _state(db) == before


def test_renewal_that_would_end_before_as_of_is_refused(db):
    """With a grace period longer than a month, a one-month renewal that would still end
    before as_of is refused: nothing is paid for time already over."""
    with db.session() as s:
        make_account(s, "acct-1", balance=Decimal("100.00"))
        make_instance(s, "inst-1", expires_at=AS_OF - timedelta(days=35), state="expired")
        s.commit()
    before = _state(db)
    with (
        pytest.raises(Refused, match="nothing is charged for a period that has ended"),
        db.session() as s,
    ):
        renew(s, **{**_manual("inst-1", 1, "k"), "grace_days": 60})
    assert _state(db) == before
    with db.session() as s:
        order = renew(s, **{**_manual("inst-1", 2, "k2"), "grace_days": 60})
        s.commit()
    assert order.period_end > AS_OF


def test_upgrade_of_an_active_instance_after_its_expiry_is_refused(db):
    """upgrade --as-of after the expiry of a still-active instance: refused, no order."""
    _setup(db, balance=Decimal("500.00"), auto_renew=False)
    before = _state(db)
    with (
        pytest.raises(
            Refused, match="nothing is charged for a period that has ended; renew it first"
        ),
        db.session() as s,
    ):
        _upgrade(s, as_of=EXPIRY + timedelta(days=3))
    assert _state(db) == before


@pytest.mark.parametrize("state", ["active", "expired"])
def test_upgrade_past_the_grace_period_says_it_can_no_longer_be_renewed(db, state):
    """An upgrade of an instance past its grace period is refused without asking to
    renew it first (that renewal would be refused too), and changes nothing."""
    _setup(db, state=state, balance=Decimal("500.00"), auto_renew=False)
    before = _state(db)
    with pytest.raises(Refused) as refused, db.session() as s:
        _upgrade(s, as_of=EXPIRY + timedelta(days=30))
    message = str(refused.value)
    assert "cannot change edition: its grace period ended on" in message
    assert "can no longer be renewed or upgraded" in message and "renew it first" not in message
    assert _state(db) == before


def test_a_request_key_reused_for_other_periods_is_refused(db):
    """renew --request-key K1 --periods 1, then --periods 3: the second is refused, naming
    the first order; the same request again still returns that order."""
    _setup(db, auto_renew=False)
    with db.session() as s:
        first = renew(s, **_manual("inst-1", 1, "K1"))
        s.commit()
    before = _state(db)
    with (
        pytest.raises(Refused, match=f"request key 'K1' was already used by order {first.id}"),
        db.session() as s,
    ):
        renew(s, **_manual("inst-1", 3, "K1"))
    assert _state(db) == before
    with db.session() as s:
        assert renew(s, **_manual("inst-1", 1, "K1")).id == first.id


def test_a_request_key_reused_for_another_edition_is_refused(db):
    """An upgrade key reused with another target edition is refused."""
    _setup(db, balance=Decimal("5000.00"), auto_renew=False)
    with db.session() as s:
        first = _upgrade(s, "enterprise-standard", "U1")
        s.commit()
    with (
        pytest.raises(
            Refused,
            match=r"already used by order \d+ \(an upgrade of instance inst-1 to enterprise-st",
        ),
        db.session() as s,
    ):
        _upgrade(s, "enterprise-ultimate", "U1")
    with db.session() as s:
        assert _upgrade(s, "enterprise-standard", "U1").id == first.id


@pytest.mark.parametrize(
    ("state", "expires_at"),
    [("expired", AS_OF - timedelta(days=2)), ("active", AS_OF - timedelta(hours=1))],
)
def test_auto_renew_on_after_expiry_is_refused_saying_renew_by_hand(db, state, expires_at):
    """Switching auto-renewal on for an instance past its expiry is refused, pointing to a
    manual renewal; nothing is changed and nobody is told."""
    _setup(db, state=state, auto_renew=False, expires_at=expires_at)
    before = _state(db)
    with pytest.raises(Refused, match="renew it by hand"), db.session() as s:
        set_auto_renew(
            s, instance_id="inst-1", on=True, request_key="a", as_of=AS_OF, now=AS_OF, grace_days=7
        )
    assert _state(db) == before


def test_auto_renewal_counts_months_on_the_accounts_calendar(db):
    """A New York account expiring 31 Jan 23:59 local renews to 28 Feb 23:59 local."""
    ny = datetime(2027, 2, 1, 4, 59, tzinfo=UTC)  # 31 Jan 23:59 EST
    with db.session() as s:
        make_account(s, "acct-1", timezone="America/New_York")
        make_instance(s, "inst-1", expires_at=ny, auto_renew=True)
        s.commit()
    _auto(db, ny - timedelta(days=3))
    with db.session() as s:
        assert s.get(Instance, "inst-1").anchor_day == 31
        assert s.get(Instance, "inst-1").expires_at == datetime(2027, 3, 1, 4, 59, tzinfo=UTC)


# The month that contains AS_OF (26 Jan 10:00 in Shanghai) runs from 31 Dec 00:00 local;
# 4 days 14 hours of its 31 days are left: 108.10 x 110 / 744 = 15.98 of it is charged.
THIS_MONTH = datetime(2026, 12, 30, 16, tzinfo=UTC)
REST_OF_THIS_MONTH = Decimal("15.98")


def test_an_upgrade_after_renewing_ahead_charges_every_month_paid_for(db):
    """Renewed by hand three months ahead (to 30 April), then upgraded: the three whole
    months cost the whole difference each, the current one its rest; the order covers
    the current month to the expiry, which does not move."""
    _setup(db, balance=Decimal("1000.00"), auto_renew=False)
    with db.session() as s:
        renew(s, **_manual("inst-1", 3, "ahead"))
        s.commit()
    with db.session() as s:
        order = _upgrade(s)
        s.commit()
    expiry = datetime(2027, 4, 29, 16, tzinfo=UTC)  # 30 April 00:00 in Shanghai
    assert order.amount == 3 * Decimal("108.10") + REST_OF_THIS_MONTH == Decimal("340.28")
    assert (order.period_start, order.period_end) == (THIS_MONTH, expiry)
    with db.session() as s:
        assert s.get(Instance, "inst-1").expires_at == expiry
        assert s.get(Account, "acct-1").balance == Decimal("1000.00") - Decimal("29.70") - (
            order.amount
        )


def test_an_upgrade_after_an_early_auto_renewal_charges_the_month_it_bought(db):
    """Auto-renewed 7 days early (to 28 February), then upgraded: the renewed month costs
    the whole difference, the current one its rest."""
    _setup(db, balance=Decimal("1000.00"))
    _auto(db)
    with db.session() as s:
        order = _upgrade(s)
        s.commit()
    assert order.amount == Decimal("108.10") + REST_OF_THIS_MONTH
    assert (order.period_start, order.period_end) == (
        THIS_MONTH,
        datetime(2027, 2, 27, 16, tzinfo=UTC),
    )


def test_an_upgrade_in_the_last_paid_month_charges_its_rest_only(db):
    """Nothing paid ahead: the rest of the current month, as before."""
    _setup(db, balance=Decimal("1000.00"), auto_renew=False)
    with db.session() as s:
        order = _upgrade(s)
        s.commit()
    assert order.amount == REST_OF_THIS_MONTH
    assert (order.period_start, order.period_end) == (THIS_MONTH, EXPIRY)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        (
            lambda s: renew(s, **_manual("inst-1", 1, "k")),
            "cannot renew instance inst-1: balance ¥1.00 does not cover ¥9.90: top up at "
            "least ¥8.90",
        ),
        (
            lambda s: _upgrade(s),
            "cannot upgrade instance inst-1 to enterprise-standard: balance ¥1.00 does not "
            "cover ¥15.98: top up at least ¥14.98",
        ),
    ],
    ids=["manual-renewal", "upgrade"],
)
def test_a_short_balance_on_demand_says_only_to_top_up(db, change, reason):
    """A manual renewal or an upgrade the balance cannot cover says to top up at least
    the shortfall, not to renew by hand; nothing changes."""
    _setup(db, balance=Decimal("1.00"), auto_renew=False)
    before = _state(db)
    with pytest.raises(Refused) as refused, db.session() as s:
        change(s)
    assert str(refused.value) == reason
    assert _state(db) == before


def test_a_short_balance_for_an_auto_renewal_also_says_renew_by_hand(db):
    """The failed auto-renewal order keeps both ways out: top up, or renew by hand."""
    _setup(db, balance=Decimal("1.00"))
    _auto(db)
    with db.session() as s:
        order = s.execute(select(Order)).scalar_one()
    assert (
        order.reason == "balance ¥1.00 does not cover ¥9.90: top up at least ¥8.90 or renew by hand"
    )


@pytest.mark.parametrize("state", ["active", "expired"])
def test_auto_renew_on_past_the_grace_period_says_it_can_no_longer_be_renewed(db, state):
    """Switching auto-renewal on for an instance past its grace period is refused without
    pointing to a manual renewal that would be refused too; nothing changes."""
    _setup(db, state=state, auto_renew=False, expires_at=AS_OF - timedelta(days=8))
    before = _state(db)
    with pytest.raises(Refused) as refused, db.session() as s:
        set_auto_renew(
            s, instance_id="inst-1", on=True, request_key="a", as_of=AS_OF, now=AS_OF, grace_days=7
        )
    message = str(refused.value)
    assert "cannot have auto-renewal switched on: its grace period ended on" in message
    assert "can no longer be renewed" in message and "renew it by hand" not in message
    assert _state(db) == before


@pytest.mark.parametrize("on", [True, False])
def test_auto_renew_switch_on_a_released_instance_says_to_buy_a_new_one(db, on):
    """Refused, saying it can no longer be renewed and a new instance hosts its domains
    on a paid edition again; nothing changes."""
    _setup(db, state="released", auto_renew=not on)
    before = _state(db)
    with pytest.raises(Refused) as refused, db.session() as s:
        set_auto_renew(
            s, instance_id="inst-1", on=on, request_key="a", as_of=AS_OF, now=AS_OF, grace_days=7
        )
    message = str(refused.value)
    assert "can no longer be renewed" in message and "free cluster" in message
    assert message.endswith("buy a new instance to host its domains on a paid edition again")
    assert _state(db) == before


def test_a_retried_auto_renewal_records_what_it_charges_after_an_upgrade(db):
    """An order failed for a short balance, then the instance upgraded and the balance
    topped up: the retry charges the new edition's price, and the order says so."""
    _setup(db, balance=Decimal("1.00"))
    _auto(db)  # fails: ¥9.90 for personal
    with db.session() as s:
        s.get(Instance, "inst-1").edition_code = "enterprise-standard"
        s.get(Account, "acct-1").balance = Decimal("500.00")
        s.commit()
    _auto(db, as_of=AS_OF + timedelta(days=1))
    with db.session() as s:
        order = s.execute(select(Order)).scalar_one()
        balance = s.get(Account, "acct-1").balance
    assert (order.state, order.edition_code) == ("paid", "enterprise-standard")
    assert balance == Decimal("500.00") - order.amount and order.amount != Decimal("9.90")


def test_a_backfill_does_not_tell_a_failure_the_account_was_told_on_a_later_day(db):
    """A failed auto-renewal told on 27 Jan; a backfill for 26 Jan fails the order again
    but queues no notice as of the 26th, which would say a time left no longer true.
    The next day is told as usual."""
    _setup(db, balance=Decimal("1.00"))
    _auto(db, as_of=AS_OF + timedelta(days=1))
    _auto(db, as_of=AS_OF)  # the backfill
    _auto(db, as_of=AS_OF + timedelta(days=2))
    with db.session() as s:
        days = sorted(
            n.key.rsplit(":", 2)[1]
            for n in s.execute(select(Notification)).scalars()
            if n.kind == "renewal_failed" and n.channel == "email"
        )
        order = s.execute(select(Order)).scalar_one()
    assert days == ["20270127", "20270128"] and order.state == "failed"


def test_an_upgrade_to_a_higher_but_cheaper_stored_edition_is_refused(db):
    """A database holding a higher-ranked edition that costs less (stored before the
    import checked prices): the upgrade is refused in one line, nothing charged."""
    from models import Edition

    _setup(db, balance=Decimal("500.00"), auto_renew=False)
    with db.session() as s:
        s.add(
            Edition(
                code="cheap-top",
                rank=99,
                monthly_price=Decimal("1.00"),
                yearly_price=Decimal("10.00"),
            )
        )
        s.commit()
    before = _state(db)
    with pytest.raises(Refused, match="ranks higher but costs ¥1.00") as exc, db.session() as s:
        _upgrade(s, "cheap-top")
    assert "\n" not in str(exc.value)
    assert _state(db) == before


def _two_instances(db):
    with db.session() as s:
        make_account(s, "acct-1", balance=Decimal("500.00"))
        for inst in ("ka", "kb"):
            make_instance(s, inst, expires_at=EXPIRY, anchor_day=31)
        s.commit()


def _orders(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(Order)).scalar_one()


def test_a_request_key_reused_for_another_instance_is_refused(db):
    """`renew ka` then `renew kb` with one request key: the second is refused, naming
    the order of ka; one order, one charge."""
    _two_instances(db)
    with db.session() as s:
        first = renew(s, **_manual("ka", 1, "K"))
        s.commit()
    with (
        pytest.raises(
            Refused,
            match=rf"'K' was already used by order {first.id} \(a renewal of instance ka by 1 "
            r"period\(s\)\); this request asks for a renewal of instance kb",
        ),
        db.session() as s,
    ):
        renew(s, **_manual("kb", 1, "K"))
    assert _orders(db) == 1
    with db.session() as s:
        assert s.get(Account, "acct-1").balance == Decimal("490.10")


def test_a_renewal_key_reused_for_an_upgrade_is_refused(db):
    """`renew ka` then `upgrade ka` with one request key: the upgrade is refused, the
    edition unchanged."""
    _two_instances(db)
    with db.session() as s:
        renew(s, **_manual("ka", 1, "K"))
        s.commit()
    with pytest.raises(Refused, match="a renewal of instance ka by 1"), db.session() as s:
        upgrade(
            s,
            instance_id="ka",
            edition_code="enterprise-standard",
            request_key="K",
            as_of=AS_OF,
            now=AS_OF,
            grace_days=7,
        )
    assert _orders(db) == 1
    with db.session() as s:
        assert s.get(Instance, "ka").edition_code == "personal"


def test_a_top_up_key_reused_for_a_renewal_is_refused(db):
    """A key that a top-up used names that top-up: a renewal with it is refused."""
    from dns_lifecycle.store.top_ups import top_up

    _two_instances(db)
    with db.session() as s:
        made = top_up(s, account_id="acct-1", amount=Decimal("5.00"), request_key="K", now=AS_OF)
        s.commit()
    with (
        pytest.raises(Refused, match=rf"already used by top-up {made.top_up.id} \(a top-up"),
        db.session() as s,
    ):
        renew(s, **_manual("ka", 1, "K"))
    assert _orders(db) == 0


def test_a_renewal_key_reused_for_a_top_up_is_refused(db):
    """A key that a renewal used names its order: a top-up with it adds nothing."""
    from dns_lifecycle.store.top_ups import top_up

    _two_instances(db)
    with db.session() as s:
        order = renew(s, **_manual("ka", 1, "K"))
        s.commit()
    with pytest.raises(Refused, match=rf"already used by order {order.id}"), db.session() as s:
        top_up(s, account_id="acct-1", amount=Decimal("5.00"), request_key="K", now=AS_OF)
    with db.session() as s:
        assert s.get(Account, "acct-1").balance == Decimal("490.10")


def test_an_auto_renew_switch_key_reused_the_other_way_is_refused(db):
    """Switching off, then on with the same key: the second is another request, refused
    rather than done without its notice."""
    _two_instances(db)
    args = dict(instance_id="ka", request_key="S", as_of=AS_OF, now=AS_OF, grace_days=7)
    with db.session() as s:
        assert set_auto_renew(s, on=True, **args)
        s.commit()
    with (
        pytest.raises(Refused, match="switching auto-renewal on for instance ka"),
        db.session() as s,
    ):
        set_auto_renew(s, on=False, **args)
    with db.session() as s:
        assert s.get(Instance, "ka").auto_renew


def test_one_key_for_two_instances_at_once_makes_one_order(db):
    """`renew ka` and `renew kb` with one key, concurrently: one is paid, the other is
    refused, and the balance is charged once."""
    _two_instances(db)
    barrier = threading.Barrier(2)
    outcomes: list[object] = []

    def request(inst):
        try:
            barrier.wait()
            with db.session() as s:
                renew(s, **_manual(inst, 1, "K"))
                s.commit()
            outcomes.append("paid")
        except Refused as exc:
            outcomes.append(exc)

    threads = [threading.Thread(target=request, args=(i,)) for i in ("ka", "kb")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert sorted(map(type, outcomes), key=str) == sorted([str, Refused], key=str)
    assert _orders(db) == 1
    with db.session() as s:
        assert s.get(Account, "acct-1").balance == Decimal("490.10")


NY = ZoneInfo("America/New_York")
# 14 Feb 2027 02:30 EST; 02:30 on 14 March is skipped (02:00 -> 03:00).
NY_EXPIRY = datetime(2027, 2, 14, 2, 30, tzinfo=NY).astimezone(UTC)
NY_APRIL = datetime(2027, 4, 14, 2, 30, tzinfo=NY).astimezone(UTC)


def _new_york(db):
    with db.session() as s:
        make_account(s, "acct-ny", timezone="America/New_York")
        for inst in ("ny-1", "ny-2"):
            make_instance(s, inst, account="acct-ny", expires_at=NY_EXPIRY, auto_renew=True)
        s.commit()


def test_renewing_through_a_dst_gap_one_month_twice_equals_two_months(db):
    """New York, 02:30 EST: renewing by one month twice (through the skipped 02:30 of 14
    March) ends on 14 April 02:30 EDT, as renewing by two months does."""
    _new_york(db)
    as_of = NY_EXPIRY - timedelta(days=1)
    with db.session() as s:
        renew(s, **_manual("ny-1", 1, "a", as_of))
        s.commit()
    with db.session() as s:
        march = s.get(Instance, "ny-1").expires_at
        renew(s, **_manual("ny-1", 1, "b", as_of))
        renew(s, **_manual("ny-2", 2, "c", as_of))
        s.commit()
    with db.session() as s:
        ends = {i: s.get(Instance, i).expires_at for i in ("ny-1", "ny-2")}
    assert march.astimezone(NY).strftime("%H:%M %Z") == "03:30 EDT"
    assert ends == {"ny-1": NY_APRIL, "ny-2": NY_APRIL}


def test_auto_renewal_through_a_dst_gap_returns_to_the_anchor_time(db):
    """Auto-renewed through the skipped 02:30 of 14 March, the next auto-renewal ends on
    14 April 02:30 EDT, not 03:30."""
    _new_york(db)
    for _ in range(2):
        with db.session() as s:
            expiry = s.get(Instance, "ny-1").expires_at
            auto_renew_batch(s, ["ny-1"], as_of=expiry - timedelta(days=1), now=AS_OF, lead_days=7)
            s.commit()
    with db.session() as s:
        assert s.get(Instance, "ny-1").expires_at == NY_APRIL
