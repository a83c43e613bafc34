"""Top-ups: money added to an account's balance, once per request key.

A top-up is one unit of work inside the caller's transaction: the account is locked,
the request key looked up, and the row and the new balance written together. The key
is unique among all requests (``store.requests``), whatever the account or action: a
repeated request finds its top-up and adds nothing; the same key with another account
or amount, or one a renewal or an upgrade used, is refused. Nothing here commits.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal

from sqlalchemy import select
from sqlmodel import Session, col

from dns_lifecycle.core.errors import LifecycleError, NotFound, Refused
from dns_lifecycle.lifecycle.balance import top_up_balance
from dns_lifecycle.store import table_of
from dns_lifecycle.store.notifications import insert_ignoring_duplicates
from dns_lifecycle.store.requests import earlier_request, hold_request
from dns_lifecycle.store.subscriptions import lock_accounts
from models import TopUp

TOP_UPS = table_of(TopUp)


@dataclass(frozen=True)
class TopUpOutcome:
    """The top-up of a request, the account's balance now, and whether an earlier
    request with the same key had made it (nothing was added now)."""

    top_up: TopUp
    balance: Decimal
    repeated: bool


def _by_key(session: Session, key: str) -> TopUp | None:
    return session.execute(select(TopUp).where(col(TopUp.key) == key)).scalar_one_or_none()


def _earlier(request_key: str, earlier: TopUp, account_id: str, amount: Decimal) -> None:
    """Refuses a request key that an earlier top-up of another account or amount used."""
    if earlier.account_id == account_id and earlier.amount == amount:
        return
    raise Refused(
        f"request key {request_key!r} was already used by top-up {earlier.id} (¥{earlier.amount} "
        f"to account {earlier.account_id}); this request asks for ¥{amount} to account "
        f"{account_id}: give a new request key for a new top-up, or the same account and "
        "amount to repeat that one"
    )


def top_up(
    session: Session, *, account_id: str, amount: Decimal, request_key: str, now: datetime
) -> TopUpOutcome:
    """Add ``amount`` to the balance of ``account_id`` once for ``request_key``.

    A repeated request returns the earlier top-up with ``repeated`` set and adds
    nothing. Refused: an unknown account, the key used for another account or amount,
    an amount that is not positive whole cents, or a balance that would not fit.
    """
    account = lock_accounts(session, [account_id]).get(account_id)
    if account is None:
        raise NotFound(
            f"account {account_id!r} does not exist: check the id "
            "(`dns-lifecycle export` lists every account)"
        )
    asked = _params(amount)
    held = earlier_request(session, request_key, "top_up", account.id, asked)
    if held is not None:
        assert held.top_up_id is not None  # a top-up holds its row
        earlier = session.get(TopUp, held.top_up_id)
        assert earlier is not None
        return TopUpOutcome(earlier, account.balance, repeated=True)
    after = top_up_balance(account.id, account.balance, amount)
    row = {"key": request_key, "account_id": account.id, "amount": amount, "created_at": now}
    # Only the database can tell two concurrent requests with one key apart: the one
    # that loses finds the other's top-up.
    if not insert_ignoring_duplicates(session, TOP_UPS, [row], "key"):
        earlier = _by_key(session, request_key)
        if earlier is None:
            raise LifecycleError(f"top-up {request_key!r} vanished while being added")
        _earlier(request_key, earlier, account_id, amount)
        return TopUpOutcome(earlier, account.balance, repeated=True)
    made = _by_key(session, request_key)
    assert made is not None  # inserted above, in this transaction
    hold_request(
        session,
        key=request_key,
        action="top_up",
        subject=account.id,
        params=asked,
        now=now,
        top_up_id=made.id,
    )
    account.balance = after
    session.add(account)
    session.flush()
    return TopUpOutcome(made, after, repeated=False)


def _params(amount: Decimal) -> str:
    """The amount as a request's parameter: whole cents as ``5.00``, so that 5 and 5.00
    are one request; anything finer as given (it is refused anyway)."""
    cents = amount.quantize(Decimal("0.01"))
    return f"amount={cents if cents == amount else amount}"
