"""Deliver manual-action tickets to the configured sink, and resolve them.

Tickets live in the database (the `database` sink is the row itself). The `webhook`
sink also POSTs each ticket once, with a dedupe key that stays the same across
retries; a ticket whose POST failed transiently stays pending for the next run.
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlmodel import Session, col

from dns_lifecycle.channels.tickets import TicketPayload, ticket_sink_for
from dns_lifecycle.core.errors import NotFound, Refused
from flows.common import RunContext, Tally
from models import Domain, Instance, Ticket

TICKETS = Ticket.__table__  # type: ignore[attr-defined]


def dedupe_key(ticket: Ticket, domain_name: str) -> str:
    return f"ticket:{ticket.id}:{domain_name}:{ticket.reason}"


def deliver_tickets(ctx: RunContext) -> Tally:
    tally = Tally()
    sink = ticket_sink_for(ctx.settings, dry_run=ctx.dry_run)
    after_id = 0
    while True:
        with ctx.db.session() as session:
            stmt = (
                select(Ticket, col(Domain.name), col(Instance.account_id))
                .join(Domain, col(Domain.id) == Ticket.domain_id)
                .join(Instance, col(Instance.id) == Ticket.instance_id)
                .where(col(Ticket.sink_state) == "pending", col(Ticket.id) > after_id)
                .order_by(col(Ticket.id))
                .limit(ctx.batch_size)
            )
            if ctx.db.dialect == "postgresql":
                # A concurrent run skips the tickets this one is sending.
                stmt = stmt.with_for_update(skip_locked=True, of=Ticket)
            rows = session.execute(stmt).all()
            if not rows:
                return tally
            after_id = rows[-1][0].id
            payloads = [
                TicketPayload(
                    dedupe_key=dedupe_key(t, name),
                    ticket_id=t.id,
                    domain=name,
                    instance_id=t.instance_id,
                    account_id=account_id,
                    reason=t.reason,
                    nameservers=list(t.details.get("set_nameservers", [])),
                    details=t.details,
                )
                for t, name, account_id in rows
            ]
            results = {r.key: r for r in sink.send(payloads)}
            for (ticket, name, _), payload in zip(rows, payloads, strict=True):
                result = results[payload.dedupe_key]
                state = {"sent": "sent", "permanent": "failed"}.get(result.outcome, "pending")
                session.execute(
                    update(TICKETS)
                    .where(TICKETS.c.id == ticket.id)
                    .values(
                        sink_state=state,
                        sink_attempts=TICKETS.c.sink_attempts + 1,
                        sink_error=(result.error or None) and result.error[:1000],
                    )
                )
                tally.add(f"tickets_{result.outcome}")
                if result.outcome != "sent":
                    tally.fail(f"ticket {ticket.id} ({name}): {result.outcome}: {result.error}")
            session.commit()


def _locks(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


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
