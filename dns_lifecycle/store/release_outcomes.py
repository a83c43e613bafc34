"""A domain's release stage by stage (rule 6): the outcome of each stage, named, and
recording it.

A stage of the release engine (``dns_lifecycle.release``) makes its outside call and
returns one of the outcomes made here (``created``, ``verified``, ``delegated``, ...);
``record_outcomes`` writes them, in a short transaction, before the domain's next stage.
The columns of ``domain_release`` are named here and in ``store.release`` only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import bindparam, insert, select, update
from sqlmodel import Session

from dns_lifecycle.core.errors import LifecycleError
from dns_lifecycle.lifecycle.expiry import STOPPING_TICKETS, ticket_reopens
from dns_lifecycle.lifecycle.notices.keys import ticket_open_key
from dns_lifecycle.lifecycle.zonefile import Rr
from dns_lifecycle.store import rows_changed
from dns_lifecycle.store.notifications import insert_ignoring_duplicates
from dns_lifecycle.store.release import DOMAINS, RELEASES, SNAPSHOTS, TICKETS, DomainWork
from dns_lifecycle.store.subscriptions import for_update

# An error kept on a domain's row is cut to what its column holds.
ERROR_CHARS = 1000


@dataclass
class Outcome:
    """What one stage did to one domain, to be recorded before the next stage."""

    work: DomainWork
    values: dict[str, Any] = field(default_factory=dict)
    zone_text: str | None = None
    ticket: tuple[str, dict[str, Any]] | None = None
    nameservers: list[str] | None = None

    @property
    def verified(self) -> bool:
        """Whether the free copy checked out."""
        return self.values.get("stage") == "verified"

    @property
    def moves_on(self) -> bool:
        """Whether the domain reached its next stage (and may go on in this run)."""
        return "stage" in self.values and not self.values.get("blocked")

    def moved(self) -> DomainWork:
        """The domain's work as it stands once this outcome is recorded."""
        w = self.work
        for key in ("stage", "delegation", "switch_task", "drain_until", "verified_at"):
            if key in self.values:
                setattr(w, key, self.values[key])
        if "records" in self.values:
            w.records = self.values["records"]
        return w


@dataclass
class Waiting(Outcome):
    """A verification that found a secondary behind: the domain stays at its stage and
    no failure is counted."""

    lagging: dict[str, str] = field(default_factory=dict)


# --- the outcomes, named --------------------------------------------------------------


def unchanged(w: DomainWork) -> Outcome:
    """Nothing to record yet (a switch still under way at the registrar)."""
    return Outcome(w, {})


def failed(w: DomainWork, message: str) -> Outcome:
    """The domain stays at its stage, with ``message`` as its last error."""
    return Outcome(w, {"error": message[:ERROR_CHARS]})


def waiting(w: DomainWork, message: str, lagging: dict[str, str]) -> Waiting:
    """The domain stays at its stage while the secondaries in ``lagging`` catch up."""
    return Waiting(w, {"error": message[:ERROR_CHARS]}, lagging=lagging)


def blocked(w: DomainWork, reason: str, message: str, details: dict[str, Any]) -> Outcome:
    """The domain stops at its stage until a person resolves the ticket ``reason`` opens
    (with ``details``)."""
    return Outcome(w, {"blocked": reason, "error": message[:ERROR_CHARS]}, ticket=(reason, details))


def read(w: DomainWork, records: list[Rr], zone_text: str) -> Outcome:
    """The paid copy was read: its ``records`` and its zone-file copy are kept."""
    return Outcome(
        w,
        {"stage": "read", "records": records, "error": None, "blocked": None},
        zone_text=zone_text,
    )


def created(w: DomainWork) -> Outcome:
    """The free copy is on the free cluster."""
    return Outcome(w, {"stage": "created", "error": None, "blocked": None})


def verified(w: DomainWork, at: datetime) -> Outcome:
    """The free name servers serve the free copy as read, checked ``at``."""
    return Outcome(w, {"stage": "verified", "verified_at": at, "verify_failures": 0, "error": None})


def not_verified(
    w: DomainWork, failures: int, problem: str, ticket: tuple[str, dict[str, Any]] | None
) -> Outcome:
    """The free copy did not check out for the ``failures``-th time."""
    return Outcome(w, {"verify_failures": failures, "error": problem[:ERROR_CHARS]}, ticket=ticket)


def verified_before(outcome: Outcome, at: datetime) -> Outcome:
    """``outcome``, of a step that verified the free copy again ``at`` first."""
    outcome.values = {"verified_at": at, "verify_failures": 0} | outcome.values
    return outcome


def switch_asked(w: DomainWork, mark: str) -> Outcome:
    """A switch is about to be asked of the registrar (``mark`` says when)."""
    return Outcome(w, {"switch_task": mark})


def switching(w: DomainWork, task_id: str) -> Outcome:
    """The registrar took the switch as its task ``task_id``."""
    return Outcome(w, {"stage": "switching", "switch_task": task_id, "error": None})


def delegated(
    w: DomainWork,
    action: str,
    at: datetime,
    drain_until: datetime | None,
    switch_task: str | None,
    problem: str | None,
    *,
    nameservers: list[str] | None = None,
    ticket: tuple[str, dict[str, Any]] | None = None,
) -> Outcome:
    """The delegation passed ``at`` by ``action`` (switched, or a ticket's reason): the
    domain drains until ``drain_until``; a switched domain records its ``nameservers``."""
    values: dict[str, Any] = {
        "stage": "delegated",
        "delegation": action,
        "delegated_at": at,
        "drain_until": drain_until,
        "switch_task": switch_task,
        "error": problem,
    }
    return Outcome(w, values, nameservers=nameservers, ticket=ticket)


