from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from models.types import DeliveryState, TicketState, UTCDateTime, word


class TicketBase(SQLModel):
    domain_id: int = Field(foreign_key="domain.id", index=True)
    instance_id: str = Field(foreign_key="instance.id", max_length=64)
    reason: str = Field(max_length=32, description="domain_locked | external_registrar")
    state: TicketState = word(8, default="open")
    open_key: str | None = Field(
        default=None,
        unique=True,
        max_length=300,
        description="'domain:reason' while open, NULL once resolved: one open ticket per pair.",
    )
    details: dict[str, Any] = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    # Delivery to the configured ticket sink (the webhook); the database sink is the row.
    sink_state: DeliveryState = word(8, default="pending")
    sink_attempts: int = 0
    sink_error: str | None = Field(default=None, max_length=1000)
    # While a run hands the ticket to the sink (outside any transaction): until when it
    # is that run's; a crashed run's tickets are taken up again after it.
    sink_claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(sa_type=UTCDateTime)
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Ticket(TicketBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
