"""Top-ups: money added to an account's balance once per request key, in the same
transaction as its record, never past what the balance column holds."""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select

from dns_lifecycle.admin.inventory import export_state
from dns_lifecycle.core.errors import NotFound, Refused
from dns_lifecycle.lifecycle.balance import top_up_balance
from dns_lifecycle.store.top_ups import top_up
from models import Account, TopUp
from models.types import MONEY_MAX
from tests.factories import make_account

NOW = datetime(2026, 12, 3, 8, tzinfo=UTC)


def _account(db, balance: str) -> None:
    with db.session() as s:
        make_account(s, "ny", timezone="America/New_York", balance=Decimal(balance))
        s.commit()


def _top_up(db, amount: str, key: str, account: str = "ny"):
    with db.session() as s:
        outcome = top_up(s, account_id=account, amount=Decimal(amount), request_key=key, now=NOW)
        s.commit()
        return outcome


def _balance(db, account: str = "ny") -> Decimal:
    with db.session() as s:
        return s.get(Account, account).balance


def _top_ups(db) -> int:
    with db.session() as s:
        return s.execute(select(func.count()).select_from(TopUp)).scalar_one()


def test_a_top_up_adds_to_the_balance_and_is_recorded(db):
    """A top-up adds its amount to the balance and records the request, in one step."""
    _account(db, "99990.00")
    outcome = _top_up(db, "10.00", "k-1")
    assert (outcome.balance, outcome.repeated) == (Decimal("100000.00"), False)
    assert _balance(db) == Decimal("100000.00")
    assert (outcome.top_up.account_id, outcome.top_up.amount) == ("ny", Decimal("10.00"))


def test_a_top_up_repeated_with_its_key_adds_nothing(db):
    """The same request again, after a charge, adds nothing and says it was repeated."""
    _account(db, "99990.00")
    first = _top_up(db, "10.00", "k-1")
    with db.session() as s:
        s.get(Account, "ny").balance -= Decimal("10.00")  # a renewal charged it
        s.commit()
    again = _top_up(db, "10.00", "k-1")
    assert again.repeated and again.top_up.id == first.top_up.id
    assert again.balance == _balance(db) == Decimal("99990.00")
    assert _top_ups(db) == 1


@pytest.mark.parametrize(("account", "amount"), [("sh", "10.00"), ("ny", "20.00")])
def test_a_request_key_reused_for_another_top_up_is_refused(db, account, amount):
    """The key of a top-up given with another account or amount is refused, naming the
    earlier top-up; nothing is added."""
    _account(db, "100.00")
    with db.session() as s:
        make_account(s, "sh", balance=Decimal("5.00"))
        s.commit()
    _top_up(db, "10.00", "k-1")
    with pytest.raises(Refused, match=r"request key 'k-1' was already used by top-up \d+"):
        _top_up(db, amount, "k-1", account=account)
    assert (_balance(db, "ny"), _balance(db, "sh")) == (Decimal("110.00"), Decimal("5.00"))


def test_a_top_up_past_the_most_a_balance_holds_is_refused(db):
    """A balance that would pass NUMERIC(14, 2) is refused in words, saying how much
    may still be added; nothing is written (PostgreSQL raised NumericValueOutOfRange)."""
    _account(db, "999999999990.00")
    with pytest.raises(Refused, match=r"the most a balance holds; give at most ¥9\.99$"):
        _top_up(db, "10.00", "k-1")
    assert _balance(db) == Decimal("999999999990.00") and _top_ups(db) == 0


def test_a_top_up_of_an_unknown_account_is_refused(db):
    """An account id that names nothing is refused, saying how to find the ids."""
    with pytest.raises(NotFound, match="account 'nobody' does not exist"):
        _top_up(db, "10.00", "k-1", account="nobody")


@pytest.mark.parametrize(
    ("amount", "words"),
    [("0", "positive"), ("-5.00", "positive"), ("0.001", "whole cents")],
)
def test_a_top_up_is_positive_whole_cents(amount, words):
    """An amount of zero, below zero or with fractions of a cent is refused."""
    with pytest.raises(Refused, match=words):
        top_up_balance("ny", Decimal("10.00"), Decimal(amount))


def test_a_top_up_may_fill_the_balance_to_the_last_cent():
    """The largest balance the column holds can be reached exactly."""
    assert top_up_balance("ny", Decimal("0.01"), MONEY_MAX - Decimal("0.01")) == MONEY_MAX


