"""All SQL of the project; this module holds the typed helpers its modules share."""

from __future__ import annotations

from typing import Any, Protocol, TypeVar, cast

from sqlalchemy import CursorResult, Result, Table
from sqlmodel import Session, SQLModel

from dns_lifecycle.core.errors import LifecycleError

M = TypeVar("M", bound=SQLModel)


def rows_changed(result: Result[Any]) -> int:
    """How many rows an UPDATE or DELETE changed (``Session.execute`` is typed as
    returning a plain Result, which has no row count)."""
    return cast(CursorResult[Any], result).rowcount


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a SQLModel table class, for set-based statements."""
    # SQLModel sets __table__ on every table class without declaring it to type checkers.
    return model.__table__  # type: ignore[attr-defined]


def referenced(session: Session, model: type[M], key: Any) -> M:
    """The row of ``model`` with primary key ``key``, which a foreign key of a row
    already read guarantees; its absence means the database was changed behind the
    schema's back."""
    row = session.get(model, key)
    if row is None:
        name = table_of(model).name
        raise LifecycleError(
            f"{name} row {key!r} is missing although another row refers to it: the "
            "database is inconsistent; restore it from a backup or re-import the inventory"
        )
    return row


class _Stored(Protocol):
    id: int | None


def stored_id(row: _Stored) -> int:
    """The id of a row read from the database (only a row not yet flushed has none)."""
    if row.id is None:
        raise LifecycleError(
            f"a {type(row).__name__} row has no id yet: flush the session before using it"
        )
    return row.id
