from __future__ import annotations

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from models.types import ClusterKind, word


class ClusterBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: ClusterKind = word(8)
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Cluster(ClusterBase, table=True):
    pass
