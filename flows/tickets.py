"""Deliver manual-action tickets to the configured sink.

Tickets live in the database (the `database` sink is the row itself). The `webhook`
sink also POSTs each ticket once, with a dedupe key that stays the same across
retries; a ticket whose POST failed transiently stays pending for the next run.
"""

from __future__ import annotations

from datetime import timedelta

from dns_lifecycle.channels.tickets import TicketPayload, ticket_sink_for
from dns_lifecycle.lifecycle.notices.keys import ticket_dedupe_key
from dns_lifecycle.store import stored_id
from dns_lifecycle.store.tickets import claim_pending_tickets, record_sink_outcomes
from flows.common import RunContext, Tally, planned_word


# How long a run holds the tickets it is handing to the sink: longer than every
# attempt of the webhook at its timeout. A crashed run's tickets wait this long.
def _lease(ctx: RunContext) -> timedelta:
    s = ctx.settings
    return timedelta(seconds=s.ticket_webhook_attempts * (s.ticket_webhook_timeout_seconds + 5))


def deliver_tickets(ctx: RunContext) -> Tally:
    """Hand every pending ticket to the configured sink: claim a batch (committed),
    call the sink outside any transaction, then record each outcome. The sink is
    idempotent (a stable dedupe key), so a run killed between the call and the record
    only makes the next run send the same ticket again."""
    tally = Tally()
    sink = ticket_sink_for(ctx.settings, dry_run=ctx.dry_run)
    after_id = 0
    while True:
        now = ctx.clock()
        with ctx.db.session() as session:
            rows = claim_pending_tickets(
                session,
                after_id=after_id,
                limit=ctx.batch_size,
                now=now,
                lease_until=now + _lease(ctx),
            )
            session.commit()
        if not rows:
            return tally
        after_id = stored_id(rows[-1][0])
        payloads = [
            TicketPayload(
                dedupe_key=ticket_dedupe_key(stored_id(t), name, t.reason),
                ticket_id=stored_id(t),
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
        outcomes = []
        for (ticket, name, _), payload in zip(rows, payloads, strict=True):
            result = results[payload.dedupe_key]
            outcomes.append((stored_id(ticket), result.outcome, result.error))
            tally.add(f"tickets_{planned_word(result.outcome, ctx.dry_run)}")
            if result.outcome != "sent":
                tally.fail(f"ticket {ticket.id} ({name}) ({result.outcome}): {result.error}")
        with ctx.db.session() as session:
            record_sink_outcomes(session, outcomes)
            session.commit()
