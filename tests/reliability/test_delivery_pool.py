"""Delivery in a pool of processes (``delivery_processes``): the run's process claims and
records, the workers render and send, each with its share of the SMTP connections and
its own SMS session. Real SMTP and HTTP servers on 127.0.0.1."""

from __future__ import annotations

import multiprocessing
import threading
import time
from collections import Counter
from datetime import timedelta

import pytest

import flows.delivery as delivery
from dns_lifecycle.channels.email.message import message_id_for
from dns_lifecycle.channels.sms.aliyun import out_id
from dns_lifecycle.store.outcomes import MAX_GROUP
from flows.common import open_run, wall_clock
from flows.reminders import plan_reminders
from tests.http_sink import HttpSink, Reply
from tests.reliability.conftest import AS_OF, SENDER, ledger, reminder_fleet, with_settings
from tests.smtp_server import Faults, SmtpTestServer

pytestmark = pytest.mark.slow(35)

BATCH = 1000


@pytest.fixture(autouse=True)
def _no_pool_left():
    """Each test starts and ends without delivery processes."""
    delivery._close_pools()
    yield
    delivery._close_pools()


def _pool_settings(settings, smtp_port: int, sink: HttpSink, **changes):
    values = {
        "email_backend": "smtp",
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_connections": 4,
        "email_from": SENDER,
        "sms_backend": "aliyun",
        "aliyun_protocol": "http",
        "aliyun_endpoint": sink.address,
        "aliyun_access_key_id": "LTAI-pool",
        "aliyun_access_key_secret": "pool-secret",
        "delivery_processes": 2,
    }
    return with_settings(settings, **{**values, **changes})


def _deliver(settings, clock=wall_clock, batch=BATCH):
    with open_run(AS_OF, False, batch, settings=settings) as ctx:
        ctx.clock = clock
        plan_reminders(ctx)
        return delivery.deliver_pending(ctx)


def _kill_during_a_run(lite_db, settings, server, *, after: int, kill, batch: int = BATCH):
    """Deliver in a thread, kill the processes ``kill()`` names once the SMTP server has
    had ``after`` messages, and check that the run returns, says what stays leased, and
    leaves every row sent or leased. Returns its tally and the keys sent and leased."""
    outcome: dict = {}
    run = threading.Thread(target=lambda: outcome.update(tally=_deliver(settings, batch=batch)))
    run.start()
    deadline = time.monotonic() + 60
    while server.data_commands < after and time.monotonic() < deadline:
        time.sleep(0.01)
    for worker in kill():
        worker.kill()
    run.join(timeout=60)
    assert not run.is_alive()
    tally = outcome["tally"]
    assert any("ended unexpectedly" in f and "stay leased until" in f for f in tally.failures)
    rows = ledger(lite_db)
    sent = {k for k, r in rows.items() if r.state == "sent"}
    leased = {k for k, r in rows.items() if r.state == "pending" and r.claim_token}
    assert sent and leased and sent | leased == set(rows)
    return tally, sent, leased


def _accept(_request):
    return Reply(200, {"Code": "OK", "BizId": "1"})


def test_a_pool_delivers_every_notice_once_over_the_connections_in_all(lite_db, lite_settings):
    """150 reminders through 2 processes: every email and SMS once, over at most the 4
    SMTP connections of the setting in all, every outcome recorded."""
    reminder_fleet(lite_db, 150)
    with SmtpTestServer() as server, HttpSink(_accept) as sink:
        settings = _pool_settings(lite_settings, server.port, sink)
        tally = _deliver(settings)
        workers = multiprocessing.active_children()
        assert len(workers) == 2  # kept for the next step of the run
    rows = ledger(lite_db)
    assert len(rows) == 300 and all(r.state == "sent" for r in rows.values())
    assert {r.attempts for r in rows.values()} == {1}  # each outcome recorded once
    assert tally.counts == {"email_sent": 150, "sms_sent": 150}
    emails = Counter(m.parsed()["Message-ID"] for m in server.received)
    assert set(emails) == {message_id_for(k, SENDER) for k in rows if k.endswith(":email")}
    assert set(emails.values()) == {1}
    # Each process opens its share of the 4 (2 each; one may carry its whole share
    # before the other has its greeting), never more than the 4 in all.
    assert 2 <= len({m.connection for m in server.received}) <= server.connections <= 4
    texts = Counter(r.query["OutId"] for r in sink.requests)
    assert set(texts) == {out_id(k) for k in rows if k.endswith(":sms")}
    assert set(texts.values()) == {1}


