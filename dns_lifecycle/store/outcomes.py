"""Recording delivery outcomes in the ledger as the replies arrive.

Used by the run's process when it delivers alone, and by each delivery process of the
pool (``dns_lifecycle.channels.pool``) for the notices it sends: whoever sends a
notice records its outcome, at once (see ``Recorder``).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.workers import shared_turn
from dns_lifecycle.store.notifications import OutcomeWriter, mark_results

# A group of outcomes is written this long after its first one arrived, or as soon as
# it holds this many: about the messages in flight of one process (4 SMTP connections
# and 8 SendSms requests by default).
MAX_WAIT = 0.002
MAX_GROUP = 12


class Recorder:
    """Marks delivery outcomes in the ledger as they arrive, a few rows per transaction.

    ``add`` is the backends' ``on_result``: it runs in the event loop and only queues
    the result; the group is written ``MAX_WAIT`` seconds after its first result, or at
    once when it reaches ``MAX_GROUP``. While a group is written the loop waits. So a
    crash loses the record of at most one group plus the replies in flight, and a
    transaction carries several outcomes: written one by one, they would cost a fifth of
    the delivery's time.
    """

    def __init__(
        self,
        db: Database,
        ids_by_key: dict[str, int],
        clock: Callable[[], datetime],
        *,
        on_recorded: Callable[[list[DeliveryResult]], None] | None = None,
        write_lock: Any = None,
    ) -> None:
        self._db, self._ids, self._clock = db, ids_by_key, clock
        self._on_recorded = on_recorded
        self._write_lock = write_lock
        self._queued: list[DeliveryResult] = []
        self._recorded: set[str] = set()
        self._scheduled = False
        self._error: BaseException | None = None
        self._writer: OutcomeWriter | None = None

    def add(self, result: DeliveryResult) -> None:
        self._queued.append(result)
        if self._error is not None:
            return
        if len(self._queued) >= MAX_GROUP:
            self._write_queued()
        elif not self._scheduled:
            self._scheduled = True
            asyncio.get_running_loop().call_later(MAX_WAIT, self._write_queued)

    def record(self, results: list[DeliveryResult]) -> None:
        """Write ``results`` now (and anything queued), in one transaction."""
        self._queued.extend(results)
        self._write_queued()

    def finish(self, results: list[DeliveryResult]) -> None:
        """Write whatever of ``results`` (the batch's) is not recorded yet."""
        try:
            if self._error is not None:
                raise self._error
            self.record([r for r in results if r.key not in self._recorded])
            if self._error is not None:
                raise self._error
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None

    def abandon(self) -> set[str]:
        """After a batch ended in an error: write what has arrived, if the database
        takes it, and return the keys whose outcome is recorded."""
        try:
            if self._error is None:
                self.record([])
        finally:
            if self._writer is not None:
                self._writer.close()
                self._writer = None
        return set(self._recorded)

    def _write_queued(self) -> None:
        self._scheduled = False
        queued, self._queued = self._queued, []
        # A result still queued when the batch's returned list is recorded is in both.
        group = list({r.key: r for r in queued if r.key not in self._recorded}.values())
        if not group or self._error is not None:
            return
        try:
            with shared_turn(self._write_lock):
                if self._db.in_sandbox:
                    with self._db.session() as session:
                        mark_results(session, group, self._ids, self._clock())
                        session.commit()
                else:
                    if self._writer is None:
                        self._writer = OutcomeWriter(self._db.engine)
                    self._writer.write(group, self._ids, self._clock())
        except BaseException as exc:  # raised again by finish(), outside the loop
            self._error = exc
            return
        self._recorded.update(r.key for r in group)
        if self._on_recorded is not None:
            self._on_recorded(group)


# A delivery process's own database engine, made at its first share.
_WORKER_DB: list[Database] = []


def recorder_in_worker(
    settings: Settings,
    ids_by_key: dict[str, int],
    clock_offset: timedelta,
    report: Callable[[list[DeliveryResult]], None],
    write_lock: Any,
) -> Recorder:
    """The recorder of a delivery process (see channels.pool): the same as the run's
    own, on the process's own engine, on the run's clock. On SQLite the workers take
    turns through ``write_lock``: waiting on it wakes a worker as soon as the other is
    done, where SQLite's own wait for a busy database sleeps milliseconds at a time."""
    if not _WORKER_DB:
        _WORKER_DB.append(Database(settings))
    db = _WORKER_DB[0]
    return Recorder(
        db,
        ids_by_key,
        lambda: datetime.now(UTC) + clock_offset,
        on_recorded=report,
        write_lock=write_lock if db.dialect == "sqlite" else None,
    )
