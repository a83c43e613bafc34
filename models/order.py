from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel import Field, SQLModel

from models.types import Money, OrderKind, OrderState, UTCDateTime, word


class OrderBase(SQLModel):
    key: str = Field(
        unique=True,
        max_length=200,
        description="Idempotency key: one order per (instance, kind, period).",
    )
    instance_id: str = Field(foreign_key="instance.id", index=True, max_length=64)
    kind: OrderKind = word(16)
    period_start: datetime = Field(sa_type=UTCDateTime)
    period_end: datetime = Field(sa_type=UTCDateTime)
    amount: Decimal = Field(sa_type=Money)
    state: OrderState = word(8, default="pending")
    reason: str | None = Field(default=None, max_length=500)
    edition_code: str | None = Field(default=None, max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime)
    paid_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Order(OrderBase, table=True):
    __tablename__ = "orders"  # "order" is an SQL keyword

    id: int | None = Field(default=None, primary_key=True)