def test_batches_queued_behind_each_other_are_each_delivered_once(lite_db, lite_settings):
    """Batches of 100: each is handed out while the one before is still being sent;
    every notice is sent once and counted once, and the ledger holds every outcome."""
    reminder_fleet(lite_db, 250)
    with SmtpTestServer() as server, HttpSink(_accept) as sink:
        tally = _deliver(_pool_settings(lite_settings, server.port, sink), batch=100)
    rows = ledger(lite_db)
    assert len(rows) == 500 and {(r.state, r.attempts) for r in rows.values()} == {("sent", 1)}
    assert tally.counts == {"email_sent": 250, "sms_sent": 250} and not tally.failures
    assert Counter(Counter(m.parsed()["Message-ID"] for m in server.received).values()) == {1: 250}
    assert Counter(Counter(r.query["OutId"] for r in sink.requests).values()) == {1: 250}


@pytest.mark.parametrize(
    ("backends", "fleet"),
    [({"email_backend": "file", "sms_backend": "file"}, 150), ({}, 20)],
    ids=["file backends", "a small batch"],
)
def test_files_and_small_batches_are_delivered_in_the_run_process(
    lite_db, lite_settings, backends, fleet
):
    """With the file backends, or fewer notices than 50 per process, no delivery
    process is started: the run's own process delivers, as with one process."""
    reminder_fleet(lite_db, fleet)
    with SmtpTestServer() as server, HttpSink(_accept) as sink:
        settings = _pool_settings(lite_settings, server.port, sink, **backends)
        tally = _deliver(settings)
    assert multiprocessing.active_children() == []
    assert tally.counts == {"email_sent": fleet, "sms_sent": fleet}


def test_a_delivery_process_that_dies_leaves_its_unanswered_notices_leased(lite_db, lite_settings):
    """Delivery processes killed mid-share: what they reported is recorded, the rest stays
    leased, the run says so (naming the lease's end), and the run after the lease sends
    every notice; nothing is lost."""
    reminder_fleet(lite_db, 150)
    stalled = 40
    with (
        SmtpTestServer(faults=Faults(delay_data={stalled: 600})) as server,
        HttpSink(_accept) as sink,
    ):
        settings = _pool_settings(lite_settings, server.port, sink, smtp_timeout_seconds=900)
        _, sent, _ = _kill_during_a_run(
            lite_db, settings, server, after=stalled + 10, kill=multiprocessing.active_children
        )
        assert len(sent) >= stalled

        server.faults = Faults()
        _deliver(settings, clock=lambda: wall_clock() + delivery.LEASE + timedelta(minutes=1))
    rows = ledger(lite_db)
    assert all(r.state == "sent" for r in rows.values())
    emails = {m.parsed()["Message-ID"] for m in server.received}
    assert emails == {message_id_for(k, SENDER) for k in rows if k.endswith(":email")}


def test_an_outcome_queued_when_the_batch_ends_is_recorded_once(lite_db):
    """A result still waiting for its group when the batch's list is recorded is
    written once: one attempt, not two."""
    import asyncio

    from dns_lifecycle.channels import DeliveryResult
    from dns_lifecycle.store.outcomes import Recorder

    reminder_fleet(lite_db, 2)
    with open_run(AS_OF, False, BATCH, settings=lite_db.settings) as ctx:
        plan_reminders(ctx)
    rows = ledger(lite_db)
    results = [DeliveryResult(key, "sent") for key in rows]
    recorder = Recorder(lite_db, {key: r.id for key, r in rows.items()}, wall_clock)

    async def replies_then_the_end():
        for result in results[:2]:
            recorder.add(result)  # its group is written 2 ms later: never, the loop ends

    asyncio.run(replies_then_the_end())
    recorder.finish(results)
    assert {r.attempts for r in ledger(lite_db).values()} == {1}
    assert all(r.state == "sent" for r in ledger(lite_db).values())


