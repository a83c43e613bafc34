"""Pick the email and SMS backends that the settings name (Django-style)."""

from __future__ import annotations

from dns_lifecycle.channels.base import DeliveryResult, EmailBackend, SmsBackend
from dns_lifecycle.core.settings import Settings


class CountingBackend:
    """A dry run's backend: every message would be sent; nothing leaves the process."""

    async def send(self, batch):
        return [DeliveryResult(m.key, "sent") for m in batch]


def email_backend(settings: Settings, *, dry_run: bool = False) -> EmailBackend:
    if dry_run:
        return CountingBackend()
    if settings.email_backend == "memory":
        from dns_lifecycle.channels.memory import MemoryEmailBackend

        return MemoryEmailBackend()
    if settings.email_backend == "smtp":
        from dns_lifecycle.channels.email import SmtpEmailBackend

        return SmtpEmailBackend(settings)
    from dns_lifecycle.channels.email import FileEmailBackend

    return FileEmailBackend(settings.outbox_dir, settings.email_from)


def sms_backend(settings: Settings, *, dry_run: bool = False) -> SmsBackend:
    if dry_run:
        return CountingBackend()
    if settings.sms_backend == "memory":
        from dns_lifecycle.channels.memory import MemorySmsBackend

        return MemorySmsBackend()
    if settings.sms_backend == "aliyun":
        from dns_lifecycle.channels.sms import AliyunSmsBackend

        return AliyunSmsBackend(settings)
    from dns_lifecycle.channels.sms import FileSmsBackend

    return FileSmsBackend(settings.outbox_dir)
