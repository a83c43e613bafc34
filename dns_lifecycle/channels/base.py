"""What every channel backend takes and gives back.

A backend's ``send(batch)`` delivers a list of messages and returns one
``DeliveryResult`` per message, in order. It raises only for a failure of the whole
backend that it could not attribute to messages (it should rarely need to): one bad
recipient never stops a batch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Protocol

Outcome = Literal["sent", "transient", "permanent"]


@dataclass(frozen=True)
class EmailMessage:
    key: str  # ledger key; also the source of the deterministic Message-ID
    to: str
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class SmsMessage:
    key: str
    phone: str  # E.164
    template_code: str
    params: dict[str, str] = field(default_factory=dict)
    text: str = ""  # the rendered wording, for the file/memory backends and for people


@dataclass(frozen=True)
class DeliveryResult:
    key: str
    outcome: Outcome
    error: str | None = None


class EmailBackend(Protocol):
    async def send(self, batch: list[EmailMessage]) -> list[DeliveryResult]: ...


class SmsBackend(Protocol):
    async def send(self, batch: list[SmsMessage]) -> list[DeliveryResult]: ...
