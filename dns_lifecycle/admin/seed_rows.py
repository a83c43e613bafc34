"""The rows of a synthetic fleet, as tuples of the values the tables store.

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
  addresses from the documentation ranges; one TTL per RRset and no record twice, so
  that an export of the fleet imports back.
"""

from __future__ import annotations

from bisect import bisect
from collections.abc import Callable, Iterator, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from itertools import accumulate
from json import dumps
from random import Random
from typing import Any

from sqlalchemy import Connection, insert, select
from sqlmodel import col

from dns_lifecycle.lifecycle.calendar import zone_of
from models import Cluster, Edition

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

# The tables' columns, in the order of the tuples generated below. The values are what
# the column types store: text timestamps in UTC ("YYYY-MM-DD HH:MM:SS.ffffff"), money
# as text with two places, lists as JSON text.
ACCOUNT_COLUMNS = ("id", "name", "email", "phone", "locale", "timezone", "balance")
INSTANCE_COLUMNS = (
    "id",
    "account_id",
    "edition_code",
    "billing_cycle",
    "expires_at",
    "anchor_day",
    "auto_renew",
    "state",
    "cluster_code",
    "released_at",
)
DOMAIN_COLUMNS = ("id", "name", "instance_id", "registrar", "epp_statuses", "nameservers")
RECORD_COLUMNS = ("id", "domain_id", "cluster_code", "type", "host", "value", "ttl")
FLEET_TABLES = ("account", "instance", "domain", "record")

