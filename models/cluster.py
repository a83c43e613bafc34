from __future__ import annotations

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class ClusterBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8, description="paid | free")
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Cluster(ClusterBase, table=True):
    pass
