from __future__ import annotations

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class DomainBase(SQLModel):
    name: str = Field(unique=True, max_length=253, description="A-label (punycode), lower case")
    instance_id: str = Field(foreign_key="instance.id", index=True, max_length=64)
    registrar: str = Field(max_length=64, description="hichina or another registrar's name")
    epp_statuses: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))


class Domain(DomainBase, table=True):
    id: int | None = Field(default=None, primary_key=True)
