"""The SMTP email backend against a real aiosmtpd server on loopback."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

import pytest

from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.message import message_id_for
from dns_lifecycle.channels.email.smtp import SmtpEmailBackend
from dns_lifecycle.core.settings import Settings
from tests.smtp_server import Faults, SmtpTestServer, free_port

SENDER = "DNS Hosting <no-reply@dns.example.com>"
PASSWORD = "s3cret-Pa55word"
NOW = datetime(2025, 3, 1, 8, 30, tzinfo=UTC)

# Plain-text AUTH is what these tests exercise on purpose.
pytestmark = pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")


def smtp_settings(server_port: int, **overrides) -> Settings:
    values = {
        "email_backend": "smtp",
        "email_from": SENDER,
        "smtp_host": "127.0.0.1",
        "smtp_port": server_port,
        "smtp_security": "none",
        "smtp_timeout_seconds": 5.0,
        "smtp_connections": 1,
    }
    values.update(overrides)
    return Settings(**values)


def send(settings: Settings, batch: list[EmailMessage], **backend_kwargs):
    backend = SmtpEmailBackend(settings, clock=lambda: NOW, **backend_kwargs)
    return asyncio.run(backend.send(batch))


def message(n: int = 1, **fields) -> EmailMessage:
    values = {
        "key": f"reminder:instance-{n}:30d:email",
        "to": f"user{n}@example.com",
        "subject": f"Your DNS plan expires in 30 days ({n})",
        "text": f"Hello {n},\nyour plan expires soon.\n",
        "html": f"<p>Hello {n},</p><p>your plan expires soon.</p>",
    }
    values.update(fields)
    return EmailMessage(**values)


def body(part) -> str:
    """A text part's content with the CRLF line ends of MIME's canonical form undone."""
    return part.get_content().replace("\r\n", "\n")


def outcomes(results) -> list[str]:
    return [r.outcome for r in results]


def test_both_parts_arrive_plain_then_html():
    """The server gets multipart/alternative with text/plain first, then text/html."""
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port), [message()])
        parsed = server.received[0].parsed()
    assert outcomes(results) == ["sent"]
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.iter_parts()
    assert plain.get_content_type() == "text/plain"
    assert plain.get_content_charset() == "utf-8"
    assert body(plain) == "Hello 1,\nyour plan expires soon.\n"
    assert html.get_content_type() == "text/html"
    assert "<p>Hello 1,</p>" in body(html)


def test_headers_and_envelope():
    """From, To, Subject, Date and Message-ID are set, and the envelope matches them."""
    with SmtpTestServer() as server:
        send(smtp_settings(server.port), [message()])
        received = server.received[0]
    parsed = received.parsed()
    assert received.mail_from == "no-reply@dns.example.com"
    assert received.rcpt_tos == ["user1@example.com"]
    assert parsed["From"].addresses[0].display_name == "DNS Hosting"
    assert parsed["From"].addresses[0].addr_spec == "no-reply@dns.example.com"
    assert parsed["To"] == "user1@example.com"
    assert parsed["Subject"] == "Your DNS plan expires in 30 days (1)"
    assert parsedate_to_datetime(parsed["Date"]) == NOW
    assert parsed["Message-ID"] == message_id_for(message().key, SENDER)


def test_message_id_is_deterministic_from_the_key():
    """Sending the same key twice gives the same Message-ID, on the sender's domain."""
    with SmtpTestServer() as server:
        send(smtp_settings(server.port), [message(1)])
        send(smtp_settings(server.port), [message(1), message(2)])
        ids = [r.parsed()["Message-ID"] for r in server.received]
    assert ids[0] == ids[1] != ids[2]
    assert ids[0].startswith("<") and ids[0].endswith("@dns.example.com>")


def test_chinese_subject_and_body_survive():
    """A Chinese subject travels RFC 2047 encoded and both bodies decode intact."""
    chinese = message(
        subject="您的 DNS 套餐将于 30 天后到期",
        text="您好，\n您的套餐即将到期，请及时续费。\n",
        html="<p>您好，</p><p>您的套餐即将到期，请及时续费。</p>",
    )
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port), [chinese])
        received = server.received[0]
    assert outcomes(results) == ["sent"]
    received.content.decode("ascii")  # every byte on the wire is 7-bit
    assert b"Subject: =?utf-8?" in received.content
    parsed = received.parsed()
    plain, html = parsed.iter_parts()
    assert parsed["Subject"] == chinese.subject
    assert body(plain) == chinese.text
    assert body(html) == chinese.html + "\n"  # a text part always ends with a line end


def test_one_connection_serves_a_whole_batch():
    """With one connection allowed, a batch of 20 goes over a single connection."""
    batch = [message(n) for n in range(20)]
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port, smtp_connections=1), batch)
        connections = server.connections
        recipients = server.recipients()
    assert outcomes(results) == ["sent"] * 20
    assert connections == 1
    assert sorted(recipients) == sorted(m.to for m in batch)


