"""Step: verify delegations of domains with open tickets, and close what is fixed."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from prefect import task
from prefect.cache_policies import NO_CACHE

from dns_lifecycle.channels.dns_lookup import delegated_nameservers
from dns_lifecycle.store.notifications import PendingFilter
from dns_lifecycle.store.release import free_cluster, open_delegation_tickets
from dns_lifecycle.store.tickets import close_delegation_ticket, resolve_ticket_by_hand
from flows.base import lifecycle_flow
from flows.common import RunContext, StepReport, timed
from flows.delivery import deliver_pending
from flows.params import AsOf, BatchSize, DryRun, InstanceIds
from flows.step import run_step

STEP = "verify-delegations"
NOTICE_KINDS = ("ticket_resolved",)


def _normalise(names) -> set[str]:
    return {n.lower().rstrip(".") for n in names}


def verify_open_tickets(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    """Ask DNS where each domain with an open delegation ticket is delegated; when it
    points at the free cluster's name servers, close the ticket and start the drain of
    the paid copy."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    settings = ctx.settings
    with ctx.db.session() as session:
        open_tickets = [
            (ticket_id, name)
            for ticket_id, name, instance_id in open_delegation_tickets(session, instance_ids)
            if ctx.shard is None or ctx.shard.owns(instance_id)
        ]
        if not open_tickets:
            # Nothing to check: no free cluster is needed (a fresh database has none).
            return report
        target = _normalise(free_cluster(session).nameservers)
    names = sorted({name for _, name in open_tickets})
    if not settings.dns_resolvers:
        report.add("domains_unchecked_no_resolvers", len(names))
        report.note(
            f"{len(names)} domain(s) with an open ticket not checked: no DNS resolver is "
            "configured; set DNSL_DNS_RESOLVERS to the resolvers to ask, e.g. "
            "'[\"127.0.0.1:53\"]'"
        )
        return report

    def lookup(name: str):
        return name, delegated_nameservers(
            name, settings.dns_resolvers, settings.dns_timeout_seconds
        )

    # DNS answers take network round trips: ask a few at a time.
    with ThreadPoolExecutor(max_workers=8) as pool:
        delegations = dict(pool.map(lookup, names))
    report.add("domains_checked", len(names))
    fixed = {n for n, ns in delegations.items() if ns is not None and _normalise(ns) == target}
    report.add("domains_unanswered", sum(1 for ns in delegations.values() if ns is None))
    to_close = [(tid, name) for tid, name in open_tickets if name in fixed]
    report.planned([{"action": "resolve_ticket", "ticket": t, "domain": n} for t, n in to_close])
    for ticket_id, _name in to_close:
        with ctx.db.session() as session:
            closed = close_delegation_ticket(
                session,
                ticket_id,
                nameservers=sorted(target),
                now=ctx.clock(),
                drain_hours=settings.drain_hours,
            )
            session.commit()
        report.add("tickets_resolved" if closed else "tickets_already_resolved")
    return report


def verify_now(ctx: RunContext) -> StepReport:
    """The verify-delegations step of ``ctx``'s run outside Prefect (the CLI's
    ``verify-delegations``): check, close what is fixed, deliver the notices."""
    report = StepReport(step=STEP, as_of=ctx.as_of, dry_run=ctx.dry_run)
    with timed(report):
        report.merge(verify_open_tickets(ctx))
        report.absorb(deliver_pending(ctx, PendingFilter(kinds=NOTICE_KINDS)))
    return report


def resolve_ticket_now(ctx: RunContext, ticket_id: int) -> StepReport:
    """Close a ticket whose action a person has done, then deliver the notice it
    queued (a ticket that asked the account to change name servers tells it)."""
    report = StepReport(step="resolve-ticket", as_of=ctx.as_of, dry_run=False)
    with timed(report):
        with ctx.db.session() as session:
            ticket = resolve_ticket_by_hand(session, ticket_id, ctx.clock())
            session.commit()
        report.add("tickets_resolved")
        filt = PendingFilter(kinds=NOTICE_KINDS, instance_ids=(ticket.instance_id,))
        report.absorb(deliver_pending(ctx, filt))
    return report


@task(name="verify-delegations", cache_policy=NO_CACHE)
def verify_task(ctx: RunContext, instance_ids: list[str] | None = None) -> StepReport:
    return verify_open_tickets(ctx, instance_ids)


@lifecycle_flow(name=STEP)
def verify_delegations(
    as_of: AsOf = None,
    dry_run: DryRun = False,
    batch_size: BatchSize = None,
    instance_ids: InstanceIds = None,
) -> StepReport:
    """Check in DNS where each domain with an open ticket is delegated; when it now
    points at the free cluster's name servers, close the ticket and tell the account."""
    return run_step(
        STEP,
        verify_task,
        NOTICE_KINDS,
        as_of=as_of,
        dry_run=dry_run,
        batch_size=batch_size,
        instance_ids=instance_ids,
    )
