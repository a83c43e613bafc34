"""Splitting the daily run into shards: every due action happens exactly once, even
when shards run at the same time and one of them runs twice."""

from __future__ import annotations

import threading
from collections import Counter
from datetime import UTC, datetime
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import func, select

from dns_lifecycle.admin.seed import seed_fleet
from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.sms import memory as sms_memory
from dns_lifecycle.lifecycle.sharding import Shard
from flows.auto_renew import renew_due
from flows.common import open_run, sharded
from flows.delivery import deliver_pending
from flows.expire import expire_due
from flows.release import release_due
from flows.reminders import plan_reminders
from models import Account, Instance, Notification, Order, Ticket

AS_OF = datetime(2026, 12, 1, 18, 0, tzinfo=UTC)
STEPS = (renew_due, expire_due, plan_reminders, release_due)


@given(ids=st.lists(st.text(min_size=1, max_size=20), max_size=50), count=st.integers(1, 16))
def test_every_instance_belongs_to_exactly_one_shard(ids, count):
    """Shards partition the fleet, the same way in every process."""
    for instance_id in ids:
        owners = [k for k in range(count) if Shard(k, count).owns(instance_id)]
        assert len(owners) == 1


def _run(settings, shard, as_of=AS_OF):
    with sharded(shard), open_run(as_of, False, None, settings=settings) as ctx:
        for step in STEPS:
            step(ctx)
        deliver_pending(ctx)


def _snapshot(db):
    with db.session() as s:
        return {
            "notices": dict(
                s.execute(select(Notification.kind, func.count()).group_by(Notification.kind)).all()
            ),
            "orders": s.execute(select(func.count()).select_from(Order)).scalar_one(),
            "paid": s.execute(
                select(func.coalesce(func.sum(Order.amount), 0)).where(Order.state == "paid")
            ).scalar_one(),
            "balance": sum(s.execute(select(Account.balance)).scalars(), Decimal("0")),
            "released": s.execute(
                select(func.count()).where(Instance.state == "released")
            ).scalar_one(),
            "tickets": s.execute(select(func.count()).select_from(Ticket)).scalar_one(),
        }


def test_concurrent_and_repeated_shards_do_each_action_exactly_once(db, settings):
    """Shards 1/2 and 2/2 at once, plus shard 1/2 again, end where one unsharded run
    would: same notices, orders, charges, releases and tickets, each message sent once."""
    seed_fleet(db, 400, seed=21, as_of=AS_OF)
    with db.session() as s:
        balance_before = sum(s.execute(select(Account.balance)).scalars(), Decimal("0"))
    # What one unsharded run would do: its dry run, looked at before the rollback.
    with open_run(AS_OF, True, None, settings=settings) as ctx:
        for step in STEPS:
            step(ctx)
        would_send = sum(deliver_pending(ctx).counts.values())
        expected = _snapshot(ctx.db)

    errors: list[BaseException] = []

    def worker(shard):
        try:
            _run(settings, shard)
        except BaseException as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [
        threading.Thread(target=worker, args=(Shard(0, 2),)),
        threading.Thread(target=worker, args=(Shard(1, 2),)),
        threading.Thread(target=worker, args=(Shard(0, 2),)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors, errors

    after = _snapshot(db)
    assert after == expected
    assert after["orders"] and after["released"] and after["tickets"]
    assert after["balance"] == balance_before - after["paid"]
    sent = Counter(m.key for m in email_memory.outbox) + Counter(m.key for m in sms_memory.outbox)
    assert max(sent.values()) == 1 and sum(sent.values()) == would_send
