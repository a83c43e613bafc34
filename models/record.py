from __future__ import annotations

from sqlmodel import Field, SQLModel

from models.types import RecordType, word


class RecordBase(SQLModel):
    domain_id: int = Field(foreign_key="domain.id", index=True)
    cluster_code: str = Field(foreign_key="cluster.code", max_length=64)
    type: RecordType = word(10)
    host: str = Field(max_length=253)
    value: str = Field(max_length=4000)
    ttl: int = Field(ge=1, le=2_147_483_647)


class Record(RecordBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
