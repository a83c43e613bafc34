"""Pick the email and SMS backends that the settings name (Django-style)."""

from __future__ import annotations

from channels.base import EmailBackend, SmsBackend
from dns_lifecycle.settings import Settings


def email_backend(settings: Settings) -> EmailBackend:
    if settings.email_backend == "memory":
        from channels.memory import MemoryEmailBackend

        return MemoryEmailBackend()
    if settings.email_backend == "smtp":
        from channels.email import SmtpEmailBackend

        return SmtpEmailBackend(settings)
    from channels.email import FileEmailBackend

    return FileEmailBackend(settings.outbox_dir, settings.email_from)


def sms_backend(settings: Settings) -> SmsBackend:
    if settings.sms_backend == "memory":
        from channels.memory import MemorySmsBackend

        return MemorySmsBackend()
    if settings.sms_backend == "aliyun":
        from channels.sms import AliyunSmsBackend

        return AliyunSmsBackend(settings)
    from channels.sms import FileSmsBackend

    return FileSmsBackend(settings.outbox_dir)
