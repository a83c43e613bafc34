"""Checks of single values of an inventory document.

Each check takes the value as the document gives it and returns the value to store,
or raises ``ValueError`` whose text is the whole message shown at the value's path
(``'+44 7700' is not an E.164 phone number: ...``). The entry models in ``entries``
attach them to fields; the walk in ``checking`` calls the few that need more than one
field (a record's value depends on its type and domain).
"""

from __future__ import annotations

import functools
import ipaddress
import re
import unicodedata
from collections.abc import Callable
from datetime import UTC, datetime, time
from decimal import Decimal, InvalidOperation
from typing import Any

import idna

from dns_lifecycle.core.addresses import parse_address
from dns_lifecycle.lifecycle.nameservers import HICHINA, is_hichina
from dns_lifecycle.lifecycle.zonefile import Rr, check_record
from models.types import MONEY_MAX, RECORD_TYPES, time_zones

__all__ = [
    "EPP_STATUSES",
    "domain",
    "domain_name",
    "email",
    "epp_status",
    "host",
    "ident",
    "moment",
    "money",
    "nameserver",
    "normalise_registrar",
    "phone",
    "record_type",
    "record_value",
    "registrar",
    "show",
    "text",
    "time_zone",
    "unique",
]

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

# The longest domain name in its A-label form (RFC 1035 2.3.4, without the root dot).
MAX_DOMAIN = 253

# Ids and codes end up in ledger keys, file names and log lines: a plain alphabet.
_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:-]*")
_HTTP_URL_RE = re.compile(r"https?://[^\s/?#]+(/[^\s?#]*)?")
# E.164: "+", a country code that does not start with 0, 8 to 15 digits in all.
_PHONE_RE = re.compile(r"\+[1-9][0-9]{7,14}")
# At most 12 digits before the point and 2 after: NUMERIC(14, 2).
_MONEY_RE = re.compile(r"[0-9]{1,12}(?:\.[0-9]{1,2})?")
_DIGITS_RE = re.compile(r"[0-9]+(?:\.[0-9]{1,2})?")
# Control characters (CR, LF, NUL...), lone surrogates, Unicode line separators.
_UNSAFE_RE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\ud800-\udfff]")
# Joiners shape the letters of some scripts and emoji; every other invisible format
# character (bidi overrides and isolates, zero-width spaces, BOM, tags) is refused.
_JOINERS = "\u200c\u200d"
_ASCII_LABEL_RE = re.compile(r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?")
_EMAIL_LOCAL_FORBIDDEN = re.compile(r"[\s<>()\[\]\\,;:\"]")

# How each record type writes its value, for the fix in a refusal.
_RECORD_FORMS = {
    "A": "an IPv4 address, e.g. '192.0.2.1'",
    "AAAA": "an IPv6 address, e.g. '2001:db8::1'",
    "CNAME": "a host name, e.g. 'www.example.com.'",
    "NS": "a host name, e.g. 'ns1.example.com.'",
    "PTR": "a host name, e.g. 'host.example.com.'",
    "MX": "'preference host', e.g. '10 mail.example.com.'",
    "SRV": "'priority weight port target', e.g. '10 5 5060 sip.example.com.'",
    "CAA": "'flags tag \"value\"' with one quoted value, e.g. '0 issue \"letsencrypt.org\"'",
    "TXT": "any text without control characters",
}
# Record types whose value ends with a host name.
_TARGETS = ("CNAME", "NS", "PTR", "MX", "SRV")
# Types whose value is an address: stored in the parser's canonical text.
_ADDRESS_TYPES = ("A", "AAAA")


def show(value: Any, limit: int = 60) -> str:
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


def _unsafe(value: str) -> str | None:
    """Why a string may not be stored, or None when it may."""
    match = _UNSAFE_RE.search(value)
    if match is None:
        return None if value.isascii() else _format_character(value)
    char = match.group()
    if char in "\r\n":
        return "contains a line break"
    if "\ud800" <= char <= "\udfff":
        return "contains an invalid character (a lone surrogate)"
    return f"contains the control character U+{ord(char):04X}"


def _format_character(value: str) -> str | None:
    """Why a string with an invisible format character may not be stored: one that turns
    text around (U+202E) can make a name in a subject line or an SMS read otherwise."""
    for char in value:
        if unicodedata.category(char) == "Cf" and char not in _JOINERS:
            name = unicodedata.name(char, "a format character")
            return (
                f"contains the invisible format character U+{ord(char):04X} ({name}), "
                "which changes how the text around it reads"
            )
    return None


def _expect(what: str) -> Callable[[Any], str]:
    def check(value: Any) -> str:
        if not isinstance(value, str):
            raise ValueError(f"expected {what}, got {show(value)}")
        return value

    return check


# --- text and ids ------------------------------------------------------------------------


def text(value: str) -> str:
    """Free text that a column, a log line and an email header can hold."""
    if reason := _unsafe(value):
        raise ValueError(f"{show(value)} {reason}; remove it")
    if not value.strip():
        raise ValueError("is empty")
    return value


def ident(value: str) -> str:
    """An id or code: letters, digits and . _ : -."""
    text(value)
    if not _ID_RE.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid id: use letters, digits and . _ : - "
            "(starting with a letter or digit)"
        )
    return value


