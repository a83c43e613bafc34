"""The stages of a domain's release, as the release step runs them (rule 6).

Each stage action (``Stages``) makes its calls to a DNS cluster or the registrar outside
any transaction and returns the outcome to record. ``run_chunks`` takes domains through
the stages a chunk at a time on a few threads: each stage's outcomes of a chunk are
recorded in one transaction (``store.release.record_outcomes``) before any of its
domains makes its next call. Nothing here imports Prefect: the release's worker
processes (``flows.release_pool``) run the same code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Any

from dns_lifecycle.channels.clusters import ClusterBackend, ClusterConfig, cluster_backend
from dns_lifecycle.channels.clusters.breaker import Breaker
from dns_lifecycle.channels.clusters.catchup import behind
from dns_lifecycle.channels.clusters.dry_run import DryRunCluster
from dns_lifecycle.channels.clusters.verify import free_copy_difference, held_difference
from dns_lifecycle.channels.registrar import registrar_for
from dns_lifecycle.core.errors import (
    ClusterError,
    ClusterRefused,
    DomainLocked,
    RegistrarRefused,
    ZoneFileError,
)
from dns_lifecycle.core.workers import CONTEXT
from dns_lifecycle.lifecycle import expiry
from dns_lifecycle.lifecycle.expiry import STAGES, next_action, zone_content
from dns_lifecycle.lifecycle.nameservers import nameserver_action
from dns_lifecycle.lifecycle.zonefile import Rr
from dns_lifecycle.store import release as store
from flows.common import RunContext, StepReport
from flows.release_wait import WAITING, Secondaries, Waiting, catch_up, still_copying

STEP = "release-instances"

# --- what the stages call -------------------------------------------------------------


class Tools:
    """The clusters and the registrar of one run, opened once, closed at its end."""

    def __init__(
        self,
        ctx: RunContext,
        write_locks: dict[str, Any] | None = None,
        breakers: dict[str, Breaker] | None = None,
    ) -> None:
        self.ctx = ctx
        with ctx.db.session() as session:
            rows = store.all_clusters(session)
            free_row = store.free_cluster(session)
            self.clusters = {r.code: ClusterConfig.of(r) for r in rows}
        self.free = self.clusters[free_row.code]
        # One write at a time per live server (PowerDNS's SQLite backend has no busy
        # timeout), among the run's threads and its worker processes alike.
        self.write_locks = (
            write_locks
            if write_locks is not None
            else {code: CONTEXT.Lock() for code, c in self.clusters.items() if c.live}
        )
        # One breaker per live server for the whole run, its worker processes included.
        self.breakers = (
            breakers
            if breakers is not None
            else {
                code: Breaker(ctx.settings.cluster_breaker_timeouts)
                for code, c in self.clusters.items()
                if c.live
            }
        )
        self._backends: dict[str, ClusterBackend] = {}
        self._lock = threading.Lock()
        self.secondaries = Secondaries()
        # A dry run asks the registrar (a read) but never calls start_switch.
        self.registrar = registrar_for(ctx.settings, ctx.db)

    def backend(self, code: str) -> ClusterBackend:
        with self._lock:  # one backend (one kept-alive client) per cluster
            if code not in self._backends:
                self._backends[code] = cluster_backend(
                    self.clusters[code],
                    self.ctx.settings,
                    self.ctx.db,
                    write_lock=self.write_locks.get(code),
                    breaker=self.breakers.get(code),
                    dry_run=self.ctx.dry_run,
                )
            return self._backends[code]

    @property
    def live(self) -> bool:
        """Whether a cluster of this run is a real DNS server."""
        return any(c.live for c in self.clusters.values())

    def close(self) -> None:
        for b in self._backends.values():
            b.close()
        self.registrar.close()


class Stages:
    """One method per stage action; each makes its outside calls and returns the
    ``Outcome`` to record (a raised error leaves the domain where it is)."""

    def __init__(self, ctx: RunContext, tools: Tools, report: SharedReport) -> None:
        self.ctx, self.tools, self.report = ctx, tools, report
        self.settings = ctx.settings

    def _blocked(self, w: store.DomainWork, reason: str, message: str) -> store.Outcome:
        self.report.fail(f"instance {w.instance_id}: domain {w.name}: {message}")
        self.report.add(f"domains_blocked_{reason}")
        return store.Outcome(
            w,
            {"blocked": reason, "error": message[:1000]},
            ticket=(
                reason,
                {"problem": message, "set_nameservers": list(self.tools.free.nameservers)},
            ),
        )

    def read(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        try:
            records = self.tools.backend(w.paid_cluster).read_zone(w.name)
        except ZoneFileError as exc:
            return self._blocked(w, expiry.ZONE_UNWRITABLE, str(exc))
        if records is None:
            return self._blocked(
                w,
                "paid_zone_missing",
                f"the paid cluster {w.paid_cluster} has no zone {w.name}: load it there "
                "(dns-lifecycle clusters load-zones), then resolve this ticket",
            )
        try:
            text = store.zone_copy(w.name, records, now)
        except ZoneFileError as exc:
            return self._blocked(w, expiry.ZONE_UNWRITABLE, str(exc))
        return store.Outcome(
            w, {"stage": "read", "records": records, "error": None, "blocked": None}, zone_text=text
        )

    def create(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        assert w.records is not None
        kept, ns_ttl = zone_content(w.records)
        free = self.tools.backend(self.tools.free.code)
        try:
            created = free.create_zone(w.name, kept, ns_ttl)
        except ZoneFileError as exc:
            return self._blocked(w, expiry.ZONE_UNWRITABLE, str(exc))
        except ClusterRefused as exc:
            return self._blocked(w, "free_zone_refused", str(exc))
        if created:
            self.report.add("records_moved", len(kept))
        else:
            # A zone there before the release is ours only when it is exactly what this
            # release creates, apex NS included: on a cluster shared by every released
            # zone, other name servers there would take the domain over.
            there = free.read_zone(w.name) or []
            config = free.config
            ns = config.nameservers if config.live else None
            difference = held_difference(w.name, w.records, there, ns)
            if difference is not None:
                return self._blocked(
                    w,
                    expiry.FREE_ZONE_CONFLICT,
                    f"the free cluster {config.code} already has a zone {w.name} that is not "
                    f"this release's: {difference}. Delete that zone there (or make it "
                    "equal), then resolve this ticket",
                )
        free.flush(w.name)
        return store.Outcome(w, {"stage": "created", "error": None, "blocked": None})

    def free_difference(self, domain: str, records: list[Rr]) -> str | None:
        """How the free cluster's copy of ``domain`` differs from ``records`` (the zone as
        the paid cluster's ``read_zone`` gave it), asked of every free name server by DNS
        (``free_copy_difference``); None when it serves exactly that. The one comparison
        of the free copy, made before the switch and again before the paid copy is
        deleted."""
        free = self.tools.free
        backend = self.tools.backend(free.code)
        if isinstance(backend, DryRunCluster) and domain in backend.pretended:
            return None  # nothing was created to ask about
        return free_copy_difference(
            domain, records, free, timeout=self.settings.dns_timeout_seconds, backend=backend
        )

    def verify(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        assert w.records is not None
        problem = self.free_difference(w.name, w.records)
        if problem is None:
            return store.Outcome(
                w,
                {"stage": "verified", "verified_at": now, "verify_failures": 0, "error": None},
            )
        free = self.tools.free
        if free.nameserver_addresses and (
            waiting := still_copying(w, free, self.settings.dns_timeout_seconds)
        ):
            return waiting  # a copy on its way to a secondary: no failure counted
        failures = w.verify_failures + 1
        self.report.add("verify_failures")
        self.report.fail(f"instance {w.instance_id}: domain {w.name}: not verified: {problem}")
        ticket = None
        if expiry.verify_ticket_due(failures, self.settings.verify_attempts):
            ticket = (
                expiry.FREE_ZONE_UNVERIFIED,
                {"problem": problem, "failed_verifications": failures},
            )
        return store.Outcome(
            w, {"verify_failures": failures, "error": problem[:1000]}, ticket=ticket
        )

    def _delegated(
        self,
        w: store.DomainWork,
        now: datetime,
        action: str,
        problem: str | None = None,
        switch_task: str | None = None,
    ) -> store.Outcome:
        free = self.tools.free
        live = self.tools.clusters[w.paid_cluster].live
        until = expiry.drain_until(
            action,
            now,
            live=live,
            drain_hours=self.settings.drain_hours,
            manual_drain_days=self.settings.manual_drain_days,
        )
        self.report.add(f"nameservers_{action}")
        self.report.planned(
            [
                {
                    "action": "release",
                    "instance": w.instance_id,
                    "domain": w.name,
                    "nameservers": action,
                }
            ]
        )
        values: dict[str, Any] = {
            "stage": "delegated",
            "delegation": action,
            "delegated_at": now,
            "drain_until": until,
            "switch_task": switch_task or w.switch_task,
            "error": problem,
        }
        if action == "switched":
            return store.Outcome(w, values, nameservers=list(free.nameservers))
        details: dict[str, Any] = {
            "epp_statuses": w.epp_statuses,
            "set_nameservers": list(free.nameservers),
            "change_by": expiry.change_by(now, self.settings.manual_drain_days).isoformat(),
        }
        if problem:
            details["problem"] = problem
            self.report.fail(f"instance {w.instance_id}: domain {w.name}: {problem}")
        return store.Outcome(w, values, ticket=(action, details))

    def delegate(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        # Only the registrar decides here: a HiChina domain goes to it whatever the
        # imported EPP statuses say, since they can be stale either way.
        if nameserver_action(w.registrar, ()) != "switched":
            return self._delegated(w, now, "external_registrar")
        if expiry.verification_fresh(w.verified_at, now, self.settings.verify_fresh_minutes):
            return self._switch(w, now)
        # The free copy was verified too long ago (a run stopped before the switch):
        # verify it again, and switch only on that.
        checked = self.verify(w, now)
        if checked.values.get("stage") != "verified":
            self.report.add("switches_held")
            return checked
        outcome = self._switch(w, now)
        outcome.values = {"verified_at": now, "verify_failures": 0} | outcome.values
        return outcome

    def _switch(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        """The lock read live, then the switch at the registrar (a HiChina domain)."""
        registrar = self.tools.registrar
        # The registrar's own word on the lock, just before acting (the embedded
        # registrar reads it in the switch's own transaction).
        if registrar.external or self.ctx.dry_run:
            try:
                lock = registrar.lock_status(w.name)
            except RegistrarRefused as exc:
                return self._delegated(w, now, expiry.REGISTRAR_FAILED, str(exc)[:1000])
            action = nameserver_action(w.registrar, [lock] if lock else [])
            if action != "switched" or self.ctx.dry_run:
                return self._delegated(w, now, action)
        asked_since = expiry.switch_asked_at(w.switch_task) if registrar.external else None
        if registrar.external and asked_since is None:
            # Recorded before the request goes out: if its answer is lost (a timeout, a
            # killed run), the next run looks for the task it created instead of asking
            # for a second one.
            mark = expiry.switch_asked(now)
            _record(self.ctx, [store.Outcome(w, {"switch_task": mark})], now, self.report)
            w.switch_task = mark
        try:
            task_id = registrar.start_switch(
                w.name, list(self.tools.free.nameservers), asked_since=asked_since
            )
        except DomainLocked:
            return self._delegated(w, now, "domain_locked")
        except RegistrarRefused as exc:
            return self._delegated(w, now, expiry.REGISTRAR_FAILED, str(exc)[:1000])
        if not registrar.external:  # applied already: nothing to poll
            return self._delegated(w, now, "switched", switch_task=task_id)
        return store.Outcome(w, {"stage": "switching", "switch_task": task_id, "error": None})

    def poll(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        assert w.switch_task is not None
        state = self.tools.registrar.switch_state(w.switch_task)
        if state.failed_reason is not None:
            return self._delegated(w, now, expiry.REGISTRAR_FAILED, state.failed_reason[:1000])
        if not state.done:
            return store.Outcome(w, {})
        return self._delegated(w, now, "switched")

    def drain(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        paid = self.tools.backend(w.paid_cluster)
        # Only a domain switched at the registrar has its paid copy point resolvers to the
        # free servers. A ticketed domain's parent still delegates to the paid servers:
        # there the paid copy keeps its own NS, or what a resolver reads from it would
        # look like the new delegation to verify-delegations, which would close the
        # ticket and let the paid copy be deleted under a domain still delegated to it.
        if paid.config.live and w.delegation == "switched":
            ns_ttl = zone_content(w.records or [])[1]
            paid.replace_apex_ns(w.name, list(self.tools.free.nameservers), ns_ttl)
        return store.Outcome(w, {"stage": "draining", "error": None})

    def delete(self, w: store.DomainWork, now: datetime) -> store.Outcome:
        if not expiry.may_delete_paid(w.stage, w.verified_at is not None):
            raise AssertionError(f"domain {w.name}: no verified free copy, the paid one stays")
        if (
            w.delegation != "switched"
            and not w.instance_released
            and self.tools.clusters[w.paid_cluster].live
        ):
            # The parent still delegates to the paid servers until the owner acts, and
            # the owner learns what to change from the released notice: until it has
            # gone (another domain of the instance holds the release back), the paid
            # copy is all that answers for the domain.
            self.report.add("paid_copies_kept_until_told")
            return store.Outcome(
                w,
                {
                    "error": f"the paid copy on {w.paid_cluster} stays until the account "
                    "is told to change the name servers: the instance is not released yet"
                },
            )
        assert w.records is not None
        paid = self.tools.backend(w.paid_cluster)
        moved = zone_content(w.records)[0]
        current = paid.read_zone(w.name)
        values: dict[str, Any] = {}
        copy: str | None = None
        if current is None:
            # Gone already (deleted by a run that crashed before recording it): only the
            # free copy is left to check.
            expected = w.records
        elif w.resolved == expiry.COPIES_DIFFER:
            # A person resolved a difference: the paid copy as it is now is what must
            # not be lost, and the free copy must serve exactly that.
            expected = current
            copy = store.zone_copy(w.name, current, now)
            values["records"] = current
        else:
            expected = w.records
            problem = expiry.paid_copy_difference(w.name, moved, zone_content(current)[0])
            if problem is not None:
                return self._kept(w, problem)
        problem = self.free_difference(w.name, expected)
        if problem is not None:
            return self._not_deleted(w, problem)
        paid.delete_zone(w.name)
        self.report.add("paid_zones_deleted")
        values |= {"stage": "deleted", "deleted_at": now, "error": None, "blocked": None}
        return store.Outcome(w, values, zone_text=copy)

    def _not_deleted(self, w: store.DomainWork, problem: str) -> store.Outcome:
        """The free copy did not check out at the end of the drain. A public server that
        does not answer, or one that lags behind another serving the zone, is a server
        down or a copy on its way, not a difference of content: the paid copy stays,
        without a ticket, and the next run checks again. Servers that all answer and none
        serves the zone, or serve other records, are a difference."""
        free = self.tools.free
        addresses = list(free.nameserver_addresses)
        if addresses:
            lagging = behind(w.name, addresses, self.settings.dns_timeout_seconds)
            silent = any(how.startswith("no answer") for how in lagging.values())
            if lagging and (silent or len(lagging) < len(addresses)):
                address, how = next(iter(lagging.items()))
                message = (
                    f"the paid copy on {w.paid_cluster} is kept until every public server of "
                    f"{free.code} can be checked: {address} {how}"
                )
                self.report.add("paid_copies_waiting_for_free_servers")
                return store.Outcome(w, {"error": message[:1000]})
        return self._kept(w, problem)

    def _kept(self, w: store.DomainWork, problem: str) -> store.Outcome:
        """The paid copy stays: a ticket names the difference, and the run's report says
        so; once the ticket is resolved the next run checks again."""
        message = (
            f"the paid copy on {w.paid_cluster} is kept: {problem}. Make the free copy on "
            f"{self.tools.free.code} serve what the paid copy should keep (or correct the "
            "paid copy), then resolve this ticket: the next run checks again and deletes the "
            "paid copy only if the free copy serves exactly what the paid copy holds then"
        )
        self.report.add("paid_copies_kept")
        self.report.fail(f"instance {w.instance_id}: domain {w.name}: {message}")
        return store.Outcome(
            w,
            {"blocked": expiry.COPIES_DIFFER, "error": message[:1000]},
            ticket=(expiry.COPIES_DIFFER, {"problem": message, "paid_cluster": w.paid_cluster}),
        )


class Causes:
    """Faults of a cluster, not of its domains (a wrong key, a silent server), as a step
    meets them: each cause -> how many domains it stopped and the first of them, so
    that the report says each once, however many domains and batches it hit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._seen: dict[str, tuple[int, str]] = {}

    def add(self, cause: str, domain: str, n: int = 1) -> None:
        with self._lock:
            count, first = self._seen.get(cause, (0, domain))
            self._seen[cause] = (count + n, first)

    def counted(self) -> dict[str, tuple[int, str]]:
        with self._lock:
            return dict(self._seen)

    def report_to(self, report: StepReport) -> None:
        """One failure line per cause, with its count."""
        for cause, (n, first) in self.counted().items():
            others = f" and {n - 1} other domain{'s' if n > 2 else ''}" if n > 1 else ""
            report.fail(f"{cause} ({n} domain{'s' if n > 1 else ''}: {first}{others})")


