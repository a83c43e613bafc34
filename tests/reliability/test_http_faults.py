"""SMS (the provider's SendSms over HTTP), ticket-webhook and registrar faults, each
against a local HTTP server on 127.0.0.1, through the real delivery and release paths."""

from __future__ import annotations

import pytest
from sqlmodel import select

from flows.common import open_run
from flows.delivery import deliver_pending
from flows.release import release_due
from flows.reminders import plan_reminders
from models import Domain, Instance, Record, Ticket, ZoneSnapshot
from tests.http_sink import HttpSink, Reply, SeenRequest
from tests.reliability.conftest import (
    AS_OF,
    ledger,
    phone_of,
    release_fleet,
    reminder_fleet,
    with_settings,
)

N = 4
OK = Reply(200, {"Code": "OK", "Message": "OK", "RequestId": "REQ-OK", "BizId": "B1"})


def _run(settings, step=None):
    with open_run(AS_OF, False, 100, settings=settings) as ctx:
        if step is not None:
            return step(ctx)
        return deliver_pending(ctx)


# --- SMS ---------------------------------------------------------------------------------

VICTIM_PHONE = phone_of(1).removeprefix("+")

SMS_CASES = {
    "HTTP 500": (
        Reply(500, {"Code": "isp.SYSTEM_ERROR", "Message": "system error", "RequestId": "R5"}),
        "transient",
        "HTTP 500",
    ),
    "business error code": (
        Reply(200, {"Code": "isv.MOBILE_NUMBER_ILLEGAL", "Message": "bad", "RequestId": "R4"}),
        "permanent",
        "isv.MOBILE_NUMBER_ILLEGAL",
    ),
    "timeout": (Reply(200, {"Code": "OK"}, delay=30), "transient", "no usable answer"),
    "dropped connection": (Reply(drop=True), "transient", "no usable answer"),
}


def _sms_settings(settings, sink: HttpSink):
    return with_settings(
        settings,
        sms_backend="aliyun",
        aliyun_protocol="http",
        aliyun_endpoint=sink.address,
        aliyun_access_key_id="LTAI-reliability",
        aliyun_access_key_secret="sms-secret-value",
        sms_timeout_seconds=0.3,
    )


@pytest.mark.parametrize("case", list(SMS_CASES))
def test_sms_fault_is_classified_and_the_rest_of_the_batch_goes_out(lite_db, lite_settings, case):
    """The fault hits one SMS, recorded with its outcome and reason; the others are sent;
    once the provider recovers a later run sends a transient one, never a permanent one."""
    fault, outcome, words = SMS_CASES[case]
    healthy = {"on": False}

    def responder(request: SeenRequest) -> Reply:
        if request.query.get("PhoneNumbers") == VICTIM_PHONE and not healthy["on"]:
            return fault
        return OK

    reminder_fleet(lite_db, N)
    with HttpSink(responder) as sink:
        settings = _sms_settings(lite_settings, sink)
        _run(settings, plan_reminders)
        tally = _run(settings)
        sms = {k: r for k, r in ledger(lite_db).items() if r.channel == "sms"}
        (victim,) = [r for r in sms.values() if r.instance_id == "inst-1"]
        assert victim.state == ("failed" if outcome == "permanent" else "pending")
        assert words in victim.error
        assert all(r.state == "sent" for r in sms.values() if r is not victim)
        assert tally.counts[f"sms_{outcome}"] == 1 and tally.counts["sms_sent"] == N - 1
        assert tally.counts["email_sent"] == N  # email is not held up

        healthy["on"] = True
        before = len(sink.requests)
        again = _run(settings)
        assert ledger(lite_db)[victim.key].state == ("failed" if outcome == "permanent" else "sent")
        assert len(sink.requests) - before == (1 if outcome == "transient" else 0)
        assert again.counts == ({"sms_sent": 1} if outcome == "transient" else {})
        # Each SMS carries its ledger key as OutId, the same on every try.
        out_ids = [r.query.get("OutId") for r in sink.requests]
        assert set(out_ids) == set(sms)


# --- ticket webhook --------------------------------------------------------------------

VICTIM_DOMAIN = "inst-1.example.com"

WEBHOOK_CASES = {
    "HTTP 500": (Reply(500, "upstream broken"), "transient", "HTTP 500"),
    "business error": (Reply(422, {"error": "unknown queue"}), "permanent", "HTTP 422"),
    "timeout": (Reply(201, delay=30), "transient", "no answer within"),
    "dropped connection": (Reply(drop=True), "transient", "connection failed"),
}