def money(value: Any) -> Decimal:
    """An amount written as a decimal string with at most two places, 0 or more."""
    if not isinstance(value, str):
        raise ValueError(f"expected a decimal string such as '12.50', got {show(value)}")
    if value.startswith("-"):
        # '-0.00' too: a sign on an amount that cannot be negative only misleads.
        raise ValueError(f"{show(value)} is negative; amounts are 0 or more, without a sign")
    if _DIGITS_RE.fullmatch(value) and not _MONEY_RE.fullmatch(value):
        raise ValueError(
            f"{show(value)} is more than an amount can be: at most '{MONEY_MAX}' (a "
            "balance or price is stored as NUMERIC(14, 2))"
        )
    if not _MONEY_RE.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not a valid amount: write digits with at most 2 "
            "decimal places, e.g. '12.50'"
        )
    try:
        amount = Decimal(value)
    except InvalidOperation:  # pragma: no cover - the pattern already excludes it
        raise ValueError(f"{show(value)} is not a valid amount") from None
    return amount.quantize(Decimal("0.01"))


def moment(value: Any) -> datetime:
    """An ISO 8601 date and time with a UTC offset, returned in UTC."""
    if not isinstance(value, str):
        raise ValueError(f"expected an ISO 8601 date and time with an offset, got {show(value)}")
    if _unsafe(value) or len(value) > 64:
        raise ValueError(f"{show(value)} is not an ISO 8601 date and time")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(
            f"{show(value)} is not an ISO 8601 date and time, e.g. '2027-01-31T00:00:00+08:00'"
        ) from None
    if parsed.tzinfo is None or parsed.utcoffset() is None:
        raise ValueError(
            f"{show(value)} has no UTC offset (a naive time); add one, e.g. '+08:00' or 'Z'"
        )
    try:
        parsed = parsed.astimezone(UTC)
    except (OverflowError, ValueError):
        raise ValueError(f"{show(value)} is out of range") from None
    if not 1970 <= parsed.year <= 9998:
        raise ValueError(f"{show(value)} is out of range (years 1970 to 9998)")
    return parsed


def time_of_day(value: Any) -> time:
    """A local time of day, ``HH:MM`` or ``HH:MM:SS`` (with fractions), without offset."""
    if not isinstance(value, str):
        raise ValueError(f"expected a local time of day such as '02:30', got {show(value)}")
    if _unsafe(value) or len(value) > 32:
        raise ValueError(f"{show(value)} is not a local time of day")
    try:
        parsed = time.fromisoformat(value)
    except ValueError:
        raise ValueError(f"{show(value)} is not a local time of day, e.g. '02:30'") from None
    if parsed.tzinfo is not None:
        raise ValueError(
            f"{show(value)} has an offset: an anchor time is read in the account's zone; "
            "leave the offset out"
        )
    return parsed


# --- accounts -------------------------------------------------------------------------------