class SharedReport:
    """The report as the domains released at once write to it, one at a time; the
    clusters' faults go to ``causes`` (the step's, across its batches)."""

    def __init__(self, report: StepReport, causes: Causes | None = None) -> None:
        self._report = report
        self._lock = threading.Lock()
        self._plan: list[dict[str, Any]] = []
        self.causes = causes if causes is not None else Causes()

    def add(self, name: str, n: int = 1) -> None:
        with self._lock:
            self._report.add(name, n)

    def fail(self, message: str) -> None:
        with self._lock:
            self._report.fail(message)

    def cause(self, cause: str, domain: str, n: int = 1) -> None:
        """A cluster's fault that stopped ``domain`` (and ``n - 1`` others like it)."""
        self.causes.add(cause, domain, n)

    def planned(self, rows: list[dict[str, Any]]) -> None:
        with self._lock:
            self._plan.extend(rows)

    def plan(self) -> list[dict[str, Any]]:
        with self._lock:
            return list(self._plan)

    def close(self) -> None:
        """Hand the plan to the report in domain order, whichever domain finished first."""
        self._report.planned(sorted(self._plan, key=lambda r: (r["instance"], r["domain"])))
        self._plan = []


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
        recorded: list[store.Outcome] = []
        unrecorded: list[store.Outcome] = []
        for w, action in planned:
            unrecorded.append(_attempt(stages, w, action, now, report))
            # A crash repeats at most the one switch in flight at an outside registrar.
            if action == "delegate" and stages.tools.registrar.external:
                recorded += _record(ctx, unrecorded, now, report)
                unrecorded = []
        recorded += _record(ctx, unrecorded, now, report)
        for o in recorded:
            if isinstance(o, Waiting):
                waiting[o.work.domain_id], lagging[o.work.domain_id] = o.work, set(o.lagging)
        # Only a domain that moved on to its next stage goes on in this run.
        moving = [
            _moved_on(o) for o in recorded if "stage" in o.values and not o.values.get("blocked")
        ]
    if waiting and not wait:
        report.add(WAITING, len(waiting))
    elif waiting and (caught := catch_up(stages, list(waiting.values()), lagging)):
        _advance_chunk(ctx, stages, caught, report, wait=False)


