"""The dry-run twin of every cluster backend: reads are real (GET), writes only counted."""

from __future__ import annotations

from dns_lifecycle.channels.clusters import ClusterBackend
from dns_lifecycle.lifecycle.zonefile import Rr


class DryRunCluster:
    """A cluster in a dry run: reads are real (GET), writes are only counted."""

    def __init__(self, real: ClusterBackend) -> None:
        self.config = real.config
        self._real = real
        # Zones this dry run would have created: there is nothing on the server to ask.
        self.pretended: set[str] = set()

    def read_zone(self, zone: str) -> list[Rr] | None:
        return self._real.read_zone(zone)

    def create_zone(self, zone: str, records: list[Rr], ns_ttl: int) -> bool:
        # A zone already there is what the real run finds: "exists", so that the plan
        # compares it as the run does (a conflict, not "switched").
        if self._real.read_zone(zone):  # the database clusters hold a zone as its rows
            return False
        self.pretended.add(zone)
        return True

    def replace_apex_ns(self, zone: str, nameservers: list[str], ttl: int) -> None:
        return None

    def delete_zone(self, zone: str) -> bool:
        return True

    def flush(self, zone: str) -> None:
        return None

    def close(self) -> None:
        self._real.close()
