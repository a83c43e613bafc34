from __future__ import annotations

from datetime import datetime

from sqlmodel import Field, SQLModel

from models.types import RequestAction, UTCDateTime, word


class RequestBase(SQLModel):
    key: str = Field(
        unique=True,
        max_length=64,
        description="The request key: one request per key, whatever its action or subject.",
    )
    action: RequestAction = word(16)
    subject: str = Field(max_length=64, description="The instance or account it acts on.")
    params: str = Field(max_length=100, description="What it asked for, e.g. 'periods=2'.")
    order_id: int | None = Field(default=None, foreign_key="orders.id")
    top_up_id: int | None = Field(default=None, foreign_key="top_up.id")
    created_at: datetime = Field(sa_type=UTCDateTime)


class Request(RequestBase, table=True):
    """A request made with a request key (a manual renewal, an upgrade, an auto-renewal
    switch, a top-up), held so that the key names that request alone."""

    __tablename__ = "request"

    id: int | None = Field(default=None, primary_key=True)
