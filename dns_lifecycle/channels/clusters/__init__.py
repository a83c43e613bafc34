"""DNS clusters: where a domain's zone is served (rule 6).

One interface, two backends, chosen per cluster by its inventory entry:

- ``database`` (the embedded default): the zone is the domain's rows in ``record``
  with the cluster's code; no DNS server is involved;
- ``powerdns``: a PowerDNS Authoritative server's HTTP API
  (``/api/v1/servers/{server_id}/zones``), whose data is the truth about the zone.

A zone is handed over as its records (``Rr``, SOA left out: each server writes its own),
the apex NS records apart: ``create_zone`` sets them to the cluster's name servers.

Every call is idempotent and raises, for a change that did not happen,
``ClusterUnavailable`` (try again later; ``ClusterSwitchedOff`` once the server's
breaker stopped the run's calls to it), ``ClusterRefused`` (a person must look at the
zone), ``ClusterMisconfigured`` (the cluster's API key or server_id is wrong: a fault
of the run, not of the zone), or ``ZoneFileError`` (a record no name server can take).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Protocol

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.zonefile import Rr

if TYPE_CHECKING:
    from dns_lifecycle.channels.clusters.breaker import Breaker
    from dns_lifecycle.core.db import Database
    from dns_lifecycle.core.settings import Settings

__all__ = ["BACKENDS", "ClusterBackend", "ClusterConfig", "WriteLock", "cluster_backend"]

BACKENDS = ("database", "powerdns")


@dataclass(frozen=True)
class ClusterConfig:
    """What the release needs to know of a cluster (a row of ``cluster``, detached)."""

    code: str
    kind: str
    nameservers: tuple[str, ...]
    backend: str = "database"
    api_url: str | None = None
    server_id: str = "localhost"
    nameserver_addresses: tuple[str, ...] = ()
    catalog: str | None = None

    @classmethod
    def of(cls, row: Any) -> ClusterConfig:
        return cls(
            code=row.code,
            kind=row.kind,
            nameservers=tuple(row.nameservers),
            backend=row.backend,
            api_url=row.api_url,
            server_id=row.server_id,
            nameserver_addresses=tuple(row.nameserver_addresses or ()),
            catalog=row.catalog,
        )

    @property
    def live(self) -> bool:
        """Whether real name servers answer for this cluster (so resolvers cache it)."""
        return self.backend != "database"


class ClusterBackend(Protocol):
    config: ClusterConfig

    def read_zone(self, zone: str) -> list[Rr] | None:
        """Every record the cluster holds for ``zone`` except SOA (disabled ones and
        record-set comments included, where it keeps them); None when it has no such zone.
        Raises ``ZoneFileError`` naming the records it holds that cannot be read."""
        ...

    def create_zone(self, zone: str, records: list[Rr], ns_ttl: int) -> bool:
        """Create ``zone`` with ``records`` and apex NS = the cluster's name servers.
        False (and nothing changed) when the zone exists already."""
        ...

    def replace_apex_ns(self, zone: str, nameservers: list[str], ttl: int) -> None:
        """Make the zone's apex NS records exactly ``nameservers``."""
        ...

    def delete_zone(self, zone: str) -> bool:
        """Delete ``zone``; False when there was none."""
        ...

    def flush(self, zone: str) -> None:
        """Drop whatever the server cached about ``zone`` (answers given before it existed)."""
        ...

    def close(self) -> None: ...


class WriteLock(Protocol):
    """A lock of the threading or multiprocessing kind."""

    def acquire(self, block: bool, timeout: float, /) -> bool: ...

    def release(self) -> None: ...


def cluster_backend(
    config: ClusterConfig,
    settings: Settings,
    db: Database,
    *,
    write_lock: WriteLock | None = None,
    breaker: Breaker | None = None,
) -> ClusterBackend:
    """The backend serving ``config``'s cluster; ``write_lock``, when given, is held
    around each write to a live server (shared by the processes writing to it), and
    ``breaker`` (else one of its own) stops its calls to a server that stopped
    answering."""
    if config.backend == "powerdns":
        from dns_lifecycle.channels.clusters.powerdns import PowerDnsCluster

        key = settings.cluster_api_keys.get(config.code)
        if key is None:
            raise InputError(
                f"cluster {config.code} is a powerdns cluster without an API key: add "
                f'"{config.code}" to DNSL_CLUSTER_API_KEYS'
            )
        from dns_lifecycle.channels.clusters.breaker import Breaker

        return PowerDnsCluster(
            config,
            key,
            settings.cluster_timeout_seconds,
            write_lock,
            breaker or Breaker(settings.cluster_breaker_timeouts),
        )
    if config.backend == "database":
        from dns_lifecycle.channels.clusters.database import DatabaseCluster

        return DatabaseCluster(config, db)
    raise InputError(
        f"cluster {config.code} has the unknown backend {config.backend!r}: use one of "
        f"{', '.join(BACKENDS)}"
    )
