"""Read-only queries behind the operator's commands (``dns-lifecycle orders list`` and
the like). Nothing here writes."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select
from sqlmodel import Session, col

import models
from dns_lifecycle.core.errors import NotFound, shortened
from dns_lifecycle.store.release import release_stages
from models import Account, Domain, Instance, Notification, Order, Ticket, TopUp, ZoneSnapshot

# Every table the state holds, as `export` reports them, in that order.
TABLES: dict[str, Any] = {
    "editions": models.Edition,
    "clusters": models.Cluster,
    "accounts": models.Account,
    "instances": models.Instance,
    "domains": models.Domain,
    "records": models.Record,
    "orders": models.Order,
    "top_ups": models.TopUp,
    "notifications": models.Notification,
    "tickets": models.Ticket,
}


def table_counts(session: Session) -> dict[str, int]:
    """How many rows each table of :data:`TABLES` holds."""
    return {
        name: session.execute(select(func.count()).select_from(table)).scalar_one()
        for name, table in TABLES.items()
    }


def list_orders(
    session: Session, *, instance_id: str | None, state: str | None, limit: int
) -> tuple[list[Order], int]:
    """The newest ``limit`` orders (highest id first), optionally of one instance and in
    one state, and how many match in all. An instance that does not exist is NotFound."""
    if instance_id is not None and session.get(Instance, instance_id) is None:
        raise NotFound(
            f"instance {shortened(instance_id)!r} does not exist: check the id "
            "(`dns-lifecycle orders list` without --instance shows every order)"
        )
    where = []
    if instance_id is not None:
        where.append(col(Order.instance_id) == instance_id)
    if state:
        where.append(col(Order.state) == state)
    total = session.execute(select(func.count()).select_from(Order).where(*where)).scalar_one()
    stmt = select(Order).where(*where).order_by(col(Order.id).desc()).limit(limit)
    return list(session.execute(stmt).scalars()), total


def list_instances(
    session: Session,
    *,
    state: str | None,
    expiring_before: datetime | None,
    account_id: str | None,
    limit: int,
) -> tuple[list[Instance], int]:
    """The first ``limit`` instances, optionally in one state, expiring before a moment,
    of one account; and how many match in all. They come soonest expiry first, except
    released ones asked for alone, which come most recently released first. An account
    that does not exist is NotFound."""
    if account_id is not None and session.get(Account, account_id) is None:
        raise NotFound(
            f"account {shortened(account_id)!r} does not exist: check the id "
            "(`dns-lifecycle instances list` without --account lists every instance)"
        )
    where = []
    if state:
        where.append(col(Instance.state) == state)
    if expiring_before is not None:
        where.append(col(Instance.expires_at) < expiring_before)
    if account_id is not None:
        where.append(col(Instance.account_id) == account_id)
    total = session.execute(select(func.count()).select_from(Instance).where(*where)).scalar_one()
    order: tuple[Any, ...] = (col(Instance.expires_at), col(Instance.id))
    if state == "released":
        order = (col(Instance.released_at).desc(), col(Instance.id).desc())
    stmt = select(Instance).where(*where).order_by(*order).limit(limit)
    return list(session.execute(stmt).scalars()), total


def list_tickets(session: Session, *, state: str | None) -> list[tuple[Ticket, str]]:
    """Tickets in id order, each with its domain's name, optionally in one state."""
    stmt = select(Ticket, col(Domain.name)).join(Domain, col(Domain.id) == Ticket.domain_id)
    if state:
        stmt = stmt.where(col(Ticket.state) == state)
    return [(t, name) for t, name in session.execute(stmt.order_by(col(Ticket.id))).all()]


@dataclass(frozen=True)
class InstanceDetails:
    """An instance with its account and everything that hangs off it."""

    instance: Instance
    account: Account
    domains: Sequence[Domain]
    orders: Sequence[Order]
    notifications: Sequence[Notification]
    tickets: Sequence[Ticket]
    zones: Sequence[ZoneSnapshot]
    stages: dict[str, dict[str, Any]]  # domain name -> where its release stands
    top_ups: Sequence[TopUp]  # of its account, oldest first


def instance_details(session: Session, instance_id: str) -> InstanceDetails:
    """The instance ``instance_id`` with its account and the account's top-ups, its
    domains (by name), orders and tickets (by id), notices (oldest first, email before
    SMS) and zone-file copies (by domain, oldest first)."""
    instance = session.get(Instance, instance_id)
    if instance is None:
        raise NotFound(f"instance {shortened(instance_id)!r} does not exist: check the id")

    account = session.get(Account, instance.account_id)
    assert account is not None  # a foreign key

    def of_instance(model: Any, *order_by: Any) -> Sequence[Any]:
        stmt = select(model).where(model.instance_id == instance.id).order_by(*order_by)
        return session.execute(stmt).scalars().all()

    return InstanceDetails(
        instance=instance,
        account=account,
        domains=of_instance(Domain, Domain.name),
        orders=of_instance(Order, Order.id),
        notifications=of_instance(Notification, Notification.created_at, Notification.id),
        tickets=of_instance(Ticket, Ticket.id),
        zones=of_instance(ZoneSnapshot, ZoneSnapshot.domain_name, ZoneSnapshot.id),
        stages=release_stages(session, [instance.id]),
        top_ups=session.execute(
            select(TopUp).where(col(TopUp.account_id) == account.id).order_by(col(TopUp.id))
        )
        .scalars()
        .all(),
    )
