"""Ticket sinks: the database one, and the webhook against a local HTTP server."""

from __future__ import annotations

import threading
from collections import Counter

import pytest

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.tickets import TicketPayload, ticket_sink_for
from dns_lifecycle.channels.tickets.database import DatabaseTicketSink
from dns_lifecycle.channels.tickets.webhook import WebhookTicketSink
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import Settings
from tests.http_sink import HttpSink, Reply, SeenRequest

TOKEN = "webhook-s3cret-token"
FREE_NS = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]


def _ticket(n: int = 1) -> TicketPayload:
    return TicketPayload(
        dedupe_key=f"ticket:{n}:d{n}.example.com:domain_locked",
        ticket_id=n,
        domain=f"d{n}.example.com",
        instance_id="inst-1",
        account_id="acct-1",
        reason="domain_locked",
        nameservers=FREE_NS,
        details={"epp_statuses": ["clientUpdateProhibited"], "note": "汉字"},
    )


class Sleeps(list):
    """Records the pauses the sink asks for instead of sleeping."""

    def __call__(self, seconds: float) -> None:
        self.append(seconds)


def _sink(url: str, *, attempts: int = 3, timeout: float = 5.0, sleep=None) -> WebhookTicketSink:
    settings = Settings(
        ticket_sink="webhook",
        ticket_webhook_url=url + "/hooks/tickets",
        ticket_webhook_token=TOKEN,
        ticket_webhook_timeout_seconds=timeout,
        ticket_webhook_attempts=attempts,
    )
    return WebhookTicketSink(settings, sleep=sleep if sleep is not None else Sleeps())


