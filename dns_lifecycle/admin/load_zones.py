"""Put an inventory's zones onto a live cluster (for demos, tests and a first migration).

Never part of ``import``: a live cluster's server is the truth about its zones, and
loading overwrites nothing there. A zone the server has already is left alone and
counted; the others are created from the inventory's records, apex NS = the cluster's
name servers.
"""

from __future__ import annotations

from dataclasses import dataclass

from dns_lifecycle.channels.clusters import ClusterConfig, cluster_backend
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import Refused
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.expiry import zone_content
from dns_lifecycle.store.release import cluster_by_code, zones_on_cluster


@dataclass
class Loaded:
    created: int = 0
    present: int = 0
    records: int = 0


def load_zones(settings: Settings, db: Database, cluster_code: str) -> Loaded:
    """Create every zone the inventory gives ``cluster_code`` on its server."""
    with db.session() as session:
        config = ClusterConfig.of(cluster_by_code(session, cluster_code))
        zones = zones_on_cluster(session, cluster_code)
    if not config.live:
        raise Refused(
            f"cluster {cluster_code} is a database cluster: its zones are its records "
            "already; load zones onto a cluster whose backend is powerdns"
        )
    loaded = Loaded()
    backend = cluster_backend(config, settings, db)
    try:
        for name, records in zones.items():
            kept, ns_ttl = zone_content(records)
            if backend.create_zone(name, kept, ns_ttl):
                backend.flush(name)
                loaded.created += 1
                loaded.records += len(kept)
            else:
                loaded.present += 1
    finally:
        backend.close()
    return loaded
