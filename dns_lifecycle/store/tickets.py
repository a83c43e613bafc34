"""Manual-action tickets: the pending ones to hand to a sink, their outcomes, resolving.

Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import and_, or_, select, update
from sqlmodel import Session, col

from dns_lifecycle.core.errors import NotFound, Refused
from dns_lifecycle.lifecycle.expiry import DELEGATION_TICKETS, STOPPING_TICKETS
from dns_lifecycle.lifecycle.notices import TicketResolved
from dns_lifecycle.store import referenced, stored_id, table_of
from dns_lifecycle.store.notifications import insert_notices
from dns_lifecycle.store.release import drain_seen
from dns_lifecycle.store.subscriptions import addressee
from models import Account, Domain, Instance, Ticket

TICKETS = table_of(Ticket)

# A delivery outcome as the ticket's sink state: a transient failure stays pending.
_SINK_STATE = {"sent": "sent", "permanent": "failed"}


def _locks(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def claim_pending_tickets(
    session: Session, *, after_id: int, limit: int, now: datetime, lease_until: datetime
) -> list[tuple[Ticket, str, str]]:
    """Claim up to ``limit`` tickets not yet handed to the sink (nor held by another
    run's unexpired lease), with id > ``after_id``, in id order, each with its domain
    name and account id. The caller commits the claim before calling the sink; on
    PostgreSQL a concurrent run skips the rows while they are being claimed."""
    claimable = and_(
        col(Ticket.sink_state) == "pending",
        or_(col(Ticket.sink_claimed_until).is_(None), col(Ticket.sink_claimed_until) < now),
    )
    stmt = (
        select(Ticket, col(Domain.name), col(Instance.account_id))
        .join(Domain, col(Domain.id) == col(Ticket.domain_id))
        .join(Instance, col(Instance.id) == col(Ticket.instance_id))
        .where(claimable, col(Ticket.id) > after_id)
        .order_by(col(Ticket.id))
        .limit(limit)
    )
    if _locks(session):
        stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
    rows = [(t, name, account_id) for t, name, account_id in session.execute(stmt).all()]
    for ticket, _, _ in rows:
        ticket.sink_claimed_until = lease_until
        session.add(ticket)
    session.flush()
    return rows


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
                sink_claimed_until=None,
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


def retry_ticket(session: Session, ticket_id: int, now: datetime) -> Ticket:
    """Let a resolved ticket that stopped a domain's release open again: the next run
    that stops the domain for the same problem opens a new ticket (``ticket_reopens``)."""
    ticket = session.get(Ticket, ticket_id, with_for_update=_locks(session))
    if ticket is None:
        raise NotFound(
            f"ticket {ticket_id} does not exist: `dns-lifecycle tickets list` shows the ids"
        )
    if ticket.reason not in STOPPING_TICKETS:
        raise Refused(
            f"ticket {ticket_id} is a {ticket.reason} ticket, which does not stop a release: "
            "nothing to retry"
        )
    if ticket.state != "resolved":
        raise Refused(
            f"ticket {ticket_id} is still {ticket.state}: resolve it once its action is done "
            f"(`dns-lifecycle tickets resolve {ticket_id}`); the next run retries"
        )
    ticket.details = {**ticket.details, "retried_at": now.isoformat()}
    session.add(ticket)
    session.flush()
    return ticket


def close_delegation_ticket(
    session: Session,
    ticket_id: int,
    *,
    nameservers: list[str],
    now: datetime,
    drain_hours: float,
) -> bool:
    """DNS shows the ticket's domain delegated to ``nameservers``: close the ticket,
    record the delegation, start the drain of the paid copy and tell the account.
    False when the ticket was closed meanwhile (by hand or by an overlapping run)."""
    try:
        ticket = resolve_ticket(session, ticket_id, now)
    except Refused:
        return False
    domain = referenced(session, Domain, ticket.domain_id)
    instance = referenced(session, Instance, ticket.instance_id)
    account = referenced(session, Account, instance.account_id)
    domain.nameservers = sorted(nameservers)
    session.add(domain)
    drain_seen(session, stored_id(domain), now, drain_hours)
    notice = TicketResolved.to(
        addressee(instance, account),
        ticket_id=ticket.id,
        domain=domain.name,
        nameservers=sorted(nameservers),
    )
    insert_notices(session, notice.rows(now))
    return True


def resolve_ticket_by_hand(session: Session, ticket_id: int, now: datetime) -> Ticket:
    """Close an open ticket whose action a person has done (``tickets resolve``); a
    ticket that asked the account for a change of name servers tells the account."""
    ticket = resolve_ticket(session, ticket_id, now)
    if ticket.reason in DELEGATION_TICKETS:
        domain = referenced(session, Domain, ticket.domain_id)
        instance = referenced(session, Instance, ticket.instance_id)
        account = referenced(session, Account, instance.account_id)
        notice = TicketResolved.to(
            addressee(instance, account),
            ticket_id=ticket.id,
            domain=domain.name,
            nameservers=[],
            by_hand=True,
        )
        insert_notices(session, notice.rows(now))
    return ticket
