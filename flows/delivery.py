"""Deliver pending ledger rows: claim a batch, render, send, mark each as it is answered.

Shared by every step: a step writes its notices to the ledger, then delivers what is
pending. Each row is tried at most once per call (the scan moves forward by id), so a
transient failure waits for the next run instead of spinning.

Outcomes are recorded as the replies arrive, not at the end of a batch: the backends
report each one (``on_result``), and the ones that arrived while the last group was
being written go together in the next, so the groups stay as small as the traffic
allows. A crash (SIGKILL) can then repeat only the messages in flight, whose reply had
not been recorded yet (about one per SMTP connection and per SMS request in flight),
never the whole batch; each email carries a Message-ID derived from its ledger key so
a repeat is recognisable. Rows another run holds (claimed, lease not over) are left to
it, and the run says how many and until when.

A run that ends, completed or failed, lets go of every row it still holds, so that the
next run sends them at once; it keeps leased only those whose fate it does not know
(handed to a sender that ended before answering: they may have gone out). Only a
killed run's claims wait for the lease.
"""

from __future__ import annotations

import atexit
import logging
import sys
import threading
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from prefect import get_run_logger, task
from prefect.cache_policies import NO_CACHE
from prefect.exceptions import MissingContextError

from dns_lifecycle.channels import DeliveryResult
from dns_lifecycle.channels.email import BACKENDS as EMAIL_BACKENDS
from dns_lifecycle.channels.email import email_backend
from dns_lifecycle.channels.pool import (
    MIN_PER_PROCESS,
    DeliveryPool,
    OutgoingNotice,
    deliver,
)
from dns_lifecycle.channels.render import Renderer
from dns_lifecycle.channels.sms import BACKENDS as SMS_BACKENDS
from dns_lifecycle.channels.sms import sms_backend
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.workers import process_count, shared_turn
from dns_lifecycle.store.notifications import (
    PendingFilter,
    claim_pending,
    held_by_other_runs,
    let_go,
    load_outgoing,
    skip_overtaken,
)
from dns_lifecycle.store.outcomes import Recorder, recorder_in_worker
from flows.common import RunContext, Tally, planned_word, run_async, wall_clock

LEASE = timedelta(minutes=15)
ALL_PENDING = PendingFilter()


def deliver_pending(ctx: RunContext, filt: PendingFilter = ALL_PENDING) -> Tally:
    """Send every pending notice matching ``filt``; returns what happened per channel.

    With a pool, the next batch is claimed while the workers send the one before, and
    handed to them before they are done with it: they do not wait for the run's process
    between batches. At most two batches are handed out and not finished."""
    tally = Tally()
    token = uuid.uuid4().hex
    unknown: set[int] = set()  # ledger ids given to a sender that ended mid-way
    here = _HereDelivery(ctx, unknown)
    pool: DeliveryPool | None = None
    # (channel, ledger id) by key, handed to the pool, no outcome yet
    handed: dict[str, tuple[str, int]] = {}
    after_id, lease_until = 0, ctx.clock() + LEASE
    try:
        while batch := _claim(ctx, filt, token, after_id, tally, _claim_lock(ctx, pool)):
            after_id = batch.last_id
            if not batch.notices:
                continue
            if pool is None:
                pool = _pool_for(ctx.settings, ctx.dry_run, len(batch.notices))
            if pool is None:
                here.deliver(batch, tally)
                continue
            pool.submit(batch.notices, batch.ids_by_key, ctx.clock() - wall_clock())
            lease_until = batch.lease_until
            handed.update((n.key, (n.channel, batch.ids_by_key[n.key])) for n in batch.notices)
            # This batch waits its turn in the workers while the one before is finished.
            if not _count_pool(pool.wait(unfinished=1), handed, lease_until, tally, unknown):
                _release(pool, drop=True)
                pool = None
        if pool is not None and not _count_pool(pool.wait(), handed, lease_until, tally, unknown):
            _release(pool, drop=True)
            pool = None
    except BaseException:
        if pool is not None:
            # Shares may still be queued in it: it must not serve the next run so.
            pool.kill()
            _release(pool, drop=True)
            pool = None
        # What the pool had and did not report may have gone out.
        unknown.update(row_id for _, row_id in handed.values())
        raise
    finally:
        if pool is not None:
            _release(pool)
        _let_go(ctx, token, unknown)
    report_held_rows(ctx, filt, token, tally)
    return tally


