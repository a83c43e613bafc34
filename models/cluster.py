from __future__ import annotations

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from models.types import ClusterBackendName, ClusterKind, word


class ClusterBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: ClusterKind = word(8)
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    backend: ClusterBackendName = word(16, default="database")
    api_url: str | None = Field(
        default=None, max_length=300, description="PowerDNS API, e.g. http://127.0.0.1:8081"
    )
    server_id: str = Field(default="localhost", max_length=64)
    nameserver_addresses: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="host or host:port where the name servers answer, for verification",
    )
    catalog: str | None = Field(
        default=None,
        max_length=253,
        description="producer zone (RFC 9432) the cluster's zones join, for its secondaries",
    )


class Cluster(ClusterBase, table=True):
    pass
