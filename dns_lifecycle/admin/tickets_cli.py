"""``dns-lifecycle tickets``: list the manual-action tickets, resolve one, or retry one."""

from __future__ import annotations

from typing import Any

from dns_lifecycle.admin.cli_support import (
    _json,
    _on_demand,
    _session,
)
from dns_lifecycle.core.settings import Settings


def cmd_tickets_list(args, settings: Settings) -> int:
    from dns_lifecycle.store.queries import list_tickets

    with _session(settings) as session:
        rows = list_tickets(session, state=args.state)
    if args.json:
        print(_json([_ticket_row(t, name) for t, name in rows]))
        return 0
    print(f"{'id':>6}  {'domain':<32} {'instance':<16} {'reason':<19} {'state':<9} to do")
    for t, name in rows:
        print(f"{t.id:>6}  {name:<32} {t.instance_id:<16} {t.reason:<19} {t.state:<9} {_to_do(t)}")
    return 0


def _to_do(ticket) -> str:
    """A ticket's action in a few words: the name servers the owner is to set, for a
    delegation ticket; the problem a person is to look at, for one that stops a release."""
    from dns_lifecycle.lifecycle.expiry import DELEGATION_TICKETS

    if ticket.reason in DELEGATION_TICKETS:
        return "set name servers " + ", ".join(ticket.details.get("set_nameservers", []))
    problem = " ".join(str(ticket.details.get("problem", "")).split())
    return problem if len(problem) <= 80 else problem[:79] + "…"


def _ticket_row(ticket, domain_name: str) -> dict[str, Any]:
    return {
        "id": ticket.id,
        "domain": domain_name,
        "instance": ticket.instance_id,
        "reason": ticket.reason,
        "state": ticket.state,
        "details": ticket.details,
        "created_at": ticket.created_at.isoformat(),
        "resolved_at": ticket.resolved_at.isoformat() if ticket.resolved_at else None,
    }


def cmd_tickets_resolve(args, settings: Settings) -> int:
    from flows.verify import resolve_ticket_now

    with _on_demand(settings) as ctx:
        report = resolve_ticket_now(ctx, args.id)
    told = report.counts.get("email_sent", 0) + report.counts.get("sms_sent", 0)
    print(f"ticket {args.id} resolved" + ("; the account was told" if told else ""))
    for failure in report.failures:
        print(f"  ! {failure}")
    return 0


def cmd_tickets_retry(args, settings: Settings) -> int:
    from dns_lifecycle.store.tickets import retry_ticket
    from flows.common import wall_clock

    with _session(settings) as session:
        ticket = retry_ticket(session, args.id, wall_clock())
        session.commit()
    print(
        f"ticket {ticket.id}: the next release run retries and opens a ticket again if "
        "the problem is still there"
    )
    return 0