@dataclass(frozen=True)
class _Batch:
    notices: list[OutgoingNotice]  # without the ones overtaken since they were queued
    ids_by_key: dict[str, int]
    last_id: int  # of every row claimed, for the next claim
    lease_until: datetime


def _claim(
    ctx: RunContext,
    filt: PendingFilter,
    token: str,
    after_id: int,
    tally: Tally,
    write_lock: Any,
) -> _Batch | None:
    """Claim the next batch after ``after_id``; None when there is none left."""
    now = ctx.clock()
    with shared_turn(write_lock), ctx.db.session() as session:
        ids = claim_pending(
            session,
            token=token,
            now=now,
            lease_until=now + LEASE,
            after_id=after_id,
            limit=ctx.batch_size,
            filt=filt,
        )
        rows = load_outgoing(session, ids)
        # Skipping is final: only what has been overtaken by the clock, not by the slack.
        stale = skip_overtaken(
            session, ids, as_of=ctx.acting_as_of(), grace_days=ctx.settings.grace_days
        )
        session.commit()
    if not rows:
        return None
    # Overtaken since it was queued (a later notice, a renewal, the expiry): not sent.
    tally.add("notices_skipped_overtaken", len(stale))
    fresh = [row for row in rows if row.id not in stale]
    return _Batch(
        [
            OutgoingNotice(
                r.key, r.channel, r.kind, r.context, r.email, r.phone, r.created_at, ctx.as_of
            )
            for r in fresh
        ],
        {row.key: row.id for row in fresh},
        rows[-1].id,
        now + LEASE,
    )


def _let_go(ctx: RunContext, token: str, unknown: set[int]) -> None:
    """Let go of the rows this run still holds (see the module); never raises, so that
    it cannot hide why the run ended: if it fails, the lease runs out instead."""
    try:
        with ctx.db.session() as session:
            let_go(session, token=token, keep=unknown)
            session.commit()
    except Exception as exc:
        _logger().warning(
            "could not let go of this run's pending notices (%s: %s); the next run sends "
            "them once their lease (%s) is over",
            type(exc).__name__,
            exc,
            LEASE,
        )


def _claim_lock(ctx: RunContext, pool: DeliveryPool | None) -> Any:
    """On SQLite a claim takes its turn with the pool's writes through their lock: a
    worker waiting on it wakes as soon as the claim is done, where SQLite's own wait
    for a busy database sleeps milliseconds at a time. None: no turn to take."""
    return pool.write_lock if pool is not None and ctx.db.dialect == "sqlite" else None


class _HereDelivery:
    """Delivery in the run's own process, its backends made at the first batch."""

    def __init__(self, ctx: RunContext, unknown: set[int]) -> None:
        self._ctx = ctx
        self._parts: tuple[Renderer, Any, Any] | None = None
        self._unknown = unknown  # where to add the rows whose fate is unknown

    def deliver(self, batch: _Batch, tally: Tally) -> None:
        ctx = self._ctx
        if self._parts is None:
            # A dry run goes through the same motions; its backends only count.
            self._parts = (
                Renderer.for_settings(ctx.settings),
                email_backend(ctx.settings, dry_run=ctx.dry_run),
                sms_backend(ctx.settings, dry_run=ctx.dry_run),
            )
        renderer, emails, texts = self._parts
        recorder = Recorder(ctx.db, batch.ids_by_key, ctx.clock)
        try:
            results = run_async(
                deliver(
                    batch.notices,
                    renderer=renderer,
                    settings=ctx.settings,
                    emails=emails,
                    texts=texts,
                    on_result=recorder.add,
                )
            )
            recorder.finish(results)
        except BaseException:
            # Sending had begun: what has no recorded outcome may have gone out.
            recorded = recorder.abandon()
            self._unknown.update(i for k, i in batch.ids_by_key.items() if k not in recorded)
            raise
        channel_of = {n.key: n.channel for n in batch.notices}
        for result in results:
            _count(tally, channel_of[result.key], result, dry_run=ctx.dry_run)


def _count_pool(
    collected: tuple[list[DeliveryResult], str | None],
    handed: dict[str, tuple[str, int]],
    lease_until: datetime,
    tally: Tally,
    unknown: set[int],
) -> bool:
    """Count what the pool recorded; False (and a failure in ``tally``) if a worker
    ended in the middle: what it had not recorded stays leased (added to ``unknown``)."""
    results, problem = collected
    for result in results:
        given = handed.pop(result.key, None)
        if given is not None:  # each outcome is counted once
            _count(tally, given[0], result)
    if not problem:
        return True
    tally.fail(
        f"{problem}: {len(handed)} notice(s) have no recorded outcome (sent or not, "
        f"unknown) and stay leased until {lease_until:%Y-%m-%d %H:%M:%S} UTC; "
        "the first run after that sends them"
    )
    unknown.update(row_id for _, row_id in handed.values())
    handed.clear()
    return False


