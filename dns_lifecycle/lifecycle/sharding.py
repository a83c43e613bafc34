"""Which shard an instance belongs to, when the daily run is split across workers.

A stable hash of the instance id (not Python's per-process ``hash``) so that every
worker on every machine agrees. Shards only divide the work: what makes each action
happen once is the database (unique keys, rows locked and re-checked), so
overlapping or rerun shards are safe.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass


@dataclass(frozen=True)
class Shard:
    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= 1024 or not 0 <= self.index < self.count:
            raise ValueError(
                f"shard {self.index} of {self.count}: the count must be 1-1024 and the "
                "index 0 to count - 1"
            )

    def owns(self, instance_id: str) -> bool:
        return zlib.crc32(instance_id.encode()) % self.count == self.index
