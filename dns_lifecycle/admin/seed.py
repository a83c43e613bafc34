"""A synthetic fleet: editions, clusters, accounts, instances, domains and records.

Used to try the lifecycle at production scale (a million instances) and to give a
demonstration database something to show. The fleet is made of plain dictionaries and
inserted with Core bulk inserts, one transaction per chunk; building ORM objects one
by one would take hours at this size.

Same arguments, same rows: every block of ``_BLOCK`` accounts or instances draws from
its own random generator, derived from ``seed`` and the block number, so the rows do not
depend on the chunk size either. Ids are stable strings (``acct-0000001``,
``inst-0000001``); domain and record ids are assigned here, so records can name their
domain without asking the database for it.

Shape of the fleet (``as_of`` is the moment it is seeded for):
- accounts: about one per three instances, each with at least one instance; locale
  en-US or zh-CN half and half; balance 0-2000 CNY, one in five nearly empty;
- instances: expiry uniform over ``[as_of - 10 days, as_of + 365 days]``, so about 1 %
  have something due on a given day; those already past expiry are ``expired`` (the
  ones more than the grace period past are overdue for release); monthly and yearly,
  all editions, auto-renewal on about 40 %;
- domains: 1-3 per instance, registered at HiChina about 70 %, about 10 % locked
  against updates (``clientUpdateProhibited`` or ``serverUpdateProhibited``), some
  with a transfer lock (which does not stop a name-server change); delegated to the
  instance's paid cluster;
- records: 1-20 per instance spread over its domains (A, AAAA, CNAME, MX, TXT), values
  as the DNS API takes them (a TXT value is its text, unquoted; names end with a dot),
  addresses from the documentation ranges.
"""

from __future__ import annotations

import json
import random
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import islice
from typing import Any

from sqlalchemy import Connection, func, insert, select, text
from sqlmodel import col

from dns_lifecycle.core.db import Database
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.calendar import local_day
from models import Account, Cluster, Domain, Edition, Instance, Record

# Prices in CNY, cheapest edition first.
EDITIONS: list[dict[str, Any]] = [
    {
        "code": "personal",
        "rank": 1,
        "monthly_price": Decimal("9.90"),
        "yearly_price": Decimal("99.00"),
    },
    {
        "code": "enterprise-standard",
        "rank": 2,
        "monthly_price": Decimal("118.00"),
        "yearly_price": Decimal("1180.00"),
    },
    {
        "code": "enterprise-ultimate",
        "rank": 3,
        "monthly_price": Decimal("398.00"),
        "yearly_price": Decimal("3980.00"),
    },
]

FREE_CLUSTER = "free"
PAID_CLUSTERS = ["paid-1", "paid-2", "paid-3", "paid-4"]


def _nameservers(code: str) -> list[str]:
    return [f"ns1.{code}.dns-hosting.example", f"ns2.{code}.dns-hosting.example"]


CLUSTERS: list[dict[str, Any]] = [
    {"code": FREE_CLUSTER, "kind": "free", "nameservers": _nameservers(FREE_CLUSTER)},
] + [{"code": code, "kind": "paid", "nameservers": _nameservers(code)} for code in PAID_CLUSTERS]

TIMEZONES = [
    "Asia/Shanghai",
    "UTC",
    "America/New_York",
    "Europe/Berlin",
    "Asia/Tokyo",
    "Australia/Sydney",
]

GRACE_DAYS_BEFORE = 10  # expiries start this many days before as_of
HORIZON_DAYS = 365  # ... and end this many days after it

# Rows drawn from one random generator; a multiple of nothing in particular, small
# enough that a test fleet spans several blocks.
_BLOCK = 1000

_EN_FIRST = ["James", "Mary", "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan"]
_EN_LAST = ["Smith", "Johnson", "Brown", "Garcia", "Wilson", "O'Brien", "Müller", "Chen", "Kim"]
_EN_COMPANY = ["Acme Widgets Ltd", "Northwind Traders", "Blue Harbor Labs", "Smith & Sons"]
_ZH_SURNAME = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"]
_ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "杰", "秀英", "建华"]
_ZH_COMPANY = ["杭州云数科技有限公司", "上海星河网络有限公司", "深圳蓝海信息技术有限公司"]