def _tickets(db) -> dict[str, Ticket]:
    with db.session() as s:
        rows = s.execute(select(Ticket, Domain.name).join(Domain, Domain.id == Ticket.domain_id))
        return {name: t for t, name in rows}


@pytest.mark.parametrize("case", list(WEBHOOK_CASES))
def test_ticket_webhook_fault_keeps_the_ticket_and_the_release(lite_db, lite_settings, case):
    """A webhook fault never undoes a release: every ticket is in the database, the one
    hit is pending (or failed) with the reason, and a later run posts it with the same
    Idempotency-Key."""
    fault, outcome, words = WEBHOOK_CASES[case]
    healthy = {"on": False}

    def responder(request: SeenRequest) -> Reply:
        if request.json()["domain"] == VICTIM_DOMAIN and not healthy["on"]:
            return fault
        return Reply(201, {"id": request.headers["idempotency-key"]})

    release_fleet(lite_db, N)  # another registrar: one ticket per domain
    with HttpSink(responder) as sink:
        settings = with_settings(
            lite_settings,
            ticket_sink="webhook",
            ticket_webhook_url=f"{sink.url}/hooks/tickets",
            ticket_webhook_timeout_seconds=0.3,
            ticket_webhook_attempts=2,
        )
        report = _run(settings, release_due)
        assert report.counts["instances_released"] == N
        tickets = _tickets(lite_db)
        assert len(tickets) == N
        victim = tickets[VICTIM_DOMAIN]
        assert victim.sink_state == ("failed" if outcome == "permanent" else "pending")
        assert words in victim.sink_error
        assert all(t.sink_state == "sent" for n, t in tickets.items() if n != VICTIM_DOMAIN)
        assert report.counts[f"tickets_{outcome}"] == 1

        healthy["on"] = True
        again = _run(settings, release_due)
        assert "instances_released" not in again.counts
        after = _tickets(lite_db)
        assert after[VICTIM_DOMAIN].sink_state == ("failed" if outcome == "permanent" else "sent")
        assert len(after) == N  # no second ticket
        keys = {
            r.headers["idempotency-key"]
            for r in sink.requests
            if r.json()["domain"] == VICTIM_DOMAIN
        }
        assert len(keys) == 1


# --- registrar -------------------------------------------------------------------------

REGISTRAR_CASES = {
    "HTTP 500": (Reply(500, "registry down"), "HTTP 500"),
    "timeout": (Reply(200, delay=30), "did not answer"),
    "dropped connection": (Reply(drop=True), "could not be reached"),
}


@pytest.mark.parametrize("case", list(REGISTRAR_CASES))
def test_registrar_fault_rolls_back_that_release_alone(lite_db, lite_settings, case):
    """A registrar that fails for one domain leaves that instance expired with its records
    still on the paid cluster (and a verified copy on the free one), and no notice; the
    others are released; a later run releases it once, with one zone copy."""
    fault, words = REGISTRAR_CASES[case]
    healthy = {"on": False}

    def responder(request: SeenRequest) -> Reply:
        if VICTIM_DOMAIN in request.path and not healthy["on"]:
            return fault
        return Reply(200, {"ok": True})

    release_fleet(lite_db, N, registrar="hichina")
    with HttpSink(responder) as sink:
        settings = with_settings(
            lite_settings,
            registrar_backend="http",
            registrar_url=sink.url,
            registrar_timeout_seconds=0.3,
        )
        report = _run(settings, release_due)
        assert report.counts["instances_released"] == N - 1
        assert report.counts["release_failures"] == 1
        assert any("inst-1" in f and words in f for f in report.failures), report.failures
        with lite_db.session() as s:
            victim = s.get(Instance, "inst-1")
            assert victim.state == "expired"
            clusters = set(
                s.execute(
                    select(Record.cluster_code).join(Domain).where(Domain.name == VICTIM_DOMAIN)
                ).scalars()
            )
            assert clusters == {"paid-1", "free"}
        assert not [r for r in ledger(lite_db).values() if r.instance_id == "inst-1"]

        healthy["on"] = True
        again = _run(settings, release_due)
        assert again.counts["instances_released"] == 1
        with lite_db.session() as s:
            assert s.get(Instance, "inst-1").state == "released"
            snapshots = s.exec(select(ZoneSnapshot)).all()
        assert sorted(z.instance_id for z in snapshots) == [f"inst-{i}" for i in range(N)]
        released = [r for r in ledger(lite_db).values() if r.kind == "released"]
        assert len(released) == 2 * N  # email and SMS, once per instance
