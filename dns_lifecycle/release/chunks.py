"""Domains through the stages a chunk at a time, on a few threads (rule 6).

``run_chunks`` takes domains through the stages (``dns_lifecycle.release.stages``) a
chunk at a time on a few threads: each stage's outcomes of a chunk are recorded in one
transaction (``store.release_outcomes.record_outcomes``) before any of its domains makes its next
call. A chunk's domains whose free copy a secondary does not serve yet wait for it
(``dns_lifecycle.release.wait``) once the others are done.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime

from dns_lifecycle.core.errors import ClusterError
from dns_lifecycle.core.run import RunContext
from dns_lifecycle.lifecycle.expiry import STAGES, next_action
from dns_lifecycle.release.report import SharedReport
from dns_lifecycle.release.stages import Stages, Tools, record
from dns_lifecycle.release.wait import WAITING, catch_up
from dns_lifecycle.store import release as store
from dns_lifecycle.store import release_outcomes as outcomes

# How many domains one worker takes through the stages together: their outcomes of a
# stage are recorded in one transaction, before any of them goes on to its next call.
# A crash repeats at most this many (idempotent) cluster calls per worker.
CHUNK = 16


def domain_chunks(ctx: RunContext, instance_ids: list[str]) -> list[list[store.DomainWork]]:
    """The domains of these instances, in chunks of ``CHUNK``."""
    with ctx.db.session() as session:
        works = store.domain_work(session, instance_ids)
    return [works[i : i + CHUNK] for i in range(0, len(works), CHUNK)]


def run_chunks(
    ctx: RunContext,
    tools: Tools,
    chunks: Iterable[list[store.DomainWork]],
    report: SharedReport,
) -> None:
    """Move every domain of ``chunks`` as far as it can go in this run, each of
    ``release_workers`` threads taking the next chunk as it is done with one: while one
    waits for a server, another uses the other server or the database. ``chunks`` may
    be handed out by another process as they are asked for."""
    stages = Stages(ctx, tools, report)
    source = iter(chunks)
    lock = threading.Lock()

    def work() -> None:
        while True:
            with lock:
                chunk = next(source, None)
            if chunk is None:
                return
            _advance_chunk(ctx, stages, chunk, report)

    # A dry run's sandbox is one connection: one chunk at a time there.
    workers = 1 if ctx.dry_run else ctx.settings.release_workers
    if workers <= 1:
        work()
        return
    with ThreadPoolExecutor(max_workers=workers) as pool:
        for done in [pool.submit(work) for _ in range(workers)]:
            done.result()


def _advance_chunk(
    ctx: RunContext,
    stages: Stages,
    works: list[store.DomainWork],
    report: SharedReport,
    wait: bool = True,
) -> None:
    """A few domains, stage after stage: each domain's outcome of a stage is recorded
    before its next call. Those whose free copy a secondary does not serve yet wait for
    it (``wait``) once the others are done, and go on if it catches up."""
    moving = works
    waiting: dict[int, store.DomainWork] = {}
    lagging: dict[int, set[str]] = {}
    for _ in range(len(STAGES) + 1):
        now = ctx.clock()
        # A drain ends in real time (caches expire by the clock). A dry run may plan a
        # moment ahead: it plans the deletions due by then, as a real run then would.
        decided_at = max(now, ctx.as_of) if ctx.dry_run else now
        planned = [
            (w, action)
            for w in moving
            if (
                action := next_action(
                    w.stage,
                    blocked=w.blocked is not None,
                    drain_until=w.drain_until,
                    now=decided_at,
                )
            )
            is not None
        ]
        if not planned:
            break
        recorded: list[outcomes.Outcome] = []
        unrecorded: list[outcomes.Outcome] = []
        for w, action in planned:
            unrecorded.append(_attempt(stages, w, action, now, report))
            # A crash repeats at most the one switch in flight at an outside registrar.
            if action == "delegate" and stages.tools.registrar.external:
                recorded += record(ctx, unrecorded, now, report)
                unrecorded = []
        recorded += record(ctx, unrecorded, now, report)
        for o in recorded:
            if isinstance(o, outcomes.Waiting):
                waiting[o.work.domain_id], lagging[o.work.domain_id] = o.work, set(o.lagging)
        # Only a domain that moved on to its next stage goes on in this run.
        moving = [o.moved() for o in recorded if o.moves_on]
    if waiting and not wait:
        report.add(WAITING, len(waiting))
    elif waiting and (
        caught := catch_up(
            stages.tools.free,
            stages.tools.secondaries,
            stages.settings,
            report,
            list(waiting.values()),
            lagging,
        )
    ):
        _advance_chunk(ctx, stages, caught, report, wait=False)


def _attempt(
    stages: Stages, w: store.DomainWork, action: str, now: datetime, report: SharedReport
) -> outcomes.Outcome:
    try:
        outcome: outcomes.Outcome = getattr(stages, action)(w, now)
        return outcome
    except ClusterError as exc:
        report.add("release_failures")
        message = f"{type(exc).__name__}: {exc}"
        if exc.cause is None:
            report.fail(f"instance {w.instance_id}: domain {w.name}: {action}: {message}")
        else:  # a fault of the cluster, said once for all the domains it stopped
            report.cause(exc.cause, f"instance {w.instance_id} domain {w.name} ({action})")
        return outcomes.failed(w, message)
    except Exception as exc:  # one domain's failure never stops the others
        report.add("release_failures")
        message = f"{type(exc).__name__}: {exc}"
        report.fail(f"instance {w.instance_id}: domain {w.name}: {action}: {message}")
        return outcomes.failed(w, message)
