"""Checking a whole inventory document against itself and the database.

``validate_inventory`` walks the document in file order. Each entry is validated by
its model (``entries``); what no single entry can tell is checked here: codes and ids
unique in the file, references to entries of the file or of the database, one free
cluster, a domain owned by one instance, records that can share their name. Every
problem is collected with its path before anything is written.
"""

from __future__ import annotations

import calendar
import contextlib
import itertools
from collections.abc import Iterable
from dataclasses import astuple, dataclass, field
from datetime import UTC, datetime, time
from decimal import Decimal
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

from pydantic import ValidationError
from sqlalchemy import func, select
from sqlmodel import Session, col

from dns_lifecycle.admin.inventory import values
from dns_lifecycle.admin.inventory.batches import chunks
from dns_lifecycle.admin.inventory.entries import (
    LEGACY_OPTIONS,
    AccountEntry,
    ClusterEntry,
    DomainEntry,
    DomainReleaseEntry,
    EditionEntry,
    InstanceEntry,
    RecordEntry,
    columns_of,
    fields_of,
    key_path,
    validate_entry,
)
from dns_lifecycle.channels.clusters import BACKENDS as CLUSTER_BACKENDS
from dns_lifecycle.core.errors import InventoryInvalid
from dns_lifecycle.core.settings import GRACE_DAYS
from dns_lifecycle.lifecycle.expiry import release_at
from dns_lifecycle.lifecycle.zonefile import Rr
from dns_lifecycle.store import table_of
from models import (
    Account,
    Cluster,
    Domain,
    DomainRelease,
    Edition,
    Instance,
    Order,
    Record,
    TopUp,
)
from models.cluster import ClusterBase
from models.types import INSTANCE_STATES, time_zones

__all__ = [
    "HISTORY_KEYS",
    "SECTIONS",
    "CheckedDomain",
    "CheckedRecord",
    "Inventory",
    "StoredState",
    "validate_inventory",
]

SECTIONS = ("editions", "clusters", "accounts", "instances")
# Sections of an export written by the lifecycle runs and by requests (top-ups):
# accepted and ignored on import.
HISTORY_KEYS = ("orders", "top_ups", "notifications", "tickets")
# How money is added to an account, for the refusals that point to it.
TOP_UP_COMMAND = "dns-lifecycle top-up ACCOUNT --amount X --request-key K"


@dataclass(frozen=True)
class CheckedRecord:
    type: str
    host: str
    value: str
    ttl: int


@dataclass(frozen=True)
class CheckedDomain:
    name: str
    registrar: str
    epp_statuses: list[str]
    nameservers: list[str]
    records: list[CheckedRecord]
    release: dict[str, Any] | None = None  # a release under way, as exported


@dataclass(frozen=True)
class Inventory:
    """A document that passed validation, normalised, with what it found stored.

    ``editions``, ``clusters``, ``accounts`` and ``instances`` hold column values ready
    to write (an instance row has no ``domains``; they are in ``domains``, keyed by
    instance id, for the instances whose domains the document gives).
    """

    editions: list[dict[str, Any]]
    clusters: list[dict[str, Any]]
    accounts: list[dict[str, Any]]
    instances: list[dict[str, Any]]
    domains: dict[str, list[CheckedDomain]]
    # Which cluster serves the records of each instance of the document.
    serving_cluster: dict[str, str]
    stored: StoredState = field(repr=False)

    def counts(self) -> dict[str, int]:
        """How many of each kind the document holds."""
        domains = [d for ds in self.domains.values() for d in ds]
        return {
            "editions": len(self.editions),
            "clusters": len(self.clusters),
            "accounts": len(self.accounts),
            "instances": len(self.instances),
            "domains": len(domains),
            "records": sum(len(d.records) for d in domains),
        }


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


# --- the walk ----------------------------------------------------------------------------------


