"""The typed helpers every store module shares: table_of, referenced, stored_id."""

from __future__ import annotations

import pytest

from dns_lifecycle.core.errors import LifecycleError
from dns_lifecycle.store import referenced, stored_id, table_of
from models import Account, Order, Ticket
from tests.factories import make_account


def test_table_of_is_the_models_core_table():
    """table_of gives the Core table the model maps, with its columns."""
    table = table_of(Order)
    assert table is Order.metadata.tables[table.name]
    assert {"id", "key", "instance_id"} <= set(table.c.keys())


def test_referenced_returns_the_row(db):
    """referenced returns the row a key names when it exists."""
    with db.session() as s:
        make_account(s, "acct-1")
        s.commit()
        assert referenced(s, Account, "acct-1").id == "acct-1"


def test_referenced_missing_row_names_table_and_key(db):
    """A missing referenced row fails with a message naming its table and key."""
    with db.session() as s, pytest.raises(LifecycleError) as caught:
        referenced(s, Account, "acct-gone")
    assert f"{table_of(Account).name} row 'acct-gone' is missing" in str(caught.value)


def test_stored_id_of_a_row_without_id_fails():
    """stored_id returns a row's id, and refuses a row not yet flushed, naming its kind."""
    assert stored_id(Ticket(id=7)) == 7
    with pytest.raises(LifecycleError, match="Ticket row has no id yet"):
        stored_id(Ticket())
