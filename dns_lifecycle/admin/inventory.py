"""Import and export of the inventory: editions, clusters, accounts, instances, and the
domains and DNS records of each instance, as one JSON document.

Import is all-or-nothing. ``validate_inventory`` walks the whole document and collects
every problem with its path in the file (``instances[3].domains[0].name``) before
anything is written; ``import_inventory`` writes only a document that passed, in bulk
statements, and leaves the commit to the caller. ``export_state`` gives the whole state
back in the same shape, plus the history (orders, notifications, tickets).

The document (every top-level key is optional)::

    {"editions":  [{"code", "rank", "monthly_price", "yearly_price"}],
     "clusters":  [{"code", "kind", "nameservers", "backend"?, "api_url"?, "server_id"?,
                    "nameserver_addresses"?}],
     "accounts":  [{"id", "name", "email", "phone", "locale", "timezone", "balance"?}],
     "instances": [{"id", "account", "edition", "billing_cycle", "expires_at",
                    "auto_renew", "state", "cluster", "anchor_day"?, "released_at"?,
                    "domains"?: [{"name", "registrar", "epp_statuses"?, "nameservers"?,
                                  "records"?: [{"type", "host", "value", "ttl",
                                                "cluster"?}]}]}]}

Re-importing updates by key (editions and clusters by code, accounts and instances by
id). Optional fields left out of a re-import keep what is stored where that is the
safe reading: an account's ``balance`` and a released instance's ``released_at``.
An instance's ``domains``, when given, replace its domains: a domain it no longer lists
is deleted with its records and tickets, and the records of every listed domain are
re-created. An instance without a ``domains`` key keeps its domains. Records are served
by the instance's cluster, or by the free cluster once the instance is released.

The history keys of an export (``orders``, ``notifications``, ``tickets``) are accepted
and ignored, so an export can be imported back: that history is written by the
lifecycle runs, never by hand.
"""

from __future__ import annotations

import calendar
import contextlib
import functools
import ipaddress
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import available_timezones

import idna
from sqlalchemy import delete, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlmodel import Session

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.core.errors import InputError, InventoryInvalid
from dns_lifecycle.store.release import release_stages
from models import Account, Cluster, Domain, Edition, Instance, Notification, Order, Record, Ticket

__all__ = [
    "DomainEntry",
    "Inventory",
    "RecordEntry",
    "domain_name",
    "export_state",
    "import_inventory",
    "iter_state",
    "notification_row",
    "order_row",
    "read_inventory_file",
    "validate_inventory",
    "write_state",
]

# Values the rest of the project relies on.
LOCALES = ("en-US", "zh-CN")
CLUSTER_KINDS = ("paid", "free")
BILLING_CYCLES = ("monthly", "yearly")
INSTANCE_STATES = ("active", "expired", "released")
RECORD_TYPES = ("A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR")
# RFC 5731 and RFC 3915; matched case-insensitively and stored in this spelling.
EPP_STATUSES = (
    "ok",
    "inactive",
    "clientDeleteProhibited",
    "clientHold",
    "clientRenewProhibited",
    "clientTransferProhibited",
    "clientUpdateProhibited",
    "serverDeleteProhibited",
    "serverHold",
    "serverRenewProhibited",
    "serverTransferProhibited",
    "serverUpdateProhibited",
    "pendingCreate",
    "pendingDelete",
    "pendingRenew",
    "pendingTransfer",
    "pendingUpdate",
    "addPeriod",
    "autoRenewPeriod",
    "renewPeriod",
    "transferPeriod",
    "redemptionPeriod",
    "pendingRestore",
)
_EPP_BY_LOWER = {s.lower(): s for s in EPP_STATUSES}

HISTORY_KEYS = ("orders", "notifications", "tickets")
CLUSTER_LIVE_FIELDS = ("backend", "api_url", "server_id", "nameserver_addresses")
CLUSTER_BACKENDS = ("database", "powerdns")
SECTIONS = ("editions", "clusters", "accounts", "instances")

MAX_INT32 = 2_147_483_647
# Rows per IN (...) list and per bulk statement: below SQLite's variable limit.
_CHUNK = 500


def _max_length(model: Any, column: str) -> int:
    """The column's declared length, so the checks follow the models."""
    return int(model.__table__.c[column].type.length)


_LEN = {
    "code": _max_length(Edition, "code"),
    "cluster_code": _max_length(Cluster, "code"),
    "cluster_api_url": _max_length(Cluster, "api_url"),
    "cluster_server_id": _max_length(Cluster, "server_id"),
    "account_id": _max_length(Account, "id"),
    "account_name": _max_length(Account, "name"),
    "email": _max_length(Account, "email"),
    "timezone": _max_length(Account, "timezone"),
    "instance_id": _max_length(Instance, "id"),
    "domain": _max_length(Domain, "name"),
    "registrar": _max_length(Domain, "registrar"),
    "host": _max_length(Record, "host"),
    "value": _max_length(Record, "value"),
}

# Ids and codes end up in ledger keys, file names and log lines: a plain alphabet.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
# E.164: "+", a country code that does not start with 0, 8 to 15 digits in all.
_PHONE_RE = re.compile(r"\+[1-9][0-9]{7,14}")
# At most 12 digits before the point and 2 after: NUMERIC(14, 2).
_MONEY_RE = re.compile(r"-?[0-9]{1,12}(?:\.[0-9]{1,2})?")
# Control characters (CR, LF, NUL...), lone surrogates, Unicode line separators.
_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
_KEY_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_ASCII_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_EMAIL_LOCAL_FORBIDDEN = re.compile(r"[\s<>()\[\]\\,;:\"]")


# --- the validated document ------------------------------------------------------------


@dataclass(frozen=True)
class RecordEntry:
    type: str
    host: str
    value: str
    ttl: int


@dataclass(frozen=True)
class DomainEntry:
    name: str
    registrar: str
    epp_statuses: list[str]
    nameservers: list[str]
    records: list[RecordEntry]


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
    domains: dict[str, list[DomainEntry]]
    # Which cluster serves the records of each instance of the document.
    serving_cluster: dict[str, str]
    stored: _Stored = field(repr=False)

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


# --- reading the file --------------------------------------------------------------------


