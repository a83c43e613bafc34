"""DNS clusters: where a domain's zone is served (rule 6).

One interface, and the registry of backends (``BACKENDS``), chosen per cluster by its
inventory entry, whose ``options`` the backend's own model checks:

- ``database`` (the embedded default, no options): the zone is the domain's rows in
  ``record`` with the cluster's code; no DNS server is involved;
- ``powerdns`` (``PowerDnsOptions``: api_url, server_id, catalog): a PowerDNS
  Authoritative server's HTTP API (``/api/v1/servers/{server_id}/zones``), whose data
  is the truth about the zone.

A dry run wraps the backend in ``DryRunCluster`` (``dry_run.py``): reads are real,
writes only counted.

A zone is handed over as its records (``Rr``, SOA left out: each server writes its own),
the apex NS records apart: ``create_zone`` sets them to the cluster's name servers.

Every call is idempotent and raises, for a change that did not happen,
``ClusterUnavailable`` (try again later; ``ClusterSwitchedOff`` once the server's
breaker stopped the run's calls to it), ``ClusterRefused`` (a person must look at the
zone), ``ClusterMisconfigured`` (the cluster's API key or server_id is wrong: a fault
of the run, not of the zone), or ``ZoneFileError`` (a record no name server can take).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from dns_lifecycle.channels.registry import Backend, Registry
from dns_lifecycle.lifecycle.zonefile import Rr

if TYPE_CHECKING:
    from dns_lifecycle.channels.clusters.breaker import Breaker
    from dns_lifecycle.core.db import Database
    from dns_lifecycle.core.settings import Settings

__all__ = ["BACKENDS", "ClusterBackend", "ClusterConfig", "WriteLock", "cluster_backend"]


@dataclass(frozen=True)
class ClusterConfig:
    """What the release needs to know of a cluster (a row of ``cluster``, detached)."""

    code: str
    kind: str
    nameservers: tuple[str, ...]
    backend: str = "database"
    nameserver_addresses: tuple[str, ...] = ()
    # The backend's options as stored; the backend reads them through its own model.
    options: dict[str, Any] = field(default_factory=dict, hash=False)

    @classmethod
    def of(cls, row: Any) -> ClusterConfig:
        return cls(
            code=row.code,
            kind=row.kind,
            nameservers=tuple(row.nameservers),
            backend=row.backend,
            nameserver_addresses=tuple(row.nameserver_addresses or ()),
            options=dict(row.options or {}),
        )

    @property
    def live(self) -> bool:
        """Whether real name servers answer for this cluster (so resolvers cache it):
        its backend reaches another system."""
        return BACKENDS.external(self.backend)


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


# name -> Backend: ``factory(config, settings, db, write_lock, breaker)`` builds it;
# ``options`` checks a cluster's options; ``dry_run(real)`` wraps it for a dry run.
ClusterFactory = Callable[..., ClusterBackend]
BACKENDS: Registry[ClusterFactory] = Registry("cluster", "the cluster's backend")
DRY_RUN = "dns_lifecycle.channels.clusters.dry_run:DryRunCluster"
BACKENDS.register(
    "database",
    Backend("dns_lifecycle.channels.clusters.database:open_cluster", dry_run=DRY_RUN),
)
BACKENDS.register(
    "powerdns",
    Backend(
        "dns_lifecycle.channels.clusters.powerdns:open_cluster",
        options="dns_lifecycle.channels.clusters.powerdns:PowerDnsOptions",
        external=True,
        dry_run=DRY_RUN,
    ),
)


def cluster_backend(
    config: ClusterConfig,
    settings: Settings,
    db: Database,
    *,
    write_lock: WriteLock | None = None,
    breaker: Breaker | None = None,
    dry_run: bool = False,
) -> ClusterBackend:
    """The backend serving ``config``'s cluster; ``write_lock``, when given, is held
    around each write to a live server (shared by the processes writing to it), and
    ``breaker`` (else one of its own) stops its calls to a server that stopped
    answering. In a dry run, the backend wrapped in its dry-run twin."""
    backend = BACKENDS.factory(config.backend)(config, settings, db, write_lock, breaker)
    twin = BACKENDS.dry_run(config.backend) if dry_run else None
    return twin(backend) if twin is not None else backend
