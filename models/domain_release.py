from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Column, Index
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class DomainReleaseBase(SQLModel):
    """Where one domain's release stands: each stage is recorded before the next starts."""

    domain_id: int = Field(foreign_key="domain.id", primary_key=True, ondelete="CASCADE")
    instance_id: str = Field(foreign_key="instance.id", index=True, max_length=64)
    stage: str = Field(
        default="pending",
        max_length=12,
        description="pending | read | created | verified | switching | delegated | "
        "draining | deleted",
    )
    # The zone as the paid cluster served it (SOA left out), [type, host, value, ttl] each.
    records: list[Any] | None = Field(default=None, sa_column=Column(JSON, nullable=True))
    delegation: str | None = Field(
        default=None, max_length=32, description="switched, or the reason of its ticket"
    )
    switch_task: str | None = Field(default=None, max_length=200)
    verify_failures: int = 0
    blocked: str | None = Field(
        default=None, max_length=32, description="reason of the ticket a person must close"
    )
    error: str | None = Field(default=None, max_length=1000)
    verified_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    delegated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    drain_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    deleted_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    updated_at: datetime = Field(sa_type=UTCDateTime)


class DomainRelease(DomainReleaseBase, table=True):
    __tablename__ = "domain_release"
    # The drain scan: rows not yet deleted, by stage.
    __table_args__ = (Index("ix_domain_release_stage", "stage"),)
