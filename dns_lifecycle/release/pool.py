"""Releasing domains in several processes, for live clusters.

On live clusters a domain's release is CPU work in this process: five HTTP calls,
parsing its records, asking the free name servers and reading their answers. One
process runs that on one core whatever its threads. ``ReleasePool`` adds
``release_processes - 1`` worker processes (``core.workers``: they end with the run's
process), each with its own database connections, cluster clients and registrar, and
hands each a share of a batch's chunks; the run's process takes its own share. Each
process records its domains' outcomes exactly as a run alone does, and writes to a
PowerDNS server only under that server's lock, which all of them share.

Not used for a dry run (its sandbox is one connection), for the ``database`` clusters
(the work is database writes, which take turns anyway), for a clock other than the
wall clock (tests), or for a batch too small to be worth a hand-out.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from datetime import datetime
from multiprocessing.connection import Connection
from typing import Any

from dns_lifecycle.channels.clusters.breaker import Breaker
from dns_lifecycle.core.db import Database
from dns_lifecycle.core.run import RunContext, StepReport, wall_clock
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.core.workers import Worker, process_count, start_worker
from dns_lifecycle.release.chunks import domain_chunks, run_chunks
from dns_lifecycle.release.report import STEP, Causes, SharedReport
from dns_lifecycle.release.stages import Tools
from dns_lifecycle.store.release import DomainWork

# A process takes a share only if it gets at least this many chunks: a worker's start
# costs about as much as releasing a chunk.
MIN_CHUNKS_PER_PROCESS = 4

Chunks = list[list[DomainWork]]


class ReleasePool:
    """The run's process and, once a batch is worth it, its release workers; see the
    module docstring."""

    def __init__(self, ctx: RunContext) -> None:
        self.ctx = ctx
        self.tools = tools = Tools(ctx)
        usable = not ctx.dry_run and ctx.clock is wall_clock and tools.live
        self.processes = process_count(ctx.settings.release_processes) if usable else 1
        self._workers: list[Worker] = []

    def advance(self, instance_ids: list[str], report: StepReport, causes: Causes) -> None:
        """Move every domain of these instances as far as it can go in this run."""
        chunks = domain_chunks(self.ctx, instance_ids)
        shared = SharedReport(report, causes)
        self.run(chunks, shared)
        shared.close()

    def run(self, chunks: Chunks, report: SharedReport) -> None:
        """Move ``chunks`` on in every process, each taking the next chunk when it is
        ready for one (a worker still starting takes fewer); what the workers did is
        added to ``report``. A worker that fails leaves the domains it held where they
        stand (the next run goes on from there) and is named in the report."""
        processes = min(self.processes, len(chunks) // MIN_CHUNKS_PER_PROCESS)
        if processes <= 1:
            run_chunks(self.ctx, self.tools, chunks, report)
            return
        self._start(processes - 1)
        source = _Source(chunks)
        feeders = []
        for i, worker in enumerate(self._workers[: processes - 1], start=1):
            try:
                worker.jobs.send("go")
            except (OSError, ValueError):  # the worker is gone: the others do its part
                report.add("release_failures")
                report.fail(f"release process {i} is not running; the others go on")
                continue
            feeder = threading.Thread(
                target=_feed, args=(worker.jobs, i, source, report), daemon=True
            )
            feeder.start()
            feeders.append(feeder)
        try:
            run_chunks(self.ctx, self.tools, iter(source.take, None), report)
        finally:
            for feeder in feeders:
                feeder.join()

    def _start(self, workers: int) -> None:
        ctx = self.ctx
        while len(self._workers) < workers:
            self._workers.append(
                start_worker(
                    _serve,
                    (
                        ctx.settings,
                        ctx.as_of,
                        ctx.batch_size,
                        self.tools.write_locks,
                        self.tools.breakers,
                    ),
                    name=f"dns-lifecycle-release-{len(self._workers) + 1}",
                )
            )

    def close(self) -> None:
        """Stop the workers, then close the run's clusters and registrar."""
        for worker in self._workers:
            worker.stop()
        self._workers = []
        self.tools.close()


class _Source:
    """A batch's chunks, handed out one at a time to whichever thread asks."""

    def __init__(self, chunks: Chunks) -> None:
        self._chunks = iter(chunks)
        self._lock = threading.Lock()

    def take(self) -> list[DomainWork] | None:
        with self._lock:
            return next(self._chunks, None)


def _feed(jobs: Connection, i: int, source: _Source, report: SharedReport) -> None:
    """Answer worker ``i``'s asks for chunks until it reports what it did."""
    try:
        while True:
            kind, payload = jobs.recv()
            if kind == "next":
                jobs.send(source.take())
                continue
            if kind == "failed":
                report.add("release_failures")
                report.fail(
                    f"release process {i} failed: {payload}; its domains wait for the next run"
                )
                return
            counts, failures, plan, causes = payload
            for name, n in counts.items():
                report.add(name, n)
            for message in failures:
                report.fail(message)
            for cause, (n, first) in causes.items():
                report.cause(cause, first, n)
            report.planned(plan)
            return
    except (EOFError, OSError):
        report.add("release_failures")
        report.fail(f"release process {i} ended unexpectedly; its domains wait for the next run")


def _pulled(jobs: Connection) -> Iterator[list[DomainWork]]:
    """The chunks the run's process hands out, asked for one at a time."""
    while True:
        jobs.send(("next", None))
        chunk = jobs.recv()
        if chunk is None:
            return
        yield chunk


def _serve(
    jobs: Connection,
    settings: Settings,
    as_of: datetime,
    batch_size: int,
    write_locks: dict[str, Any],
    breakers: dict[str, Breaker],
) -> None:
    """A worker: for each batch ("go"), move on the chunks it asks for; then reply with
    its report."""
    db = Database(settings)
    ctx = RunContext(
        settings=settings,
        db=db,
        as_of=as_of,
        dry_run=False,
        batch_size=batch_size,
        clock=wall_clock,
    )
    tools: Tools | None = None
    try:
        while jobs.recv() is not None:
            try:
                tools = tools or Tools(ctx, write_locks, breakers)
                report = StepReport(step=STEP, as_of=as_of, dry_run=False)
                shared = SharedReport(report)
                run_chunks(ctx, tools, _pulled(jobs), shared)
                jobs.send(
                    (
                        "done",
                        (report.counts, report.failures, shared.plan(), shared.causes.counted()),
                    )
                )
            except Exception as exc:  # reported; the run's process decides
                jobs.send(("failed", f"{type(exc).__name__}: {exc}"))
    except EOFError:
        pass
    finally:
        if tools is not None:
            tools.close()
        db.dispose()