def test_batch_is_spread_over_the_connection_pool():
    """With four connections allowed, a batch uses four, and every message arrives once."""
    batch = [message(n) for n in range(40)]
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port, smtp_connections=4), batch)
        connections = server.connections
        recipients = server.recipients()
    assert outcomes(results) == ["sent"] * 40
    assert connections == 4
    assert sorted(recipients) == sorted(m.to for m in batch)


def test_results_follow_the_batch_order():
    """Results come back one per message, in the batch's order, whatever the pool does."""
    batch = [message(n) for n in range(30)]
    with SmtpTestServer(faults=Faults(rcpt={"user7@example.com": 550})) as server:
        results = send(smtp_settings(server.port, smtp_connections=3), batch)
    assert [r.key for r in results] == [m.key for m in batch]
    assert results[7].outcome == "permanent"


def test_recipient_refused_with_550_is_permanent_for_that_message_only():
    """550 on RCPT fails that message for good; the rest of the batch is still sent."""
    batch = [message(n) for n in range(5)]
    with SmtpTestServer(faults=Faults(rcpt={"user2@example.com": 550})) as server:
        results = send(smtp_settings(server.port), batch)
        recipients = server.recipients()
        connections = server.connections
    assert outcomes(results) == ["sent", "sent", "permanent", "sent", "sent"]
    assert "550" in results[2].error and "user2@example.com" in results[2].error
    assert recipients == ["user0@example.com", "user1@example.com", "user3@example.com",
                          "user4@example.com"]  # fmt: skip
    assert connections == 1  # the refusal did not cost a reconnection


def test_recipient_refused_with_450_is_transient():
    """A 4xx on RCPT (mailbox busy) is worth retrying."""
    with SmtpTestServer(faults=Faults(rcpt={"user1@example.com": 450})) as server:
        results = send(smtp_settings(server.port), [message(1), message(2)])
    assert outcomes(results) == ["transient", "sent"]
    assert "450" in results[0].error


def test_554_after_data_is_permanent():
    """A 5xx reply to the message content fails it for good."""
    with SmtpTestServer(faults=Faults(data={1: 554})) as server:
        results = send(smtp_settings(server.port), [message(1), message(2)])
    assert outcomes(results) == ["permanent", "sent"]
    assert results[0].error.startswith("DATA <user1@example.com>: 554")


def test_451_after_data_is_transient_and_the_connection_carries_on():
    """451 after DATA is transient; the next message goes over the same connection."""
    with SmtpTestServer(faults=Faults(data={"user1@example.com": 451})) as server:
        results = send(smtp_settings(server.port), [message(1), message(2), message(3)])
        connections = server.connections
        recipients = server.recipients()
    assert outcomes(results) == ["transient", "sent", "sent"]
    assert "451" in results[0].error
    assert recipients == ["user2@example.com", "user3@example.com"]
    assert connections == 1


def test_421_after_data_is_transient_and_the_rest_go_over_a_new_connection():
    """421 (server closing) is transient, and the backend reconnects for the others."""
    with SmtpTestServer(faults=Faults(data={2: 421})) as server:
        results = send(smtp_settings(server.port), [message(n) for n in range(1, 5)])
        connections = server.connections
    assert outcomes(results) == ["sent", "transient", "sent", "sent"]
    assert connections == 2


def test_drop_during_data_is_transient_and_later_messages_are_sent_after_reconnecting():
    """A connection dropped during DATA fails that message transiently, not the batch."""
    batch = [message(n) for n in range(1, 11)]
    with SmtpTestServer(faults=Faults(drop_data={3})) as server:
        results = send(smtp_settings(server.port), batch)
        connections = server.connections
        recipients = server.recipients()
    assert outcomes(results) == ["sent"] * 2 + ["transient"] + ["sent"] * 7
    assert "lost" in results[2].error
    assert connections == 2
    assert "user3@example.com" not in recipients and len(recipients) == 9


def test_connection_dropped_every_time_gives_up_instead_of_one_connection_per_message():
    """When every reconnection is dropped again at once, the rest is left transient."""
    batch = [message(n) for n in range(1, 21)]
    everyone = {m.to for m in batch}
    with SmtpTestServer(faults=Faults(drop_data=set(everyone))) as server:
        results = send(smtp_settings(server.port), batch)
        connections = server.connections
    assert outcomes(results) == ["transient"] * 20
    assert connections == 2
    assert results[-1].error.startswith("not sent: the connection to 127.0.0.1:")


def test_server_down_leaves_every_message_transient_without_raising():
    """Nothing listening: every message is transient with the reason, and send() returns."""
    port = free_port()
    batch = [message(n) for n in range(6)]
    results = send(smtp_settings(port, smtp_connections=3), batch)
    assert outcomes(results) == ["transient"] * 6
    assert all(f"127.0.0.1:{port}" in r.error for r in results)


def test_server_busy_at_greeting_leaves_every_message_transient():
    """A 421 greeting is transient for every message, with the server's reply."""
    with SmtpTestServer(faults=Faults(greeting=421)) as server:
        results = send(smtp_settings(server.port, smtp_connections=2), [message(1), message(2)])
    assert outcomes(results) == ["transient", "transient"]
    assert "421" in results[0].error


