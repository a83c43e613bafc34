from __future__ import annotations

from decimal import Decimal

from sqlmodel import Field, SQLModel

from models.types import Money


class EditionBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    rank: int = Field(unique=True, description="Higher is more expensive; upgrades go up.")
    monthly_price: Decimal = Field(sa_type=Money)
    yearly_price: Decimal = Field(sa_type=Money)


class Edition(EditionBase, table=True):
    # The price of one period is lifecycle.pricing.edition_price: one rule, one place.
    pass
