"""The whole state as one document: the inventory sections in the import format, plus
the history (orders, top-ups, notifications, tickets) that the lifecycle runs and the
operators' requests wrote.

Datetimes are ISO 8601 in UTC with an offset; amounts are decimal strings. Entries are
read in pages and written one at a time, so an export of any size runs in constant
memory.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TextIO

from sqlalchemy import select
from sqlmodel import Session, col

from dns_lifecycle.admin.inventory.batches import CHUNK, chunks
from dns_lifecycle.admin.inventory.entries import ClusterEntry, DomainReleaseEntry, columns_of
from dns_lifecycle.channels.clusters import BACKENDS as CLUSTER_BACKENDS
from dns_lifecycle.store import table_of
from models import (
    Account,
    Cluster,
    Domain,
    DomainRelease,
    Edition,
    Instance,
    Notification,
    Order,
    Record,
    Ticket,
    TopUp,
)
from models.cluster import ClusterBase

__all__ = [
    "export_state",
    "iter_state",
    "notification_row",
    "order_row",
    "top_up_row",
    "write_state",
]


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(Decimal(amount).quantize(Decimal("0.01")))


def _export_editions(session: Session) -> Iterator[dict[str, Any]]:
    rows = session.execute(select(table_of(Edition)).order_by(col(Edition.rank), col(Edition.code)))
    for r in rows:
        yield {
            "code": r.code,
            "rank": r.rank,
            "monthly_price": _money(r.monthly_price),
            "yearly_price": _money(r.yearly_price),
        }


def _export_clusters(session: Session) -> Iterator[dict[str, Any]]:
    # Every column the cluster entry has, so a column added there is exported too; an
    # optional one when it is set, for a live cluster, or when it differs from its
    # default (an embedded cluster exports as code, kind and name servers).
    columns = columns_of(ClusterEntry)
    for r in session.execute(select(table_of(Cluster)).order_by(col(Cluster.code))):
        entry = {}
        for key, (column, required) in columns.items():
            value = getattr(r, column)
            default = ClusterBase.model_fields[column].get_default(call_default_factory=True)
            live = CLUSTER_BACKENDS.external(r.backend)
            if required or (value is not None and (value != default or live)):
                entry[key] = list(value) if isinstance(value, list) else value
        yield entry


def _release_rows(session: Session, domain_ids: list[int]) -> dict[int, dict[str, Any]]:
    """Each domain's release stage, whole: what an import needs to carry it on."""
    columns = columns_of(DomainReleaseEntry)
    rows: dict[int, dict[str, Any]] = {}
    for chunk in chunks(domain_ids):
        for r in session.execute(
            select(table_of(DomainRelease)).where(col(DomainRelease.domain_id).in_(chunk))
        ):
            rows[r.domain_id] = {
                key: _when(v) if isinstance(v := getattr(r, column), datetime) else v
                for key, (column, _) in columns.items()
            }
    return rows


def _export_accounts(session: Session) -> Iterator[dict[str, Any]]:
    query = select(table_of(Account)).order_by(col(Account.id))
    for r in session.execute(query.execution_options(yield_per=CHUNK)):
        yield {
            "id": r.id,
            "name": r.name,
            "email": r.email,
            "phone": r.phone,
            "locale": r.locale,
            "timezone": r.timezone,
            "balance": _money(r.balance),
        }


def _export_instances(session: Session) -> Iterator[dict[str, Any]]:
    # Keyset pages: the domains and records of one page of instances at a time.
    after: str | None = None
    while True:
        query = select(table_of(Instance)).order_by(col(Instance.id)).limit(CHUNK)
        if after is not None:
            query = query.where(col(Instance.id) > after)
        page = session.execute(query).all()
        if not page:
            return
        after = page[-1].id
        ids = [r.id for r in page]
        domains: dict[str, list[Any]] = {}
        for d in session.execute(
            select(table_of(Domain))
            .where(col(Domain.instance_id).in_(ids))
            .order_by(col(Domain.instance_id), col(Domain.name))
        ):
            domains.setdefault(d.instance_id, []).append(d)
        domain_ids = [d.id for ds in domains.values() for d in ds]
        stages = _release_rows(session, domain_ids)
        records: dict[int, list[dict[str, Any]]] = {}
        for chunk in chunks(domain_ids):
            for r in session.execute(
                select(table_of(Record))
                .where(col(Record.domain_id).in_(chunk))
                .order_by(col(Record.id))
            ):
                records.setdefault(r.domain_id, []).append(
                    {
                        "type": r.type,
                        "host": r.host,
                        "value": r.value,
                        "ttl": r.ttl,
                        "cluster": r.cluster_code,
                    }
                )
        for r in page:
            entry: dict[str, Any] = {
                "id": r.id,
                "account": r.account_id,
                "edition": r.edition_code,
                "billing_cycle": r.billing_cycle,
                "expires_at": _when(r.expires_at),
                "auto_renew": r.auto_renew,
                "state": r.state,
                "cluster": r.cluster_code,
                "anchor_day": r.anchor_day,
            }
            if r.anchor_time is not None:
                entry["anchor_time"] = r.anchor_time.isoformat()
            if r.released_at is not None:
                entry["released_at"] = _when(r.released_at)
            entry["domains"] = [
                {
                    "name": d.name,
                    "registrar": d.registrar,
                    "epp_statuses": list(d.epp_statuses),
                    "nameservers": list(d.nameservers),
                    "records": records.get(d.id, []),
                    **({"release": stages[d.id]} if d.id in stages else {}),
                }
                for d in domains.get(r.id, [])
            ]
            yield entry


