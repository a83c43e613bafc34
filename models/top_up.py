from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlmodel import Field, SQLModel

from models.types import Money, UTCDateTime


class TopUpBase(SQLModel):
    key: str = Field(
        unique=True,
        max_length=64,
        description="The request key: one top-up per request, whatever its account.",
    )
    account_id: str = Field(foreign_key="account.id", index=True, max_length=64)
    amount: Decimal = Field(sa_type=Money)
    created_at: datetime = Field(sa_type=UTCDateTime)


class TopUp(TopUpBase, table=True):
    __tablename__ = "top_up"

    id: int | None = Field(default=None, primary_key=True)