def test_top_ups_are_exported_as_history(db):
    """The export lists each top-up: account, amount, request key and time."""
    _account(db, "0.00")
    _top_up(db, "50.00", "k-1")
    with db.session() as s:
        state = export_state(s)
    [row] = state["top_ups"]
    assert {k: row[k] for k in ("account", "amount", "request_key")} == {
        "account": "ny",
        "amount": "50.00",
        "request_key": "k-1",
    }
    assert row["created_at"] == NOW.isoformat()


def test_a_balance_past_the_column_is_never_written(db):
    """An amount that does not fit NUMERIC(14, 2) is refused before it reaches the
    database, on SQLite too (which would keep it as text that no export reads back)."""
    _account(db, "0.00")
    with db.session() as s:
        s.get(Account, "ny").balance = MONEY_MAX + Decimal("0.01")
        with pytest.raises(Exception, match="does not fit NUMERIC"):
            s.commit()
    assert _balance(db) == Decimal("0.00")


def test_two_top_ups_with_one_key_at_once_add_the_money_once(db):
    """The same request sent twice at the same moment adds the money once: one of the
    two finds the other's top-up and says it was repeated."""
    _account(db, "100.00")
    start = threading.Barrier(2)
    outcomes: list[object] = []

    def request() -> None:
        start.wait()
        try:
            outcomes.append(_top_up(db, "10.00", "k-1").repeated)
        except Exception as exc:  # reported below, not lost in the thread
            outcomes.append(exc)

    threads = [threading.Thread(target=request) for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(outcomes, key=str) == [False, True]
    assert _balance(db) == Decimal("110.00") and _top_ups(db) == 1


def test_the_top_up_flow_adds_once_per_request_key_and_refuses_in_one_line(db, flow_env):
    """The `top-up-account` deployment's flow: the same request key twice adds once; an
    unknown account ends the run Failed with the reason in one line."""
    from flows.on_demand import top_up_account

    _account(db, "1.00")
    first = top_up_account(account_id="ny", amount="25.50", request_key="pay-1")
    again = top_up_account(account_id="ny", amount="25.50", request_key="pay-1")
    assert first.counts == {"top_ups_added": 1} and again.counts == {"top_ups_repeated": 1}
    assert again.plan[0]["repeated"] is True and _balance(db) == Decimal("26.50")
    state = top_up_account(account_id="nobody", amount="5", return_state=True)
    assert state.is_failed() and "nobody" in state.message and "\n" not in state.message


def test_a_full_balance_is_said_to_be_full():
    """At the most a balance holds, a top-up is refused saying the balance is full, not
    "give at most ¥0.00", which would then be refused as not positive."""
    with pytest.raises(Refused, match="is already the most a balance holds") as refused:
        top_up_balance("ny", MONEY_MAX, Decimal("0.01"))
    assert "at most" not in str(refused.value)


def _race_top_up_and_renewal(db, key: str, top_up_account: str, instance: str) -> list[str]:
    """A top-up and a renewal with one request key, started together; returns what was
    done (the other was refused)."""
    from dns_lifecycle.store.subscriptions import renew

    barrier = threading.Barrier(2)
    done: list[str] = []
    refused: list[str] = []

    def request(name, act):
        try:
            barrier.wait()
            with db.session() as s:
                act(s)
                s.commit()
            done.append(name)
        except Refused:
            refused.append(name)

    def add(s):
        top_up(s, account_id=top_up_account, amount=Decimal("5.00"), request_key=key, now=NOW)

    def extend(s):
        renew(
            s,
            instance_id=instance,
            periods=1,
            request_key=key,
            as_of=NOW,
            now=NOW,
            grace_days=7,
        )

    threads = [
        threading.Thread(target=request, args=("top-up", add)),
        threading.Thread(target=request, args=("renewal", extend)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert len(done) == 1 and len(refused) == 1, (done, refused)
    return done


def test_a_top_up_and_a_renewal_with_one_key_at_once_do_one_of_them(db):
    """A top-up of one account and a renewal of another account's instance, with one
    request key, at once (no lock they share): one is done, the other refused and
    changes nothing."""
    from tests.factories import make_instance

    expiry = datetime(2027, 1, 30, 16, tzinfo=UTC)
    for attempt in range(5):
        a, b = f"a{attempt}", f"b{attempt}"
        with db.session() as s:
            make_account(s, a, balance=Decimal("100.00"))
            make_account(s, b, balance=Decimal("100.00"))
            make_instance(s, f"i{attempt}", account=b, expires_at=expiry)
            s.commit()
        done = _race_top_up_and_renewal(db, f"K{attempt}", a, f"i{attempt}")
        balances = (_balance(db, a), _balance(db, b))
        if done == ["top-up"]:
            assert balances == (Decimal("105.00"), Decimal("100.00"))
        else:
            assert balances == (Decimal("100.00"), Decimal("90.10"))
