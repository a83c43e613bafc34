from __future__ import annotations

from typing import Any

from sqlalchemy import JSON, Column
from sqlmodel import Field, SQLModel

from models.types import ClusterKind, word


class ClusterBase(SQLModel):
    code: str = Field(primary_key=True, max_length=64)
    kind: ClusterKind = word(8)
    nameservers: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    # A name of the cluster backends' registry (dns_lifecycle.channels.clusters), checked
    # with its options by the backend's own model when the inventory is imported.
    backend: str = Field(default="database", max_length=16)
    options: dict[str, Any] = Field(
        default_factory=dict,
        sa_column=Column(JSON, nullable=False, server_default="{}"),
        description="the backend's options, e.g. a PowerDNS server's api_url",
    )
    nameserver_addresses: list[str] = Field(
        default_factory=list,
        sa_column=Column(JSON, nullable=False, server_default="[]"),
        description="host or host:port where the name servers answer, for verification",
    )


class Cluster(ClusterBase, table=True):
    pass
