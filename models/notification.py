from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import Channel, DeliveryState, UTCDateTime, word


class NotificationBase(SQLModel):
    key: str = Field(
        unique=True,
        max_length=200,
        description="Ledger key; the unique index makes every notice happen at most once.",
    )
    account_id: str = Field(foreign_key="account.id", max_length=64)
    instance_id: str | None = Field(default=None, foreign_key="instance.id", max_length=64)
    channel: Channel = word(8)
    kind: str = Field(max_length=32)
    offset_days: int | None = None
    ref_at: datetime | None = Field(
        default=None,
        sa_type=UTCDateTime,
        description="The expiry (or other instant) the notice is about; part of its identity.",
    )
    context: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False),
        description="What the notice says, fixed when it was decided.",
    )
    # skipped: overtaken by a later notice for the same expiry, never sent.
    state: DeliveryState = word(8, default="pending")
    attempts: int = 0
    error: str | None = Field(default=None, max_length=1000)
    created_at: datetime = Field(sa_type=UTCDateTime)
    sent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim_token: str | None = Field(default=None, max_length=64)
    claimed_until: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Notification(NotificationBase, table=True):
    __table_args__ = (
        # Delivery scans pending rows in id order.
        Index("ix_notification_state_id", "state", "id"),
        Index("ix_notification_instance_kind", "instance_id", "kind"),
    )

    id: int | None = Field(default=None, primary_key=True)