def email(value: str) -> str:
    """An email address whose domain is a valid (possibly internationalised) name."""
    text(value)
    local, at, domain_part = value.rpartition("@")
    problem = None
    if not at or "@" in local or not local:
        problem = "it needs exactly one @ with a name before it"
    elif len(local) > 64:
        problem = "the part before @ is longer than 64 characters"
    elif not local.isascii():
        # Delivery speaks plain SMTP (no SMTPUTF8): a server could not be given the
        # address; look-alikes such as full-width dots would also pass the dot checks.
        problem = (
            "the part before @ has characters other than ASCII; write it in ASCII "
            "letters, digits and punctuation (the domain may be internationalised)"
        )
    elif _EMAIL_LOCAL_FORBIDDEN.search(local):
        problem = 'the part before @ has a space or one of <>()[]\\,;:"'
    elif local.startswith(".") or local.endswith(".") or ".." in local:
        # RFC 5322 dot-atom: servers refuse such an address, or deliver it elsewhere.
        problem = "the part before @ starts or ends with a dot, or has two dots in a row"
    elif "." not in domain_part:
        problem = "the part after @ must be a domain name with a dot"
    else:
        try:
            domain_name(domain_part)
        except ValueError as exc:
            problem = f"the part after @ is not a domain name ({exc})"
    if problem:
        raise ValueError(f"{show(value)} is not a valid email address: {problem}")
    return value


def phone(value: Any) -> str:
    """A phone number in E.164 form."""
    _expect("a phone number string")(value)
    if not _PHONE_RE.fullmatch(value):
        raise ValueError(
            f"{show(value)} is not an E.164 phone number: '+', the country code and "
            "the number, 8 to 15 digits, no spaces, e.g. '+8613800138000'"
        )
    return value


def time_zone(value: str) -> str:
    """An IANA time zone; the entries of the database that are not zones are refused."""
    text(value)
    if value not in time_zones():
        raise ValueError(f"{show(value)} is not an IANA time zone, e.g. 'Asia/Shanghai'")
    return value


# --- names ---------------------------------------------------------------------------------


# Name servers and email domains repeat across a fleet; IDNA encoding is the slow part.
@functools.lru_cache(maxsize=4096)
def domain_name(value: str) -> str:
    """The lower-case A-label form of a domain name given in Unicode or punycode.

    Raises ``ValueError`` with the reason alone (no value) when it is not a valid name.
    """
    if reason := _unsafe(value):
        raise ValueError(reason)
    if len(value) > 4 * MAX_DOMAIN:
        raise ValueError("it is too long")
    if value.endswith("."):
        value = value[:-1]
    if not value:
        raise ValueError("it is empty")
    try:
        alabel = idna.encode(value, uts46=True, std3_rules=True, transitional=False).decode()
    except (idna.IDNAError, UnicodeError, ValueError) as exc:
        raise ValueError(str(exc).replace("\n", " ")[:120]) from None
    alabel = alabel.lower()
    if len(alabel) > MAX_DOMAIN:
        raise ValueError(f"its A-label form is longer than {MAX_DOMAIN} characters")
    labels = alabel.split(".")
    if len(labels) < 2:
        raise ValueError("it needs at least two labels, e.g. example.com")
    if labels[-1].isdigit():
        raise ValueError("its last label is a number, not a top-level domain")
    return alabel


def domain(value: Any) -> str:
    """A domain's name, as its lower-case A-label."""
    _expect("a domain name string")(value)
    try:
        return domain_name(value)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid domain name ({exc})") from None


def nameserver(value: str) -> str:
    """A name server's host name, as its lower-case A-label."""
    try:
        return domain_name(value)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid name server ({exc})") from None


def catalog_zone(value: str | None) -> str | None:
    """A catalog (producer) zone's name, as its lower-case A-label (None: not given)."""
    if value is None:
        return None
    try:
        return domain_name(value)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid catalog zone name ({exc})") from None


def optional_moment(value: Any) -> datetime | None:
    """:func:`moment`, or None where the document gives null."""
    return None if value is None else moment(value)


def http_url(value: str | None) -> str | None:
    """The URL of an HTTP API: http(s), a host, an optional path (None: not given)."""
    if value is None:
        return None
    text(value)
    if not _HTTP_URL_RE.fullmatch(value):
        raise ValueError(f"{show(value)} is not an http(s) URL, e.g. 'http://127.0.0.1:8081'")
    return value