def draining(w: DomainWork) -> Outcome:
    """The paid copy drains (its apex NS pointing to the free servers where switched)."""
    return Outcome(w, {"stage": "draining", "error": None})


def deleted(
    w: DomainWork, at: datetime, records: list[Rr] | None = None, zone_text: str | None = None
) -> Outcome:
    """The paid copy was deleted ``at``; ``records`` (and their ``zone_text``) when what
    was kept is the paid copy as a person resolved it."""
    values: dict[str, Any] = {} if records is None else {"records": records}
    values |= {"stage": "deleted", "deleted_at": at, "error": None, "blocked": None}
    return Outcome(w, values, zone_text=zone_text)


def record_outcomes(session: Session, outcomes: list[Outcome], now: datetime) -> list[Outcome]:
    """Record each outcome if its domain is still at the stage it was computed from;
    returns those recorded (another run may have moved a domain on meanwhile). Opens
    each ticket once (one open ticket per domain and reason)."""
    if not outcomes:
        return []
    # Where each domain stands now, its row locked until the commit in id order (no
    # deadlock between overlapping runs; SQLite's write transaction holds the whole
    # database from its start).
    at = {
        domain_id: stage
        for domain_id, stage in session.execute(
            for_update(
                session,
                select(RELEASES.c.domain_id, RELEASES.c.stage)
                .where(RELEASES.c.domain_id.in_([o.work.domain_id for o in outcomes]))
                .order_by(RELEASES.c.domain_id),
            )
        )
    }
    recorded = [o for o in outcomes if at.get(o.work.domain_id) == o.work.stage]
    # One statement for the outcomes that set the same columns.
    updates: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for o in recorded:
        values = dict(o.values)
        if values.get("records") is not None:
            values["records"] = [r.row() for r in values["records"]]
        updates[tuple(sorted(values))].append(
            {"at_id": o.work.domain_id, "at_stage": o.work.stage}
            | {f"b_{k}": v for k, v in values.items()}
        )
    for columns, rows in updates.items():
        stmt = (
            update(RELEASES)
            .where(
                RELEASES.c.domain_id == bindparam("at_id"),
                RELEASES.c.stage == bindparam("at_stage"),
            )
            .values(
                updated_at=now,
                **{c: bindparam(f"b_{c}", type_=RELEASES.c[c].type) for c in columns},
            )
        )
        changed = rows_changed(session.execute(stmt, rows))
        if changed != len(rows):  # the rows were locked: nothing else can move them
            raise LifecycleError(
                f"{len(rows) - changed} domain release rows changed while locked; run the "
                "step again"
            )
    snapshots = [
        {
            "instance_id": o.work.instance_id,
            "domain_name": o.work.name,
            "zone_text": o.zone_text,
            "created_at": now,
        }
        for o in recorded
        if o.zone_text is not None
    ]
    if snapshots:
        session.execute(insert(SNAPSHOTS), snapshots)
    delegations = [
        {"at_id": o.work.domain_id, "b_nameservers": o.nameservers}
        for o in recorded
        if o.nameservers is not None
    ]
    if delegations:
        session.execute(
            update(DOMAINS)
            .where(DOMAINS.c.id == bindparam("at_id"))
            .values(nameservers=bindparam("b_nameservers", type_=DOMAINS.c.nameservers.type)),
            delegations,
        )
    tickets = [
        {
            "domain_id": o.work.domain_id,
            "instance_id": o.work.instance_id,
            "reason": o.ticket[0],
            "state": "open",
            "open_key": ticket_open_key(o.work.name, o.ticket[0]),
            "details": {"domain": o.work.name, "registrar": o.work.registrar, **o.ticket[1]},
            "sink_state": "pending",
            "sink_attempts": 0,
            "created_at": now,
        }
        for o in recorded
        if o.ticket is not None
    ]
    tickets = _reopening(session, tickets)
    opened = insert_ignoring_duplicates(session, TICKETS, tickets, "open_key")
    session.info["tickets_opened"] = session.info.get("tickets_opened", 0) + len(opened)
    return recorded


def _reopening(session: Session, tickets: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The ``tickets`` to open: not those whose problem is the one the domain's last
    resolved ticket of that reason was resolved with (``ticket_reopens``)."""
    stopping = {t["domain_id"] for t in tickets if t["reason"] in STOPPING_TICKETS}
    if not stopping:
        return tickets
    last: dict[tuple[int, str], dict] = {}
    for domain_id, reason, details in session.execute(
        select(TICKETS.c.domain_id, TICKETS.c.reason, TICKETS.c.details)
        .where(
            TICKETS.c.domain_id.in_(sorted(stopping)),
            TICKETS.c.reason.in_(STOPPING_TICKETS),
            TICKETS.c.state == "resolved",
        )
        .order_by(TICKETS.c.resolved_at, TICKETS.c.id)
    ):
        last[(domain_id, reason)] = details  # the latest resolved one wins
    kept = [
        t
        for t in tickets
        if ticket_reopens(
            t["reason"], t["details"].get("problem"), last.get((t["domain_id"], t["reason"]))
        )
    ]
    session.info["tickets_not_reopened"] = (
        session.info.get("tickets_not_reopened", 0) + len(tickets) - len(kept)
    )
    return kept