def scripted(*replies: Reply):
    """A responder answering the n-th request for each Idempotency-Key with replies[n]
    (the last one repeating)."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()

    def respond(request: SeenRequest) -> Reply:
        with lock:
            n = seen[request.headers.get("idempotency-key", "")]
            seen[request.headers.get("idempotency-key", "")] += 1
        return replies[min(n, len(replies) - 1)]

    return respond


def test_database_sink_counts_every_ticket_sent():
    """With the database sink every ticket is already delivered."""
    assert DatabaseTicketSink().send([_ticket(1), _ticket(2)]) == [
        DeliveryResult(_ticket(1).dedupe_key, "sent"),
        DeliveryResult(_ticket(2).dedupe_key, "sent"),
    ]


def test_each_ticket_is_posted_with_its_idempotency_key():
    """One JSON POST per ticket, with every field, the Idempotency-Key and the token."""
    with HttpSink(scripted(Reply(201, {"id": "T-1"}))) as server:
        results = _sink(server.url).send([_ticket(1), _ticket(2)])
    assert [r.outcome for r in results] == ["sent", "sent"]
    assert [r.key for r in results] == [_ticket(1).dedupe_key, _ticket(2).dedupe_key]
    first = server.requests[0]
    assert (first.method, first.path) == ("POST", "/hooks/tickets")
    assert first.headers["idempotency-key"] == _ticket(1).dedupe_key
    assert first.headers["authorization"] == f"Bearer {TOKEN}"
    assert first.json() == {
        "dedupe_key": _ticket(1).dedupe_key,
        "ticket_id": 1,
        "domain": "d1.example.com",
        "instance_id": "inst-1",
        "account_id": "acct-1",
        "reason": "domain_locked",
        "nameservers": FREE_NS,
        "details": {"epp_statuses": ["clientUpdateProhibited"], "note": "汉字"},
    }


def test_server_error_then_success_is_sent_with_the_same_key():
    """A 500 is retried after a pause; the ticket ends sent after two identical requests."""
    sleeps = Sleeps()
    with HttpSink(scripted(Reply(500, "oops"), Reply(200))) as server:
        [result] = _sink(server.url, sleep=sleeps).send([_ticket()])
    assert result == DeliveryResult(_ticket().dedupe_key, "sent")
    assert [r.headers["idempotency-key"] for r in server.requests] == [_ticket().dedupe_key] * 2
    assert server.requests[0].body == server.requests[1].body
    assert sleeps == [0.2]


def test_server_errors_every_time_end_transient():
    """A ticket the webhook fails every time is transient after the configured attempts."""
    sleeps = Sleeps()
    with HttpSink(scripted(Reply(503, "down"))) as server:
        [result] = _sink(server.url, attempts=3, sleep=sleeps).send([_ticket()])
    assert result.outcome == "transient"
    assert "HTTP 503" in result.error
    assert len(server.requests) == 3
    assert sleeps == [0.2, 0.5]


def test_backoff_grows_and_then_holds():
    """Pauses between tries are 0.2, 0.5, 1 and then 2 seconds."""
    sleeps = Sleeps()
    with HttpSink(scripted(Reply(500))) as server:
        _sink(server.url, attempts=6, sleep=sleeps).send([_ticket()])
    assert sleeps == [0.2, 0.5, 1.0, 2.0, 2.0]


def test_client_error_is_permanent_without_retry():
    """A 400 is permanent at once, quoting the status and the answer."""
    sleeps = Sleeps()
    with HttpSink(scripted(Reply(400, {"error": "unknown reason"}))) as server:
        [result] = _sink(server.url, sleep=sleeps).send([_ticket()])
    assert result.outcome == "permanent"
    assert "HTTP 400" in result.error and "unknown reason" in result.error
    assert len(server.requests) == 1 and sleeps == []


def test_throttling_is_retried():
    """A 429 is tried again like a server error."""
    with HttpSink(scripted(Reply(429), Reply(200))) as server:
        [result] = _sink(server.url).send([_ticket()])
    assert result.outcome == "sent" and len(server.requests) == 2


def test_dropped_connection_is_retried():
    """A connection closed without an answer is tried again with the same key."""
    with HttpSink(scripted(Reply(drop=True), Reply(200))) as server:
        [result] = _sink(server.url).send([_ticket()])
    assert result.outcome == "sent"
    assert [r.headers["idempotency-key"] for r in server.requests] == [_ticket().dedupe_key] * 2


def test_timeout_is_retried_then_transient():
    """A webhook that does not answer in time is tried again, then left transient."""
    with HttpSink(scripted(Reply(200, delay=5))) as server:
        [result] = _sink(server.url, attempts=2, timeout=0.2).send([_ticket()])
    assert result.outcome == "transient"
    assert "no answer within 0.2 s" in result.error
    assert len(server.requests) == 2


def test_refused_connection_is_transient():
    """A webhook that is not listening leaves the ticket transient."""
    with HttpSink(scripted(Reply(200))) as server:
        url = server.url
    [result] = _sink(url, attempts=2).send([_ticket()])
    assert result.outcome == "transient" and "connection failed" in result.error


def test_one_ticket_failing_does_not_stop_the_next():
    """A refused ticket does not stop the batch: the next one is sent."""

    def respond(request: SeenRequest) -> Reply:
        return Reply(422) if request.json()["ticket_id"] == 1 else Reply(200)

    with HttpSink(respond) as server:
        results = _sink(server.url).send([_ticket(1), _ticket(2)])
    assert [r.outcome for r in results] == ["permanent", "sent"]


def test_a_dead_webhook_is_not_tried_for_the_whole_batch():
    """After three tickets in a row end transient, the rest are transient without a try."""
    with HttpSink(scripted(Reply(500))) as server:
        results = _sink(server.url, attempts=1).send([_ticket(n) for n in range(1, 6)])
    assert [r.outcome for r in results] == ["transient"] * 5
    assert len(server.requests) == 3
    assert "not tried" in results[4].error


def test_token_never_appears_in_errors():
    """A webhook echoing the request headers never gets the token into an error text."""

    def echo(request: SeenRequest) -> Reply:
        return Reply(400, {"you sent": request.headers.get("authorization")})

    with HttpSink(echo) as server:
        [result] = _sink(server.url).send([_ticket()])
    assert result.outcome == "permanent"
    assert TOKEN not in result.error and "**********" in result.error


def test_webhook_sink_needs_a_url():
    """Choosing the webhook sink without its URL is refused with the setting named."""
    with pytest.raises(InputError, match="DNSL_TICKET_WEBHOOK_URL"):
        ticket_sink_for(Settings(ticket_sink="webhook"))


def test_ticket_sink_for_picks_the_backend():
    """ticket_sink selects the database or the webhook sink."""
    assert isinstance(ticket_sink_for(Settings()), DatabaseTicketSink)
    webhook = Settings(ticket_sink="webhook", ticket_webhook_url="http://127.0.0.1:9/t")
    assert isinstance(ticket_sink_for(webhook), WebhookTicketSink)
