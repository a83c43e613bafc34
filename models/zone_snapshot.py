from __future__ import annotations

from datetime import datetime

from sqlalchemy import Text
from sqlmodel import Field, SQLModel

from models.types import UTCDateTime


class ZoneSnapshotBase(SQLModel):
    instance_id: str = Field(foreign_key="instance.id", index=True, max_length=64)
    domain_name: str = Field(max_length=253)
    zone_text: str = Field(sa_type=Text, description="RFC 1035 master file of the domain")
    created_at: datetime = Field(sa_type=UTCDateTime)


class ZoneSnapshot(ZoneSnapshotBase, table=True):
    __tablename__ = "zone_snapshot"

    id: int | None = Field(default=None, primary_key=True)
