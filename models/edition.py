from __future__ import annotations

from decimal import Decimal

from sqlmodel import Field, SQLModel

from models.types import Money


class EditionBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    rank: int = Field(
        unique=True, ge=0, le=2_147_483_647, description="Higher is more expensive; upgrades go up."
    )
    monthly_price: Decimal = Field(sa_type=Money)
    yearly_price: Decimal = Field(sa_type=Money)


class Edition(EditionBase, table=True):
    """An edition; the price of one period is ``lifecycle.pricing.edition_price``."""
