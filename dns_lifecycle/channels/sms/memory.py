"""The memory backend, for tests: what was "sent" is kept in ``outbox``, so a test can
read what a flow delivered in the same process."""

from __future__ import annotations

from dns_lifecycle.channels import DeliveryResult, ResultSink
from dns_lifecycle.channels.sms import SmsMessage

outbox: list[SmsMessage] = []


class MemorySmsBackend:
    async def send(
        self, batch: list[SmsMessage], on_result: ResultSink | None = None
    ) -> list[DeliveryResult]:
        outbox.extend(batch)
        return [DeliveryResult(m.key, "sent") for m in batch]
