"""In-memory backends for tests: what was "sent" is kept in module-level lists, like
Django's ``mail.outbox``, so a test can read what a flow delivered in the same process."""

from __future__ import annotations

from dns_lifecycle.channels.base import DeliveryResult, EmailMessage, SmsMessage

EMAILS: list[EmailMessage] = []
SMS: list[SmsMessage] = []


def clear() -> None:
    EMAILS.clear()
    SMS.clear()


class MemoryEmailBackend:
    async def send(self, batch: list[EmailMessage]) -> list[DeliveryResult]:
        EMAILS.extend(batch)
        return [DeliveryResult(m.key, "sent") for m in batch]


class MemorySmsBackend:
    async def send(self, batch: list[SmsMessage]) -> list[DeliveryResult]:
        SMS.extend(batch)
        return [DeliveryResult(m.key, "sent") for m in batch]