def _attempt(
    stages: Stages, w: store.DomainWork, action: str, now: datetime, report: SharedReport
) -> store.Outcome:
    try:
        outcome: store.Outcome = getattr(stages, action)(w, now)
        return outcome
    except ClusterError as exc:
        report.add("release_failures")
        message = f"{type(exc).__name__}: {exc}"
        if exc.cause is None:
            report.fail(f"instance {w.instance_id}: domain {w.name}: {action}: {message}")
        else:  # a fault of the cluster, said once for all the domains it stopped
            report.cause(exc.cause, f"instance {w.instance_id} domain {w.name} ({action})")
        return store.Outcome(w, {"error": message[:1000]})
    except Exception as exc:  # one domain's failure never stops the others
        report.add("release_failures")
        message = f"{type(exc).__name__}: {exc}"
        report.fail(f"instance {w.instance_id}: domain {w.name}: {action}: {message}")
        return store.Outcome(w, {"error": message[:1000]})


def _record(
    ctx: RunContext, outcomes: list[store.Outcome], now: datetime, report: SharedReport
) -> list[store.Outcome]:
    if not outcomes:
        return []
    with ctx.db.session() as session:
        recorded = store.record_outcomes(session, outcomes, now)
        report.add("tickets_opened", session.info.pop("tickets_opened", 0))
        report.add("tickets_not_reopened", session.info.pop("tickets_not_reopened", 0))
        session.commit()
    return recorded


def _moved_on(outcome: store.Outcome) -> store.DomainWork:
    w = outcome.work
    for key in ("stage", "delegation", "switch_task", "drain_until", "verified_at"):
        if key in outcome.values:
            setattr(w, key, outcome.values[key])
    if "records" in outcome.values:
        w.records = outcome.values["records"]
    return w
