"""The memory backend, for tests: what was "sent" is kept in ``outbox``, like Django's
``mail.outbox``, so a test can read what a flow delivered in the same process."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.email import EmailMessage

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings

outbox: list[EmailMessage] = []


class MemoryEmailBackend:
    async def send(
        self, batch: list[EmailMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        outbox.extend(batch)
        return [DeliveryResult(m.key, "sent") for m in batch]


def from_settings(settings: Settings) -> MemoryEmailBackend:
    """The backend as the registry builds it (it takes no settings)."""
    return MemoryEmailBackend()