_EN_FIRST = ["James", "Mary", "Olivia", "Liam", "Emma", "Noah", "Ava", "Lucas", "Mia", "Ethan"]
_EN_LAST = ["Smith", "Johnson", "Brown", "Garcia", "Wilson", "O'Brien", "Müller", "Chen", "Kim"]
_EN_COMPANY = ["Acme Widgets Ltd", "Northwind Traders", "Blue Harbor Labs", "Smith & Sons"]
_ZH_SURNAME = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙"]
_ZH_GIVEN = ["伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "杰", "秀英", "建华"]
_ZH_COMPANY = ["杭州云数科技有限公司", "上海星河网络有限公司", "深圳蓝海信息技术有限公司"]

_OTHER_REGISTRARS = ["godaddy", "namecheap", "xinnet", "ename"]
_TTLS = [600, 600, 600, 600, 300, 3600, 86400]


class _Draws:
    """The draws of one ``random.Random``, made as it makes them (the same numbers from
    the same state) without the argument checks that cost more than the draws here.

    ``below(n)`` is ``randrange(n)``; ``between(a, b)`` is ``randrange(a, b)``;
    ``choice``, ``weighted`` (``choices(population, cum_weights)[0]``) and ``sample``
    (of ``range(n)``, n <= 21) follow CPython's ``random`` module, so the fleet is the
    one that module would give. Closures rather than methods: a million instances make
    tens of millions of draws, and each attribute lookup shows.
    """

    __slots__ = ("random", "getrandbits", "below", "between", "choice", "weighted", "sample")

    def __init__(self, rng: Random) -> None:
        random = self.random = rng.random
        getrandbits = self.getrandbits = rng.getrandbits

        def below(n: int) -> int:
            k = n.bit_length()
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            return r

        def between(start: int, stop: int) -> int:
            n = stop - start
            k = n.bit_length()
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            return start + r

        def choice(seq: Sequence[Any]) -> Any:
            n = len(seq)
            k = n.bit_length()
            r = getrandbits(k)
            while r >= n:
                r = getrandbits(k)
            return seq[r]

        def weighted(population: Sequence[Any], cum_weights: list[int]) -> Any:
            total = cum_weights[-1] + 0.0
            return population[bisect(cum_weights, random() * total, 0, len(population) - 1)]

        def sample(n: int, count: int) -> list[int]:
            # sample()'s list-pool branch, the one it takes for populations this small.
            pool = list(range(n))
            result = [0] * count
            for i in range(count):
                m = n - i
                k = m.bit_length()
                j = getrandbits(k)
                while j >= m:
                    j = getrandbits(k)
                result[i] = pool[j]
                pool[j] = pool[m - 1]
            return result

        self.below, self.between, self.choice = below, between, choice
        self.weighted, self.sample = weighted, sample


def _ipv4(draw: _Draws, _domain: str) -> str:
    net = draw.choice(("192.0.2", "198.51.100", "203.0.113"))
    return f"{net}.{draw.between(1, 255)}"


def _ipv6(draw: _Draws, _domain: str) -> str:
    return f"2001:db8:{draw.between(1, 0xFFFF):x}::{draw.between(1, 0xFFFF):x}"


def _another_address(address: str, taken: list[str]) -> str:
    """``address``, or when ``taken`` has it, the next one after it in its network that
    ``taken`` lacks (only address RRsets have two slots that can draw one value; the
    draws stay those of the seed)."""
    if address not in taken:
        return address
    separator, size = (":", 0xFFFF) if ":" in address else (".", 255)
    network, _, last = address.rpartition(separator)
    number = int(last, 16 if separator == ":" else 10)
    while address in taken:
        number = number % (size - 1) + 1
        address = f"{network}{separator}{number:x}" if separator == ":" else f"{network}.{number}"
    return address


def _cname(service: str) -> Callable[[_Draws, str], str]:
    def value(draw: _Draws, domain: str) -> str:
        return f"{domain.split('.', 1)[0]}-{draw.between(100, 999)}.{service}.example.net."

    return value


# What a zone may hold, one slot per record; a domain gets a random subset, so no
# record is repeated and no CNAME shares its name with another record.
_SLOTS: list[tuple[str, str, Callable[[_Draws, str], str]]] = [
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
    ("MX", "@", lambda draw, domain: f"10 mail.{domain}."),
    ("MX", "@", lambda draw, domain: "20 mx2.mailhost.example.net."),
    ("TXT", "@", lambda draw, domain: "v=spf1 include:spf.mailhost.example.net -all"),
    ("TXT", "@", lambda draw, domain: f"site-verification={draw.getrandbits(64):016x}"),
    ("TXT", "_dmarc", lambda draw, domain: f"v=DMARC1; p=none; rua=mailto:dmarc@{domain}"),
    ("TXT", "s1._domainkey", lambda draw, domain: f"v=DKIM1; k=rsa; p={draw.getrandbits(160):x}"),
    ("CNAME", "cdn", _cname("cdn")),
    ("CNAME", "blog", _cname("blogs")),
    ("CNAME", "shop", _cname("shops")),
    ("CNAME", "docs", _cname("pages")),
    ("CNAME", "static", _cname("cdn")),
]
# sample() of the slots takes its list-pool branch only up to 21 items.
assert len(_SLOTS) <= 21

_EDITION_WEIGHTS = list(accumulate((60, 30, 10)))
_DOMAIN_COUNTS = (1, 2, 3)
_DOMAIN_WEIGHTS = list(accumulate((70, 20, 10)))


def _block_rng(seed: int, kind: str, block: int) -> _Draws:
    # A string seed is hashed with SHA-512 by random.Random: stable across processes.
    return _Draws(Random(f"dns-lifecycle/{seed}/{kind}/{block}"))


def _money_text(cents: int) -> str:
    return f"{cents // 100}.{cents % 100:02d}"


def _phone(draw: _Draws, locale: str) -> str:
    if draw.random() < (0.9 if locale == "zh-CN" else 0.3):
        # Mainland mobile: 1, then 3-9, then nine digits.
        return f"+861{draw.between(3, 10)}{draw.below(10**9):09d}"
    # North America: area code [2-9]xx, exchange 555, line 0100-0199 (reserved for fiction).
    return f"+1{draw.between(2, 10)}{draw.below(100):02d}555{draw.between(100, 200):04d}"


def _accounts(seed: int, count: int) -> Iterator[tuple[Any, ...]]:
    """Account rows (``ACCOUNT_COLUMNS``), in id order."""
    draw = _block_rng(seed, "accounts", 0)
    for n in range(count):
        if n % _BLOCK == 0:
            draw = _block_rng(seed, "accounts", n // _BLOCK)
        random = draw.random
        locale = "zh-CN" if random() < 0.5 else "en-US"
        company = random() < 0.1
        if locale == "zh-CN":
            name = (
                draw.choice(_ZH_COMPANY)
                if company
                else draw.choice(_ZH_SURNAME) + draw.choice(_ZH_GIVEN)
            )
            timezone = "Asia/Shanghai" if random() < 0.8 else draw.choice(TIMEZONES)
        else:
            name = (
                draw.choice(_EN_COMPANY)
                if company
                else f"{draw.choice(_EN_FIRST)} {draw.choice(_EN_LAST)}"
            )
            timezone = draw.choice(TIMEZONES)
        mail_domain = "example.cn" if locale == "zh-CN" else "example.com"
        if random() < 0.2:
            mail_domain = draw.choice(("example.com", "example.cn"))
        # One in five nearly empty: not even the cheapest renewal goes through.
        cents = draw.below(990) if random() < 0.2 else draw.below(200_001)
        yield (
            account_id(n),
            name,
            f"user{n + 1:07d}@{mail_domain}",
            _phone(draw, locale),
            locale,
            timezone,
            _money_text(cents),
        )


class FleetChunk:
    """Instance, domain and record rows of consecutive instances."""

    __slots__ = ("instances", "domains", "records")

    def __init__(self) -> None:
        self.instances: list[tuple[Any, ...]] = []
        self.domains: list[tuple[Any, ...]] = []
        self.records: list[tuple[Any, ...]] = []


def _instance_chunks(
    seed: int,
    count: int,
    zones: Sequence[str],
    as_of: datetime,
    chunk: int,
    *,
    first: int = 0,
    first_domain_id: int = 1,
    first_record_id: int = 1,
) -> Iterator[FleetChunk]:
    """Instances with their domains and records, in id order, ``chunk`` instances at a
    time. ``zones``: the time zone of each account, by its number (its anchor day is
    the day of its expiry on the account's calendar). ``first``: the number of the
    first instance (its id and its domains' names); the draws depend on the position
    in this fleet only."""
    accounts = len(zones)
    zone_info = {name: zone_of(name) for name in set(zones)}
    editions = [e["code"] for e in EDITIONS]
    nameservers = {c["code"]: dumps(c["nameservers"]) for c in CLUSTERS}
    statuses = {
        (lock, transfer): dumps(
            ([lock] if lock else []) + (["clientTransferProhibited"] if transfer else [])
        )
        for lock in ("", "clientUpdateProhibited", "serverUpdateProhibited")
        for transfer in (False, True)
    }
    as_of_naive = as_of.astimezone(UTC).replace(tzinfo=None)
    start = as_of_naive.replace(microsecond=0) - timedelta(days=GRACE_DAYS_BEFORE)
    span = (GRACE_DAYS_BEFORE + HORIZON_DAYS) * 86_400
    domain_id = first_domain_id - 1
    record_id = first_record_id - 1
    draw = _block_rng(seed, "instances", 0)
    out = FleetChunk()
    for n in range(count):
        if n % _BLOCK == 0:
            draw = _block_rng(seed, "instances", n // _BLOCK)
        random, below, choice, sample = draw.random, draw.below, draw.choice, draw.sample
        number = first + n + 1
        inst_id = f"inst-{number:07d}"
        cluster = choice(PAID_CLUSTERS)
        expires_at = start + timedelta(seconds=below(span + 1))
        # The first instances give every account one; the rest are spread at random.
        owner_number = n if n < accounts else below(accounts)
        owner = account_id(owner_number)
        edition = draw.weighted(editions, _EDITION_WEIGHTS)
        cycle = "monthly" if random() < 0.4 else "yearly"
        auto_renew = random() < 0.4
        out.instances.append(
            (
                inst_id,
                owner,
                edition,
                cycle,
                f"{expires_at}.000000",  # whole seconds: str() leaves the fraction out
                # Months are counted on the account's own calendar.
                expires_at.replace(tzinfo=UTC).astimezone(zone_info[zones[owner_number]]).day,
                auto_renew,
                "expired" if expires_at <= as_of_naive else "active",
                cluster,
                None,
            )
        )

        n_domains = draw.weighted(_DOMAIN_COUNTS, _DOMAIN_WEIGHTS)
        n_records = draw.between(1, 21)
        per_domain = [0] * n_domains
        for j in range(n_records):
            per_domain[j if j < n_domains else below(n_domains)] += 1

        for k in range(n_domains):
            domain_id += 1
            name = f"d{number:07d}-{k + 1}.example.com"
            lock = random()
            lock_status = (
                "clientUpdateProhibited"
                if lock < 0.07
                else "serverUpdateProhibited"
                if lock < 0.10
                else ""
            )
            transfer = random() < 0.25
            registrar = "hichina" if random() < 0.7 else draw.choice(_OTHER_REGISTRARS)
            out.domains.append(
                (
                    domain_id,
                    name,
                    inst_id,
                    registrar,
                    statuses[lock_status, transfer],
                    nameservers[cluster],
                )
            )
            # One TTL per RRset (the first record's), and no value twice in one.
            rrsets: dict[tuple[str, str], tuple[int, list[str]]] = {}
            for slot in sorted(sample(len(_SLOTS), per_domain[k])):
                rtype, host, value = _SLOTS[slot]
                text, ttl = value(draw, name), choice(_TTLS)
                rrset = rrsets.get((rtype, host))
                if rrset is None:
                    rrsets[rtype, host] = (ttl, [text])
                else:
                    ttl, taken = rrset
                    text = _another_address(text, taken)
                    taken.append(text)
                record_id += 1
                out.records.append((record_id, domain_id, cluster, rtype, host, text, ttl))
        if len(out.instances) == chunk:
            yield out
            out = FleetChunk()
    if out.instances:
        yield out


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
