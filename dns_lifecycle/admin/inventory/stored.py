"""What an inventory document declares, and what the database holds of it.

``validate_inventory`` (``checking``) scans the document once (``_Declared``) and loads
the stored rows it refers to (``StoredState``) before it walks the entries.
"""

from __future__ import annotations

import calendar
import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from sqlalchemy import func, select
from sqlmodel import Session, col

from dns_lifecycle.admin.inventory import values
from dns_lifecycle.admin.inventory.batches import chunks
from dns_lifecycle.admin.inventory.entries import InstanceEntry, columns_of
from dns_lifecycle.store import table_of
from models import Account, Cluster, Domain, DomainRelease, Edition, Instance, Order, Record, TopUp

# --- what the document declares and what the database holds ----------------------------------


def _raw_entries(doc: Any, key: str) -> list[dict[str, Any]]:
    """The object entries of one section, whatever else the document holds."""
    section = doc.get(key) if isinstance(doc, dict) else None
    if not isinstance(section, list):
        return []
    return [e for e in section if isinstance(e, dict)]


def _raw_str(entry: Any, key: str) -> str | None:
    value = entry.get(key) if isinstance(entry, dict) else None
    return value if isinstance(value, str) else None


@dataclass
class _Declared:
    """Keys the document declares, read leniently before the strict walk, so that a
    reference to an entry further down the file is known when it is checked."""

    editions: set[str] = field(default_factory=set)
    clusters: dict[str, Any] = field(default_factory=dict)  # code -> declared kind
    accounts: set[str] = field(default_factory=set)
    account_zones: dict[str, Any] = field(default_factory=dict)  # id -> declared time zone
    instances: set[str] = field(default_factory=set)
    instances_with_domains: set[str] = field(default_factory=set)
    account_refs: set[str] = field(default_factory=set)
    domain_names: set[str] = field(default_factory=set)

    @classmethod
    def scan(cls, doc: Any) -> _Declared:
        d = cls()
        for e in _raw_entries(doc, "editions"):
            if (code := _raw_str(e, "code")) is not None:
                d.editions.add(code)
        for e in _raw_entries(doc, "clusters"):
            if (code := _raw_str(e, "code")) is not None and code not in d.clusters:
                d.clusters[code] = e.get("kind")
        for e in _raw_entries(doc, "accounts"):
            if (account_id := _raw_str(e, "id")) is not None:
                d.accounts.add(account_id)
                d.account_zones[account_id] = e.get("timezone")
        for e in _raw_entries(doc, "instances"):
            instance_id = _raw_str(e, "id")
            if instance_id is not None:
                d.instances.add(instance_id)
                if "domains" in e:
                    d.instances_with_domains.add(instance_id)
            if (account_id := _raw_str(e, "account")) is not None:
                d.account_refs.add(account_id)
            domains = e.get("domains")
            for dom in domains if isinstance(domains, list) else []:
                if (name := _raw_str(dom, "name")) is not None:
                    with contextlib.suppress(ValueError):
                        d.domain_names.add(values.domain_name(name))
        return d


# The columns of an instance that a released one keeps for good, by document key.
_INSTANCE_COLUMNS = {key: column for key, (column, _) in columns_of(InstanceEntry).items()}


@dataclass
class StoredDomain:
    """A stored domain as the document gives it, to compare with a re-imported one."""

    registrar: str
    epp_statuses: list[str]
    nameservers: list[str]
    records: list[tuple[str, str, str, int]]
    release: dict[str, Any] | None


class HeldInstance(NamedTuple):
    """A stored instance of the file, as the database holds it."""

    state: str
    expires_at: datetime
    account_id: str
    edition_code: str


