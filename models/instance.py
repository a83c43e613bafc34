from __future__ import annotations

from datetime import datetime, time

from sqlalchemy import Index, Time
from sqlmodel import Field, SQLModel

from models.types import BillingCycle, InstanceState, UTCDateTime, word


class InstanceBase(SQLModel):
    id: str = Field(primary_key=True, max_length=64)
    account_id: str = Field(foreign_key="account.id", index=True, max_length=64)
    edition_code: str = Field(foreign_key="edition.code", max_length=64)
    billing_cycle: BillingCycle = word(8)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    anchor_day: int = Field(
        ge=1, le=31, description="Day of month the subscription renews on (kept across renewals)."
    )
    anchor_time: time | None = Field(
        default=None,
        sa_type=Time,
        description="Local time of day the subscription renews at, kept only while a "
        "daylight-saving gap has moved the expiry off it (None: the expiry's own).",
    )
    auto_renew: bool = False
    state: InstanceState = word(8, default="active")
    cluster_code: str = Field(foreign_key="cluster.code", max_length=64)
    released_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class Instance(InstanceBase, table=True):
    # Every daily scan is "instances in state S whose expiry lies in a window".
    __table_args__ = (Index("ix_instance_state_expires", "state", "expires_at"),)