_OTHER_REGISTRARS = ["godaddy", "namecheap", "xinnet", "ename"]
_TTLS = [600, 600, 600, 600, 300, 3600, 86400]


def _ipv4(rng: random.Random, _domain: str) -> str:
    net = rng.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{net}.{rng.randrange(1, 255)}"


def _ipv6(rng: random.Random, _domain: str) -> str:
    return f"2001:db8:{rng.randrange(1, 0xFFFF):x}::{rng.randrange(1, 0xFFFF):x}"


def _cname(service: str) -> Callable[[random.Random, str], str]:
    def value(rng: random.Random, domain: str) -> str:
        return f"{domain.split('.', 1)[0]}-{rng.randrange(100, 999)}.{service}.example.net."

    return value


# What a zone may hold, one slot per record; a domain gets a random subset, so no
# record is repeated and no CNAME shares its name with another record.
_SLOTS: list[tuple[str, str, Callable[[random.Random, str], str]]] = [
    ("A", "@", _ipv4),
    ("A", "@", _ipv4),
    ("AAAA", "@", _ipv6),
    ("A", "www", _ipv4),
    ("AAAA", "www", _ipv6),
    ("A", "mail", _ipv4),
    ("A", "api", _ipv4),
    ("A", "api", _ipv4),
    ("AAAA", "api", _ipv6),
    ("A", "vpn", _ipv4),
    ("MX", "@", lambda rng, domain: f"10 mail.{domain}."),
    ("MX", "@", lambda rng, domain: "20 mx2.mailhost.example.net."),
    ("TXT", "@", lambda rng, domain: "v=spf1 include:spf.mailhost.example.net -all"),
    ("TXT", "@", lambda rng, domain: f"site-verification={rng.getrandbits(64):016x}"),
    ("TXT", "_dmarc", lambda rng, domain: f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"),
    ("TXT", "s1._domainkey", lambda rng, domain: f"v=DKIM1; k=rsa; p={rng.getrandbits(160):x}"),
    ("CNAME", "cdn", _cname("cdn")),
    ("CNAME", "blog", _cname("blogs")),
    ("CNAME", "shop", _cname("shops")),
    ("CNAME", "docs", _cname("pages")),
    ("CNAME", "static", _cname("cdn")),
]
_SLOT_INDEXES = range(len(_SLOTS))


def _block_rng(seed: int, kind: str, block: int) -> random.Random:
    # A string seed is hashed with SHA-512 by random.Random: stable across processes.
    return random.Random(f"dns-lifecycle/{seed}/{kind}/{block}")


def _money(cents: int) -> Decimal:
    return Decimal(cents).scaleb(-2)


def _phone(rng: random.Random, locale: str) -> str:
    if rng.random() < (0.9 if locale == "zh-CN" else 0.3):
        # Mainland mobile: 1, then 3-9, then nine digits.
        return f"+861{rng.randrange(3, 10)}{rng.randrange(10**9):09d}"
    # North America: area code [2-9]xx, exchange 555, line 0100-0199 (reserved for fiction).
    return f"+1{rng.randrange(2, 10)}{rng.randrange(100):02d}555{rng.randrange(100, 200):04d}"


def _accounts(seed: int, count: int) -> Iterator[dict[str, Any]]:
    rng = _block_rng(seed, "accounts", 0)
    for n in range(count):
        if n % _BLOCK == 0:
            rng = _block_rng(seed, "accounts", n // _BLOCK)
        locale = "zh-CN" if rng.random() < 0.5 else "en-US"
        company = rng.random() < 0.1
        if locale == "zh-CN":
            name = (
                rng.choice(_ZH_COMPANY)
                if company
                else rng.choice(_ZH_SURNAME) + rng.choice(_ZH_GIVEN)
            )
            timezone = "Asia/Shanghai" if rng.random() < 0.8 else rng.choice(TIMEZONES)
        else:
            name = (
                rng.choice(_EN_COMPANY)
                if company
                else f"{rng.choice(_EN_FIRST)} {rng.choice(_EN_LAST)}"
            )
            timezone = rng.choice(TIMEZONES)
        mail_domain = "example.cn" if locale == "zh-CN" else "example.com"
        if rng.random() < 0.2:
            mail_domain = rng.choice(("example.com", "example.cn"))
        # One in five nearly empty: not even the cheapest renewal goes through.
        cents = rng.randrange(0, 990) if rng.random() < 0.2 else rng.randrange(0, 200_001)
        yield {
            "id": account_id(n),
            "name": name,
            "email": f"user{n + 1:07d}@{mail_domain}",
            "phone": _phone(rng, locale),
            "locale": locale,
            "timezone": timezone,
            "balance": _money(cents),
        }


InstanceRows = tuple[dict[str, Any], list[dict[str, Any]], list[dict[str, Any]]]


def _instances(seed: int, count: int, accounts: int, as_of: datetime) -> Iterator[InstanceRows]:
    """Each instance with its domains and records, in id order."""
    ns = {c["code"]: c["nameservers"] for c in CLUSTERS}
    editions = [e["code"] for e in EDITIONS]
    start = as_of.replace(microsecond=0) - timedelta(days=GRACE_DAYS_BEFORE)
    span = (GRACE_DAYS_BEFORE + HORIZON_DAYS) * 86_400
    domain_id = 0
    record_id = 0
    rng = _block_rng(seed, "instances", 0)
    for n in range(count):
        if n % _BLOCK == 0:
            rng = _block_rng(seed, "instances", n // _BLOCK)
        inst_id = instance_id(n)
        cluster = rng.choice(PAID_CLUSTERS)
        expires_at = start + timedelta(seconds=rng.randrange(span + 1))
        instance = {
            "id": inst_id,
            # The first instances give every account one; the rest are spread at random.
            "account_id": account_id(n if n < accounts else rng.randrange(accounts)),
            "edition_code": rng.choices(editions, weights=(60, 30, 10))[0],
            "billing_cycle": "monthly" if rng.random() < 0.4 else "yearly",
            "expires_at": expires_at,
            "anchor_day": 0,  # the day in the account's zone: set once the zone is known
            "auto_renew": rng.random() < 0.4,
            "state": "expired" if expires_at <= as_of else "active",
            "cluster_code": cluster,
            "released_at": None,
        }

        n_domains = rng.choices((1, 2, 3), weights=(70, 20, 10))[0]
        n_records = rng.randint(1, 20)
        per_domain = [0] * n_domains
        for j in range(n_records):
            per_domain[j if j < n_domains else rng.randrange(n_domains)] += 1

        domains = []
        records = []
        for k in range(n_domains):
            domain_id += 1
            name = f"d{n + 1:07d}-{k + 1}.example.com"
            statuses = []
            lock = rng.random()
            if lock < 0.07:
                statuses.append("clientUpdateProhibited")
            elif lock < 0.10:
                statuses.append("serverUpdateProhibited")
            if rng.random() < 0.25:
                statuses.append("clientTransferProhibited")
            domains.append(
                {
                    "id": domain_id,
                    "name": name,
                    "instance_id": inst_id,
                    "registrar": (
                        "hichina" if rng.random() < 0.7 else rng.choice(_OTHER_REGISTRARS)
                    ),
                    "epp_statuses": statuses,
                    "nameservers": ns[cluster],
                }
            )
            for slot in sorted(rng.sample(_SLOT_INDEXES, per_domain[k])):
                rtype, host, value = _SLOTS[slot]
                record_id += 1
                records.append(
                    {
                        "id": record_id,
                        "domain_id": domain_id,
                        "cluster_code": cluster,
                        "type": rtype,
                        "host": host,
                        "value": value(rng, name),
                        "ttl": rng.choice(_TTLS),
                    }
                )
        yield instance, domains, records


def account_id(n: int) -> str:
    """Id of the n-th (from 0) seeded account."""
    return f"acct-{n + 1:07d}"


def instance_id(n: int) -> str:
    """Id of the n-th (from 0) seeded instance."""
    return f"inst-{n + 1:07d}"


def _ensure_catalog(conn: Connection) -> dict[str, int]:
    """Insert the editions and clusters that are missing; keep the ones already there."""
    have_editions = set(conn.execute(select(col(Edition.code))).scalars())
    have_clusters = set(conn.execute(select(col(Cluster.code))).scalars())
    editions = [e for e in EDITIONS if e["code"] not in have_editions]
    clusters = [c for c in CLUSTERS if c["code"] not in have_clusters]
    if editions:
        conn.execute(insert(Edition), editions)
    if clusters:
        conn.execute(insert(Cluster), clusters)
    return {"edition": len(editions), "cluster": len(clusters)}


def _insert(conn: Connection, model: Any, rows: list[dict[str, Any]]) -> None:
    """Bulk-insert ``rows`` (all with the same keys) in the connection's transaction."""
    if conn.dialect.name != "postgresql":
        conn.execute(insert(model), rows)
        return
    # COPY is several times faster than multi-row INSERTs on PostgreSQL. It bypasses
    # the column types, so the rows must already be what the types would bind: aware
    # UTC datetimes, two-place Decimals; lists are turned into JSON text here.
    columns = list(rows[0])
    table = model.__table__.name
    copy_sql = f"COPY {table} ({', '.join(columns)}) FROM STDIN"
    driver = conn.connection.driver_connection
    assert driver is not None  # an open connection has its driver's connection
    with driver.cursor() as cursor, cursor.copy(copy_sql) as copy:
        for row in rows:
            copy.write_row([json.dumps(v) if isinstance(v, list) else v for v in row.values()])


def seed_fleet(
    db: Database,
    instances: int,
    seed: int = 0,
    *,
    as_of: datetime,
    progress: Callable[[int, int], None] | None = None,
    chunk: int = 10_000,
) -> dict[str, int]:
    """Fill an empty database with a synthetic fleet of ``instances`` instances.

    Args:
        db: the database; it must hold no accounts and no instances yet.
        instances: how many instances to create (accounts: a third of that, at least 1).
        seed: the same seed (with the same other arguments) gives the same rows.
        as_of: the moment the fleet is seeded for; expiries are placed around it.
        progress: called as ``progress(done, total)`` instances after each chunk.
        chunk: instances (or accounts) inserted per transaction.

    Returns:
        The number of rows created per table.
    """
    if instances < 1:
        raise InputError(f"instances={instances}: give a number of instances of 1 or more")
    if chunk < 1:
        raise InputError(f"chunk={chunk}: give a chunk size of 1 or more")
    if as_of.tzinfo is None:
        raise InputError(f"as_of={as_of.isoformat()} has no time zone: give an aware datetime")
    as_of = as_of.astimezone(UTC)
    n_accounts = max(1, instances // 3)

    with db.engine.begin() as conn:
        for table, model in (("instances", Instance), ("accounts", Account)):
            existing = conn.execute(select(func.count()).select_from(model)).scalar_one()
            if existing:
                raise InputError(
                    f"database already has {existing} {table}: seeding would mix two fleets; "
                    "use an empty database"
                )
        counts = _ensure_catalog(conn)

    account_rows = _accounts(seed, n_accounts)
    zones: dict[str, str] = {}
    while batch := list(islice(account_rows, chunk)):
        with db.engine.begin() as conn:
            _insert(conn, Account, batch)
        zones.update((a["id"], a["timezone"]) for a in batch)

    counts.update(account=n_accounts, instance=0, domain=0, record=0)
    instance_rows = _instances(seed, instances, n_accounts, as_of)
    while group := list(islice(instance_rows, chunk)):
        insts = [row for row, _, _ in group]
        for row in insts:
            # Months are counted on the account's own calendar.
            row["anchor_day"] = local_day(row["expires_at"], zones[row["account_id"]])
        domains = [d for _, ds, _ in group for d in ds]
        records = [r for _, _, rs in group for r in rs]
        with db.engine.begin() as conn:
            _insert(conn, Instance, insts)
            _insert(conn, Domain, domains)
            _insert(conn, Record, records)
            if db.dialect == "postgresql":
                # The ids are given here, so the sequences never moved: move them past
                # the seeded rows, or the next insert would collide with domain 1.
                for table, last in (("domain", domains[-1]["id"]), ("record", records[-1]["id"])):
                    conn.execute(
                        text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), :last)"),
                        {"last": last},
                    )
        counts["instance"] += len(insts)
        counts["domain"] += len(domains)
        counts["record"] += len(records)
        if progress is not None:
            progress(counts["instance"], instances)

    return counts