def read_inventory_file(path: Path) -> Any:
    """Parse a JSON file; any failure is an ``InputError`` that names the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise InputError(f"{path}: no such file; give the path of an inventory JSON file") from None
    except IsADirectoryError:
        raise InputError(
            f"{path}: is a directory; give the path of an inventory JSON file"
        ) from None
    except UnicodeDecodeError as exc:
        raise InputError(
            f"{path}: not UTF-8 text (byte {exc.start}); save the file as UTF-8 JSON"
        ) from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror}); check the path") from None

    def refuse_constant(name: str) -> Any:
        raise ValueError(f"{name} is not a JSON number; write the value as a string")

    def refuse_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        result: dict[str, Any] = {}
        for key, value in pairs:
            if key in result:
                raise ValueError(f"the key {_show(key)} appears twice in one object")
            result[key] = value
        return result

    try:
        return json.loads(text, parse_constant=refuse_constant, object_pairs_hook=refuse_duplicates)
    except json.JSONDecodeError as exc:
        raise InputError(
            f"{path}: not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg}; "
            "fix the file and try again"
        ) from None
    except RecursionError:
        raise InputError(f"{path}: nested too deeply to be an inventory; fix the file") from None
    except ValueError as exc:
        raise InputError(f"{path}: not a valid inventory JSON file: {exc}") from None


# --- small helpers -------------------------------------------------------------------------


class _Bad:
    """A value that failed its check; the error is already recorded."""

    def __repr__(self) -> str:
        return "BAD"


BAD: Any = _Bad()


def _show(value: Any, limit: int = 60) -> str:
    """A value as it may appear in a message: quoted, escaped, cut short."""
    if isinstance(value, str):
        if len(value) > limit:
            return f"{value[:limit]!r}... ({len(value)} characters)"
        return repr(value)
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return repr(value) if value.bit_length() <= 64 else "a very large number"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "an array"
    return f"a value of type {type(value).__name__}"


def _key_path(path: str, key: Any) -> str:
    key_text = key if isinstance(key, str) else str(key)
    if _KEY_RE.fullmatch(key_text) and len(key_text) <= 60:
        return f"{path}.{key_text}" if path else key_text
    return f"{path}[{_show(key_text)}]"


def _unsafe(text: str) -> str | None:
    """Why a string may not be stored, or None when it may."""
    match = _UNSAFE_RE.search(text)
    if match is None:
        return None
    char = match.group()
    if char in "\r\n":
        return "contains a line break"
    if "\ud800" <= char <= "\udfff":
        return "contains an invalid character (a lone surrogate)"
    return f"contains the control character U+{ord(char):04X}"


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _chunks(items: Iterable[Any], size: int = _CHUNK) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) >= size:
            yield batch
            batch = []
    if batch:
        yield batch


@functools.cache
def _time_zones() -> frozenset[str]:
    return frozenset(available_timezones())


# --- names -----------------------------------------------------------------------------------


def domain_name(text: str) -> str:
    """The lower-case A-label form of a domain name given in Unicode or punycode.

    Raises ``ValueError`` with the reason when it is not a valid domain name.
    """
    if reason := _unsafe(text):
        raise ValueError(reason)
    if len(text) > 4 * _LEN["domain"]:
        raise ValueError("it is too long")
    if text.endswith("."):
        text = text[:-1]
    if not text:
        raise ValueError("it is empty")
    try:
        alabel = idna.encode(text, uts46=True, std3_rules=True, transitional=False).decode()
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise ValueError(str(exc).replace("\n", " ")[:120]) from None
    alabel = alabel.lower()
    if len(alabel) > _LEN["domain"]:
        raise ValueError(f"its A-label form is longer than {_LEN['domain']} characters")
    labels = alabel.split(".")
    if len(labels) < 2:
        raise ValueError("it needs at least two labels, e.g. example.com")
    if labels[-1].isdigit():
        raise ValueError("its last label is a number, not a top-level domain")
    return alabel


def _host_labels(text: str, *, allow_wildcard: bool) -> list[str]:
    """Labels of a DNS owner or target name; underscores allowed (``_dmarc``, SRV)."""
    labels = text.split(".")
    result = []
    for i, label in enumerate(labels):
        if label == "*" and allow_wildcard and i == 0:
            result.append(label)
            continue
        if not label:
            raise ValueError("it has an empty label")
        if not label.isascii():
            try:
                label = idna.encode(label, uts46=True, std3_rules=True).decode()
            except (idna.IDNAError, UnicodeError, ValueError) as exc:
                raise ValueError(str(exc).replace("\n", " ")[:120]) from None
        label = label.lower()
        if not _ASCII_LABEL_RE.fullmatch(label):
            raise ValueError(f"the label {_show(label)} is not a valid DNS label")
        result.append(label)
    return result


def _target_name(text: str) -> str:
    """A host name that a record points at; kept as given once it is valid."""
    if reason := _unsafe(text):
        raise ValueError(reason)
    name = text[:-1] if text.endswith(".") else text
    if not name:
        raise ValueError("it is empty")
    labels = _host_labels(name, allow_wildcard=False)
    if len(".".join(labels)) > 253:
        raise ValueError("it is longer than 253 characters")
    return text


def _record_value(rtype: str, value: str) -> str:
    """The stored form of a record value; ``ValueError`` with the reason when invalid."""
    if rtype == "A":
        try:
            return str(ipaddress.IPv4Address(value))
        except ValueError:
            raise ValueError("is not an IPv4 address") from None
    if rtype == "AAAA":
        try:
            if "%" in value:
                raise ValueError
            return str(ipaddress.IPv6Address(value))
        except ValueError:
            raise ValueError("is not an IPv6 address") from None
    if rtype in ("CNAME", "NS", "PTR"):
        try:
            return _target_name(value)
        except ValueError as exc:
            raise ValueError(f"is not a host name ({exc})") from None
    if rtype == "MX":
        parts = value.split(" ")
        if len(parts) != 2 or not _small_number(parts[0], 65535):
            raise ValueError("must be 'preference host', e.g. '10 mail.example.com'")
        if parts[1] != ".":
            try:
                _target_name(parts[1])
            except ValueError as exc:
                raise ValueError(f"has an invalid mail host ({exc})") from None
        return value
    if rtype == "SRV":
        parts = value.split(" ")
        if len(parts) != 4 or not all(_small_number(p, 65535) for p in parts[:3]):
            raise ValueError(
                "must be 'priority weight port target', e.g. '10 5 5060 sip.example.com'"
            )
        if parts[3] != ".":
            try:
                _target_name(parts[3])
            except ValueError as exc:
                raise ValueError(f"has an invalid target ({exc})") from None
        return value
    if rtype == "CAA":
        match = re.fullmatch(r"([0-9]{1,3}) ([A-Za-z0-9]{1,15}) (\S.*)", value)
        if match is None or int(match.group(1)) > 255:
            raise ValueError("must be 'flags tag value', e.g. '0 issue \"letsencrypt.org\"'")
        return value
    # TXT: free text; only the characters were checked.
    return value


def _small_number(text: str, maximum: int) -> bool:
    return text.isascii() and text.isdigit() and len(text) <= 5 and int(text) <= maximum


# --- what the document declares and what the database holds ----------------------------------


def _raw_entries(doc: Any, key: str) -> list[dict[str, Any]]:
    """The object entries of one section, whatever else the document holds."""
    if not isinstance(doc, dict):
        return []
    section = doc.get(key)
    if not isinstance(section, list):
        return []
    return [e for e in section if isinstance(e, dict)]


def _raw_str(entry: dict[str, Any], key: str) -> str | None:
    value = entry.get(key)
    return value if isinstance(value, str) else None


@dataclass
class _Declared:
    """Keys the document declares, read leniently before the strict walk, so that a
    reference to an entry further down the file is known when it is checked."""

    editions: set[str] = field(default_factory=set)
    clusters: dict[str, Any] = field(default_factory=dict)  # code -> declared kind
    accounts: set[str] = field(default_factory=set)
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
                name = dom.get("name") if isinstance(dom, dict) else None
                if isinstance(name, str):
                    with contextlib.suppress(ValueError):
                        d.domain_names.add(domain_name(name))
        return d


@dataclass
class _Stored:
    """What the database holds that the checks and the writes need."""

    edition_ranks: dict[str, int]
    cluster_kinds: dict[str, str]
    account_ids: set[str]
    instance_ids: set[str]
    domains: dict[str, tuple[int, str]]  # name -> (id, instance id)
    # Instances outside the document served by a cluster the document makes free.
    users_of_freed: dict[str, int]

    @classmethod
    def load(cls, session: Session, declared: _Declared) -> _Stored:
        edition_ranks = dict(session.execute(select(Edition.code, Edition.rank)).all())
        cluster_kinds = dict(session.execute(select(Cluster.code, Cluster.kind)).all())
        account_ids: set[str] = set()
        for chunk in _chunks(sorted(declared.accounts | declared.account_refs)):
            account_ids.update(
                session.execute(select(Account.id).where(Account.id.in_(chunk))).scalars()
            )
        instance_ids: set[str] = set()
        for chunk in _chunks(sorted(declared.instances)):
            instance_ids.update(
                session.execute(select(Instance.id).where(Instance.id.in_(chunk))).scalars()
            )
        domains: dict[str, tuple[int, str]] = {}
        for chunk in _chunks(sorted(declared.domain_names)):
            rows = session.execute(
                select(Domain.name, Domain.id, Domain.instance_id).where(Domain.name.in_(chunk))
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
                select(Instance.id).where(Instance.cluster_code == code)
            ).scalars()
            users_of_freed[code] = sum(1 for i in ids if i not in declared.instances)
        return cls(edition_ranks, cluster_kinds, account_ids, instance_ids, domains, users_of_freed)


# --- the walk ----------------------------------------------------------------------------------


class _Walk:
    """Checks every entry in file order and records every problem with its path."""

    def __init__(self, declared: _Declared, stored: _Stored):
        self.declared = declared
        self.stored = stored
        self.errors: list[tuple[str, str]] = []
        # The free cluster of the state after import, if there will be exactly one.
        self.free_cluster = self._final_free_cluster()

    def bad(self, path: str, message: str) -> Any:
        self.errors.append((path, message))
        return BAD

    def _final_free_cluster(self) -> str | None:
        free = [c for c, kind in self.declared.clusters.items() if kind == "free"]
        free += [
            c
            for c, kind in self.stored.cluster_kinds.items()
            if kind == "free" and c not in self.declared.clusters
        ]
        return free[0] if len(free) == 1 else None

    # -- shapes --

    def entry(
        self, value: Any, path: str, fields: tuple[str, ...], required: tuple[str, ...]
    ) -> dict[str, Any] | None:
        if not isinstance(value, dict):
            self.bad(path, f"expected an object, got {_show(value)}")
            return None
        for key in value:
            if key not in fields:
                self.bad(
                    _key_path(path, key),
                    f"unknown field; the fields of this entry are {', '.join(fields)}",
                )
        for key in required:
            if key not in value:
                self.bad(_key_path(path, key), "missing; this field is required")
        return value

    def array(self, value: Any, path: str) -> list[Any]:
        if not isinstance(value, list):
            self.bad(path, f"expected an array, got {_show(value)}")
            return []
        return value

    # -- scalars --

    def text(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        max_length: int,
        *,
        what: str = "a string",
    ) -> Any:
        value = obj.get(key)
        if not isinstance(value, str):
            return self.bad(path, f"expected {what}, got {_show(value)}")
        if reason := _unsafe(value):
            return self.bad(path, f"{_show(value)} {reason}; remove it")
        if not value.strip():
            return self.bad(path, "is empty")
        if len(value) > max_length:
            return self.bad(path, f"{_show(value)} is longer than {max_length} characters")
        return value

    def ident(self, obj: dict[str, Any], key: str, path: str, max_length: int) -> Any:
        value = self.text(obj, key, path, max_length)
        if value is BAD:
            return BAD
        if not _ID_RE.fullmatch(value):
            return self.bad(
                path,
                f"{_show(value)} is not a valid id: use letters, digits and . _ : - "
                "(starting with a letter or digit)",
            )
        return value

    def choice(self, obj: dict[str, Any], key: str, path: str, choices: tuple[str, ...]) -> Any:
        value = obj.get(key)
        if value not in choices or not isinstance(value, str):
            listed = ", ".join(repr(c) for c in choices)
            return self.bad(path, f"{_show(value)} is not one of {listed}")
        return value

    def integer(self, obj: dict[str, Any], key: str, path: str, low: int, high: int) -> Any:
        value = obj.get(key)
        if not _is_int(value):
            return self.bad(path, f"expected a whole number, got {_show(value)}")
        if not low <= value <= high:
            return self.bad(path, f"{_show(value)} is out of range ({low} to {high})")
        return value

    def boolean(self, obj: dict[str, Any], key: str, path: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, bool):
            return self.bad(path, f"expected true or false, got {_show(value)}")
        return value

    def money(self, obj: dict[str, Any], key: str, path: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, str):
            return self.bad(path, f"expected a decimal string such as '12.50', got {_show(value)}")
        if not _MONEY_RE.fullmatch(value):
            return self.bad(
                path,
                f"{_show(value)} is not a valid amount: write digits with at most 2 "
                "decimal places, e.g. '12.50'",
            )
        try:
            amount = Decimal(value)
        except InvalidOperation:  # pragma: no cover - the pattern already excludes it
            return self.bad(path, f"{_show(value)} is not a valid amount")
        if amount < 0:
            return self.bad(path, f"{_show(value)} is negative; amounts are 0 or more")
        return amount.quantize(Decimal("0.01"))

    def moment(self, obj: dict[str, Any], key: str, path: str) -> Any:
        value = obj.get(key)
        if not isinstance(value, str):
            return self.bad(
                path,
                f"expected an ISO 8601 date and time with an offset, got {_show(value)}",
            )
        if _unsafe(value) or len(value) > 64:
            return self.bad(path, f"{_show(value)} is not an ISO 8601 date and time")
        try:
            moment = datetime.fromisoformat(value)
        except ValueError:
            return self.bad(
                path,
                f"{_show(value)} is not an ISO 8601 date and time, "
                "e.g. '2027-01-31T00:00:00+08:00'",
            )
        if moment.tzinfo is None or moment.utcoffset() is None:
            return self.bad(
                path,
                f"{_show(value)} has no UTC offset (a naive time); add one, e.g. '+08:00' or 'Z'",
            )
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            return self.bad(path, f"{_show(value)} is out of range")
        if not 1970 <= moment.year <= 9998:
            return self.bad(path, f"{_show(value)} is out of range (years 1970 to 9998)")
        return moment

    def names(
        self,
        obj: dict[str, Any],
        key: str,
        path: str,
        normalise: Callable[[str], str],
        what: str,
    ) -> Any:
        """A list of names, each normalised; duplicates dropped, order kept."""
        result: list[str] = []
        ok = True
        for i, item in enumerate(self.array(obj.get(key), path)):
            item_path = f"{path}[{i}]"
            if not isinstance(item, str):
                ok = False
                self.bad(item_path, f"expected a string, got {_show(item)}")
                continue
            try:
                name = normalise(item)
            except ValueError as exc:
                ok = False
                self.bad(item_path, f"{_show(item)} is not a valid {what} ({exc})")
                continue
            if name not in result:
                result.append(name)
        return result if ok and isinstance(obj.get(key), list) else BAD

    # -- sections --

    def editions(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen_codes: dict[str, str] = {}
        seen_ranks: dict[int, str] = {}
        fields = ("code", "rank", "monthly_price", "yearly_price")
        for i, raw in enumerate(self.array(section, "editions")):
            path = f"editions[{i}]"
            e = self.entry(raw, path, fields, fields)
            if e is None:
                continue
            before = len(self.errors)
            code = self.ident(e, "code", f"{path}.code", _LEN["code"])
            if code is not BAD:
                if code in seen_codes:
                    code = self.bad(
                        f"{path}.code", f"{_show(code)} is also the code of {seen_codes[code]}"
                    )
                else:
                    seen_codes[code] = path
            rank = self.integer(e, "rank", f"{path}.rank", 0, MAX_INT32)
            if rank is not BAD:
                holder = next(
                    (
                        c
                        for c, r in self.stored.edition_ranks.items()
                        if r == rank and c not in self.declared.editions
                    ),
                    None,
                )
                if rank in seen_ranks:
                    self.bad(f"{path}.rank", f"{rank} is also the rank of {seen_ranks[rank]}")
                elif holder is not None:
                    self.bad(
                        f"{path}.rank",
                        f"{rank} is already the rank of the stored edition {_show(holder)}; "
                        "ranks are unique",
                    )
                else:
                    seen_ranks[rank] = path
            monthly = self.money(e, "monthly_price", f"{path}.monthly_price")
            yearly = self.money(e, "yearly_price", f"{path}.yearly_price")
            if len(self.errors) == before:
                rows.append(
                    {"code": code, "rank": rank, "monthly_price": monthly, "yearly_price": yearly}
                )
        return rows

    def clusters(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        first_free: str | None = None
        stored_free = [
            c
            for c, kind in self.stored.cluster_kinds.items()
            if kind == "free" and c not in self.declared.clusters
        ]
        required = ("code", "kind", "nameservers")
        fields = (*required, *CLUSTER_LIVE_FIELDS)
        for i, raw in enumerate(self.array(section, "clusters")):
            path = f"clusters[{i}]"
            e = self.entry(raw, path, fields, required)
            if e is None:
                continue
            before = len(self.errors)
            code = self.ident(e, "code", f"{path}.code", _LEN["cluster_code"])
            if code is not BAD:
                if code in seen:
                    code = self.bad(
                        f"{path}.code", f"{_show(code)} is also the code of {seen[code]}"
                    )
                else:
                    seen[code] = path
            kind = self.choice(e, "kind", f"{path}.kind", CLUSTER_KINDS)
            if kind == "free":
                if stored_free:
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {_show(stored_free[0])} is already the free "
                        "cluster; there is one free cluster",
                    )
                elif first_free is not None:
                    self.bad(
                        f"{path}.kind",
                        f"{first_free} is already the free cluster; there is one free cluster",
                    )
                else:
                    first_free = path
                users = self.stored.users_of_freed.get(code, 0) if code is not BAD else 0
                if users:
                    self.bad(
                        f"{path}.kind",
                        f"the stored cluster {_show(code)} serves {users} instance(s) not in "
                        "this file; it cannot become the free cluster",
                    )
            nameservers = self.names(
                e, "nameservers", f"{path}.nameservers", domain_name, "name server"
            )
            if nameservers is not BAD and not nameservers:
                nameservers = self.bad(f"{path}.nameservers", "is empty; list the name servers")
            live = self.cluster_live(e, path)
            if len(self.errors) == before:
                rows.append({"code": code, "kind": kind, "nameservers": nameservers, **live})
        return rows

    def cluster_live(self, e: dict[str, Any], path: str) -> dict[str, Any]:
        """The optional fields of a live cluster: where its API and name servers answer.
        API keys never go in the inventory (DNSL_CLUSTER_API_KEYS holds them)."""
        backend = "database"
        if "backend" in e:
            backend = self.choice(e, "backend", f"{path}.backend", CLUSTER_BACKENDS)
        api_url = None
        if e.get("api_url") is not None:
            api_url = self.text(e, "api_url", f"{path}.api_url", _LEN["cluster_api_url"])
            if api_url is not BAD and not re.fullmatch(r"https?://[^\s/?#]+(/[^\s?#]*)?", api_url):
                api_url = self.bad(
                    f"{path}.api_url",
                    f"{_show(api_url)} is not an http(s) URL, e.g. 'http://127.0.0.1:8081'",
                )
        if backend == "powerdns" and api_url is None:
            self.bad(f"{path}.api_url", "missing; a powerdns cluster needs its API's URL")
        server_id = "localhost"
        if "server_id" in e:
            server_id = self.ident(e, "server_id", f"{path}.server_id", _LEN["cluster_server_id"])
        addresses: list[str] = []
        for j, item in enumerate(
            self.array(e.get("nameserver_addresses", []), f"{path}.nameserver_addresses")
        ):
            item_path = f"{path}.nameserver_addresses[{j}]"
            try:
                if not isinstance(item, str):
                    raise ValueError(f"expected a string, got {_show(item)}")
                parse_address(item, "name-server address")
            except ValueError as exc:
                self.bad(item_path, str(exc))
                continue
            addresses.append(item.strip())
        return {
            "backend": backend,
            "api_url": api_url,
            "server_id": server_id,
            "nameserver_addresses": addresses,
        }

    def accounts(self, section: Any) -> list[dict[str, Any]]:
        rows: list[dict[str, Any]] = []
        seen: dict[str, str] = {}
        fields = ("id", "name", "email", "phone", "locale", "timezone", "balance")
        for i, raw in enumerate(self.array(section, "accounts")):
            path = f"accounts[{i}]"
            e = self.entry(raw, path, fields, fields[:-1])
            if e is None:
                continue
            before = len(self.errors)
            account_id = self.ident(e, "id", f"{path}.id", _LEN["account_id"])
            if account_id is not BAD:
                if account_id in seen:
                    self.bad(
                        f"{path}.id", f"{_show(account_id)} is also the id of {seen[account_id]}"
                    )
                else:
                    seen[account_id] = path
            row = {
                "id": account_id,
                "name": self.text(e, "name", f"{path}.name", _LEN["account_name"]),
                "email": self.email(e, f"{path}.email"),
                "phone": self.phone(e, f"{path}.phone"),
                "locale": self.choice(e, "locale", f"{path}.locale", LOCALES),
                "timezone": self.timezone(e, f"{path}.timezone"),
            }
            if "balance" in e:
                row["balance"] = self.money(e, "balance", f"{path}.balance")
            if len(self.errors) == before:
                rows.append(row)
        return rows

    def email(self, obj: dict[str, Any], path: str) -> Any:
        value = self.text(obj, "email", path, _LEN["email"])
        if value is BAD:
            return BAD
        local, at, domain = value.rpartition("@")
        problem = None
        if not at or "@" in local or not local:
            problem = "it needs exactly one @ with a name before it"
        elif len(local) > 64:
            problem = "the part before @ is longer than 64 characters"
        elif _EMAIL_LOCAL_FORBIDDEN.search(local):
            problem = 'the part before @ has a space or one of <>()[]\\,;:"'
        elif "." not in domain:
            problem = "the part after @ must be a domain name with a dot"
        else:
            try:
                domain_name(domain)
            except ValueError as exc:
                problem = f"the part after @ is not a domain name ({exc})"
        if problem:
            return self.bad(path, f"{_show(value)} is not a valid email address: {problem}")
        return value

    def phone(self, obj: dict[str, Any], path: str) -> Any:
        value = obj.get("phone")
        if not isinstance(value, str):
            return self.bad(path, f"expected a phone number string, got {_show(value)}")
        if not _PHONE_RE.fullmatch(value):
            return self.bad(
                path,
                f"{_show(value)} is not an E.164 phone number: '+', the country code and "
                "the number, 8 to 15 digits, no spaces, e.g. '+8613800138000'",
            )
        return value

    def timezone(self, obj: dict[str, Any], path: str) -> Any:
        value = self.text(obj, "timezone", path, _LEN["timezone"])
        if value is BAD:
            return BAD
        if value not in _time_zones():
            return self.bad(path, f"{_show(value)} is not an IANA time zone, e.g. 'Asia/Shanghai'")
        return value

    def known(self, value: Any, path: str, what: str, declared: Iterable[str], stored: Any) -> Any:
        if value is BAD:
            return BAD
        if value not in declared and value not in stored:
            return self.bad(
                path, f"unknown {what} {_show(value)}: not in this file nor in the database"
            )
        return value

    def cluster_kind(self, code: str) -> Any:
        if code in self.declared.clusters:
            return self.declared.clusters[code]
        return self.stored.cluster_kinds.get(code)

    def instances(
        self, section: Any
    ) -> tuple[list[dict[str, Any]], dict[str, list[DomainEntry]], dict[str, str]]:
        rows: list[dict[str, Any]] = []
        all_domains: dict[str, list[DomainEntry]] = {}
        serving: dict[str, str] = {}
        seen: dict[str, str] = {}
        seen_domains: dict[str, str] = {}
        fields = (
            "id",
            "account",
            "edition",
            "billing_cycle",
            "expires_at",
            "auto_renew",
            "state",
            "cluster",
            "anchor_day",
            "released_at",
            "domains",
        )
        required = fields[:8]
        for i, raw in enumerate(self.array(section, "instances")):
            path = f"instances[{i}]"
            e = self.entry(raw, path, fields, required)
            if e is None:
                continue
            before = len(self.errors)
            instance_id = self.ident(e, "id", f"{path}.id", _LEN["instance_id"])
            if instance_id is not BAD:
                if instance_id in seen:
                    self.bad(
                        f"{path}.id",
                        f"{_show(instance_id)} is also the id of {seen[instance_id]}",
                    )
                else:
                    seen[instance_id] = path
            account = self.known(
                self.ident(e, "account", f"{path}.account", _LEN["account_id"]),
                f"{path}.account",
                "account",
                self.declared.accounts,
                self.stored.account_ids,
            )
            edition = self.known(
                self.ident(e, "edition", f"{path}.edition", _LEN["code"]),
                f"{path}.edition",
                "edition",
                self.declared.editions,
                self.stored.edition_ranks,
            )
            cycle = self.choice(e, "billing_cycle", f"{path}.billing_cycle", BILLING_CYCLES)
            expires_at = self.moment(e, "expires_at", f"{path}.expires_at")
            auto_renew = self.boolean(e, "auto_renew", f"{path}.auto_renew")
            state = self.choice(e, "state", f"{path}.state", INSTANCE_STATES)
            cluster = self.known(
                self.ident(e, "cluster", f"{path}.cluster", _LEN["cluster_code"]),
                f"{path}.cluster",
                "cluster",
                self.declared.clusters,
                self.stored.cluster_kinds,
            )
            if cluster is not BAD and self.cluster_kind(cluster) == "free":
                cluster = self.bad(
                    f"{path}.cluster",
                    f"{_show(cluster)} is the free cluster; an instance is served by a "
                    "paid cluster",
                )
            anchor_day = self.anchor_day(e, path, expires_at)
            released_at = BAD
            if "released_at" in e:
                released_at = self.moment(e, "released_at", f"{path}.released_at")
                if released_at is not BAD and state != "released":
                    released_at = self.bad(
                        f"{path}.released_at",
                        "only a released instance has a release time; remove it or set "
                        "state to 'released'",
                    )
                elif released_at is not BAD and expires_at is not BAD and released_at < expires_at:
                    released_at = self.bad(
                        f"{path}.released_at",
                        "is before expires_at; an instance is released after it expires",
                    )
            record_cluster: Any = cluster
            if state == "released":
                if self.free_cluster is None:
                    record_cluster = self.bad(
                        f"{path}.state",
                        "a released instance's records are served by the free cluster, "
                        "and there is no single free cluster; add one to 'clusters'",
                    )
                else:
                    record_cluster = self.free_cluster
            domains: Any = None
            if "domains" in e:
                domains = self.domains(
                    e["domains"], f"{path}.domains", instance_id, seen_domains, record_cluster
                )
            if len(self.errors) != before:
                continue
            row = {
                "id": instance_id,
                "account_id": account,
                "edition_code": edition,
                "billing_cycle": cycle,
                "expires_at": expires_at,
                "anchor_day": anchor_day,
                "auto_renew": auto_renew,
                "state": state,
                "cluster_code": cluster,
            }
            if released_at is not BAD:
                row["released_at"] = released_at
            elif state != "released":
                row["released_at"] = None
            rows.append(row)
            serving[instance_id] = record_cluster
            if domains is not None:
                all_domains[instance_id] = domains
        return rows, all_domains, serving

    def anchor_day(self, e: dict[str, Any], path: str, expires_at: Any) -> Any:
        if "anchor_day" not in e:
            return BAD if expires_at is BAD else expires_at.day
        anchor = self.integer(e, "anchor_day", f"{path}.anchor_day", 1, 31)
        if anchor is BAD or expires_at is BAD:
            return BAD
        day = expires_at.day
        last = calendar.monthrange(expires_at.year, expires_at.month)[1]
        # A subscription anchored on the 31st expires on the 30th (or 28th) in shorter
        # months: the anchor may exceed the expiry day only at the end of a month.
        if anchor != day and not (day == last and anchor > day):
            return self.bad(
                f"{path}.anchor_day",
                f"{anchor} does not fit expires_at (day {day} in UTC): it must be {day}, or "
                "larger only when expiry falls on the last day of the month",
            )
        return anchor

    def domains(
        self,
        section: Any,
        path: str,
        instance_id: Any,
        seen_domains: dict[str, str],
        record_cluster: Any,
    ) -> list[DomainEntry]:
        result: list[DomainEntry] = []
        # "release" is where an export shows the release stage: read, never imported.
        fields = ("name", "registrar", "epp_statuses", "nameservers", "records", "release")
        for j, raw in enumerate(self.array(section, path)):
            dpath = f"{path}[{j}]"
            d = self.entry(raw, dpath, fields, ("name", "registrar"))
            if d is None:
                continue
            before = len(self.errors)
            name = self.domain(d, f"{dpath}.name", instance_id, seen_domains)
            registrar = self.text(d, "registrar", f"{dpath}.registrar", _LEN["registrar"])
            if registrar is not BAD and registrar.lower() == "hichina":
                registrar = "hichina"
            statuses = self.epp_statuses(d, f"{dpath}.epp_statuses")
            nameservers: Any = []
            if "nameservers" in d:
                nameservers = self.names(
                    d, "nameservers", f"{dpath}.nameservers", domain_name, "name server"
                )
            records = self.records(d, f"{dpath}.records", name, record_cluster)
            if len(self.errors) == before:
                result.append(DomainEntry(name, registrar, statuses, nameservers, records))
        return result

    def domain(
        self, d: dict[str, Any], path: str, instance_id: Any, seen_domains: dict[str, str]
    ) -> Any:
        value = d.get("name")
        if not isinstance(value, str):
            return self.bad(path, f"expected a domain name string, got {_show(value)}")
        try:
            name = domain_name(value)
        except ValueError as exc:
            return self.bad(path, f"{_show(value)} is not a valid domain name ({exc})")
        if name in seen_domains:
            return self.bad(path, f"{_show(name)} is also listed at {seen_domains[name]}")
        seen_domains[name] = path
        stored = self.stored.domains.get(name)
        if stored is not None and instance_id is not BAD:
            owner = stored[1]
            moves_freely = (
                owner in self.declared.instances and owner in self.declared.instances_with_domains
            )
            if owner != instance_id and not moves_freely:
                return self.bad(
                    path,
                    f"{_show(name)} already belongs to the instance {_show(owner)}; remove it "
                    "there first (list that instance here without it)",
                )
        return name

    def epp_statuses(self, d: dict[str, Any], path: str) -> Any:
        if "epp_statuses" not in d:
            return []
        result: list[str] = []
        ok = isinstance(d["epp_statuses"], list)
        for k, item in enumerate(self.array(d["epp_statuses"], path)):
            status = _EPP_BY_LOWER.get(item.lower()) if isinstance(item, str) else None
            if status is None:
                ok = False
                self.bad(
                    f"{path}[{k}]",
                    f"{_show(item)} is not an EPP status code, e.g. 'clientUpdateProhibited'",
                )
            elif status not in result:
                result.append(status)
        return result if ok else BAD

    def records(
        self, d: dict[str, Any], path: str, domain: Any, record_cluster: Any
    ) -> list[RecordEntry]:
        if "records" not in d:
            return []
        result: list[RecordEntry] = []
        seen: dict[tuple[str, str, str], str] = {}
        fields = ("type", "host", "value", "ttl", "cluster")
        for k, raw in enumerate(self.array(d["records"], path)):
            rpath = f"{path}[{k}]"
            r = self.entry(raw, rpath, fields, fields[:4])
            if r is None:
                continue
            before = len(self.errors)
            rtype = r.get("type")
            if isinstance(rtype, str) and rtype.upper() in RECORD_TYPES:
                rtype = rtype.upper()
            else:
                rtype = self.bad(
                    f"{rpath}.type",
                    f"{_show(rtype)} is not a record type; use one of {', '.join(RECORD_TYPES)}",
                )
            host = self.host(r, f"{rpath}.host", domain)
            value = self.text(r, "value", f"{rpath}.value", _LEN["value"])
            if value is not BAD and rtype is not BAD:
                try:
                    value = _record_value(rtype, value)
                except ValueError as exc:
                    value = self.bad(f"{rpath}.value", f"{_show(value)} {exc}")
            ttl = self.integer(r, "ttl", f"{rpath}.ttl", 1, MAX_INT32)
            if "cluster" in r and record_cluster is not BAD and r["cluster"] != record_cluster:
                self.bad(
                    f"{rpath}.cluster",
                    f"{_show(r['cluster'])} does not serve this instance's records; "
                    f"{record_cluster!r} does (or leave the field out)",
                )
            if len(self.errors) != before:
                continue
            identity = (rtype, host, value)
            if identity in seen:
                self.bad(rpath, f"the same record as {seen[identity]}")
                continue
            seen[identity] = rpath
            result.append(RecordEntry(rtype, host, value, ttl))
        return result

    def host(self, r: dict[str, Any], path: str, domain: Any) -> Any:
        value = self.text(r, "host", path, _LEN["host"])
        if value is BAD or value == "@":
            return value
        if value.endswith("."):
            return self.bad(
                path,
                f"{_show(value)} ends with a dot; give the host relative to the domain "
                "('www', or '@' for the domain itself)",
            )
        try:
            labels = _host_labels(value, allow_wildcard=True)
        except ValueError as exc:
            return self.bad(path, f"{_show(value)} is not a valid host ({exc})")
        host = ".".join(labels)
        if domain is not BAD and len(host) + 1 + len(domain) > 253:
            return self.bad(path, f"{_show(value)} makes a name longer than 253 characters")
        return host


def validate_inventory(doc: Any, session: Session, *, source: str | None = None) -> Inventory:
    """Check a whole inventory document against itself and the database.

    Returns the normalised document; raises ``InventoryInvalid`` listing every bad entry
    with its path when there is any. Reads the database, writes nothing.
    """
    if not isinstance(doc, dict):
        raise InventoryInvalid(
            [
                (
                    "",
                    f"the document must be a JSON object with {', '.join(SECTIONS)}; "
                    f"got {_show(doc)}",
                )
            ],
            source,
        )
    declared = _Declared.scan(doc)
    stored = _Stored.load(session, declared)
    walk = _Walk(declared, stored)
    sections: dict[str, Any] = {}
    # File order: the sections in the order the document gives them.
    for key in doc:
        if key not in SECTIONS and key not in HISTORY_KEYS:
            walk.bad(
                _key_path("", key),
                f"unknown section; the sections are {', '.join(SECTIONS)}",
            )
        elif key == "editions":
            sections[key] = walk.editions(doc[key])
        elif key == "clusters":
            sections[key] = walk.clusters(doc[key])
        elif key == "accounts":
            sections[key] = walk.accounts(doc[key])
        elif key == "instances":
            sections[key] = walk.instances(doc[key])
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


# --- writing -----------------------------------------------------------------------------------


def import_inventory(doc: Any, session: Session, *, source: str | None = None) -> dict[str, int]:
    """Validate a document and write it: all of it or, on any bad entry, nothing.

    Returns how many of each kind the document held. Does not commit: the caller owns
    the transaction. Raises ``InventoryInvalid`` listing every bad entry.
    """
    inventory = validate_inventory(doc, session, source=source)
    try:
        counts = _write(inventory, session)
    except IntegrityError as exc:
        # Validation saw a state that another transaction changed before the writes.
        raise InputError(
            "the database changed while the inventory was being imported "
            f"({type(exc.orig).__name__}); nothing was imported: import the file again"
        ) from None
    # Bulk statements bypass the identity map; objects the caller holds must reload.
    session.expire_all()
    return counts


def _upsert(
    session: Session,
    model: Any,
    rows: list[dict[str, Any]],
    existing: Iterable[str],
    key: str,
) -> None:
    existing = set(existing)
    new = [r for r in rows if r[key] not in existing]
    old = [r for r in rows if r[key] in existing]
    for chunk in _chunks(new):
        session.execute(insert(model), chunk)
    for chunk in _chunks(old):
        session.execute(update(model), chunk)


def _write(inventory: Inventory, session: Session) -> dict[str, int]:
    stored = inventory.stored
    _write_editions(session, inventory.editions, stored.edition_ranks)
    _upsert(session, Cluster, inventory.clusters, stored.cluster_kinds, "code")
    accounts = [
        r if "balance" in r or r["id"] in stored.account_ids else {**r, "balance": Decimal("0.00")}
        for r in inventory.accounts
    ]
    _upsert(session, Account, accounts, stored.account_ids, "id")
    instances = [
        r if "released_at" in r or r["id"] in stored.instance_ids else {**r, "released_at": None}
        for r in inventory.instances
    ]
    _upsert(session, Instance, instances, stored.instance_ids, "id")
    removed = _write_domains(session, inventory)
    _move_kept_records(session, inventory)
    counts = inventory.counts()
    counts["domains_removed"] = removed
    return counts


def _write_editions(
    session: Session, rows: list[dict[str, Any]], stored_ranks: dict[str, int]
) -> None:
    # Ranks are unique: when stored editions trade ranks, park the moving ones on
    # unused negative ranks first so no statement sees two editions on one rank.
    moving = [
        r["code"]
        for r in rows
        if r["code"] in stored_ranks and stored_ranks[r["code"]] != r["rank"]
    ]
    if moving:
        floor = min([0, *stored_ranks.values()])
        parked = [{"code": code, "rank": floor - 1 - n} for n, code in enumerate(moving)]
        for chunk in _chunks(parked):
            session.execute(update(Edition), chunk)
    _upsert(session, Edition, rows, stored_ranks, "code")


def _write_domains(session: Session, inventory: Inventory) -> int:
    """Replace the domains (and their records) of the instances that list them."""
    if not inventory.domains:
        return 0
    listed = {d.name for ds in inventory.domains.values() for d in ds}
    # Domains the listing instances hold now and no longer list: gone, with what hangs
    # on them. A domain listed under another instance of the file moves instead.
    gone: list[int] = []
    for chunk in _chunks(sorted(inventory.domains)):
        rows = session.execute(
            select(Domain.id, Domain.name).where(Domain.instance_id.in_(chunk))
        ).all()
        gone.extend(domain_id for domain_id, name in rows if name not in listed)
    for chunk in _chunks(gone):
        session.execute(
            delete(Record).where(Record.domain_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Ticket).where(Ticket.domain_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
        session.execute(
            delete(Domain).where(Domain.id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )

    stored = inventory.stored.domains
    ids: dict[str, int] = {}
    kept: list[dict[str, Any]] = []
    new: list[dict[str, Any]] = []
    for instance_id, domains in inventory.domains.items():
        for d in domains:
            row = {
                "name": d.name,
                "instance_id": instance_id,
                "registrar": d.registrar,
                "epp_statuses": d.epp_statuses,
                "nameservers": d.nameservers,
            }
            if d.name in stored:
                ids[d.name] = stored[d.name][0]
                kept.append({"id": stored[d.name][0], **row})
            else:
                new.append(row)
    for chunk in _chunks(kept):
        session.execute(update(Domain), chunk)
    kept_ids = [r["id"] for r in kept]
    for chunk in _chunks(kept_ids):
        session.execute(
            delete(Record).where(Record.domain_id.in_(chunk)),
            execution_options={"synchronize_session": False},
        )
    for chunk in _chunks(new):
        session.execute(insert(Domain), chunk)
    for chunk in _chunks([r["name"] for r in new]):
        ids.update(
            session.execute(select(Domain.name, Domain.id).where(Domain.name.in_(chunk))).all()
        )

    def record_rows() -> Iterator[dict[str, Any]]:
        for instance_id, domains in inventory.domains.items():
            cluster = inventory.serving_cluster[instance_id]
            for d in domains:
                for r in d.records:
                    yield {
                        "domain_id": ids[d.name],
                        "cluster_code": cluster,
                        "type": r.type,
                        "host": r.host,
                        "value": r.value,
                        "ttl": r.ttl,
                    }

    for chunk in _chunks(record_rows(), 2000):
        session.execute(insert(Record), chunk)
    return len(gone)


def _move_kept_records(session: Session, inventory: Inventory) -> None:
    """Records of instances that keep their stored domains follow the instance's
    (possibly new) cluster or state."""
    by_cluster: dict[str, list[str]] = {}
    for row in inventory.instances:
        if row["id"] in inventory.stored.instance_ids and row["id"] not in inventory.domains:
            by_cluster.setdefault(inventory.serving_cluster[row["id"]], []).append(row["id"])
    for cluster, instance_ids in by_cluster.items():
        for chunk in _chunks(instance_ids):
            session.execute(
                update(Record)
                .where(
                    Record.domain_id.in_(select(Domain.id).where(Domain.instance_id.in_(chunk))),
                    Record.cluster_code != cluster,
                )
                .values(cluster_code=cluster),
                execution_options={"synchronize_session": False},
            )


# --- export ------------------------------------------------------------------------------------


def _when(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def _money(amount: Decimal | None) -> str | None:
    return None if amount is None else str(Decimal(amount).quantize(Decimal("0.01")))


def _export_editions(session: Session) -> Iterator[dict[str, Any]]:
    rows = session.execute(select(Edition.__table__).order_by(Edition.rank, Edition.code))
    for r in rows:
        yield {
            "code": r.code,
            "rank": r.rank,
            "monthly_price": _money(r.monthly_price),
            "yearly_price": _money(r.yearly_price),
        }


def _export_clusters(session: Session) -> Iterator[dict[str, Any]]:
    for r in session.execute(select(Cluster.__table__).order_by(Cluster.code)):
        entry = {"code": r.code, "kind": r.kind, "nameservers": list(r.nameservers)}
        if r.backend != "database":  # the embedded default exports as before
            entry.update(
                backend=r.backend,
                api_url=r.api_url,
                server_id=r.server_id,
                nameserver_addresses=list(r.nameserver_addresses),
            )
        yield entry


def _export_accounts(session: Session) -> Iterator[dict[str, Any]]:
    query = select(Account.__table__).order_by(Account.id)
    for r in session.execute(query.execution_options(yield_per=_CHUNK)):
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
        query = select(Instance.__table__).order_by(Instance.id).limit(_CHUNK)
        if after is not None:
            query = query.where(Instance.id > after)
        page = session.execute(query).all()
        if not page:
            return
        after = page[-1].id
        ids = [r.id for r in page]
        domains: dict[str, list[Any]] = {}
        for d in session.execute(
            select(Domain.__table__)
            .where(Domain.instance_id.in_(ids))
            .order_by(Domain.instance_id, Domain.name)
        ):
            domains.setdefault(d.instance_id, []).append(d)
        domain_ids = [d.id for ds in domains.values() for d in ds]
        records: dict[int, list[dict[str, Any]]] = {}
        for chunk in _chunks(domain_ids):
            for r in session.execute(
                select(Record.__table__).where(Record.domain_id.in_(chunk)).order_by(Record.id)
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
        stages = release_stages(session, ids)
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
            if r.released_at is not None:
                entry["released_at"] = _when(r.released_at)
            entry["domains"] = [
                {
                    "name": d.name,
                    "registrar": d.registrar,
                    "epp_statuses": list(d.epp_statuses),
                    "nameservers": list(d.nameservers),
                    "records": records.get(d.id, []),
                    **({"release": stages[d.name]} if d.name in stages else {}),
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
    query = select(Order.__table__).order_by(Order.id)
    for r in session.execute(query.execution_options(yield_per=_CHUNK)):
        yield order_row(r)


def _export_notifications(session: Session) -> Iterator[dict[str, Any]]:
    query = select(Notification.__table__).order_by(Notification.id)
    for r in session.execute(query.execution_options(yield_per=_CHUNK)):
        yield notification_row(r)


def _export_tickets(session: Session) -> Iterator[dict[str, Any]]:
    query = (
        select(Ticket.id, Domain.name, Ticket.instance_id, Ticket.reason, Ticket.state)
        .join(Domain, Domain.id == Ticket.domain_id)
        .order_by(Ticket.id)
    )
    for r in session.execute(query.execution_options(yield_per=_CHUNK)):
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
    the ``cluster`` that serves it) plus orders, notifications and tickets.

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
