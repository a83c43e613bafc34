from __future__ import annotations

from decimal import Decimal

from sqlmodel import Field, SQLModel

from models.types import Locale, Money, word


class AccountBase(SQLModel):
    id: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=200)
    email: str = Field(max_length=254)
    phone: str = Field(max_length=16, description="E.164")
    locale: Locale = word(8)
    timezone: str = Field(max_length=64, description="IANA name")
    balance: Decimal = Field(sa_type=Money, default=Decimal("0.00"))


class Account(AccountBase, table=True):
    pass
