"""The database sink (the default): the ticket rows are the tickets."""

from __future__ import annotations

from typing import TYPE_CHECKING

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.tickets import TicketPayload

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings


class DatabaseTicketSink:
    """The ticket rows are the tickets: nothing to deliver."""

    def send(self, batch: list[TicketPayload]) -> list[DeliveryResult]:
        return [DeliveryResult(t.dedupe_key, "sent") for t in batch]


def from_settings(settings: Settings) -> DatabaseTicketSink:
    """The sink as the registry builds it (it takes no settings)."""
    return DatabaseTicketSink()
