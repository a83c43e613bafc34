"""A run killed with SIGKILL in the middle of a batch, then run again.

The killed run is a separate process (``crash_worker``) that stops at a deterministic
point: it waits on an SMTP reply or a registrar answer the test holds back, or hangs
inside a renewal transaction. The rerun completes; orders, charges, tickets and
releases happen exactly once; duplicates are bounded by what was in flight.

Rows the dead run had claimed for delivery stay leased (``flows.delivery.LEASE``,
15 minutes): a rerun at once leaves them pending, says how many and until when, and
sends the rest; the first run after the lease sends them. The tests move the rerun's
clock to show both.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from sqlmodel import select

from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.email.message import message_id_for
from dns_lifecycle.channels.sms import memory as sms_memory
from dns_lifecycle.channels.sms.aliyun import out_id
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import REPO_ROOT
from flows.auto_renew import renew_due
from flows.common import open_run, wall_clock
from flows.delivery import LEASE, deliver_pending
from flows.release import release_due
from flows.reminders import plan_reminders
from models import Account, Domain, Instance, Order, Record, Ticket, ZoneSnapshot
from tests.http_sink import HttpSink, Reply, SeenRequest
from tests.reliability.conftest import (
    AS_OF,
    SENDER,
    ledger,
    release_fleet,
    reminder_fleet,
    renewal_fleet,
    with_settings,
)
from tests.smtp_server import Faults, SmtpTestServer

pytestmark = pytest.mark.slow(30)

BATCH = 2


def _worker(tmp_path: Path, step: str, settings: dict, **extra) -> subprocess.Popen:
    config = tmp_path / f"{step}-worker.json"
    values = {k: str(v) for k, v in settings.items()}
    config.write_text(
        json.dumps(
            {
                "settings": values,
                "as_of": AS_OF.isoformat(),
                "batch_size": BATCH,
                "step": step,
                **extra,
            }
        )
    )
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "tests.reliability.crash_worker", str(config)],
        cwd=REPO_ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _kill_when(proc: subprocess.Popen, ready: Callable[[], bool], timeout: float = 60) -> None:
    """SIGKILL ``proc`` as soon as ``ready()``; fail with its output if it ends first."""
    deadline = time.monotonic() + timeout
    try:
        while not ready():
            if proc.poll() is not None:
                out, err = proc.communicate()
                raise AssertionError(f"the worker ended early ({proc.returncode}):\n{out}\n{err}")
            if time.monotonic() > deadline:
                raise AssertionError("the worker never reached the point to kill it at")
            time.sleep(0.02)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL


def _children(pid: int) -> set[int]:
    """The processes whose parent is ``pid`` (Linux's /proc)."""
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def _all_ended(pids: set[int], timeout: float = 10) -> bool:
    deadline = time.monotonic() + timeout
    while any(Path(f"/proc/{pid}").exists() for pid in pids):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _run(settings, *steps, clock: Callable[[], datetime] = wall_clock):
    with open_run(AS_OF, False, BATCH, settings=settings) as ctx:
        ctx.clock = clock
        for step in steps:
            step(ctx)
        return deliver_pending(ctx)


def _after_lease() -> datetime:
    return wall_clock() + LEASE + timedelta(minutes=1)


def test_killed_during_a_reminders_batch(settings, db, tmp_path):
    """Killed while the SMTP server holds back the reply to the 3rd message: a rerun at
    once sends everything not in flight; the in-flight batch goes out after the lease;
    each notice arrives, and only the in-flight batch can arrive twice."""
    n = 6
    reminder_fleet(db, n)
    outbox = tmp_path / "outbox"
    with SmtpTestServer(faults=Faults(delay_data={3: 600})) as server:
        real = with_settings(
            settings,
            email_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_connections=1,
            smtp_timeout_seconds=900,
            sms_backend="file",
            outbox_dir=outbox,
            email_from=SENDER,
        )
        keys = [
            "database_url",
            "outbox_dir",
            "email_backend",
            "smtp_host",
            "smtp_port",
            "smtp_connections",
            "smtp_timeout_seconds",
            "sms_backend",
            "email_from",
        ]
        proc = _worker(tmp_path, "reminders", {k: getattr(real, k) for k in keys})
        sms_file = outbox / "sms.jsonl"

        def sms_lines() -> int:
            return len(sms_file.read_text().splitlines()) if sms_file.exists() else 0

        # Batches 1 and 2 are sent and marked; batch 3 waits on the 3rd DATA reply.
        _kill_when(proc, lambda: server.data_commands >= 3 and sms_lines() >= 3)

        after_crash = ledger(db)
        in_flight = {k for k, r in after_crash.items() if r.state == "pending" and r.claim_token}
        assert len(in_flight) == BATCH  # one batch was claimed and never marked
        assert sum(r.state == "sent" for r in after_crash.values()) == 2 * BATCH
        assert len(after_crash) == 2 * n  # every notice was queued before delivery began

        # The operator runs again at once: the leased batch is left alone, the rest sent.
        server.faults = Faults()
        _run(real, plan_reminders)
        now = ledger(db)
        assert {k for k, r in now.items() if r.state != "sent"} == in_flight
        assert all(now[k].claimed_until > wall_clock() for k in in_flight)

        # After the lease, the in-flight batch is sent.
        tally = _run(real, plan_reminders, clock=_after_lease)
        assert tally.counts.get("email_sent", 0) + tally.counts.get("sms_sent", 0) == BATCH
        final = ledger(db)
        assert len(final) == 2 * n and all(r.state == "sent" for r in final.values())

        emails = Counter(m.parsed()["Message-ID"] for m in server.received)
        expected_ids = {message_id_for(k, SENDER) for k in final if k.endswith(":email")}
        assert set(emails) == expected_ids
        sms = Counter(json.loads(line)["key"] for line in sms_file.read_text().splitlines())
        assert set(sms) == {k for k in final if k.endswith(":sms")}
        duplicates = (sum(emails.values()) - len(emails)) + (sum(sms.values()) - len(sms))
        # The email in flight was never accepted (the server dropped it with the
        # connection); its SMS had been written, and the file backend does not write a
        # key it already holds: no duplicate.
        assert duplicates == 0


@pytest.mark.parametrize("processes", [1, 2], ids=["in the run's process", "2 processes"])
def test_killed_mid_batch_of_1000_repeats_at_most_the_messages_in_flight(
    settings, db, tmp_path, processes
):
    """Killed while a batch of 1,000 notices streams out over 4 SMTP connections and 8
    SendSms requests in flight (per process): each outcome was recorded as its reply
    arrived, so after the lease only the messages in flight can arrive twice (at most
    two per connection: one whose reply was on its way, one being recorded), never the
    batch; the delivery processes die with the run."""
    n, batch, connections = 500, 1000, 4
    sms_in_flight = 8 * processes
    reminder_fleet(db, n)
    stalled = 300  # this DATA gets no reply: its connection waits on it until the kill
    with (
        SmtpTestServer(faults=Faults(delay_data={stalled: 600})) as server,
        HttpSink(lambda request: Reply(200, {"Code": "OK", "BizId": "1"})) as sink,
    ):
        real = with_settings(
            settings,
            email_backend="smtp",
            smtp_host="127.0.0.1",
            smtp_port=server.port,
            smtp_connections=connections,
            smtp_timeout_seconds=900,
            email_from=SENDER,
            sms_backend="aliyun",
            aliyun_protocol="http",
            aliyun_endpoint=sink.address,
            aliyun_access_key_id="LTAI-crash",
            aliyun_access_key_secret="crash-secret",
            delivery_processes=processes,
        )
        keys = [
            "database_url",
            "outbox_dir",
            "email_backend",
            "smtp_host",
            "smtp_port",
            "smtp_connections",
            "smtp_timeout_seconds",
            "email_from",
            "sms_backend",
            "aliyun_protocol",
            "aliyun_endpoint",
            "aliyun_access_key_id",
            "delivery_processes",
        ]
        config = {k: getattr(real, k) for k in keys}
        config["aliyun_access_key_secret"] = "crash-secret"
        proc = _worker(tmp_path, "reminders", config, batch_size=batch)
        # Killed while the other three connections keep sending.
        workers: set[int] = set()

        def streaming() -> bool:
            if server.data_commands < stalled + 30:
                return False
            workers.update(_children(proc.pid))
            return True

        _kill_when(proc, streaming)
        assert len(workers) >= (processes if processes > 1 else 0)
        assert _all_ended(workers)  # the delivery processes died with the run

        after_crash = ledger(db)
        assert len(after_crash) == batch
        sent_before = sum(r.state == "sent" for r in after_crash.values())
        assert sent_before >= stalled  # recorded as they went, not at the end of the batch
        held = {k for k, r in after_crash.items() if r.state == "pending" and r.claim_token}
        assert held  # what was in flight or not yet sent stays leased

        # A rerun at once leaves the held rows alone and says how many and until when.
        server.faults = Faults()
        tally = _run(real, plan_reminders)
        assert tally.counts["held_by_another_run"] == len(held)
        until = max(after_crash[k].claimed_until for k in held)
        assert any(
            f"{len(held):,} pending notice(s) are held by another run until "
            f"{until:%Y-%m-%d %H:%M:%S} UTC" in note
            for note in tally.notes
        )
        assert {k for k, r in ledger(db).items() if r.state != "sent"} == held

        _run(real, plan_reminders, clock=_after_lease)
        final = ledger(db)
        assert all(r.state == "sent" for r in final.values())
        assert {r.attempts for r in final.values()} == {1}  # each outcome recorded once

        emails = Counter(m.parsed()["Message-ID"] for m in server.received)
        assert set(emails) == {message_id_for(k, SENDER) for k in final if k.endswith(":email")}
        texts = Counter(r.query["OutId"] for r in sink.requests)
        assert set(texts) == {out_id(k) for k in final if k.endswith(":sms")}
        email_repeats = sum(emails.values()) - len(emails)
        sms_repeats = sum(texts.values()) - len(texts)
        assert email_repeats <= 2 * connections
        assert sms_repeats <= 2 * sms_in_flight


def test_a_failed_run_lets_go_of_its_notices_at_once(settings, db, tmp_path):
    """A run that fails on a bad sender holds no notice after it: the corrected rerun
    straight after sends every one, the SMS included, and finds none held."""
    reminder_fleet(db, 3)
    bad = with_settings(
        settings, email_backend="file", email_from="no sender", outbox_dir=tmp_path / "outbox"
    )
    with pytest.raises(InputError, match="DNSL_EMAIL_FROM"):
        _run(bad, plan_reminders)
    assert len(ledger(db)) == 6 and not any(r.claim_token for r in ledger(db).values())

    tally = _run(with_settings(bad, email_from=SENDER), plan_reminders)

    assert "held_by_another_run" not in tally.counts
    assert tally.counts == {"email_sent": 3, "sms_sent": 3}
    assert {r.state for r in ledger(db).values()} == {"sent"}


def test_a_run_whose_sender_fails_mid_batch_keeps_that_batch_leased(settings, db, monkeypatch):
    """A sender that fails after handing a batch on (sent or not, unknown) ends the run:
    that batch keeps its lease, as a killed run's would; the rows never claimed are sent
    by the rerun at once."""
    from dns_lifecycle.channels.email.memory import MemoryEmailBackend

    async def lost_connection(self, batch, on_result=None):
        email_memory.outbox.extend(batch)  # handed over, but no answer came back
        raise ConnectionResetError("connection reset while sending")

    reminder_fleet(db, 3)
    monkeypatch.setattr(MemoryEmailBackend, "send", lost_connection)
    with pytest.raises(ConnectionResetError):
        _run(settings, plan_reminders)
    leased = {k for k, r in ledger(db).items() if r.state == "pending" and r.claim_token}
    assert len(leased) == BATCH  # the first batch: its email and SMS

    monkeypatch.undo()
    tally = _run(settings, plan_reminders)
    assert tally.counts["held_by_another_run"] == BATCH
    assert {k for k, r in ledger(db).items() if r.state != "sent"} == leased


def test_killed_inside_an_auto_renewal_batch(settings, db, tmp_path):
    """Killed inside the transaction of the 2nd renewal batch: that batch leaves no
    trace; the rerun orders and charges each instance exactly once."""
    n = 5
    start = Decimal("100.00")
    renewal_fleet(db, n, balance=start)
    marker = tmp_path / "hanging"
    real = with_settings(settings, email_backend="memory", sms_backend="memory")
    proc = _worker(
        tmp_path,
        "auto_renew",
        {"database_url": real.database_url, "outbox_dir": tmp_path / "outbox"},
        hang_in_batch=2,
        marker=str(marker),
    )
    _kill_when(proc, marker.exists)
    hung_batch = json.loads(marker.read_text())

    with db.session() as s:
        orders = s.exec(select(Order)).all()
        balances = {a.id: a.balance for a in s.exec(select(Account))}
    # Batch 1 committed; the killed batch 2 was rolled back with the process.
    assert len(orders) == BATCH and not {o.instance_id for o in orders} & set(hung_batch)
    assert sum(b == start for b in balances.values()) == n - BATCH

    _run(real, renew_due)
    _run(real, renew_due, clock=_after_lease)  # and once more, after any lease
    with db.session() as s:
        orders = s.exec(select(Order)).all()
        accounts = s.exec(select(Account)).all()
        instances = s.exec(select(Instance)).all()
    assert Counter(o.instance_id for o in orders) == {f"inst-{i}": 1 for i in range(n)}
    assert all(o.state == "paid" for o in orders)
    price = orders[0].amount
    assert all(a.balance == start - price for a in accounts)  # charged once each
    assert all(i.expires_at > AS_OF + timedelta(days=20) for i in instances)
    rows = ledger(db)
    assert len(rows) == n * 2 * 2  # order_created + renewed, email + SMS
    assert all(r.state == "sent" for r in rows.values())
    # The killed run sent nothing; batch 1's notices were queued, and went out once.
    sent = Counter(m.key for m in email_memory.outbox) + Counter(m.key for m in sms_memory.outbox)
    assert set(sent.values()) == {1} and len(sent) == len(rows)


def test_killed_during_a_release(settings, db, tmp_path):
    """Killed while the registrar holds back its answer for the 2nd instance: no paid copy
    is gone, and the rerun
    releases every instance once, with one zone copy, one ticket and one notice per
    domain, and every record on the free cluster."""
    n = 3
    release_fleet(db, n, registrar="hichina")
    # A second domain per instance at another registrar: it needs a ticket.
    with db.session() as s:
        for i in range(n):
            domain = Domain(
                name=f"inst-{i}.example.org",
                instance_id=f"inst-{i}",
                registrar="other-registrar",
                epp_statuses=[],
                nameservers=["ns1.elsewhere.example"],
            )
            s.add(domain)
            s.flush()
            s.add(
                Record(
                    domain_id=domain.id,
                    cluster_code="paid-1",
                    type="A",
                    host="@",
                    value="192.0.2.7",
                    ttl=300,
                )
            )
        s.commit()
    held = {"on": True}

    def registrar(request: SeenRequest) -> Reply:
        if request.method == "GET":  # the lock, read just before the switch
            return Reply(200, {"epp_statuses": []})
        if "inst-1.example.com" in request.path and held["on"]:
            return Reply(200, {"ok": True}, delay=600)
        return Reply(200, {"ok": True})

    with HttpSink(registrar) as sink:
        real = with_settings(
            settings,
            registrar_backend="http",
            registrar_url=sink.url,
            registrar_timeout_seconds=900,
        )
        proc = _worker(
            tmp_path,
            "release",
            {
                "database_url": real.database_url,
                "outbox_dir": tmp_path / "outbox",
                "registrar_backend": "http",
                "registrar_url": sink.url,
                "registrar_timeout_seconds": 900,
                # One domain at a time: the one call in flight at the kill is known.
                "release_workers": 1,
            },
        )
        _kill_when(
            proc,
            lambda: any(r.path == "/domains/inst-1.example.com/nameservers" for r in sink.requests),
        )
        with db.session() as s:
            state = {i.id: i.state for i in s.exec(select(Instance))}
            served = Counter(
                (d, c) for d, c in s.execute(select(Record.domain_id, Record.cluster_code)).all()
            )
        # Killed before the batch's instances were marked: none is released yet, and a
        # domain's paid copy is gone only where its free copy holds every record.
        assert state == {f"inst-{i}": "expired" for i in range(n)}
        domains = {d for d, _ in served}
        assert all(served[(d, "paid-1")] or served[(d, "free")] for d in domains)

        held["on"] = False
        _run(real, release_due)
        _run(real, release_due, clock=_after_lease)

        with db.session() as s:
            instances = s.exec(select(Instance)).all()
            snapshots = s.exec(select(ZoneSnapshot)).all()
            tickets = s.exec(select(Ticket)).all()
            records = s.exec(select(Record)).all()
        assert all(i.state == "released" for i in instances)
        assert Counter(z.domain_name for z in snapshots) == {
            f"inst-{i}.{tld}": 1 for i in range(n) for tld in ("example.com", "example.org")
        }
        assert len(tickets) == n and all(t.reason == "external_registrar" for t in tickets)
        assert len(records) == 3 * n and {r.cluster_code for r in records} == {"free"}
        rows = ledger(db)
        assert len(rows) == 2 * n and all(r.state == "sent" for r in rows.values())
        calls = Counter(r.path for r in sink.requests if r.method == "PUT")
        # The PUT in flight is made again by the rerun (it sets the same servers).
        assert calls == {
            "/domains/inst-0.example.com/nameservers": 1,
            "/domains/inst-1.example.com/nameservers": 2,
            "/domains/inst-2.example.com/nameservers": 1,
        }
