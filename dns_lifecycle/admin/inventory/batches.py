"""Batches for the bulk statements of import and export."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

# Rows per IN (...) list and per bulk statement: below SQLite's variable limit.
CHUNK = 500


def chunks(items: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    """``items`` in lists of at most ``size``."""
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch
