"""A domain's records as an RFC 1035 master file, and back.

Released instances keep one zone file per domain (rule 6): the copy must hold every
record exactly, so ``parse_zone_file(zone_file(d, rs), d)`` gives back ``rs`` up to
the normalisation below, duplicates and differing TTLs included.

A record (``Rr``) is kept as it is stored:

- ``host`` relative to the domain: ``@`` for the apex, ``www``, ``a.b``, ``*``;
- ``value`` in presentation format for every type (``1.2.3.4``, ``10 mail.example.com.``,
  ``10 5 5060 sip.example.com.``, ``0 issue "letsencrypt.org"``), except TXT (and SPF),
  whose value is the text itself, unquoted: any characters, any length, held as
  character-strings of 255 bytes. A TXT record whose strings are cut otherwise (``"a"
  "b"``, ``"" "x"``, a DKIM key cut at 200 bytes) or are not UTF-8 has ``quoted`` set and
  its value in presentation format (quoted strings, decimal escapes): DNS serves the
  strings one by one, so they are kept one by one. A name in a value without a trailing
  dot is relative to the domain, as in a master file.
- ``disabled`` and ``comments``: a record the server holds but does not serve, and the
  comments of its record set, as PowerDNS keeps them. The zone-file copy keeps them as
  comment lines; nothing compares them but the copy on another PowerDNS.

PowerDNS's ``ALIAS`` (private type 65401, a name) is a type here like any other.

Normalisation (``normalise``), the same on both sides of every comparison: type in
capitals; host in lower case (IDN labels as A-labels); value rewritten by dnspython
into its canonical text, with names absolute and, for the types whose values are names
(CNAME, NS, PTR, MX, SRV, ...), in lower case; TXT text untouched.

The file is written and read by this module rather than loaded with
``dns.zone.from_text``: a zone object merges records with the same host and type
into one set, so duplicates vanish and all of them take the smallest TTL, and it
drops a CNAME that shares its host with other data. The reader here keeps every line.
"""

# Over 500 lines on purpose: one format both ways. Writing, parsing and the normalisation
# they share change together, or a zone-file copy would stop reading back as its records.
from __future__ import annotations

import functools
import json
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import dns.exception
import dns.name
import dns.rdata
import dns.rdataclass
import dns.rdatatype
import dns.rdtypes.nsbase
import dns.tokenizer
import dns.ttl

from dns_lifecycle.core.errors import ZoneFileError

__all__ = [
    "Rr",
    "check_record",
    "from_presentation",
    "normalise",
    "presentation",
    "served_form",
    "parse_zone_file",
    "same_records",
    "zone_file",
]


class ALIAS(dns.rdtypes.nsbase.UncompressedNS):
    """PowerDNS's ALIAS: a name whose addresses the server looks up and serves as its own;
    asked for by its type (65401), it answers with the name."""


ALIAS_TYPE = 65401
dns.rdata.register_type(ALIAS, ALIAS_TYPE, "ALIAS")

# Types whose rdata holds text strings rather than a presentation-format value.
_TEXT_TYPES = frozenset({dns.rdatatype.TXT, dns.rdatatype.SPF})
# Types whose parameters PowerDNS reads only unquoted (RFC 9460 allows either).
_SVCB_TYPES = frozenset({dns.rdatatype.SVCB, dns.rdatatype.HTTPS})
# Types whose only case-insensitive parts are domain names (RFC 4034 section 6.2):
# their canonical text can be lower-cased as a whole.
_NAME_TYPES = frozenset(
    {
        dns.rdatatype.CNAME,
        dns.rdatatype.NS,
        dns.rdatatype.PTR,
        dns.rdatatype.MX,
        dns.rdatatype.SRV,
        dns.rdatatype.DNAME,
        dns.rdatatype.KX,
        dns.rdatatype.AFSDB,
        dns.rdatatype.RT,
        dns.rdatatype.RdataType.make(ALIAS_TYPE),
    }
)
# One character-string of a TXT record holds at most 255 bytes (RFC 1035 3.3).
_MAX_STRING = 255
_DEFAULT_TTL = 3600


@dataclass(frozen=True, order=True)
class Rr:
    """One DNS record of a domain, as stored (see the module docstring)."""

    type: str
    host: str
    value: str
    ttl: int
    quoted: bool = False  # TXT/SPF: ``value`` is its strings in presentation format
    disabled: bool = False  # held by the server, not served
    comments: tuple[tuple[str, str], ...] = ()  # its record set's (account, text)

    def row(self) -> list[Any]:
        """The record as a JSON row: type, host, value, TTL, then what is not the default."""
        row: list[Any] = [self.type, self.host, self.value, self.ttl]
        if self.quoted or self.disabled or self.comments:
            row += [self.quoted, self.disabled, [list(c) for c in self.comments]]
        return row

    @classmethod
    def of_row(cls, row: Sequence[Any]) -> Rr:
        """The record of a JSON row written by ``row``."""
        rtype, host, value, ttl, *rest = row
        quoted, disabled, comments = (rest + [False, False, []])[:3]
        return cls(
            rtype, host, value, ttl, bool(quoted), bool(disabled), tuple(map(tuple, comments))
        )


def zone_file(domain: str, records: Iterable[Rr], *, generated_at: datetime | None = None) -> str:
    """The master file of ``domain`` holding ``records``, one per line, in a stable order;
    disabled records and record-set comments follow as comment lines.

    Raises ``ZoneFileError`` naming the record when one cannot be written (an invalid
    value, a host outside the domain): a copy that silently missed it would be worse.
    """
    origin = _origin(domain)
    lines: list[tuple[dns.name.Name, str, str, int]] = []
    disabled: list[tuple[dns.name.Name, str, str, int]] = []
    comments: set[tuple[dns.name.Name, str, str, str]] = set()
    for rr in records:
        owner, rdata, ttl = _parse_or_refuse(rr, origin, "be written to a zone file")
        # TXT as quoted, escaped strings; every other type in its canonical text.
        text = rdata.to_text() if rdata.rdtype in _TEXT_TYPES else _value(rdata)
        rtype = _type_text(rdata.rdtype)
        (disabled if rr.disabled else lines).append((owner, rtype, text, ttl))
        comments.update((owner, rtype, account, content) for account, content in rr.comments)
    # DNSSEC canonical order of owners (the apex first), then type, value and TTL.
    lines.sort()
    origin_text = _show(origin)
    header = [f"; Zone file of {origin_text}"]
    if generated_at is not None:
        header.append(f"; Generated at {generated_at.isoformat()}")
    header += [
        f"; Records: {len(lines)}. No SOA: a name server loading this file adds its own.",
        f"$ORIGIN {origin_text}",
        f"$TTL {min((ttl for *_, ttl in lines), default=_DEFAULT_TTL)}",
    ]
    body = _aligned(lines, origin, "")
    if disabled:
        body += ["; Disabled records: held by the paid server, not served."]
        body += _aligned(sorted(disabled), origin, "; ")
    if comments:
        # JSON strings: a comment holds any text, newlines included, on one line.
        body += ["; Record-set comments (account: text):"]
        body += [
            f"; {_relative(owner, origin)} {rtype} {json.dumps(account, ensure_ascii=False)}: "
            f"{json.dumps(content, ensure_ascii=False)}"
            for owner, rtype, account, content in sorted(comments)
        ]
    return "\n".join(header + body) + "\n"


def _aligned(
    lines: list[tuple[dns.name.Name, str, str, int]], origin: dns.name.Name, prefix: str
) -> list[str]:
    hosts = [_relative(owner, origin) for owner, *_ in lines]
    host_width = max(map(len, hosts), default=1)
    ttl_width = max((len(str(ttl)) for *_, ttl in lines), default=1)
    return [
        f"{prefix}{host.ljust(host_width)} {str(ttl).ljust(ttl_width)} IN {rtype} {rdata}"
        for host, (_, rtype, rdata, ttl) in zip(hosts, lines, strict=True)
    ]


def check_record(rr: Rr, domain: str) -> Rr:
    """``rr`` in the canonical form the zone file of ``domain`` will hold (as
    ``normalise`` gives it), parsed exactly as ``zone_file`` parses it to write it.

    Raises ``ValueError`` with the reason when ``rr`` cannot be written to that zone
    file (a value its type does not accept, a host outside the domain, a TTL out of
    range). Whatever passes here can be written, so the import checks records with it.
    """
    origin = _origin(domain)
    owner, rdata, ttl = _parse(rr, origin)
    return _kept(rr, _from_rdata(owner, ttl, rdata, origin))


def parse_zone_file(text: str, domain: str) -> list[Rr]:
    """The records of a master file of ``domain``, normalised, in file order.

    Reads what ``zone_file`` writes and the usual hand-written forms: ``$ORIGIN`` and
    ``$TTL``, relative and absolute owners, a blank owner repeating the previous one,
    TTL and class in either order, comments, parentheses. ``$INCLUDE`` and
    ``$GENERATE`` are refused. A SOA, if present, is a record like any other.
    """
    origin = _origin(domain)
    tok = dns.tokenizer.Tokenizer(text, filename=f"zone file of {_show(origin)}")
    current_origin = origin
    default_ttl: int | None = None
    last_ttl: int | None = None
    owner: dns.name.Name | None = None
    records: list[Rr] = []
    line = 1
    try:
        while True:
            token = tok.get(want_leading=True)
            line = tok.line_number
            if token.is_eof():
                break
            if token.is_eol():
                continue
            if token.is_whitespace():
                token = tok.get()
                if token.is_eol_or_eof():
                    continue
                if owner is None:
                    raise ZoneFileError(_at(tok, line, "a record without an owner name"))
                tok.unget(token)
            elif token.is_identifier() and token.value.startswith("$"):
                directive = token.value.upper()
                if directive == "$ORIGIN":
                    current_origin = tok.get_name(origin=current_origin)
                elif directive == "$TTL":
                    default_ttl = dns.ttl.from_text(tok.get_identifier())
                else:
                    raise ZoneFileError(
                        _at(tok, line, f"the directive {token.value} is not supported")
                    )
                tok.get_eol()
                continue
            else:
                owner = tok.as_name(token, current_origin)
            if not owner.is_subdomain(origin):
                raise ZoneFileError(
                    _at(tok, line, f"the owner {_show(owner)} is outside the domain")
                )

            ttl: int | None = None
            rdclass = dns.rdataclass.IN
            class_seen = False
            token = tok.get()
            # TTL and class, each optional, in either order, before the type.
            while token.is_identifier():
                if ttl is None and token.value[:1].isdigit():
                    ttl = dns.ttl.from_text(token.value)
                elif not class_seen and _is_class(token.value):
                    rdclass, class_seen = dns.rdataclass.from_text(token.value), True
                else:
                    break
                token = tok.get()
            if not token.is_identifier():
                raise ZoneFileError(_at(tok, line, "a record without a type"))
            rdtype = dns.rdatatype.from_text(token.value)
            if rdclass != dns.rdataclass.IN:
                raise ZoneFileError(_at(tok, line, "only class IN records are supported"))
            rdata = dns.rdata.from_text(rdclass, rdtype, tok, current_origin, relativize=False)
            if ttl is None:
                ttl = default_ttl if default_ttl is not None else last_ttl
            if ttl is None:
                raise ZoneFileError(_at(tok, line, "a record without a TTL and no $TTL before it"))
            last_ttl = ttl
            records.append(_from_rdata(owner, ttl, rdata, origin))
    except ZoneFileError:
        raise
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise ZoneFileError(_at(tok, line, _reason(exc))) from None
    return records


def normalise(rr: Rr, domain: str | None = None) -> Rr:
    """``rr`` in the canonical form that ``parse_zone_file`` returns.

    With ``domain``, relative names in the value are made absolute and an absolute
    host inside the domain is made relative. Without it, names are compared as
    written (relative to relative, absolute to absolute). Never raises: a record
    that cannot be parsed is compared by its text, with only type and host case
    folded.
    """
    origin = _origin(domain) if domain is not None else None
    try:
        ttl = _ttl(rr.ttl)
        rdata = _rdata(rr.type, rr.value, rr.quoted, origin)
        if origin is not None:
            return _kept(rr, _from_rdata(_owner(rr.host, origin), ttl, rdata, origin))
        value, quoted = _text_of(rdata)
        return _kept(
            rr,
            Rr(
                type=_type_text(rdata.rdtype),
                host=_host_without_origin(rr.host),
                value=value,
                ttl=ttl,
                quoted=quoted,
            ),
        )
    except (dns.exception.DNSException, ValueError, UnicodeError, TypeError):
        host = rr.host.strip().lower() or "@"
        return replace(rr, type=rr.type.strip().upper(), host=host)


def same_records(a: Iterable[Rr], b: Iterable[Rr], *, domain: str | None = None) -> bool:
    """Whether ``a`` and ``b`` hold the same records, counting duplicates, once normalised.

    Pass ``domain`` when either side may write a name relative to the domain and the
    other absolute (``www`` against ``www.example.com.``): ``parse_zone_file`` returns
    values with absolute names.
    """
    return Counter(normalise(r, domain) for r in a) == Counter(normalise(r, domain) for r in b)


def presentation(rr: Rr, domain: str) -> tuple[str, str, str]:
    """``rr`` as a name server takes it: its owner as an absolute name, its type, and its
    value in presentation format with absolute names (TXT as quoted strings).

    Raises ``ZoneFileError`` naming the record when it cannot be written.
    """
    owner, rtype, rdata = served_form(rr, domain)
    text = rdata.to_text()
    if rdata.rdtype in _SVCB_TYPES:
        # PowerDNS refuses a quoted parameter value ('alpn="h2,h3"', HTTP 422) that it
        # serves unquoted: values that need no quotes are written without them.
        text = _QUOTED_PARAM.sub(r"=\1", text)
    return owner, rtype, text


_QUOTED_PARAM = re.compile(r'="([A-Za-z0-9._,:/+=-]*)"')


def served_form(rr: Rr, domain: str) -> tuple[str, str, dns.rdata.Rdata]:
    """``rr`` as ``presentation`` gives it, with its value as rdata (names absolute):
    what a name server's answer holds. Raises ``ZoneFileError`` like ``presentation``."""
    owner, rdata, _ = _parse_or_refuse(rr, _origin(domain), "be served")
    return owner.to_text(), _type_text(rdata.rdtype), rdata


def from_presentation(owner: str, rtype: str, ttl: int, value: str, domain: str) -> Rr:
    """The record a name server holds (absolute owner, presentation-format value), in the
    normalised form ``parse_zone_file`` returns. Raises ``ZoneFileError`` when it cannot
    be read."""
    origin = _origin(domain)
    try:
        name = dns.name.from_text(owner).canonicalize()
        rdtype = dns.rdatatype.from_text(rtype)
        rdata = dns.rdata.from_text(
            dns.rdataclass.IN, rdtype, value, origin=dns.name.root, relativize=False
        )
        if not name.is_subdomain(origin):
            raise ValueError(f"the owner {_show(name)} is outside {_show(origin)}")
        rr = _from_rdata(name, _ttl(ttl), rdata, origin)
        # Parsing this record again (for its zone-file copy, its creation elsewhere, its
        # verification) would give back this very owner and rdata when its value is the
        # rdata's own text: always but for TXT (whose value is its text or its strings)
        # and for names written in capitals (lowered).
        if rdtype not in _TEXT_TYPES and (rdtype not in _NAME_TYPES or rr.value == rdata.to_text()):
            _remember((rr.type, rr.host, rr.value, rr.quoted, origin), (name, rdata))
        return rr
    except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
        raise ZoneFileError(
            f"domain {_show(origin)}: the served record {owner} {rtype} {value[:60]!r} "
            f"cannot be read ({_reason(exc)})"
        ) from None


# --- helpers ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=4096)
def _origin(domain: str) -> dns.name.Name:
    try:
        return dns.name.from_text(domain.strip()).canonicalize()
    except (dns.exception.DNSException, UnicodeError, ValueError) as exc:
        raise ZoneFileError(
            f"{domain!r} is not a domain name ({_reason(exc)}): pass the zone's name, "
            "e.g. 'example.com'"
        ) from None


def _parse(rr: Rr, origin: dns.name.Name) -> tuple[dns.name.Name, dns.rdata.Rdata, int]:
    """Owner, rdata and TTL of ``rr``; ``ValueError`` with the reason when invalid."""
    try:
        ttl = _ttl(rr.ttl)
    except ValueError as exc:
        raise ValueError(_reason(exc)) from None
    owner, rdata = _parse_data(rr.type, rr.host, rr.value, rr.quoted, origin)
    return owner, rdata, ttl


def _parse_or_refuse(
    rr: Rr, origin: dns.name.Name, what: str
) -> tuple[dns.name.Name, dns.rdata.Rdata, int]:
    """``_parse``, or ``ZoneFileError`` naming the record that cannot ``what``."""
    try:
        return _parse(rr, origin)
    except ValueError as exc:
        raise ZoneFileError(
            f"domain {_show(origin)}: the record {_show_rr(rr)} cannot {what} ({exc}); "
            "correct the record and run the step again"
        ) from None


# A release parses each record of a zone for its creation, its verification and its
# zone-file copy: parsing costs more than the rest of that work together, and owners and
# rdata are immutable, so recent parses are kept (the whole memory is dropped when full:
# a release goes through its zones once). Keyed by the record's type, host and value and
# the zone's origin.
_Key = tuple[str, str, str, bool, dns.name.Name]
_PARSED: dict[_Key, tuple[dns.name.Name, dns.rdata.Rdata]] = {}
_PARSED_MAX = 16384


def _parse_data(
    rtype: str, host: str, value: str, quoted: bool, origin: dns.name.Name
) -> tuple[dns.name.Name, dns.rdata.Rdata]:
    key = (rtype, host, value, quoted, origin)
    parsed = _PARSED.get(key)
    if parsed is None:
        try:
            parsed = _owner(host, origin), _rdata(rtype, value, quoted, origin)
        except (dns.exception.DNSException, ValueError, UnicodeError) as exc:
            raise ValueError(_reason(exc)) from None
        _remember(key, parsed)
    return parsed


def _remember(key: _Key, parsed: tuple[dns.name.Name, dns.rdata.Rdata]) -> None:
    if len(_PARSED) >= _PARSED_MAX:
        _PARSED.clear()
    _PARSED[key] = parsed


def _owner(host: str, origin: dns.name.Name) -> dns.name.Name:
    text = host.strip()
    owner = origin if text in ("", "@") else dns.name.from_text(text, origin)
    if not owner.is_subdomain(origin):
        raise ValueError(f"the host {_show(owner)} is not inside {_show(origin)}")
    return owner.canonicalize()


def _host_without_origin(host: str) -> str:
    text = host.strip()
    if text in ("", "@"):
        return "@"
    return dns.name.from_text(text, None).canonicalize().to_text()


def _relative(owner: dns.name.Name, origin: dns.name.Name) -> str:
    # The empty relative name prints as "@".
    return owner.relativize(origin).to_text()


def _ttl(ttl: int) -> int:
    if isinstance(ttl, bool) or not isinstance(ttl, int) or not 0 <= ttl <= 2_147_483_647:
        raise ValueError(f"the TTL {ttl!r} is not a whole number of seconds from 0 to 2^31-1")
    return ttl


def _rdata(rtype: str, value: str, quoted: bool, origin: dns.name.Name | None) -> dns.rdata.Rdata:
    rdtype = dns.rdatatype.from_text(rtype.strip())
    if rdtype in _TEXT_TYPES and not quoted:
        return dns.rdata.get_rdata_class(dns.rdataclass.IN, rdtype)(
            dns.rdataclass.IN, rdtype, _split(value.encode("utf-8"))
        )
    return dns.rdata.from_text(dns.rdataclass.IN, rdtype, value, origin=origin, relativize=False)


def _split(data: bytes) -> list[bytes]:
    return [data[i : i + _MAX_STRING] for i in range(0, len(data), _MAX_STRING)] or [b""]


def _text_of(rdata: dns.rdata.Rdata) -> tuple[str, bool]:
    """The value of ``rdata`` and whether it is quoted: a TXT record is its text unless
    its strings are not that text cut every 255 bytes, or not UTF-8."""
    if rdata.rdtype in _TEXT_TYPES:
        strings = list(rdata.strings)  # type: ignore[attr-defined]
        data = b"".join(strings)
        if strings == _split(data):
            try:
                return data.decode("utf-8"), False
            except UnicodeDecodeError:
                pass
        return rdata.to_text(), True
    return _value(rdata), False


def _value(rdata: dns.rdata.Rdata) -> str:
    text = rdata.to_text()
    return text.lower() if rdata.rdtype in _NAME_TYPES else text


def _from_rdata(owner: dns.name.Name, ttl: int, rdata: dns.rdata.Rdata, origin) -> Rr:
    value, quoted = _text_of(rdata)
    return Rr(
        type=_type_text(rdata.rdtype),
        host=_relative(owner.canonicalize(), origin),
        value=value,
        ttl=ttl,
        quoted=quoted,
    )


def _kept(source: Rr, rr: Rr) -> Rr:
    """``rr`` with what ``source`` holds beyond its data (disabled, comments)."""
    if not (source.disabled or source.comments):
        return rr
    return replace(rr, disabled=source.disabled, comments=source.comments)


def _type_text(rdtype: dns.rdatatype.RdataType) -> str:
    # As a plain number: dnspython names a registered type (ALIAS) only when given one.
    return dns.rdatatype.to_text(int(rdtype))  # type: ignore[arg-type]


def _is_class(text: str) -> bool:
    try:
        dns.rdataclass.from_text(text)
    except dns.exception.DNSException:
        return False
    return True


def _show(name: dns.name.Name) -> str:
    return name.to_text()


def _show_rr(rr: Rr) -> str:
    value = rr.value if len(rr.value) <= 60 else rr.value[:57] + "..."
    return f"{rr.host!r} {rr.ttl!r} {rr.type!r} {value!r}"


def _reason(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ").strip() or type(exc).__name__
    return text[:200]


def _at(tok: dns.tokenizer.Tokenizer, line: int, problem: str) -> str:
    return f"{tok.filename}, line {line}: {problem}"
