"""The stages of a domain's release (rule 6): what each stage calls, and what it records.

Each stage action (``Stages``) makes its calls to a DNS cluster or the registrar outside
any transaction and returns the outcome to record (``record``), made with the store's
named outcomes (``store.release_outcomes``). ``Tools`` holds the clusters and the registrar of a
run. Nothing here imports Prefect: the release's worker processes
(``dns_lifecycle.release.pool``) run the same code.
"""

from __future__ import annotations

import threading
from datetime import datetime
from typing import Any

from dns_lifecycle.channels.clusters import ClusterBackend, ClusterConfig, cluster_backend
from dns_lifecycle.channels.clusters.breaker import Breaker
from dns_lifecycle.channels.clusters.catchup import behind
from dns_lifecycle.channels.clusters.dry_run import DryRunCluster
from dns_lifecycle.channels.clusters.verify import free_copy_difference, held_difference
from dns_lifecycle.channels.registrar import registrar_for
from dns_lifecycle.core.errors import ClusterRefused, DomainLocked, RegistrarRefused, ZoneFileError
from dns_lifecycle.core.run import RunContext
from dns_lifecycle.core.workers import CONTEXT
from dns_lifecycle.lifecycle import expiry
from dns_lifecycle.lifecycle.expiry import zone_content
from dns_lifecycle.lifecycle.nameservers import nameserver_action
from dns_lifecycle.lifecycle.zonefile import Rr
from dns_lifecycle.release.report import SharedReport
from dns_lifecycle.release.wait import Secondaries, still_copying
from dns_lifecycle.store import release as store
from dns_lifecycle.store import release_outcomes as outcomes

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

    def _blocked(self, w: store.DomainWork, reason: str, message: str) -> outcomes.Outcome:
        self.report.fail(f"instance {w.instance_id}: domain {w.name}: {message}")
        self.report.add(f"domains_blocked_{reason}")
        return outcomes.blocked(
            w,
            reason,
            message,
            {"problem": message, "set_nameservers": list(self.tools.free.nameservers)},
        )

    def read(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
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
        return outcomes.read(w, records, text)

    def create(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
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
        return outcomes.created(w)

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

    def verify(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
        assert w.records is not None
        problem = self.free_difference(w.name, w.records)
        if problem is None:
            return outcomes.verified(w, now)
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
        return outcomes.not_verified(w, failures, problem, ticket)

    def _delegated(
        self,
        w: store.DomainWork,
        now: datetime,
        action: str,
        problem: str | None = None,
        switch_task: str | None = None,
    ) -> outcomes.Outcome:
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
        task = switch_task or w.switch_task
        if action == "switched":
            return outcomes.delegated(
                w, action, now, until, task, problem, nameservers=list(free.nameservers)
            )
        details: dict[str, Any] = {
            "epp_statuses": w.epp_statuses,
            "set_nameservers": list(free.nameservers),
            "change_by": expiry.change_by(now, self.settings.manual_drain_days).isoformat(),
        }
        if problem:
            details["problem"] = problem
            self.report.fail(f"instance {w.instance_id}: domain {w.name}: {problem}")
        return outcomes.delegated(w, action, now, until, task, problem, ticket=(action, details))

    def delegate(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
        # Only the registrar decides here: a HiChina domain goes to it whatever the
        # imported EPP statuses say, since they can be stale either way.
        if nameserver_action(w.registrar, ()) != "switched":
            return self._delegated(w, now, "external_registrar")
        if expiry.verification_fresh(w.verified_at, now, self.settings.verify_fresh_minutes):
            return self._switch(w, now)
        # The free copy was verified too long ago (a run stopped before the switch):
        # verify it again, and switch only on that.
        checked = self.verify(w, now)
        if not checked.verified:
            self.report.add("switches_held")
            return checked
        return outcomes.verified_before(self._switch(w, now), now)

    def _switch(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
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
            record(self.ctx, [outcomes.switch_asked(w, mark)], now, self.report)
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
        return outcomes.switching(w, task_id)

    def poll(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
        assert w.switch_task is not None
        state = self.tools.registrar.switch_state(w.switch_task)
        if state.failed_reason is not None:
            return self._delegated(w, now, expiry.REGISTRAR_FAILED, state.failed_reason[:1000])
        if not state.done:
            return outcomes.unchanged(w)
        return self._delegated(w, now, "switched")

    def drain(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
        paid = self.tools.backend(w.paid_cluster)
        # Only a domain switched at the registrar has its paid copy point resolvers to the
        # free servers. A ticketed domain's parent still delegates to the paid servers:
        # there the paid copy keeps its own NS, or what a resolver reads from it would
        # look like the new delegation to verify-delegations, which would close the
        # ticket and let the paid copy be deleted under a domain still delegated to it.
        if paid.config.live and w.delegation == "switched":
            ns_ttl = zone_content(w.records or [])[1]
            paid.replace_apex_ns(w.name, list(self.tools.free.nameservers), ns_ttl)
        return outcomes.draining(w)

    def delete(self, w: store.DomainWork, now: datetime) -> outcomes.Outcome:
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
            return outcomes.failed(
                w,
                f"the paid copy on {w.paid_cluster} stays until the account is told to "
                "change the name servers: the instance is not released yet",
            )
        assert w.records is not None
        paid = self.tools.backend(w.paid_cluster)
        moved = zone_content(w.records)[0]
        current = paid.read_zone(w.name)
        kept: list[Rr] | None = None
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
            kept = current
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
        return outcomes.deleted(w, now, kept, copy)

    def _not_deleted(self, w: store.DomainWork, problem: str) -> outcomes.Outcome:
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
                return outcomes.failed(w, message)
        return self._kept(w, problem)

    def _kept(self, w: store.DomainWork, problem: str) -> outcomes.Outcome:
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
        return outcomes.blocked(
            w,
            expiry.COPIES_DIFFER,
            message,
            {"problem": message, "paid_cluster": w.paid_cluster},
        )


def record(
    ctx: RunContext, done: list[outcomes.Outcome], now: datetime, report: SharedReport
) -> list[outcomes.Outcome]:
    """Record the outcomes ``done`` at ``now`` in one transaction; returns those recorded
    (``record_outcomes``)."""
    if not done:
        return []
    with ctx.db.session() as session:
        recorded = outcomes.record_outcomes(session, done, now)
        report.add("tickets_opened", session.info.pop("tickets_opened", 0))
        report.add("tickets_not_reopened", session.info.pop("tickets_not_reopened", 0))
        session.commit()
    return recorded