def test_each_process_gets_its_part_of_each_channel():
    """In ledger order an instance's email and SMS alternate; dealt as they come, one
    process would get every email and the other every SMS. Each channel is dealt on its
    own: every process gets half of each, and every notice goes to exactly one."""
    from datetime import UTC, datetime

    from dns_lifecycle.channels.pool import OutgoingNotice, deal

    def notice(i: int, channel: str) -> OutgoingNotice:
        created = datetime(2026, 11, 26, tzinfo=UTC)
        return OutgoingNotice(f"n{i}:{channel}", channel, "reminder", {}, "a@b.c", "+1", created)

    notices = [notice(i, channel) for i in range(101) for channel in ("email", "sms")]
    shares = deal(notices, 2)
    assert [Counter(n.channel for n in share) for share in shares] == [
        {"email": 51, "sms": 51},
        {"email": 50, "sms": 50},
    ]
    assert sorted(n.key for share in shares for n in share) == sorted(n.key for n in notices)
    assert deal(notices[:1], 3) == [notices[:1], [], []]


def test_one_process_killed_with_shares_queued_the_other_finishes_and_nothing_is_lost(
    lite_db, lite_settings
):
    """Batches of 100, one delivery process killed mid-run with shares queued behind the
    one it was sending: the run returns (it does not wait for the dead one), the other
    process finishes its own shares, what the dead one had not recorded stays leased and
    the run says so; the run after the lease sends the rest. Every notice goes out, and
    a repeat is at most one of the dead process's messages in flight."""
    reminder_fleet(lite_db, 250)
    slow = {i: 0.02 for i in range(1, 400)}  # every message takes a while: time to kill
    with SmtpTestServer(faults=Faults(delay_data=slow)) as server, HttpSink(_accept) as sink:
        settings = _pool_settings(lite_settings, server.port, sink)
        tally, sent, _ = _kill_during_a_run(
            lite_db,
            settings,
            server,
            after=30,
            kill=lambda: multiprocessing.active_children()[:1],
            batch=100,
        )
        # Recorded, then killed before it said so: in the ledger, not in the count.
        assert tally.counts["email_sent"] + tally.counts["sms_sent"] <= len(sent)

        server.faults = Faults()
        _deliver(settings, clock=lambda: wall_clock() + delivery.LEASE + timedelta(minutes=1))
    rows = ledger(lite_db)
    assert all(r.state == "sent" for r in rows.values())
    emails = Counter(m.parsed()["Message-ID"] for m in server.received)
    assert set(emails) == {message_id_for(k, SENDER) for k in rows if k.endswith(":email")}
    texts = Counter(r.query["OutId"] for r in sink.requests)
    # What the dead process can have sent without recording it: its messages in flight
    # (2 connections, 8 SendSms requests) and the replies queued for its next outcome
    # write, at most one group (the Recorder's guarantee; README "How it runs").
    repeated_emails = sum(emails.values()) - len(emails)
    repeated_texts = sum(texts.values()) - len(texts)
    assert repeated_emails <= 2 + MAX_GROUP and repeated_texts <= 8 + MAX_GROUP
    assert repeated_emails + repeated_texts <= 2 + 8 + MAX_GROUP


def test_a_share_for_a_process_that_has_ended_is_reported_not_raised(lite_settings):
    """A process that ended between two batches cannot take its next share (a broken
    pipe): handing it out does not fail the run, and the pool says the process ended."""
    from dns_lifecycle.channels.pool import DeliveryPool, OutgoingNotice

    pool = DeliveryPool(lite_settings, 2, recorder=dict)  # the recorder is never reached
    try:
        ended = pool._workers[0].process
        ended.kill()
        ended.join()
        notice = OutgoingNotice("k:email", "email", "reminder", {}, "a@example.com", "", AS_OF)
        pool.submit([notice], {"k:email": 1}, timedelta(0))  # the first process's share
        results, problem = pool.wait()
    finally:
        pool.kill()
    assert results == [] and problem == "delivery process 1 ended unexpectedly"
