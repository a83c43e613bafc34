"""SMTP faults through the real delivery path: ledger rows, a real aiosmtpd server with
injected faults on 127.0.0.1, and ``deliver_pending`` with the SMTP backend.

Transient faults leave the row pending with the reason and a later run sends it;
permanent ones mark it failed with the reason; the rest of the batch goes out; every
message carries the Message-ID derived from its ledger key.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

import pytest

from dns_lifecycle.channels.email.message import message_id_for
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.reminders import plan_reminders
from tests.reliability.conftest import (
    AS_OF,
    SENDER,
    email_of,
    ledger,
    reminder_fleet,
    smtp_settings,
)
from tests.smtp_server import Faults, SmtpTestServer, _Handler, free_port

N = 4
VICTIM = email_of(1)
VICTIM_KEY_PREFIX = "reminder:inst-1:"


def _email_rows(db):
    return {k: r for k, r in ledger(db).items() if r.channel == "email"}


def _victim(db):
    (row,) = [r for k, r in _email_rows(db).items() if k.startswith(VICTIM_KEY_PREFIX)]
    return row


def _message_ids(server: SmtpTestServer) -> list[tuple[str, str]]:
    return [(m.rcpt_tos[0], m.parsed()["Message-ID"]) for m in server.received]


def _expected_ids(db) -> dict[str, str]:
    """recipient -> the Message-ID its ledger key gives."""
    return {
        email_of(int(r.instance_id.split("-")[1])): message_id_for(k, SENDER)
        for k, r in _email_rows(db).items()
    }


def _run(settings):
    with open_run(AS_OF, False, 100, settings=settings) as ctx:
        return deliver_pending(ctx)


def _plan(settings):
    with open_run(AS_OF, False, 100, settings=settings) as ctx:
        plan_reminders(ctx)


# fault, which messages it hits, outcome of those, words in the ledger error
CASES: dict[str, tuple[Callable[[], Faults], str, str, str]] = {
    "421 on connect": (lambda: Faults(greeting=421), "all", "transient", "421"),
    "450 on RCPT": (lambda: Faults(rcpt={VICTIM: 450}), "victim", "transient", "450"),
    "550 on RCPT": (lambda: Faults(rcpt={VICTIM: 550}), "victim", "permanent", "550"),
    "451 on DATA": (lambda: Faults(data={VICTIM: 451}), "victim", "transient", "451"),
    "554 on DATA": (lambda: Faults(data={VICTIM: 554}), "victim", "permanent", "554"),
    "dropped during DATA": (lambda: Faults(drop_data={VICTIM}), "victim", "transient", "lost"),
    "reply slower than the timeout": (
        lambda: Faults(delay_data={VICTIM: 3.0}),
        "victim",
        "transient",
        "no reply",
    ),
}


@pytest.mark.parametrize("case", list(CASES))
def test_smtp_fault_is_classified_and_the_rest_of_the_batch_goes_out(lite_db, lite_settings, case):
    """Each fault gives its outcome and reason in the ledger; the others are sent once."""
    make_faults, hits, outcome, words = CASES[case]
    reminder_fleet(lite_db, N)
    with SmtpTestServer(faults=make_faults()) as server:
        settings = smtp_settings(lite_settings, server.port, smtp_timeout_seconds=1.0)
        _plan(settings)
        tally = _run(settings)

        rows = _email_rows(lite_db)
        hit = list(rows.values()) if hits == "all" else [_victim(lite_db)]
        state = "failed" if outcome == "permanent" else "pending"
        for row in hit:
            assert row.state == state and words in row.error, (row.key, row.error)
            assert row.claimed_until is None  # free for the next run at once
        others = [r for r in rows.values() if r not in hit]
        assert all(r.state == "sent" and r.error is None for r in others)
        assert tally.counts.get(f"email_{outcome}") == len(hit)
        expected = _expected_ids(lite_db)
        delivered = [] if hits == "all" else [(r, m) for r, m in expected.items() if r != VICTIM]
        assert sorted(_message_ids(server)) == sorted(delivered)
        received_before = len(server.received)

        # The server recovers; the next run sends what was transient and nothing else.
        server.faults = Faults()
        again = _run(settings)
        after = _email_rows(lite_db)
        if outcome == "transient":
            assert all(r.state == "sent" for r in after.values())
            assert again.counts == {"email_sent": len(hit)}
        else:
            assert _victim(lite_db).state == "failed" and again.counts == {}
        received = Counter(rcpt for rcpt, _ in _message_ids(server))
        assert len(server.received) - received_before == (len(hit) if outcome == "transient" else 0)
        assert max(received.values()) == 1  # no message twice
        assert all(mid == expected[rcpt] for rcpt, mid in _message_ids(server))


def test_server_down_leaves_every_email_pending_until_it_is_back(lite_db, lite_settings):
    """With nothing listening every email stays pending with the reason; once the server
    is up the next run sends each exactly once."""
    reminder_fleet(lite_db, N)
    port = free_port()
    settings = smtp_settings(lite_settings, port)
    _plan(settings)
    tally = _run(settings)
    rows = _email_rows(lite_db)
    assert tally.counts["email_transient"] == N and "email_sent" not in tally.counts
    assert all(r.state == "pending" and "Connect call failed" in r.error for r in rows.values())
    assert all(f"127.0.0.1:{port}" in r.error for r in rows.values())
    # SMS goes through its own channel and is not held up by the email server.
    assert tally.counts["sms_sent"] == N

    server = SmtpTestServer()
    server.port = port  # the same address the settings name
    server._controller.port = port
    with server:
        _run(settings)
        assert all(r.state == "sent" for r in _email_rows(lite_db).values())
        expected = _expected_ids(lite_db)
        assert sorted(_message_ids(server)) == sorted(expected.items())


class _AcceptThenDrop(_Handler):
    """Stores the message, then hangs up before replying: the client cannot know that
    the message was accepted (the ambiguous failure that makes duplicates)."""

    def __init__(self, owner, victims: set[str]):
        super().__init__(owner)
        self.victims = victims

    async def handle_DATA(self, server, session, envelope):
        if self.victims & set(envelope.rcpt_tos):
            self.victims.clear()  # once
            self.owner._store(server, session, envelope)
            server.transport.abort()
            return "250 OK"
        return await super().handle_DATA(server, session, envelope)


def test_a_duplicate_after_an_ambiguous_failure_carries_the_same_message_id(lite_db, lite_settings):
    """Accepted but unacknowledged: the retry is a second copy with the same Message-ID,
    derived from the ledger key, so the duplicate is recognisable; nothing else repeats."""
    reminder_fleet(lite_db, N)
    server = SmtpTestServer()
    server._controller.handler = _AcceptThenDrop(server, {VICTIM})
    with server:
        settings = smtp_settings(lite_settings, server.port)
        _plan(settings)
        _run(settings)
        assert _victim(lite_db).state == "pending"
        _run(settings)
        assert all(r.state == "sent" for r in _email_rows(lite_db).values())
        copies = [mid for rcpt, mid in _message_ids(server) if rcpt == VICTIM]
        assert copies == [message_id_for(_victim(lite_db).key, SENDER)] * 2
        others = Counter(rcpt for rcpt, _ in _message_ids(server) if rcpt != VICTIM)
        assert sorted(others) == sorted(email_of(i) for i in range(N) if email_of(i) != VICTIM)
        assert set(others.values()) == {1}
