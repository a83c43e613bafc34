"""The file email backend and the MIME message both backends send."""

from __future__ import annotations

import asyncio
import email
import email.policy
from pathlib import Path

import pytest

from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email.file import FileEmailBackend, eml_file_name
from dns_lifecycle.channels.email.message import build_mime, message_id_for
from dns_lifecycle.core.errors import InputError, PermanentDeliveryError

SENDER = "DNS Hosting <no-reply@dns.example.com>"


def message(n: int = 1, **fields) -> EmailMessage:
    values = {
        "key": f"renewed:instance-{n}:order-{n}:email",
        "to": f"user{n}@example.com",
        "subject": f"Instance {n} renewed",
        "text": f"Instance {n} was renewed until 2026-03-01.\n",
        "html": f"<p>Instance {n} was renewed until <b>2026-03-01</b>.</p>\n",
    }
    values.update(fields)
    return EmailMessage(**values)


def send(outbox: Path, batch: list[EmailMessage]):
    return asyncio.run(FileEmailBackend(outbox, SENDER).send(batch))


def parse(path: Path) -> email.message.EmailMessage:
    return email.message_from_bytes(path.read_bytes(), policy=email.policy.default)


def body(part) -> str:
    return part.get_content().replace("\r\n", "\n")


def test_eml_file_parses_back_with_both_parts(tmp_path):
    """Each message becomes an .eml file under outbox/email with plain and HTML parts."""
    results = send(tmp_path, [message(1)])
    path = tmp_path / "email" / eml_file_name(message(1).key)
    parsed = parse(path)
    assert [r.outcome for r in results] == ["sent"]
    assert parsed.get_content_type() == "multipart/alternative"
    plain, html = parsed.iter_parts()
    assert (plain.get_content_type(), html.get_content_type()) == ("text/plain", "text/html")
    assert body(plain) == message(1).text
    assert body(html) == message(1).html
    assert parsed["To"] == "user1@example.com"
    assert parsed["Subject"] == "Instance 1 renewed"
    assert parsed["Message-ID"] == message_id_for(message(1).key, SENDER)


def test_one_file_per_message(tmp_path):
    """A batch of three gives three files, one per key."""
    send(tmp_path, [message(1), message(2), message(3)])
    names = sorted(p.name for p in (tmp_path / "email").iterdir())
    assert names == sorted(eml_file_name(message(n).key) for n in (1, 2, 3))


def test_sending_the_same_key_again_overwrites_its_file(tmp_path):
    """A rerun leaves one file per key, byte for byte the same."""
    send(tmp_path, [message(1)])
    first = (tmp_path / "email" / eml_file_name(message(1).key)).read_bytes()
    send(tmp_path, [message(1)])
    files = list((tmp_path / "email").iterdir())
    assert len(files) == 1
    assert files[0].read_bytes() == first


def test_chinese_survives_in_the_file(tmp_path):
    """A Chinese subject and body parse back unchanged."""
    chinese = message(1, subject="实例已续费", text="您的实例已续费至 2026-03-01。\n")
    send(tmp_path, [chinese])
    parsed = parse(tmp_path / "email" / eml_file_name(chinese.key))
    plain, _ = parsed.iter_parts()
    assert parsed["Subject"] == "实例已续费"
    assert body(plain) == chinese.text


def test_file_name_keeps_only_safe_characters():
    """Keys with slashes or colons give a plain file name that stays in the folder."""
    name = eml_file_name("../../etc/passwd:x y")
    assert "/" not in name and ":" not in name and " " not in name
    assert not name.startswith(".")
    assert name.endswith(".eml")


def test_keys_that_clean_up_alike_get_different_files():
    """Two keys differing only in unsafe characters do not share a file."""
    assert eml_file_name("a/b") != eml_file_name("a:b")


def test_line_break_in_subject_is_permanent_and_writes_nothing(tmp_path):
    """A subject with CR/LF is refused for good and leaves no file behind."""
    bad = message(1, subject="Renewed\nBcc: victim@example.org")
    results = send(tmp_path, [bad, message(2)])
    assert [r.outcome for r in results] == ["permanent", "sent"]
    assert not (tmp_path / "email" / eml_file_name(bad.key)).exists()


@pytest.mark.parametrize(
    "to",
    ["a@example.com, b@example.com", "Name <a@example.com>", "not-an-address", "a@b\u2028c"],
)
def test_recipient_that_is_not_one_plain_address_is_refused(to):
    """A recipient that is a list, has a display name or is no address is refused."""
    with pytest.raises(PermanentDeliveryError, match="correct the account's email address"):
        build_mime(message(1, to=to), SENDER)


def test_internationalised_domain_is_sent_in_idna_form():
    """A recipient on a Chinese domain is addressed by its punycode name."""
    parsed = email.message_from_bytes(
        build_mime(message(1, to="user@例子.中国"), SENDER), policy=email.policy.default
    )
    assert parsed["To"] == "user@xn--fsqu00a.xn--fiqs8s"


def test_message_id_uses_the_sender_domain_and_the_key():
    """The Message-ID is the same for the same key and differs between keys."""
    assert message_id_for("k1", SENDER) == message_id_for("k1", SENDER)
    assert message_id_for("k1", SENDER) != message_id_for("k2", SENDER)
    assert message_id_for("k1", SENDER).endswith("@dns.example.com>")


def test_a_bad_sender_setting_is_refused_at_start():
    """A From setting that is no address fails when the backend is made, not per message."""
    with pytest.raises(InputError, match="DNSL_EMAIL_FROM"):
        FileEmailBackend(Path("unused"), "DNS Hosting")