class _Walk:
    """Checks every entry in file order and records every problem with its path."""

    def __init__(self, declared: _Declared, stored: StoredState, now: datetime, grace_days: int):
        self.declared = declared
        self.stored = stored
        # The moment of the import: what has already happened, and what has not.
        self.now = now
        self.grace_days = grace_days
        self.errors: list[tuple[str, str]] = []
        # The free cluster of the state after import, if there will be exactly one.
        self.free_cluster = self._final_free_cluster()

    def bad(self, path: str, message: str) -> None:
        self.errors.append((path, message))

    def _final_free_cluster(self) -> str | None:
        free = [c for c, kind in self.declared.clusters.items() if kind == "free"]
        free += self._stored_free()
        return free[0] if len(free) == 1 else None

    def _stored_free(self) -> list[str]:
        return [
            c
            for c, kind in self.stored.cluster_kinds.items()
            if kind == "free" and c not in self.declared.clusters
        ]

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.bad(path, f"expected an array, got {values.show(value)}")
            return []
        return value

    def unique(self, seen: dict[Any, str], key: Any, path: str, what: str) -> bool:
        """Whether ``key`` is new in the file; if not, the problem is recorded."""
        if key in seen:
            self.bad(path, f"{values.show(key)} is also the {what} of {seen[key]}")
            return False
        seen[key] = path
        return True

    def known(self, value: str, path: str, what: str, declared: Iterable[str], stored: Any) -> bool:
        if value not in declared and value not in stored:
            self.bad(
                path, f"unknown {what} {values.show(value)}: not in this file nor in the database"
            )
            return False
        return True

    # -- sections --

    def editions(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen_codes: dict[str, str] = {}
        seen_ranks: dict[int, str] = {}
        for i, raw in enumerate(self.array(section, "editions")):
            path = f"editions[{i}]"
            row = validate_entry(EditionEntry, raw, path, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            self.unique(seen_codes, row["code"], f"{path}.code", "code")
            rank = row["rank"]
            holder = next(
                (
                    code
                    for code, r in self.stored.edition_ranks.items()
                    if r == rank and code not in self.declared.editions
                ),
                None,
            )
            if rank in seen_ranks:
                self.bad(f"{path}.rank", f"{rank} is also the rank of {seen_ranks[rank]}")
            elif holder is not None:
                self.bad(
                    f"{path}.rank",
                    f"{rank} is already the rank of the stored edition {values.show(holder)}; "
                    "ranks are unique",
                )
            else:
                seen_ranks[rank] = path
            if len(self.errors) == before:
                rows.append(row)
        self._prices_rise_with_rank(rows, seen_ranks)
        return rows

    def _prices_rise_with_rank(self, rows: list[dict[str, Any]], paths: dict[int, str]) -> None:
        """Refuse a file edition whose monthly or yearly price falls as rank rises, next
        to the editions of the file and the stored ones it leaves as they are: an upgrade
        goes up in rank, and never pays back."""
        declared = {row["code"] for row in rows}
        ladder = [
            _Rung(r["rank"], r["code"], (r["monthly_price"], r["yearly_price"]), paths[r["rank"]])
            for r in rows
        ]
        ladder += [
            _Rung(rank, code, self.stored.edition_prices[code], None)
            for code, rank in self.stored.edition_ranks.items()
            if code not in declared and code not in self.declared.editions
        ]
        ladder.sort(key=lambda rung: rung.rank)
        for lower, higher in itertools.pairwise(ladder):
            blamed, other = (higher, lower) if higher.path is not None else (lower, higher)
            if blamed.path is None:
                continue  # both stored: not this file's doing
            for index, name in enumerate(("monthly_price", "yearly_price")):
                if higher.prices[index] < lower.prices[index]:
                    where = "" if other.path is not None else "stored "
                    self.bad(
                        f"{blamed.path}.{name}",
                        f"{values.show(higher.code)} (rank {higher.rank}) costs "
                        f"{higher.prices[index]}, less than the {lower.prices[index]} of the "
                        f"{where}edition {values.show(lower.code)} (rank {lower.rank}) below "
                        "it: prices may not fall as rank rises; raise this price or change "
                        "the ranks",
                    )

    def clusters(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        first_free: str | None = None
        stored_free = self._stored_free()
        for i, raw in enumerate(self.array(section, "clusters")):
            path = f"clusters[{i}]"
            row = validate_entry(ClusterEntry, raw, path, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            code = row["code"]
            self.unique(seen, code, f"{path}.code", "code")
            self.cluster_backend(row, path)
            if row["kind"] == "free":
                if stored_free:
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {values.show(stored_free[0])} is already the free "
                        "cluster; there is one free cluster",
                    )
                elif first_free is not None:
                    self.bad(
                        f"{path}.kind",
                        f"{first_free} is already the free cluster; there is one free cluster",
                    )
                else:
                    first_free = path
                if users := self.stored.users_of_freed.get(code, 0):
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {values.show(code)} serves {users} instance(s) "
                        "not in this file; it cannot become the free cluster",
                    )
            if len(self.errors) == before:
                rows.append(row)
        return rows

    def cluster_backend(self, row: dict[str, Any], path: str) -> None:
        """Completes a cluster's row with the defaults of the fields a file may leave
        out, and checks its backend and the backend's options with the backend's own
        model (files written before ``options`` give them at the entry's top level)."""
        for column in ("backend", "nameserver_addresses"):
            if column not in row:
                row[column] = ClusterBase.model_fields[column].get_default(
                    call_default_factory=True
                )
        legacy = {key: row.pop(key) for key in LEGACY_OPTIONS if key in row}
        try:
            CLUSTER_BACKENDS.check(row["backend"])
        except ValueError as exc:
            self.bad(f"{path}.backend", str(exc))
            return
        if legacy and "options" in row:
            self.bad(
                f"{path}.options",
                f"given with {', '.join(legacy)} beside it; put them in options",
            )
            return
        given = {key: value for key, value in legacy.items() if value is not None}
        where = path if legacy else f"{path}.options"
        if not legacy:
            given = row.get("options") or {}
        try:
            options = CLUSTER_BACKENDS.options(row["backend"], given)
        except ValidationError as exc:
            for error in exc.errors(include_url=False):
                key = ".".join(str(step) for step in error["loc"])
                if error["type"] == "extra_forbidden":
                    message = f"a {row['backend']} cluster takes no {key}; leave it out"
                elif error["type"] == "missing":
                    message = f"missing; a {row['backend']} cluster needs its {key}"
                else:
                    message = error["msg"].removeprefix("Value error, ")
                self.bad(f"{where}.{key}" if key else where, message)
            return
        row["options"] = options.model_dump(mode="json", exclude_none=True)

    def accounts(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        for i, raw in enumerate(self.array(section, "accounts")):
            path = f"accounts[{i}]"
            if isinstance(raw, dict) and "top_up" in raw:
                # A file imported twice would add it twice; a request key adds it once.
                self.bad(
                    f"{path}.top_up",
                    "an import does not add money (the same file imported again would add "
                    f"it again): add it once with `{TOP_UP_COMMAND}`, and leave top_up out",
                )
                raw = {key: value for key, value in raw.items() if key != "top_up"}
            row = validate_entry(AccountEntry, raw, path, self.errors)
            if row is not None and self.unique(seen, row["id"], f"{path}.id", "id"):
                self.new_zone(row, path)
                self.balance(row, path)
                rows.append(row)
        return rows

    def balance(self, row: dict[str, Any], path: str) -> None:
        """Checks an account's balance against the stored balance; leaves in ``row`` only
        a balance to write (none where the stored one stays)."""
        lifecycle = self.stored.lifecycle
        account_id = row["id"]
        stored = lifecycle.balances.get(account_id)
        if stored is None or "balance" not in row:
            return
        if row["balance"] == stored:
            # Nothing to write: a run charging the account meanwhile is not undone.
            del row["balance"]
            return
        moves = []
        if account_id in lifecycle.charges:
            count, paid_at = lifecycle.charges[account_id]
            latest = f" (the latest paid {_utc(paid_at)})" if paid_at is not None else ""
            moves.append(f"{count} paid order{'s' if count != 1 else ''} charged{latest}")
        if account_id in lifecycle.top_ups:
            count, added_at = lifecycle.top_ups[account_id]
            latest = f" (the latest {_utc(added_at)})" if added_at is not None else ""
            moves.append(f"{count} top-up{'s' if count != 1 else ''} added{latest}")
        if moves:
            self.bad(
                f"{path}.balance",
                f"{_amount(row['balance'])} is not the stored balance {_amount(stored)}, "
                f"which {' and '.join(moves)}; a file cannot show that it is newer than "
                "those, so it does not set the balance of an account the lifecycle has "
                "charged or topped up: give the stored balance or leave balance out, and add "
                f"money with `{TOP_UP_COMMAND}`",
            )

    def new_zone(self, row: dict[str, Any], path: str) -> None:
        """An account moved to another time zone: its stored instances that the file does
        not list must still fit their anchor days there (those it lists are checked with
        the file's values)."""
        zone = row["timezone"]
        if self.stored.account_zones.get(row["id"], zone) == zone:
            return
        for instance_id, expires_at, anchor, at in self.stored.instances_of.get(row["id"], []):
            if instance_id in self.declared.instances:
                continue
            if (day := anchor_misfit(expires_at, anchor, zone)) is not None:
                self.bad(
                    f"{path}.timezone",
                    f"{values.show(zone)} does not fit the stored instance "
                    f"{values.show(instance_id)}: its anchor_day {anchor} does not fit its "
                    f"expires_at (day {day} in {zone}); list that instance in this file with "
                    "an anchor_day and expires_at that fit the new zone, or keep the zone",
                )
            elif (shown := anchor_time_misfit(expires_at, at, zone)) is not None:
                assert at is not None  # only a stored anchor time can misfit
                self.bad(
                    f"{path}.timezone",
                    f"{values.show(zone)} does not fit the stored instance "
                    f"{values.show(instance_id)}: its anchor_time {at.isoformat()} does not "
                    f"fit its expires_at ({shown} in {zone}); list that instance in this file "
                    "with an expires_at that fits the new zone, or keep the zone",
                )

    def instances(
        self, section: Any
    ) -> tuple[list[dict[str, Any]], dict[str, list[CheckedDomain]], dict[str, str]]:
        rows: list[dict[str, Any]] = []
        all_domains: dict[str, list[CheckedDomain]] = {}
        serving: dict[str, str] = {}
        seen: dict[str, str] = {}
        seen_domains: dict[str, str] = {}
        for i, raw in enumerate(self.array(section, "instances")):
            path = f"instances[{i}]"
            before = len(self.errors)
            row = validate_entry(InstanceEntry, raw, path, self.errors)
            if row is not None:
                record_cluster = self.instance(row, path, seen)
            else:
                # Still check the references that are well formed: every problem at once.
                record_cluster = None
                given = self.passed(raw, path, before)
                self.references(
                    {key: value for key, value in given.items() if isinstance(value, str)},
                    path,
                    seen,
                )
            self.in_field_order(InstanceEntry, path, before)
            instance_id = row["id"] if row is not None else _raw_str(raw, "id")
            domains = None
            if isinstance(raw, dict) and isinstance(raw.get("domains"), list):
                domains = self.domains(
                    raw["domains"], f"{path}.domains", instance_id, seen_domains, record_cluster
                )
            if row is not None and row["id"] in self.stored.lifecycle.instances:
                clean = domains if len(self.errors) == before else None
                self.stale_instance(row, raw, path, clean)
            if row is not None:
                self.state_reached(row, path)
            if row is None or record_cluster is None or len(self.errors) != before:
                continue
            row.pop("domains", None)
            rows.append(row)
            serving[row["id"]] = record_cluster
            if domains is not None:
                all_domains[row["id"]] = domains
        return rows, all_domains, serving

    def instance(self, row: dict[str, Any], path: str, seen: dict[str, str]) -> str | None:
        """Checks an instance against the file and the database; completes its row and
        returns the cluster that serves its records (None when that is not known)."""
        given = {"account": row["account_id"], "edition": row["edition_code"]}
        cluster = row["cluster_code"]
        cluster_ok = self.references({"id": row["id"], **given, "cluster": cluster}, path, seen)
        zone = self.declared.account_zones.get(
            row["account_id"], self.stored.account_zones.get(row["account_id"])
        )
        self.anchor_day(row, path, zone)
        expires_at, state = row["expires_at"], row["state"]
        if "released_at" in row:
            if state != "released":
                self.bad(
                    f"{path}.released_at",
                    "only a released instance has a release time; remove it or set "
                    "state to 'released'",
                )
            elif row["released_at"] < release_at(expires_at, self.grace_days):
                self.bad(
                    f"{path}.released_at",
                    f"{_utc(row['released_at'])} is before the end of the grace period "
                    f"({_utc(release_at(expires_at, self.grace_days))}, {self.grace_days} days "
                    "after expires_at); an instance is released once its grace period is over",
                )
            elif row["released_at"] > self.now:
                self.bad(
                    f"{path}.released_at",
                    f"{_utc(row['released_at'])} is after now ({_utc(self.now)}); a release "
                    "is recorded once it has happened: give the moment it was released",
                )
        elif state != "released":
            row["released_at"] = None
        if state != "released":
            return cluster if cluster_ok else None
        if self.free_cluster is None:
            self.bad(
                f"{path}.state",
                "a released instance's records are served by the free cluster, "
                "and there is no single free cluster; add one to 'clusters'",
            )
        return self.free_cluster

    def state_reached(self, row: dict[str, Any], path: str) -> None:
        """A file's expired or released instance must have reached that state by now: an
        instance expires at its expiry, and is released once its grace period is over
        (DNSL_GRACE_DAYS), never by a file before then. (A stored instance refused at its
        state already, as one with time left, is not refused twice.)"""
        where = f"{path}.state"
        if any(p == where for p, _ in self.errors):
            return
        state, expires_at = row["state"], row["expires_at"]
        grace_end = release_at(expires_at, self.grace_days)
        if state == "released" and grace_end > self.now:
            self.bad(
                where,
                f"'released' before the grace period ends ({_utc(grace_end)}, "
                f"{self.grace_days} days after expires_at); the lifecycle releases it then",
            )
        elif state == "expired" and expires_at > self.now:
            self.bad(
                where,
                f"'expired' with expires_at {_utc(expires_at)} after now "
                f"({_utc(self.now)}); give state 'active' until it expires",
            )

    def stale_instance(
        self,
        row: dict[str, Any],
        raw: dict[str, Any],
        path: str,
        domains: list[CheckedDomain] | None,
    ) -> None:
        """Refuses what would undo the lifecycle's work on a stored instance: any change
        to a released one, moving one with paid orders to another account, the edition
        of one with a paid upgrade, an expiry before the end of its paid periods, an
        expired one made active again without an expiry ahead of now, and one with time
        left made expired or released."""
        lifecycle = self.stored.lifecycle
        instance_id = row["id"]
        held = lifecycle.instances[instance_id]
        stored_state, stored_expiry = held.state, held.expires_at
        if stored_state == "released":
            self.released_unchanged(row, raw, path, domains)
            return
        paid = lifecycle.paid_through.get(instance_id)
        if paid is not None and row["account_id"] != held.account_id:
            order_id, kind, _ = paid
            self.bad(
                f"{path}.account",
                f"{values.show(row['account_id'])} would move the instance away from the "
                f"account {values.show(held.account_id)}, which paid its orders (the latest "
                f"order {order_id}, {kind}); an instance with paid orders stays with the "
                f"account that paid them: give {values.show(held.account_id)}",
            )
        upgraded = lifecycle.upgrades.get(instance_id)
        if upgraded is not None and row["edition_code"] != held.edition_code:
            order_id, edition = upgraded
            self.bad(
                f"{path}.edition",
                f"{values.show(row['edition_code'])} is not the stored edition "
                f"{values.show(held.edition_code)}, and order {order_id} paid the upgrade "
                f"to {values.show(edition)}: the file is older than that upgrade; give the "
                "stored edition (export the current state)",
            )
        if paid is not None and row["expires_at"] < paid[2]:
            order_id, kind, end = paid
            self.bad(
                f"{path}.expires_at",
                f"{_utc(row['expires_at'])} is before {_utc(end)}, the end of the period paid "
                f"by order {order_id} ({kind}): the file is older than that payment; an "
                "expiry is not moved back before a paid period ends. To correct an expiry, "
                "export the current state, edit it and import that",
            )
        state = row["state"]
        backwards = INSTANCE_STATES.index(state) < INSTANCE_STATES.index(stored_state)
        if backwards and row["expires_at"] <= max(stored_expiry, self.now):
            self.bad(
                f"{path}.state",
                f"{values.show(state)} would undo the instance's expiry: it is "
                f"{values.show(stored_state)} in the database, expired at "
                f"{_utc(stored_expiry)}. It becomes active again only with an expires_at "
                f"after now ({_utc(self.now)}): renew it (dns-lifecycle renew), or give the "
                "expiry it was renewed to",
            )
        elif state != stored_state and state != "active" and stored_expiry > self.now:
            self.bad(
                f"{path}.state",
                f"{values.show(state)} would end the instance's paid time: it is "
                f"{values.show(stored_state)} in the database until {_utc(stored_expiry)}, "
                f"after now ({_utc(self.now)}); the runs expire and release it once that "
                "time has passed: give the stored state",
            )

    def released_unchanged(
        self,
        row: dict[str, Any],
        raw: dict[str, Any],
        path: str,
        domains: list[CheckedDomain] | None,
    ) -> None:
        """Refuses every change to a released instance: its zones are on the free
        cluster, its paid copies deleted, its name servers switched."""
        stored = self.stored.lifecycle.released[row["id"]]
        released_at = stored["released_at"]
        final = (
            "the instance was released"
            + (f" on {_utc(released_at)}" if released_at is not None else "")
            + ", and a released instance is final: it cannot be changed by import. Give "
            "it as the database holds it (export the current state), or leave it out"
        )
        for key, column in _INSTANCE_COLUMNS.items():
            if key in raw and column in row and row[column] != stored[column]:
                self.bad(
                    key_path(path, key),
                    f"{_shown(row[column])} would change the stored {_shown(stored[column])}; "
                    + final,
                )
        if domains is None:
            return
        held = self.stored.lifecycle.released_domains.get(row["id"], {})
        listed = {d.name for d in domains}
        for j, d in enumerate(domains):
            dpath = f"{path}.domains[{j}]"
            now = held.get(d.name)
            if now is None:
                self.bad(dpath, f"{values.show(d.name)} is not a domain of this instance; {final}")
                continue
            changed = [
                what
                for what, same in (
                    ("registrar", d.registrar == now.registrar),
                    ("epp_statuses", sorted(d.epp_statuses) == sorted(now.epp_statuses)),
                    ("nameservers", sorted(d.nameservers) == sorted(now.nameservers)),
                    ("records", sorted(astuple(r) for r in d.records) == sorted(now.records)),
                    (
                        "release",
                        d.release is None
                        or (
                            now.release is not None
                            and all(now.release.get(k) == v for k, v in d.release.items())
                        ),
                    ),
                )
                if not same
            ]
            if changed:
                self.bad(dpath, f"its {', '.join(changed)} differ from the stored ones; {final}")
        missing = sorted(set(held) - listed)
        if missing:
            self.bad(
                f"{path}.domains",
                f"leaves out {', '.join(values.show(n) for n in missing)}, which it holds; "
                + final,
            )

    def references(self, given: dict[str, str], path: str, seen: dict[str, str]) -> bool:
        """Checks an instance's id and references, by document key, those ``given``;
        returns whether its cluster is a known paid cluster."""
        d, s = self.declared, self.stored
        if "id" in given:
            self.unique(seen, given["id"], f"{path}.id", "id")
        if "account" in given:
            self.known(given["account"], f"{path}.account", "account", d.accounts, s.account_ids)
        if "edition" in given:
            self.known(given["edition"], f"{path}.edition", "edition", d.editions, s.edition_ranks)
        cluster = given.get("cluster")
        if cluster is None:
            return False
        if not self.known(cluster, f"{path}.cluster", "cluster", d.clusters, s.cluster_kinds):
            return False
        kind = d.clusters[cluster] if cluster in d.clusters else s.cluster_kinds.get(cluster)
        if kind == "free":
            self.bad(
                f"{path}.cluster",
                f"{values.show(cluster)} is the free cluster; an instance is served by a "
                "paid cluster",
            )
            return False
        return True

    def passed(self, raw: Any, path: str, since: int) -> dict[str, Any]:
        """The keys of a refused entry with no problem recorded since ``since``, with
        their values as the document gives them."""
        if not isinstance(raw, dict):
            return {}
        failed = [p for p, _ in self.errors[since:]]
        return {
            key: value
            for key, value in raw.items()
            if isinstance(key, str) and not any(_within(p, key_path(path, key)) for p in failed)
        }

    def in_field_order(self, model: Any, path: str, since: int) -> None:
        """Sorts the problems recorded since ``since`` by the entry's field order."""
        order = {key_path(path, key): n for n, key in enumerate(fields_of(model))}

        def position(error: tuple[str, str]) -> int:
            where = error[0]
            return next((n for p, n in order.items() if _within(where, p)), len(order))

        self.errors[since:] = sorted(self.errors[since:], key=position)

    def anchor_day(self, row: dict[str, Any], path: str, zone: Any) -> None:
        # The anchor is a day of the account's own calendar; a bad zone is reported
        # with its account, and the anchor is then left unchecked.
        if not (isinstance(zone, str) and zone in time_zones()):
            return
        anchor = row.setdefault("anchor_day", row["expires_at"].astimezone(ZoneInfo(zone)).day)
        if (day := anchor_misfit(row["expires_at"], anchor, zone)) is not None:
            self.bad(
                f"{path}.anchor_day",
                f"{anchor} does not fit expires_at (day {day} in {zone}): it must be {day}, or "
                "larger only when expiry falls on the last day of the month",
            )
        # Left out, it is the expiry's own time: written so, not kept from before.
        at: time | None = row.setdefault("anchor_time", None)
        if at is not None and (shown := anchor_time_misfit(row["expires_at"], at, zone)):
            self.bad(
                f"{path}.anchor_time",
                f"{values.show(at.isoformat())} does not fit expires_at ({shown} in {zone}): "
                "it differs from the expiry's local time only where a daylight-saving gap "
                "skipped it on that day; give that time or leave anchor_time out",
            )

    def domains(
        self,
        section: list[Any],
        path: str,
        instance_id: str | None,
        seen_domains: dict[str, str],
        record_cluster: str | None,
    ) -> list[CheckedDomain]:
        result: list[CheckedDomain] = []
        for j, raw in enumerate(section):
            dpath = f"{path}[{j}]"
            before = len(self.errors)
            row = validate_entry(DomainEntry, raw, dpath, self.errors)
            name = row["name"] if row is not None else None
            if name is not None:
                self.owner(name, f"{dpath}.name", instance_id, seen_domains)
            records: list[CheckedRecord] = []
            if isinstance(raw, dict) and isinstance(raw.get("records"), list):
                records = self.records(raw["records"], f"{dpath}.records", name, record_cluster)
            release = None
            if isinstance(raw, dict) and raw.get("release") is not None:
                release = validate_entry(
                    DomainReleaseEntry, raw["release"], f"{dpath}.release", self.errors
                )
            if row is not None and len(self.errors) == before:
                result.append(
                    CheckedDomain(
                        name=row["name"],
                        registrar=row["registrar"],
                        epp_statuses=row.get("epp_statuses", []),
                        nameservers=row.get("nameservers", []),
                        records=records,
                        release=release,
                    )
                )
        return result

    def owner(
        self, name: str, path: str, instance_id: str | None, seen_domains: dict[str, str]
    ) -> None:
        if name in seen_domains:
            self.bad(path, f"{values.show(name)} is also listed at {seen_domains[name]}")
            return
        seen_domains[name] = path
        stored = self.stored.domains.get(name)
        if stored is None or instance_id is None:
            return
        owner = stored[1]
        moves_freely = (
            owner in self.declared.instances and owner in self.declared.instances_with_domains
        )
        if owner != instance_id and not moves_freely:
            self.bad(
                path,
                f"{values.show(name)} already belongs to the instance {values.show(owner)}; "
                "remove it there first (list that instance here without it)",
            )

    def records(
        self, section: list[Any], path: str, domain: str | None, record_cluster: str | None
    ) -> list[CheckedRecord]:
        result: list[CheckedRecord] = []
        seen: dict[tuple[str, str, str], str] = {}
        # Per owner name: the types there, with the path of the first of each.
        owners: dict[str, dict[str, str]] = {}
        # Per record set (owner, type): its TTL and the path that set it. DNS serves one
        # TTL per set, and a live cluster refuses a zone whose set has two.
        set_ttls: dict[tuple[str, str], tuple[int, str]] = {}
        for k, raw in enumerate(section):
            rpath = f"{path}[{k}]"
            row = validate_entry(RecordEntry, raw, rpath, self.errors)
            if row is None:
                continue
            before = len(self.errors)
            rtype, host = row["type"], row["host"]
            if rtype == "CNAME" and host == "@":
                # The apex always holds the zone's SOA and NS, and a CNAME must be alone.
                self.bad(
                    f"{rpath}.host",
                    "a CNAME cannot be at '@': the domain itself always holds its SOA and NS "
                    "records; give '@' A/AAAA records instead, or put the CNAME on a host "
                    "such as 'www'",
                )
                continue
            same = self.record_value(row, rpath, domain) if domain is not None else None
            if "cluster" in row and record_cluster is not None and row["cluster"] != record_cluster:
                self.bad(
                    f"{rpath}.cluster",
                    f"{values.show(row['cluster'])} does not serve this instance's records; "
                    f"{record_cluster!r} does (or leave the field out)",
                )
            if len(self.errors) != before or same is None:
                continue
            # Names compare without case, values as the zone file will hold them.
            identity = (same.type, same.host, same.value)
            if identity in seen:
                self.bad(rpath, f"the same record as {seen[identity]}")
                continue
            there = owners.setdefault(same.host, {})
            other = next((p for t, p in there.items() if "CNAME" in (t, rtype)), None)
            if other is not None:
                self.bad(
                    f"{rpath}.host",
                    f"{values.show(host)} already has a record at {other}, and a CNAME "
                    "must be the only record of its name; keep one of them, or move "
                    "the other to another host",
                )
                continue
            first_ttl, first_path = set_ttls.setdefault((same.host, same.type), (row["ttl"], rpath))
            if row["ttl"] != first_ttl:
                self.bad(
                    f"{rpath}.ttl",
                    f"{row['ttl']} differs from the TTL {first_ttl} of the {rtype} record of "
                    f"{values.show(host)} at {first_path}; the records of one host and type "
                    "are served as one set with one TTL: give them the same TTL",
                )
                continue
            seen[identity] = rpath
            there.setdefault(rtype, rpath)
            result.append(CheckedRecord(rtype, host, row["value"], row["ttl"]))
        return result

    def record_value(self, row: dict[str, Any], path: str, domain: str) -> Rr | None:
        """Checks a record's value and stores its form in ``row``; returns the record as
        the zone file will hold it, or None after recording the problem."""
        if len(row["host"]) + 1 + len(domain) > values.MAX_DOMAIN and row["host"] != "@":
            self.bad(
                f"{path}.host",
                f"{values.show(row['host'])} makes a name longer than {values.MAX_DOMAIN} "
                "characters",
            )
            return None
        try:
            row["value"], canonical = values.record_value(
                row["type"], row["host"], row["value"], domain
            )
        except ValueError as exc:
            self.bad(f"{path}.value", str(exc))
            return None
        return canonical


def _utc(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _amount(amount: Decimal) -> str:
    return repr(str(amount.quantize(Decimal("0.01"))))


def _shown(value: Any) -> str:
    return _utc(value) if isinstance(value, datetime) else values.show(value)


def _within(path: str, prefix: str) -> bool:
    """Whether ``path`` is ``prefix`` or inside it."""
    return path == prefix or path.startswith((f"{prefix}.", f"{prefix}["))


def validate_inventory(
    doc: Any,
    session: Session,
    *,
    now: datetime,
    grace_days: int = GRACE_DAYS,
    source: str | None = None,
) -> Inventory:
    """Check a whole inventory document against itself and the database, at the moment
    ``now`` (what has happened by then: an instance's time left, a release), with
    ``grace_days`` (DNSL_GRACE_DAYS) between an expiry and its release.

    Returns the normalised document; raises ``InventoryInvalid`` listing every bad entry
    with its path when there is any. Reads the database, writes nothing.
    """
    if not isinstance(doc, dict):
        raise InventoryInvalid(
            [
                (
                    "",
                    f"the document must be a JSON object with {', '.join(SECTIONS)}; "
                    f"got {values.show(doc)}",
                )
            ],
            source,
        )
    declared = _Declared.scan(doc)
    stored = StoredState.load(session, declared)
    walk = _Walk(declared, stored, now, grace_days)
    sections: dict[str, Any] = {}
    # File order: the sections in the order the document gives them.
    for key in doc:
        if key not in SECTIONS and key not in HISTORY_KEYS:
            walk.bad(key_path("", key), f"unknown section; the sections are {', '.join(SECTIONS)}")
        elif key in SECTIONS:
            sections[key] = getattr(walk, key)(doc[key])
    if walk.errors:
        raise InventoryInvalid(walk.errors, source)
    instances, domains, serving = sections.get("instances", ([], {}, {}))
    return Inventory(
        editions=sections.get("editions", []),
        clusters=sections.get("clusters", []),
        accounts=sections.get("accounts", []),
        instances=instances,
        domains=domains,
        serving_cluster=serving,
        stored=stored,
    )
