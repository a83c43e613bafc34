"""Tickets: the webhook sink through the release step, resolving by hand, and closing
them automatically once DNS shows the free cluster's name servers."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from dns_lifecycle.core.errors import Refused
from dns_lifecycle.store.tickets import resolve_ticket, retry_ticket
from flows.common import open_run
from flows.release import release_due
from flows.verify import verify_open_tickets
from models import Domain, Notification, Ticket
from tests.conftest import make_settings
from tests.dns_server import DnsServer
from tests.factories import make_instance
from tests.http_sink import HttpSink, Reply

EXPIRY = datetime(2026, 3, 1, 4, 0, tzinfo=UTC)  # past: real runs never evaluate the future
RELEASE = EXPIRY + timedelta(hours=168)
FREE_NS = ["ns1.free.dns-hosting.example", "ns2.free.dns-hosting.example"]
DOMAINS = [
    {
        "name": "locked.cn",
        "registrar": "hichina",
        "epp_statuses": ["serverUpdateProhibited"],
        "records": [("A", "@", "192.0.2.1", 600)],
    },
    {
        "name": "elsewhere.com",
        "registrar": "namecheap",
        "epp_statuses": [],
        "records": [("A", "@", "192.0.2.2", 600)],
    },
]


def _released(db, settings):
    with db.session() as s:
        make_instance(s, "inst-1", expires_at=EXPIRY, state="expired", domains=DOMAINS)
        s.commit()
    with open_run(RELEASE, False, None, settings=settings) as ctx:
        return release_due(ctx)


def test_webhook_sink_retries_a_500_with_the_same_dedupe_key(db, tmp_path, database_url):
    """A 500 then success: each ticket is posted until accepted, always with one key."""
    calls: list = []

    def responder(request):
        calls.append(request)
        # The first request of each ticket fails.
        key = request.headers["idempotency-key"]
        seen = [c for c in calls if c.headers["idempotency-key"] == key]
        return Reply(500, {"error": "busy"}) if len(seen) == 1 else Reply(201, {"ok": True})

    with HttpSink(responder) as sink:
        settings = make_settings(
            tmp_path, database_url, ticket_sink="webhook", ticket_webhook_url=sink.url
        )
        report = _released(db, settings)
    keys = [c.headers["idempotency-key"] for c in calls]
    assert len(keys) == 4 and len(set(keys)) == 2
    assert {c.json()["reason"] for c in calls} == {"domain_locked", "external_registrar"}
    assert report.counts["tickets_sent"] == 2
    with db.session() as s:
        assert {t.sink_state for t in s.execute(select(Ticket)).scalars()} == {"sent"}


def test_webhook_down_leaves_tickets_pending_for_the_next_run(db, tmp_path, database_url):
    """All 500s: the tickets exist once, their delivery is pending, and a later run sends
    them without opening new ones."""
    with HttpSink(lambda r: Reply(503)) as sink:
        settings = make_settings(
            tmp_path,
            database_url,
            ticket_sink="webhook",
            ticket_webhook_url=sink.url,
            ticket_webhook_attempts=2,
        )
        _released(db, settings)
    with db.session() as s:
        assert [t.sink_state for t in s.execute(select(Ticket)).scalars()] == ["pending"] * 2
    with HttpSink(lambda r: Reply(200)) as sink:
        settings = make_settings(
            tmp_path, database_url, ticket_sink="webhook", ticket_webhook_url=sink.url
        )
        with open_run(RELEASE + timedelta(days=1), False, None, settings=settings) as ctx:
            release_due(ctx)
        assert len(sink.requests) == 2
    with db.session() as s:
        tickets = s.execute(select(Ticket)).scalars().all()
    assert [t.sink_state for t in tickets] == ["sent", "sent"]


def test_a_release_that_deleted_the_paid_copy_promises_no_date_in_its_notice(db, settings):
    """With the database backend the paid copy goes with the release: the released
    notice's ticketed domains say so and carry no 'change by' date."""
    _released(db, settings)
    with db.session() as s:
        [context] = (
            s.execute(
                select(Notification.context).where(
                    Notification.kind == "released", Notification.channel == "email"
                )
            )
            .scalars()
            .all()
        )
    assert [
        (d["name"], d.get("paid_copy_deleted"), d.get("change_by")) for d in context["domains"]
    ] == [
        ("elsewhere.com", True, None),
        ("locked.cn", True, None),
    ]


def test_resolving_by_hand_closes_once(db, settings):
    """`tickets resolve` closes an open ticket; a second time is refused clearly."""
    _released(db, settings)
    with db.session() as s:
        ticket_id = s.execute(select(Ticket.id)).scalars().first()
        resolve_ticket(s, ticket_id, RELEASE)
        s.commit()
    with pytest.raises(Refused, match="already resolved"), db.session() as s:
        resolve_ticket(s, ticket_id, RELEASE)