def _count(tally: Tally, channel: str, result: DeliveryResult, *, dry_run: bool = False) -> None:
    # A dry run's backends only count: what they would send is planned, not sent.
    tally.add(f"{channel}_{planned_word(result.outcome, dry_run)}")
    if result.outcome != "sent":
        # "key (outcome): why"; a key followed by a colon would end in ":email:",
        # which Prefect's console shows as an emoji.
        tally.fail(f"{result.key} ({result.outcome}): {result.error}")


# One pool per settings, for the life of the process: the daily run's steps share it,
# and starting its processes (imports, templates) costs about a second each.
_POOLS: dict[str, DeliveryPool] = {}
_POOLS_LOCK = threading.Lock()


def _pool_for(settings: Settings, dry_run: bool, notices: int) -> DeliveryPool | None:
    """The pool to deliver ``notices`` with, its lock held; None to deliver here: a dry
    run, one process asked for, a backend that reaches no other system (it writes
    files or keeps messages in memory: nothing to gain, and memory is this process's),
    a batch too small to share, or the pool busy with another run in this process."""
    processes = process_count(settings.delivery_processes)
    # Processes pay off only when a backend waits on another system, and may be used
    # only when neither keeps its messages in this process (the memory backends'
    # outbox), where the pool's processes would lose them.
    email, sms = settings.email_backend, settings.sms_backend
    reaches_out = EMAIL_BACKENDS.external(email) or SMS_BACKENDS.external(sms)
    in_process = EMAIL_BACKENDS.in_process(email) or SMS_BACKENDS.in_process(sms)
    if (
        dry_run
        or processes < 2
        or not reaches_out
        or in_process
        or notices < MIN_PER_PROCESS * processes
    ):
        return None
    key = settings.model_dump_json()
    with _POOLS_LOCK:
        pool = _POOLS.get(key)
        if pool is not None and not pool.alive():
            del _POOLS[key]
            pool.close()
            pool = None
        if pool is None:
            pool = _POOLS[key] = DeliveryPool(settings, processes, recorder_in_worker)
    return pool if pool.lock.acquire(blocking=False) else None


def warm_up(settings: Settings) -> None:
    """Start the delivery processes now, if the settings will use them: they boot (about
    a second each) while the run decides what to send, not at its first batch."""
    pool = _pool_for(settings, False, sys.maxsize)
    if pool is not None:
        _release(pool)


def _release(pool: DeliveryPool, *, drop: bool = False) -> None:
    """Let another run in this process use ``pool``; ``drop``: end it first (one of its
    workers ended), so that the next batch starts a new one."""
    if drop:
        with _POOLS_LOCK:
            for key, known in list(_POOLS.items()):
                if known is pool:
                    del _POOLS[key]
        pool.close()
    pool.lock.release()


@atexit.register
def _close_pools() -> None:
    with _POOLS_LOCK:
        pools = list(_POOLS.values())
        _POOLS.clear()
    for pool in pools:
        pool.close()


def report_held_rows(ctx: RunContext, filt: PendingFilter, token: str, tally: Tally) -> None:
    """Say how many pending rows another run holds, and until when: they are its to
    send (it may be alive), and the first run after their lease sends them if not."""
    now = ctx.clock()
    with ctx.db.session() as session:
        held, until = held_by_other_runs(session, token=token, now=now, filt=filt)
    if not held:
        return
    note = (
        f"{held:,} pending notice(s) are held by another run until {until:%Y-%m-%d %H:%M:%S} "
        "UTC (its delivery lease): left to it; if that run has died, the first run after "
        "that time sends them"
    )
    tally.add("held_by_another_run", held)
    tally.note(note)
    _logger().warning(note)


def _logger() -> logging.Logger | logging.LoggerAdapter:
    try:
        return get_run_logger()
    except MissingContextError:  # a plain call, outside a Prefect run
        return logging.getLogger(__name__)


@task(name="deliver-notifications", cache_policy=NO_CACHE)
def deliver_task(ctx: RunContext, filt: PendingFilter = ALL_PENDING) -> Tally:
    return deliver_pending(ctx, filt)
