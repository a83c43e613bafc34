"""Handing tickets to the webhook: the call is made outside any database transaction,
under a lease that keeps concurrent runs off the same tickets."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import create_engine, text
from sqlmodel import select

from flows.common import open_run
from flows.tickets import deliver_tickets
from models import Domain, Ticket
from tests.factories import make_instance
from tests.http_sink import HttpSink, Reply

AS_OF = datetime(2026, 11, 20, 2, 0, tzinfo=UTC)


def _ticketed(db, n: int = 1) -> list[int]:
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=AS_OF - timedelta(days=8), state="released")
        domain = s.execute(select(Domain)).scalars().first()
        tickets = [
            Ticket(
                domain_id=domain.id,
                instance_id="inst-1",
                reason="external_registrar",
                open_key=f"{domain.name}:external_registrar:{i}",
                details={"set_nameservers": ["ns1.free.example"]},
                created_at=AS_OF,
            )
            for i in range(n)
        ]
        s.add_all(tickets)
        s.commit()
        return [t.id for t in tickets]


def _run(settings, url: str):
    real = settings.model_copy(
        update={
            "ticket_sink": "webhook",
            "ticket_webhook_url": f"{url}/tickets",
            "ticket_webhook_attempts": 1,
        }
    )
    with open_run(AS_OF, False, None, settings=real) as ctx:
        return deliver_tickets(ctx)


def test_the_webhook_is_called_while_no_transaction_holds_the_database(db, settings):
    """While the help desk answers, another writer can write at once (on SQLite a held
    transaction would keep it waiting): the call is outside any transaction."""
    if not settings.database_url.startswith("sqlite"):
        pytest.skip("SQLite's single writer is what shows a transaction held open")
    _ticketed(db)
    writes: list[str] = []

    def help_desk(_request):
        engine = create_engine(settings.database_url, connect_args={"timeout": 0.5})
        try:
            with engine.begin() as conn:
                conn.execute(text("UPDATE ticket SET sink_error = 'written meanwhile'"))
            writes.append("ok")
        except Exception as exc:  # the write lock was held
            writes.append(type(exc).__name__)
        finally:
            engine.dispose()
        return Reply(201, {"id": "T-1"})

    with HttpSink(help_desk) as server:
        tally = _run(settings, server.url)
    assert writes == ["ok"]
    assert tally.counts == {"tickets_sent": 1}


def test_tickets_under_another_runs_lease_wait_for_it_to_end(db, settings):
    """A ticket another run is handing over (unexpired lease) is left to it; once the
    lease is over (that run crashed), the next run sends it."""
    [ticket_id] = _ticketed(db)
    with db.session() as s:
        ticket = s.get(Ticket, ticket_id)
        ticket.sink_claimed_until = datetime.now(UTC) + timedelta(minutes=5)
        s.add(ticket)
        s.commit()
    with HttpSink(lambda _r: Reply(201)) as server:
        assert _run(settings, server.url).counts == {}
        assert server.requests == []
        with db.session() as s:
            ticket = s.get(Ticket, ticket_id)
            ticket.sink_claimed_until = datetime.now(UTC) - timedelta(seconds=1)
            s.add(ticket)
            s.commit()
        assert _run(settings, server.url).counts == {"tickets_sent": 1}
    with db.session() as s:
        ticket = s.get(Ticket, ticket_id)
        assert (ticket.sink_state, ticket.sink_claimed_until) == ("sent", None)