def test_retry_is_refused_for_a_ticket_that_does_not_stop_a_release(db, settings):
    """`tickets retry` of a delegation ticket says there is nothing to retry."""
    _released(db, settings)
    with db.session() as s:
        ticket_id = s.execute(select(Ticket.id)).scalars().first()
        resolve_ticket(s, ticket_id, RELEASE)
        s.commit()
    with pytest.raises(Refused, match="does not stop a release"), db.session() as s:
        retry_ticket(s, ticket_id, RELEASE)


def test_resolving_by_hand_tells_the_account_without_claiming_name_servers(db, settings):
    """A manual-action ticket closed by hand queues one 'ticket resolved' notice per
    channel, worded as done by hand and naming no name servers; a second resolve adds
    none."""
    from dns_lifecycle.store.tickets import resolve_ticket_by_hand

    _released(db, settings)
    with db.session() as s:
        ticket_id = s.execute(select(Ticket.id).order_by(Ticket.id)).scalars().first()
        resolve_ticket_by_hand(s, ticket_id, RELEASE)
        s.commit()
    with pytest.raises(Refused, match="already resolved"), db.session() as s:
        resolve_ticket_by_hand(s, ticket_id, RELEASE)
    with db.session() as s:
        told = s.execute(
            select(Notification.channel, Notification.context).where(
                Notification.kind == "ticket_resolved"
            )
        ).all()
    assert sorted(channel for channel, _ in told) == ["email", "sms"]
    assert all(c["by_hand"] and c["nameservers"] == [] for _, c in told)


def test_verify_without_resolvers_says_which_setting_to_set(db, settings):
    """With open tickets and no resolver configured, verify-delegations counts the
    domains unchecked and its note names DNSL_DNS_RESOLVERS."""
    _released(db, settings)
    with open_run(RELEASE, False, None, settings=settings) as ctx:
        report = verify_open_tickets(ctx)
    assert report.counts == {"domains_unchecked_no_resolvers": 2}
    assert len(report.notes) == 1 and "set DNSL_DNS_RESOLVERS" in report.notes[0]


def test_verify_closes_tickets_whose_delegation_now_points_at_the_free_cluster(
    db, tmp_path, database_url
):
    """DNS on 127.0.0.1 says locked.cn now uses the free name servers: its ticket closes
    and the account is told; elsewhere.com still points elsewhere and stays open."""
    with DnsServer({"locked.cn": FREE_NS, "elsewhere.com": ["dns1.registrar-servers.com"]}) as dns:
        settings = make_settings(tmp_path, database_url, dns_resolvers=[dns.address])
        _released(db, settings)
        with open_run(RELEASE, False, None, settings=settings) as ctx:
            report = verify_open_tickets(ctx)
            again = verify_open_tickets(ctx)
    with db.session() as s:
        states = {
            s.get(Domain, t.domain_id).name: t.state for t in s.execute(select(Ticket)).scalars()
        }
        told = (
            s.execute(select(Notification.channel).where(Notification.kind == "ticket_resolved"))
            .scalars()
            .all()
        )
        ns = s.execute(select(Domain.nameservers).where(Domain.name == "locked.cn")).scalar_one()
    assert states == {"locked.cn": "resolved", "elsewhere.com": "open"}
    assert sorted(told) == ["email", "sms"]
    assert ns == FREE_NS
    assert report.counts["tickets_resolved"] == 1
    assert "tickets_resolved" not in again.counts


def test_the_verify_delegations_command_closes_fixed_tickets_and_tells_the_account(
    db, settings, monkeypatch, capsys
):
    """`dns-lifecycle verify-delegations` runs that step alone: the ticket of a domain
    DNS shows on the free name servers closes and its account gets the notice."""
    from dns_lifecycle.admin.cli import main
    from dns_lifecycle.channels.email import memory as email_memory

    _released(db, settings)
    with DnsServer({"locked.cn": FREE_NS, "elsewhere.com": ["dns1.registrar-servers.com"]}) as dns:
        for name, value in {
            "DATABASE_URL": settings.database_url,
            "DNSL_OUTBOX_DIR": str(settings.outbox_dir),
            "DNSL_EMAIL_BACKEND": "memory",
            "DNSL_SMS_BACKEND": "memory",
            "DNSL_DNS_RESOLVERS": f'["{dns.address}"]',
        }.items():
            monkeypatch.setenv(name, value)
        code = main(["verify-delegations", "--json"])
    summary = json.loads(capsys.readouterr().out)
    assert code == 0
    assert summary["steps"][0]["counts"]["tickets_resolved"] == 1
    assert [m.key.split(":")[0] for m in email_memory.outbox] == ["ticket_resolved"]


def test_verify_without_resolvers_skips_and_says_so(db, settings):
    """With no resolvers configured nothing is looked up and nothing changes."""
    _released(db, settings)
    with open_run(RELEASE, False, None, settings=settings) as ctx:
        report = verify_open_tickets(ctx)
    assert report.counts == {"domains_unchecked_no_resolvers": 2}