def nameserver_address(value: str) -> str:
    """Where a name server answers: an IP address with an optional port."""
    parse_address(value, "name-server address")
    return value.strip()


def unique(values: list[str]) -> list[str]:
    """The list without repeats, first occurrences kept in order."""
    return list(dict.fromkeys(values))


def normalise_registrar(value: str) -> str:
    """A registrar's name as stored: trimmed, and HiChina in one spelling (``hichina``)
    however the file writes it, so that every comparison sees one registrar."""
    return HICHINA if is_hichina(value) else value.strip()


def registrar(value: str) -> str:
    """A domain's registrar (see ``normalise_registrar``)."""
    return normalise_registrar(text(value))


def epp_status(value: Any) -> str:
    """An EPP status code in any case, returned in its RFC spelling."""
    status = _EPP_BY_LOWER.get(value.lower()) if isinstance(value, str) else None
    if status is None:
        raise ValueError(f"{show(value)} is not an EPP status code, e.g. 'clientUpdateProhibited'")
    return status


def _labels(value: str, *, allow_wildcard: bool) -> list[str]:
    """Lower-case labels of a host name; underscores allowed (``_dmarc``, SRV)."""
    result = []
    for i, label in enumerate(value.split(".")):
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
            raise ValueError(f"the label {show(label)} is not a valid DNS label")
        result.append(label)
    return result


def host(value: str) -> str:
    """A record's host relative to its domain, in lower case: names compare without
    case, so ``WWW`` and ``www`` are one owner."""
    text(value)
    if value == "@":
        return value
    if value.endswith("."):
        raise ValueError(
            f"{show(value)} ends with a dot; give the host relative to the domain "
            "('www', or '@' for the domain itself)"
        )
    try:
        return ".".join(_labels(value, allow_wildcard=True))
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid host ({exc})") from None


# --- records ---------------------------------------------------------------------------------


def record_type(value: Any) -> str:
    """A record type in any case, returned in capitals."""
    if isinstance(value, str) and value.upper() in RECORD_TYPES:
        return value.upper()
    raise ValueError(f"{show(value)} is not a record type; use one of {', '.join(RECORD_TYPES)}")


def record_value(rtype: str, host_name: str, value: str, zone: str) -> tuple[str, Rr]:
    """The stored form of a record's value, and the record as the zone file of ``zone``
    will hold it (names without case, absolute): checked by the parser that writes zone
    files, so that whatever is imported can be released, with the host names in it
    held to the letters, digits, hyphens and underscores of a host name."""
    fix = f"write it as {_RECORD_FORMS[rtype]}"
    try:
        canonical = check_record(Rr(rtype, host_name, value, 0), zone)
    except ValueError as exc:
        raise ValueError(f"{show(value)} is not a valid {rtype} value ({exc}); {fix}") from None
    if rtype in _TARGETS:
        # The host name is the last field of the canonical text (escaped, absolute).
        target = canonical.value.rsplit(" ", 1)[-1]
        if target == "." and rtype not in ("MX", "SRV"):
            # Only MX and SRV give "." a meaning: no mail, no such service.
            raise ValueError(f"{show(value)} is not a valid {rtype} value: it is the root; {fix}")
        if target != ".":
            try:
                _labels(target.removesuffix("."), allow_wildcard=False)
            except ValueError as exc:
                raise ValueError(
                    f"{show(value)} is not a valid {rtype} value: it is not a host name "
                    f"({exc}); {fix}"
                ) from None
    if rtype == "AAAA" and (mapped := ipaddress.IPv6Address(canonical.value).ipv4_mapped):
        # A valid IPv6 address, which PowerDNS refuses in an AAAA record: it would
        # fail the domain's release on a live cluster.
        raise ValueError(
            f"{show(value)} is an IPv4-mapped address, which DNS servers refuse in an AAAA "
            f"record; give it as an A record with the value '{mapped}'"
        )
    return (canonical.value if rtype in _ADDRESS_TYPES else value), canonical
