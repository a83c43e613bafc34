from __future__ import annotations

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel


class ClusterBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: str = Field(max_length=8, description="paid | free")
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    backend: str = Field(
        default="database",
        max_length=16,
        description="database (records rows, the embedded default) | powerdns",
    )
    api_url: str | None = Field(
        default=None, max_length=300, description="PowerDNS API, e.g. http://127.0.0.1:8081"
    )
    server_id: str = Field(default="localhost", max_length=64)
    nameserver_addresses: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="host or host:port where the name servers answer, for verification",
    )


class Cluster(ClusterBase, table=True):
    pass
