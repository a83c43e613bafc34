"""Money added to an account's prepaid balance: how much a top-up may be.

Paying from the balance is ``renewal.pay_from_balance``.
"""

from __future__ import annotations

from decimal import Decimal

from dns_lifecycle.core.errors import Refused
from models.types import MONEY_MAX

CENT = Decimal("0.01")


def top_up_balance(account_id: str, balance: Decimal, amount: Decimal) -> Decimal:
    """The balance after adding ``amount`` to ``balance``, or Refused: an amount must be
    positive, in whole cents, and leave a balance the column can hold (``MONEY_MAX``)."""
    if not amount.is_finite() or amount <= 0:
        raise Refused(
            f"cannot top up account {account_id} by ¥{amount}: give a positive amount, e.g. 50.00"
        )
    room = max(MONEY_MAX - balance, Decimal(0))
    if room < CENT:
        raise Refused(
            f"cannot top up account {account_id}: its balance ¥{balance:,} is already the "
            f"most a balance holds (¥{MONEY_MAX:,}); nothing more can be added"
        )
    if amount > room:
        raise Refused(
            f"cannot top up account {account_id} by ¥{amount:,}: its balance ¥{balance:,} "
            f"would pass ¥{MONEY_MAX:,}, the most a balance holds; give at most ¥{room:,}"
        )
    if amount % CENT:
        raise Refused(
            f"cannot top up account {account_id} by ¥{amount}: give whole cents, at most "
            "2 decimal places"
        )
    return (balance + amount).quantize(CENT)
