"""Manual-action tickets: what a sink receives, the interface every sink offers, the
registry of sinks (``BACKENDS``) and the sink that ``ticket_sink`` names
(``ticket_sink_for``):

    database   (default) the ticket rows are the tickets: nothing to deliver  database.py
    webhook    also POSTs each ticket as JSON for a help desk                 webhook.py

Tickets always live in the database; a sink only hands them on. ``send`` follows the
channels' contract (see ``dns_lifecycle.channels``): one ``DeliveryResult`` per ticket,
in order, keyed by its dedupe key, and no exception for a ticket that could not be
delivered. It is synchronous: tickets are few and go out one at a time.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.registry import Backend, Registry

if TYPE_CHECKING:
    from dns_lifecycle.core.settings import Settings


@dataclass(frozen=True)
class TicketPayload:
    """One ticket as the webhook receives it (every field, as JSON)."""

    dedupe_key: str
    ticket_id: int
    domain: str
    instance_id: str
    account_id: str
    reason: str
    nameservers: list[str] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


class TicketSink(Protocol):
    def send(self, batch: list[TicketPayload]) -> list[DeliveryResult]: ...


# name -> Backend: ``factory(settings)`` builds the sink; ``dry_run(settings)`` what a
# dry run uses instead (the rows alone: nothing posted).
BACKENDS: Registry[Callable[[Settings], TicketSink]] = Registry("ticket", "DNSL_TICKET_SINK")
BACKENDS.register("database", Backend("dns_lifecycle.channels.tickets.database:from_settings"))
BACKENDS.register(
    "webhook",
    Backend(
        "dns_lifecycle.channels.tickets.webhook:WebhookTicketSink",
        external=True,
        dry_run="dns_lifecycle.channels.tickets.database:from_settings",
    ),
)


def ticket_sink_for(settings: Settings, *, dry_run: bool = False) -> TicketSink:
    """The ticket sink that ``ticket_sink`` names; in a dry run, its dry-run twin."""
    if dry_run:
        twin = BACKENDS.dry_run(settings.ticket_sink)
        if twin is not None:
            return twin(settings)
    return BACKENDS.factory(settings.ticket_sink)(settings)