@dataclass
class Lifecycle:
    """What the lifecycle runs did to the file's instances and accounts: states, paid
    periods, upgrades, charges. A file is not dated, so it may be older than these: the
    checks refuse what would undo them (``_Walk.stale_instance``, ``_Walk.balance``)."""

    # Every stored instance of the file.
    instances: dict[str, HeldInstance] = field(default_factory=dict)
    # Stored released instances of the file: their columns, and their domains by name
    # (for those the file lists with domains).
    released: dict[str, dict[str, Any]] = field(default_factory=dict)
    released_domains: dict[str, dict[str, StoredDomain]] = field(default_factory=dict)
    # Per instance, the paid order whose period ends last: (order id, kind, period end).
    paid_through: dict[str, tuple[int, str, datetime]] = field(default_factory=dict)
    # Per instance, its latest paid upgrade: (order id, the edition it paid for).
    upgrades: dict[str, tuple[int, str | None]] = field(default_factory=dict)
    # Stored balance of each stored account of the file.
    balances: dict[str, Decimal] = field(default_factory=dict)
    # Accounts with paid orders: (how many, when the latest was paid).
    charges: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)
    # Accounts with top-ups: (how many, when the latest was added).
    top_ups: dict[str, tuple[int, datetime | None]] = field(default_factory=dict)

    @classmethod
    def load(cls, session: Session, declared: _Declared, account_ids: set[str]) -> Lifecycle:
        found = cls()
        for chunk in chunks(sorted(declared.instances)):
            for instance_id, *held in session.execute(
                select(
                    col(Instance.id),
                    col(Instance.state),
                    col(Instance.expires_at),
                    col(Instance.account_id),
                    col(Instance.edition_code),
                ).where(col(Instance.id).in_(chunk))
            ):
                found.instances[instance_id] = HeldInstance(*held)
        released = sorted(i for i, held in found.instances.items() if held.state == "released")
        columns = [getattr(Instance, c) for c in _INSTANCE_COLUMNS.values()]
        for chunk in chunks(released):
            for row in session.execute(
                select(*columns).where(col(Instance.id).in_(chunk))
            ).mappings():
                found.released[row["id"]] = dict(row)
        found.released_domains = _stored_domains(
            session, [i for i in released if i in declared.instances_with_domains]
        )
        orders, other = table_of(Order), table_of(Order).alias("other")
        latest = (
            select(func.max(other.c.period_end))
            .where(other.c.instance_id == orders.c.instance_id, other.c.state == "paid")
            .scalar_subquery()
        )
        for chunk in chunks(sorted(found.instances)):
            for instance_id, order_id, kind, end in session.execute(
                select(orders.c.instance_id, orders.c.id, orders.c.kind, orders.c.period_end)
                .where(
                    orders.c.instance_id.in_(chunk),
                    orders.c.state == "paid",
                    orders.c.period_end == latest,
                )
                .order_by(orders.c.id)
            ):
                found.paid_through[instance_id] = (order_id, kind, end)
            for instance_id, order_id, edition in session.execute(
                select(orders.c.instance_id, orders.c.id, orders.c.edition_code)
                .where(
                    orders.c.instance_id.in_(chunk),
                    orders.c.state == "paid",
                    orders.c.kind == "upgrade",
                )
                .order_by(orders.c.id)
            ):
                found.upgrades[instance_id] = (order_id, edition)
        for chunk in chunks(sorted(declared.accounts & account_ids)):
            found.balances.update(
                session.execute(
                    select(col(Account.id), col(Account.balance)).where(col(Account.id).in_(chunk))
                ).all()
            )
            for account_id, count, paid_at in session.execute(
                select(col(Instance.account_id), func.count(), func.max(col(Order.paid_at)))
                .join(Order, col(Order.instance_id) == col(Instance.id))
                .where(col(Instance.account_id).in_(chunk), col(Order.state) == "paid")
                .group_by(col(Instance.account_id))
            ):
                found.charges[account_id] = (count, paid_at)
            for account_id, count, added_at in session.execute(
                select(col(TopUp.account_id), func.count(), func.max(col(TopUp.created_at)))
                .where(col(TopUp.account_id).in_(chunk))
                .group_by(col(TopUp.account_id))
            ):
                found.top_ups[account_id] = (count, added_at)
        return found


def _stored_domains(
    session: Session, instance_ids: list[str]
) -> dict[str, dict[str, StoredDomain]]:
    """The stored domains of these instances, with their records and release stages."""
    result: dict[str, dict[str, StoredDomain]] = {}
    for chunk in chunks(instance_ids):
        by_id: dict[int, StoredDomain] = {}
        for d in session.execute(
            select(table_of(Domain)).where(col(Domain.instance_id).in_(chunk))
        ):
            by_id[d.id] = result.setdefault(d.instance_id, {})[d.name] = StoredDomain(
                d.registrar, list(d.epp_statuses), list(d.nameservers), [], None
            )
        for ids in chunks(sorted(by_id)):
            for r in session.execute(
                select(table_of(Record)).where(col(Record.domain_id).in_(ids))
            ):
                by_id[r.domain_id].records.append((r.type, r.host, r.value, r.ttl))
            for stage in session.execute(
                select(table_of(DomainRelease)).where(col(DomainRelease.domain_id).in_(ids))
            ).mappings():
                by_id[stage["domain_id"]].release = dict(stage)
    return result


