"""Each channel's backend is the one the settings name; a dry run's backends only count."""

from __future__ import annotations

import asyncio

import pytest

from dns_lifecycle.channels import CountingBackend, DeliveryResult
from dns_lifecycle.channels.email import EmailMessage, email_backend
from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.email.file import FileEmailBackend
from dns_lifecycle.channels.email.memory import MemoryEmailBackend
from dns_lifecycle.channels.email.smtp import SmtpEmailBackend
from dns_lifecycle.channels.sms import SmsMessage, sms_backend
from dns_lifecycle.channels.sms import memory as sms_memory
from dns_lifecycle.channels.sms.aliyun import AliyunSmsBackend
from dns_lifecycle.channels.sms.file import FileSmsBackend
from dns_lifecycle.channels.sms.memory import MemorySmsBackend
from dns_lifecycle.core.settings import Settings

EMAIL = EmailMessage("reminder:inst-1:30d:email", "a@example.com", "Hi", "Hi", "<p>Hi</p>")
SMS = SmsMessage("reminder:inst-1:30d:sms", "+8613900001234", "SMS_1", {"name": "A"}, "Hi")


@pytest.mark.parametrize(
    ("name", "backend"),
    [("file", FileEmailBackend), ("memory", MemoryEmailBackend), ("smtp", SmtpEmailBackend)],
)
def test_the_email_backend_is_the_one_the_settings_name(name, backend, tmp_path):
    """DNSL_EMAIL_BACKEND picks the module that sends."""
    settings = Settings(email_backend=name, outbox_dir=tmp_path)
    assert isinstance(email_backend(settings), backend)


@pytest.mark.parametrize(
    ("name", "backend"),
    [("file", FileSmsBackend), ("memory", MemorySmsBackend), ("aliyun", AliyunSmsBackend)],
)
def test_the_sms_backend_is_the_one_the_settings_name(name, backend, tmp_path):
    """DNSL_SMS_BACKEND picks the module that sends."""
    settings = Settings(
        sms_backend=name,
        outbox_dir=tmp_path,
        aliyun_access_key_id="key-id",
        aliyun_access_key_secret="key-secret",
    )
    assert isinstance(sms_backend(settings), backend)


@pytest.mark.parametrize("build", [email_backend, sms_backend])
def test_a_file_backend_refuses_an_outbox_it_cannot_make_when_built(build, tmp_path):
    """A file backend whose outbox folder cannot be made refuses when it is built, in
    one line naming DNSL_OUTBOX_DIR, instead of failing on each message."""
    from dns_lifecycle.core.errors import InputError

    (tmp_path / "afile").write_text("not a folder\n")
    settings = Settings(outbox_dir=tmp_path / "afile" / "outbox")
    with pytest.raises(InputError, match="DNSL_OUTBOX_DIR") as refused:
        build(settings)
    assert "\n" not in str(refused.value)


def test_a_dry_run_counts_every_message_as_sent_and_sends_nothing(tmp_path):
    """Whatever backend the settings name, a dry run's reports each message sent and
    none reaches that backend."""
    settings = Settings(email_backend="memory", sms_backend="memory", outbox_dir=tmp_path)
    emails, texts = email_backend(settings, dry_run=True), sms_backend(settings, dry_run=True)
    assert isinstance(emails, CountingBackend) and isinstance(texts, CountingBackend)
    assert asyncio.run(emails.send([EMAIL])) == [DeliveryResult(EMAIL.key, "sent")]
    assert asyncio.run(texts.send([SMS])) == [DeliveryResult(SMS.key, "sent")]
    assert email_memory.outbox == [] and sms_memory.outbox == []
    assert list(tmp_path.iterdir()) == []


def test_the_memory_backends_keep_what_they_were_given(tmp_path):
    """A test reads what a flow sent from each channel's memory outbox."""
    settings = Settings(email_backend="memory", sms_backend="memory", outbox_dir=tmp_path)
    asyncio.run(email_backend(settings).send([EMAIL]))
    asyncio.run(sms_backend(settings).send([SMS]))
    assert email_memory.outbox == [EMAIL] and sms_memory.outbox == [SMS]