def order_row(order: Any) -> dict[str, Any]:
    """One order as the export shows it (from an ``Order`` or a row of its table)."""
    return {
        "id": order.id,
        "instance": order.instance_id,
        "kind": order.kind,
        "period_start": _when(order.period_start),
        "period_end": _when(order.period_end),
        "amount": _money(order.amount),
        "state": order.state,
        "reason": order.reason,
    }


def top_up_row(top_up: Any) -> dict[str, Any]:
    """One top-up as the export shows it (from a ``TopUp`` or a row of its table)."""
    return {
        "id": top_up.id,
        "account": top_up.account_id,
        "amount": _money(top_up.amount),
        "request_key": top_up.key,
        "created_at": _when(top_up.created_at),
    }


def notification_row(notification: Any) -> dict[str, Any]:
    """One notification as the export shows it (from a ``Notification`` or a row)."""
    return {
        "id": notification.id,
        "account": notification.account_id,
        "instance": notification.instance_id,
        "channel": notification.channel,
        "kind": notification.kind,
        "offset_days": notification.offset_days,
        "state": notification.state,
        "created_at": _when(notification.created_at),
        "sent_at": _when(notification.sent_at),
        "error": notification.error,
    }


def _export_orders(session: Session) -> Iterator[dict[str, Any]]:
    query = select(table_of(Order)).order_by(col(Order.id))
    for r in session.execute(query.execution_options(yield_per=CHUNK)):
        yield order_row(r)


def _export_top_ups(session: Session) -> Iterator[dict[str, Any]]:
    query = select(table_of(TopUp)).order_by(col(TopUp.id))
    for r in session.execute(query.execution_options(yield_per=CHUNK)):
        yield top_up_row(r)


def _export_notifications(session: Session) -> Iterator[dict[str, Any]]:
    query = select(table_of(Notification)).order_by(col(Notification.id))
    for r in session.execute(query.execution_options(yield_per=CHUNK)):
        yield notification_row(r)


def _export_tickets(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(
            col(Ticket.id),
            col(Domain.name),
            col(Ticket.instance_id),
            col(Ticket.reason),
            col(Ticket.state),
        )
        .join(Domain, col(Domain.id) == col(Ticket.domain_id))
        .order_by(col(Ticket.id))
    )
    for r in session.execute(query.execution_options(yield_per=CHUNK)):
        yield {
            "id": r.id,
            "domain": r.name,
            "instance": r.instance_id,
            "reason": r.reason,
            "state": r.state,
        }


_EXPORTERS: tuple[tuple[str, Callable[[Session], Iterator[dict[str, Any]]]], ...] = (
    ("editions", _export_editions),
    ("clusters", _export_clusters),
    ("accounts", _export_accounts),
    ("instances", _export_instances),
    ("orders", _export_orders),
    ("top_ups", _export_top_ups),
    ("notifications", _export_notifications),
    ("tickets", _export_tickets),
)


def iter_state(session: Session) -> Iterator[tuple[str, Iterator[dict[str, Any]]]]:
    """Each section of the export with a lazy iterator of its entries, in order.

    Consume each iterator before moving to the next section.
    """
    for name, exporter in _EXPORTERS:
        yield name, exporter(session)


def export_state(session: Session) -> dict[str, Any]:
    """The whole state: the inventory sections in the import format (every record with
    the ``cluster`` that serves it) plus orders, top-ups, notifications and tickets.

    Datetimes are ISO 8601 in UTC with an offset; amounts are decimal strings.
    """
    return {name: list(entries) for name, entries in iter_state(session)}


def write_state(session: Session, out: TextIO) -> dict[str, int]:
    """Write ``export_state`` as JSON to ``out`` one entry at a time (constant memory
    for any number of accounts and orders); returns how many entries each section had."""
    counts: dict[str, int] = {}
    out.write("{")
    for s, (name, entries) in enumerate(iter_state(session)):
        out.write(("," if s else "") + f"\n  {json.dumps(name)}: [")
        n = 0
        for entry in entries:
            out.write(("," if n else "") + "\n    " + json.dumps(entry, ensure_ascii=False))
            n += 1
        out.write("\n  ]" if n else "]")
        counts[name] = n
    out.write("\n}\n")
    return counts