@dataclass
class StoredState:
    """What the database holds that the checks and the writes need."""

    edition_ranks: dict[str, int]
    # (monthly, yearly) price of each stored edition.
    edition_prices: dict[str, tuple[Decimal, Decimal]]
    cluster_kinds: dict[str, str]
    account_ids: set[str]
    account_zones: dict[str, str]
    instance_ids: set[str]
    domains: dict[str, tuple[int, str]]  # name -> (id, instance id)
    # Instances outside the document served by a cluster the document makes free.
    users_of_freed: dict[str, int]
    # Of each account the document moves to another time zone: its stored instances
    # (id, expiry, anchor day).
    instances_of: dict[str, list[tuple[str, datetime, int, time | None]]]
    # What the lifecycle did, that a file older than it must not undo (``Lifecycle``).
    lifecycle: Lifecycle

    @classmethod
    def load(cls, session: Session, declared: _Declared) -> StoredState:
        edition_ranks: dict[str, int] = {}
        edition_prices: dict[str, tuple[Decimal, Decimal]] = {}
        for code, rank, monthly, yearly in session.execute(
            select(
                col(Edition.code),
                col(Edition.rank),
                col(Edition.monthly_price),
                col(Edition.yearly_price),
            )
        ):
            edition_ranks[code] = rank
            edition_prices[code] = (monthly, yearly)
        cluster_kinds = dict(session.execute(select(col(Cluster.code), col(Cluster.kind))).all())
        account_zones: dict[str, str] = {}
        for chunk in chunks(sorted(declared.accounts | declared.account_refs)):
            account_zones.update(
                (account_id, zone)
                for account_id, zone in session.execute(
                    select(col(Account.id), col(Account.timezone)).where(col(Account.id).in_(chunk))
                )
            )
        account_ids = set(account_zones)
        lifecycle = Lifecycle.load(session, declared, account_ids)
        instance_ids = set(lifecycle.instances)
        domains: dict[str, tuple[int, str]] = {}
        for chunk in chunks(sorted(declared.domain_names)):
            rows = session.execute(
                select(col(Domain.name), col(Domain.id), col(Domain.instance_id)).where(
                    col(Domain.name).in_(chunk)
                )
            ).all()
            domains.update((name, (domain_id, owner)) for name, domain_id, owner in rows)
        freed = [
            code
            for code, kind in declared.clusters.items()
            if kind == "free" and cluster_kinds.get(code) == "paid"
        ]
        users_of_freed: dict[str, int] = {}
        for code in freed:
            ids = session.execute(
                select(col(Instance.id)).where(col(Instance.cluster_code) == code)
            ).scalars()
            users_of_freed[code] = sum(1 for i in ids if i not in declared.instances)
        moved = sorted(
            account_id
            for account_id, zone in declared.account_zones.items()
            if account_id in account_zones and zone != account_zones[account_id]
        )
        instances_of: dict[str, list[tuple[str, datetime, int, time | None]]] = {}
        for chunk in chunks(moved):
            for instance_id, account_id, expires_at, anchor, at in session.execute(
                select(
                    col(Instance.id),
                    col(Instance.account_id),
                    col(Instance.expires_at),
                    col(Instance.anchor_day),
                    col(Instance.anchor_time),
                )
                .where(col(Instance.account_id).in_(chunk))
                .order_by(col(Instance.id))
            ):
                instances_of.setdefault(account_id, []).append(
                    (instance_id, expires_at, anchor, at)
                )
        return cls(
            edition_ranks,
            edition_prices,
            cluster_kinds,
            account_ids,
            account_zones,
            instance_ids,
            domains,
            users_of_freed,
            instances_of,
            lifecycle,
        )


class _Rung(NamedTuple):
    """An edition on the ladder of ranks: its (monthly, yearly) prices, and its path in
    the file (None for a stored edition the file leaves as it is)."""

    rank: int
    code: str
    prices: tuple[Decimal, Decimal]
    path: str | None


def anchor_time_misfit(expires_at: datetime, anchor_time: time | None, zone: str) -> str | None:
    """The local time of ``expires_at`` in ``zone`` when ``anchor_time`` does not fit it,
    else None. An anchor time fits the expiry that shows it, and one that a
    daylight-saving gap skipped on the expiry's day, moving the expiry forward by the
    jump (see ``lifecycle.calendar.add_months``)."""
    if anchor_time is None:
        return None
    tz = ZoneInfo(zone)
    local = expires_at.astimezone(tz)
    if local.time() == anchor_time:
        return None
    wall = datetime.combine(local.date(), anchor_time, tzinfo=tz)
    skipped = wall.astimezone(UTC).astimezone(tz).time() != anchor_time
    if skipped and wall.astimezone(UTC) == expires_at:
        return None
    return local.time().isoformat()


def anchor_misfit(expires_at: datetime, anchor: int, zone: str) -> int | None:
    """The local day of ``expires_at`` in ``zone`` when ``anchor`` does not fit it, else
    None. A subscription anchored on the 31st expires on the 30th (or 28th) in shorter
    months: the anchor may exceed the expiry day only at the end of a month."""
    local = expires_at.astimezone(ZoneInfo(zone))
    last = calendar.monthrange(local.year, local.month)[1]
    if anchor == local.day or (local.day == last and anchor > local.day):
        return None
    return local.day
