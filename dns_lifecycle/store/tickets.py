"""Manual-action tickets: the pending ones to hand to a sink, their outcomes, resolving.

Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from dns_lifecycle.core.errors import NotFound, Refused
from dns_lifecycle.store import table_of
from models import Domain, Instance, Ticket

TICKETS = table_of(Ticket)

# A delivery outcome as the ticket's sink state: a transient failure stays pending.
_SINK_STATE = {"sent": "sent", "permanent": "failed"}


def _locks(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim_pending_tickets(
    session: Session, *, after_id: int, limit: int
) -> list[tuple[Ticket, str, str]]:
    """Up to ``limit`` tickets not yet handed to the sink, with id > ``after_id``, in id
    order, each with its domain name and account id. On PostgreSQL they stay locked
    until the caller's transaction ends, and a concurrent run skips them."""
    stmt = (
        select(Ticket, col(Domain.name), col(Instance.account_id))
        .join(Domain, col(Domain.id) == Ticket.domain_id)
        .join(Instance, col(Instance.id) == Ticket.instance_id)
        .where(col(Ticket.sink_state) == "pending", col(Ticket.id) > after_id)
        .order_by(col(Ticket.id))
        .limit(limit)
    )
    if _locks(session):
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    return [(t, name, account_id) for t, name, account_id in session.execute(stmt).all()]


def record_sink_outcomes(session: Session, outcomes: Iterable[tuple[int, str, str | None]]) -> None:
    """Record what the sink did with each ``(ticket_id, outcome, error)``."""
    for ticket_id, outcome, error in outcomes:
        session.execute(
            update(TICKETS)
            .where(TICKETS.c.id == ticket_id)
            .values(
                sink_state=_SINK_STATE.get(outcome, "pending"),
                sink_attempts=TICKETS.c.sink_attempts + 1,
                sink_error=(error or None) and error[:1000],
            )
        )


def resolve_ticket(session: Session, ticket_id: int, now: datetime) -> Ticket:
    """Close an open ticket (a person did what it asked)."""
    ticket = session.get(Ticket, ticket_id, with_for_update=_locks(session))
    if ticket is None:
        raise NotFound(
            f"ticket {ticket_id} does not exist: `dns-lifecycle tickets list` shows the ids"
        )
    if ticket.state != "open":
        raise Refused(f"ticket {ticket_id} is already {ticket.state}: nothing to do")
    ticket.state, ticket.open_key, ticket.resolved_at = "resolved", None, now
    session.add(ticket)
    session.flush()
    return ticket
