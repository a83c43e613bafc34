"""The message bytes the email backends send: folding, literal subjects, encodings."""

from __future__ import annotations

import email
from email import policy

from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.message import build_mime

SENDER = "DNS Hosting <no-reply@dns-lifecycle.local>"


def _parsed(message: EmailMessage):
    raw = build_mime(message, SENDER)
    return raw, email.message_from_bytes(raw, policy=policy.default)


def test_a_long_chinese_subject_folds_under_78_columns_and_reads_back_intact():
    """RFC 5322 line length holds for encoded words too."""
    subject = "您的DNS解析实例即将到期，请及时续费以免解析中断并影响网站访问" * 2
    raw, parsed = _parsed(EmailMessage("k1", "a@example.com", subject, "正文", "<p>正文</p>"))
    assert all(len(line) <= 78 for line in raw.split(b"\r\n"))
    assert parsed["Subject"] == subject


def test_an_encoded_word_typed_in_a_subject_stays_literal():
    """A customer-supplied '=?utf-8?q?x?=' is not decoded into something else."""
    subject = "Renewal for =?utf-8?q?x?= instance"
    _, parsed = _parsed(EmailMessage("k2", "a@example.com", subject, "body", "<p>body</p>"))
    assert parsed["Subject"] == subject


def test_a_long_body_line_is_not_sent_as_7bit():
    """Lines over 78 characters are transfer-encoded, so any server relays them."""
    body = "x" * 200
    raw, parsed = _parsed(EmailMessage("k3", "a@example.com", "s", body, f"<p>{body}</p>"))
    encodings = {part["Content-Transfer-Encoding"] for part in parsed.iter_parts()}
    assert "7bit" not in encodings
    assert all(len(line) <= 998 for line in raw.split(b"\r\n"))
    assert parsed.get_body(("plain",)).get_content().strip() == body