def test_invalid_message_is_permanent_even_when_the_server_is_down():
    """A subject with a line break fails for good at once, not after the server is back."""
    bad = message(1, subject="Hi\r\nBcc: victim@example.org")
    results = send(smtp_settings(free_port()), [bad, message(2)])
    assert outcomes(results) == ["permanent", "transient"]


def test_slow_reply_beyond_the_timeout_is_transient():
    """A reply that takes longer than the timeout is transient; later messages are sent."""
    faults = Faults(delay_data={"user2@example.com": 3.0})
    with SmtpTestServer(faults=faults) as server:
        settings = smtp_settings(server.port, smtp_timeout_seconds=0.3)
        results = send(settings, [message(1), message(2), message(3)])
        recipients = server.recipients()
    assert outcomes(results) == ["sent", "transient", "sent"]
    assert "no reply" in results[1].error
    assert "user3@example.com" in recipients


def test_subject_with_line_break_is_refused_and_never_injects_a_header():
    """CR/LF in the subject fails that message for good and nothing of it is sent."""
    bad = message(1, subject="Renewal\r\nBcc: victim@example.org")
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port), [bad, message(2)])
        received = list(server.received)
    assert outcomes(results) == ["permanent", "sent"]
    assert "line break" in results[0].error
    assert len(received) == 1 and b"victim" not in received[0].content


def test_recipient_with_line_break_is_refused():
    """CR/LF in the recipient fails that message for good; no RCPT is sent for it."""
    bad = message(1, to="user1@example.com\r\nBcc: victim@example.org")
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port), [bad, message(2)])
        recipients = server.recipients()
    assert outcomes(results) == ["permanent", "sent"]
    assert recipients == ["user2@example.com"]


@pytest.mark.parametrize("mechanism", ["PLAIN", "LOGIN"])
def test_login_with_the_configured_credentials(mechanism):
    """With a username and password set, the backend logs in and the server accepts."""
    with SmtpTestServer(auth=("mailer", PASSWORD), auth_mechanisms=(mechanism,)) as server:
        settings = smtp_settings(server.port, smtp_username="mailer", smtp_password=PASSWORD)
        results = send(settings, [message(1), message(2)])
        received = list(server.received)
    assert outcomes(results) == ["sent", "sent"]
    assert [r.login for r in received] == ["mailer", "mailer"]


def test_wrong_password_is_transient_and_never_shows_the_password():
    """A refused login leaves the messages transient; the error names the setting, not it."""
    with SmtpTestServer(auth=("mailer", "the-right-one")) as server:
        settings = smtp_settings(server.port, smtp_username="mailer", smtp_password=PASSWORD)
        results = send(settings, [message(1), message(2)])
        received = list(server.received)
    assert outcomes(results) == ["transient", "transient"]
    assert received == []
    for result in results:
        assert "535" in result.error and "DNSL_SMTP_PASSWORD" in result.error
        assert PASSWORD not in result.error


def test_server_requiring_auth_without_credentials_is_transient():
    """No credentials for a server that wants them: transient, with the settings to set."""
    with SmtpTestServer(auth=("mailer", PASSWORD)) as server:
        results = send(smtp_settings(server.port), [message(1)])
    assert outcomes(results) == ["transient"]
    assert "530" in results[0].error and "DNSL_SMTP_USERNAME" in results[0].error


def test_starttls_then_login():
    """With smtp_security=starttls the session is upgraded before the login and the mail."""
    with SmtpTestServer(auth=("mailer", PASSWORD), tls="starttls") as server:
        settings = smtp_settings(
            server.port,
            smtp_security="starttls",
            smtp_username="mailer",
            smtp_password=PASSWORD,
        )
        results = send(settings, [message(1)], tls_context=server.client_tls_context())
        received = server.received[0]
        connections = server.connections
    assert outcomes(results) == ["sent"]
    assert received.tls and received.login == "mailer"
    assert connections == 1  # the second EHLO after STARTTLS is the same connection


def test_implicit_tls():
    """With smtp_security=tls the connection is TLS from the first byte."""
    with SmtpTestServer(auth=("mailer", PASSWORD), tls="tls") as server:
        settings = smtp_settings(
            server.port, smtp_security="tls", smtp_username="mailer", smtp_password=PASSWORD
        )
        results = send(settings, [message(1)], tls_context=server.client_tls_context())
        received = server.received[0]
    assert outcomes(results) == ["sent"]
    assert received.tls


def test_untrusted_certificate_is_transient_with_a_hint():
    """A certificate the client does not trust fails the connection, not the messages."""
    with SmtpTestServer(tls="starttls") as server:
        settings = smtp_settings(server.port, smtp_security="starttls")
        results = send(settings, [message(1)])
    assert outcomes(results) == ["transient"]
    assert "TLS" in results[0].error and "certificate" in results[0].error


def test_empty_batch_opens_no_connection():
    """An empty batch returns no results and does not connect."""
    with SmtpTestServer() as server:
        results = send(smtp_settings(server.port), [])
        connections = server.connections
    assert results == []
    assert connections == 0
