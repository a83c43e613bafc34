"""Two daily runs for the same ``as_of`` at the same time, on each database backend.

Each run is the daily sequence of plain step functions in a thread of its own, started
together; small batches make their transactions interleave. Whatever the interleaving,
no notice, order, charge, ticket or release happens twice: the ledger, the balances,
the SMTP server's mailbox, the SMS outbox and the ticket webhook each show it once.
"""

from __future__ import annotations

import threading
from collections import Counter
from datetime import timedelta
from decimal import Decimal

from sqlmodel import select

from dns_lifecycle.channels.email.message import message_id_for
from dns_lifecycle.channels.sms import memory as sms_memory
from flows.auto_renew import renew_due
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.expire import expire_due
from flows.release import release_due
from flows.reminders import plan_reminders
from models import Account, Instance, Order, Ticket, ZoneSnapshot
from tests.factories import make_account, make_catalog, make_instance
from tests.http_sink import HttpSink, Reply, SeenRequest
from tests.reliability.conftest import AS_OF, SENDER, ledger, with_settings
from tests.smtp_server import SmtpTestServer

RUNS = 2
START = Decimal("100.00")


def _fleet(db) -> None:
    with db.session() as s:
        make_catalog(s)

        def add(i: str, balance: Decimal = START, **instance) -> None:
            make_account(s, f"acct-{i}", balance=balance)
            make_instance(s, f"inst-{i}", account=f"acct-{i}", **instance)

        for i in range(4):  # auto-renewal due; the last cannot pay
            add(
                f"r{i}",
                START if i < 3 else Decimal("1.00"),
                auto_renew=True,
                expires_at=AS_OF + timedelta(days=3),
            )
        for i in range(4):  # 30-day reminder due
            add(f"m{i}", expires_at=AS_OF + timedelta(days=20))
        for i in range(2):  # past expiry: expire
            add(f"e{i}", expires_at=AS_OF - timedelta(days=1))
        for i in range(3):  # grace over: release, and a ticket for the other registrar
            add(
                f"x{i}",
                expires_at=AS_OF - timedelta(days=8),
                state="expired",
                domains=[
                    {
                        "name": f"x{i}.example.net",
                        "registrar": "other-registrar",
                        "records": [("A", "@", "192.0.2.9", 600)],
                    },
                ],
            )
        s.commit()


def _daily(settings, barrier: threading.Barrier, errors: list[BaseException]) -> None:
    try:
        with open_run(AS_OF, False, 2, settings=settings) as ctx:
            barrier.wait()
            for step in (renew_due, expire_due, plan_reminders, release_due):
                step(ctx)
                deliver_pending(ctx)
    except BaseException as exc:  # reported by the test thread
        errors.append(exc)


def test_two_daily_runs_at_once_do_everything_exactly_once(settings, db):
    """Two concurrent runs: one order and one charge per instance, one of each notice
    on the wire, one release, zone copy and ticket per domain, one webhook post each."""
    _fleet(db)

    def webhook(request: SeenRequest) -> Reply:
        return Reply(201, {"id": request.headers["idempotency-key"]})

    with SmtpTestServer() as smtp, HttpSink(webhook) as hooks:
        real = with_settings(
            settings,
            email_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=smtp.port,
            smtp_connections=2,
            email_from=SENDER,
            sms_backend="memory",
            ticket_sink="webhook",
            ticket_webhook_url=f"{hooks.url}/tickets",
        )
        barrier = threading.Barrier(RUNS)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=_daily, args=(real, barrier, errors)) for _ in range(RUNS)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(timeout=120)
        assert not errors, errors

        with db.session() as s:
            orders = s.exec(select(Order)).all()
            balances = {a.id: a.balance for a in s.exec(select(Account))}
            states = {i.id: i.state for i in s.exec(select(Instance))}
            snapshots = s.exec(select(ZoneSnapshot)).all()
            tickets = s.exec(select(Ticket)).all()
        assert Counter(o.instance_id for o in orders) == {f"inst-r{i}": 1 for i in range(4)}
        price = Decimal("9.90")  # personal, monthly
        for i in range(3):
            assert balances[f"acct-r{i}"] == START - price
        assert balances["acct-r3"] == Decimal("1.00")
        assert all(b == START for a, b in balances.items() if not a.startswith("acct-r"))
        assert [states[f"inst-e{i}"] for i in range(2)] == ["expired"] * 2
        assert [states[f"inst-x{i}"] for i in range(3)] == ["released"] * 3
        assert Counter(z.domain_name for z in snapshots) == {
            f"x{i}.example.net": 1 for i in range(3)
        }
        assert len(tickets) == 3 and all(t.sink_state == "sent" for t in tickets)

        rows = ledger(db)
        kinds = Counter(r.kind for r in rows.values())
        # Per instance, per channel: 3 paid (created + renewed), 1 failed (created +
        # failed), 5 reminders, 2 expired, 3 released.
        assert kinds == {
            "order_created": 8,
            "renewed": 6,
            "renewal_failed": 2,
            "reminder": 10,  # r3, unpaid, is also 3 days from expiry
            "expired": 4,
            "released": 6,
        }
        assert all(r.state == "sent" for r in rows.values())

        sent_ids = Counter(m.parsed()["Message-ID"] for m in smtp.received)
        email_keys = [k for k in rows if k.endswith(":email")]
        assert sent_ids == Counter(message_id_for(k, SENDER) for k in email_keys)
        sms_keys = Counter(m.key for m in sms_memory.outbox)
        assert sms_keys == Counter(k for k in rows if k.endswith(":sms"))
        posts = Counter(r.headers["idempotency-key"] for r in hooks.requests)
        assert len(posts) == 3 and set(posts.values()) == {1}
