"""The zone-file copy of a domain: written as a master file, read back without loss."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime

import dns.rdatatype
import dns.zone
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dns_lifecycle.core.errors import ZoneFileError
from dns_lifecycle.lifecycle import zonefile
from dns_lifecycle.lifecycle.zonefile import (
    Rr,
    check_record,
    from_presentation,
    normalise,
    parse_zone_file,
    presentation,
    same_records,
    zone_file,
)

DOMAIN = "example.com"

# --- strategies ------------------------------------------------------------------------

_label = st.from_regex(r"[a-zA-Z0-9_]([a-zA-Z0-9_-]{0,8}[a-zA-Z0-9_])?", fullmatch=True)
_relative_name = st.lists(_label, min_size=1, max_size=3).map(".".join)
hosts = st.one_of(
    st.just("@"),
    st.just("*"),
    _relative_name,
    _relative_name.map(lambda n: f"*.{n}"),
)
# A name a record points at: absolute anywhere, or relative to the domain.
targets = st.one_of(
    _relative_name.map(lambda n: f"{n}.example.net."),
    _relative_name.map(lambda n: f"{n}.{DOMAIN}."),
    _relative_name,
)
ttls = st.integers(min_value=0, max_value=2**31 - 1)
u16 = st.integers(min_value=0, max_value=65535)
# Any text but lone surrogates (which no UTF-8 string can hold).
tricky_text = st.one_of(
    st.text(st.characters(exclude_categories=("Cs",)), max_size=600),
    st.sampled_from(
        [
            "",
            '"',
            "\\",
            '\\"',
            "a;b ; c",
            "v=spf1 include:_spf.example.net ~all",
            '"v=spf1 -all"',
            "汉字 and ümlauts",
            "tab\tnew\nline\r\x00\x7f",
            "x" * 255,
            "é" * 200,  # 400 bytes: the split falls inside a two-byte character
        ]
    ),
)
caa_values = st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30).map(
    lambda v: '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
)

values_by_type = {
    "A": st.ip_addresses(v=4).map(str),
    "AAAA": st.tuples(st.ip_addresses(v=6), st.booleans()).map(
        lambda t: str(t[0]).upper() if t[1] else str(t[0])
    ),
    "CNAME": targets,
    "NS": targets,
    "PTR": targets,
    "MX": st.tuples(u16, targets).map(lambda t: f"{t[0]} {t[1]}"),
    "SRV": st.tuples(u16, u16, u16, targets).map(lambda t: " ".join(map(str, t))),
    "CAA": st.tuples(
        st.integers(0, 255), st.sampled_from(["issue", "issuewild", "iodef"]), caa_values
    ).map(lambda t: f"{t[0]} {t[1]} {t[2]}"),
    "TXT": tricky_text,
}


@st.composite
def records(draw) -> Rr:
    rtype = draw(st.sampled_from(sorted(values_by_type)))
    return Rr(
        type=draw(st.sampled_from([rtype, rtype.lower()])),
        host=draw(st.one_of(hosts, hosts.map(str.upper))),
        value=draw(values_by_type[rtype]),
        ttl=draw(ttls),
    )


domains = st.sampled_from([DOMAIN, "Example.COM.", "xn--bcher-kva.example", "a-b.example.org"])
zones = st.lists(records(), max_size=25)


def _valid_dns(rs: list[Rr]) -> list[Rr]:
    """The records minus what DNS forbids: a CNAME beside other data, two CNAMEs."""
    kept: list[Rr] = []
    cname_hosts: set[str] = set()
    other_hosts: set[str] = set()
    for r in rs:
        host = r.host.lower()
        if r.type.upper() == "CNAME":
            if host in cname_hosts or host in other_hosts:
                continue
            cname_hosts.add(host)
        else:
            if host in cname_hosts:
                continue
            other_hosts.add(host)
        kept.append(r)
    return kept


# --- properties --------------------------------------------------------------------------


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domain=domains, rs=zones, shout=st.booleans())
def test_reading_served_records_leaves_later_parses_as_they_were(domain, rs, shout):
    """A record read from a server is kept parsed for its copy, creation and
    verification: what those see equals what a fresh parse gives, in capitals too."""
    served = []
    for rr in rs:
        owner, rtype, value = presentation(rr, domain)
        served.append(
            (owner.upper() if shout else owner, rtype, value.upper() if shout else value, rr.ttl)
        )
    zonefile._PARSED.clear()
    read = [from_presentation(o, t, ttl, v, domain) for o, t, v, ttl in served]
    seeded = (zone_file(domain, read), [presentation(r, domain) for r in read])
    zonefile._PARSED.clear()
    fresh = (zone_file(domain, read), [presentation(r, domain) for r in read])
    assert seeded == fresh


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(domain=domains, rs=zones)
def test_random_zones_round_trip(domain, rs):
    """Every record of a random zone comes back from its zone file, duplicates included."""
    back = parse_zone_file(zone_file(domain, rs), domain)
    assert same_records(back, rs, domain=domain)
    assert len(back) == len(rs)


@settings(max_examples=75, deadline=None)
@given(domain=domains, rs=zones)
def test_parsed_records_are_already_normal(domain, rs):
    """What parse_zone_file returns is its own normal form, with or without the domain."""
    for rr in parse_zone_file(zone_file(domain, rs), domain):
        assert normalise(rr, domain) == rr
        assert normalise(rr) == rr


@settings(max_examples=100, deadline=None)
@given(domain=domains, rs=zones.map(_valid_dns))
def test_dnspython_loads_the_file(domain, rs):
    """dnspython's own zone reader accepts the file and finds the same distinct records."""
    text = zone_file(domain, rs, generated_at=datetime(2026, 1, 1, tzinfo=UTC))
    zone = dns.zone.from_text(text, origin=domain, relativize=True, check_origin=False)
    loaded = {
        (name.to_text().lower(), dns.rdatatype.to_text(rdata.rdtype))
        for name, _ttl, rdata in zone.iterate_rdatas()
    }
    assert loaded == {(normalise(r, domain).host, normalise(r, domain).type) for r in rs}
    distinct = {(r.host, r.type, r.value) for r in (normalise(r, domain) for r in rs)}
    assert sum(1 for _ in zone.iterate_rdatas()) == len(distinct)


@settings(max_examples=50, deadline=None)
@given(rs=zones, rnd=st.randoms(use_true_random=False))
def test_order_does_not_change_the_file(rs, rnd):
    """The same records in any order give the same file."""
    shuffled = rnd.sample(rs, len(rs))
    assert zone_file(DOMAIN, shuffled) == zone_file(DOMAIN, rs)


# --- examples ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("record", "line", "parsed_value"),
    [
        (Rr("A", "@", "192.0.2.1", 600), "@ 600 IN A 192.0.2.1", "192.0.2.1"),
        (Rr("AAAA", "www", "2001:DB8:0::1", 60), "www 60 IN AAAA 2001:db8::1", "2001:db8::1"),
        (
            Rr("CNAME", "www", "Web.Example.net.", 60),
            "www 60 IN CNAME web.example.net.",
            "web.example.net.",
        ),
        (
            Rr("CNAME", "blog", "www", 60),
            "blog 60 IN CNAME www.example.com.",
            "www.example.com.",
        ),
        (Rr("NS", "sub", "ns1.example.net.", 60), "sub 60 IN NS ns1.example.net.", None),
        (Rr("PTR", "1.2", "host.example.net.", 60), "1.2 60 IN PTR host.example.net.", None),
        (
            Rr("MX", "@", "10 mail", 300),
            "@ 300 IN MX 10 mail.example.com.",
            "10 mail.example.com.",
        ),
        (
            Rr("SRV", "_sip._tcp", "10 5 5060 sip.example.com.", 60),
            "_sip._tcp 60 IN SRV 10 5 5060 sip.example.com.",
            None,
        ),
        (
            Rr("CAA", "@", '0 issue "letsencrypt.org"', 60),
            '@ 60 IN CAA 0 issue "letsencrypt.org"',
            None,
        ),
        (Rr("TXT", "*", "hello world", 60), '* 60 IN TXT "hello world"', None),
        (Rr("TXT", "_dmarc", 'say "hi"', 60), '_dmarc 60 IN TXT "say \\"hi\\""', None),
    ],
)
def test_each_type_is_written_and_read_back(record, line, parsed_value):
    """Each record type is written as one master-file line and read back to its value."""
    text = zone_file(DOMAIN, [record])
    assert line in text
    [back] = parse_zone_file(text, DOMAIN)
    assert back == Rr(record.type, record.host, parsed_value or record.value, record.ttl)


def test_header_names_the_domain_and_time():
    """The file opens with the domain, the time it was made, $ORIGIN and the smallest TTL."""
    text = zone_file(
        "Example.com",
        [Rr("A", "@", "192.0.2.1", 600), Rr("A", "www", "192.0.2.2", 120)],
        generated_at=datetime(2026, 3, 1, 12, 0, tzinfo=UTC),
    )
    lines = text.splitlines()
    assert lines[0] == "; Zone file of example.com."
    assert lines[1] == "; Generated at 2026-03-01T12:00:00+00:00"
    assert "$ORIGIN example.com." in lines
    assert "$TTL 120" in lines


def test_empty_zone_is_a_valid_file():
    """A domain without records gives a file with no records, which reads back empty."""
    text = zone_file(DOMAIN, [])
    assert parse_zone_file(text, DOMAIN) == []
    dns.zone.from_text(text, origin=DOMAIN, check_origin=False)


def test_txt_escapes_quotes_backslashes_and_non_ascii():
    """TXT text is quoted, with quote and backslash escaped and other bytes as \\DDD."""
    text = zone_file(DOMAIN, [Rr("TXT", "t", 'a"b\\c;d ä\n', 60)])
    assert 't 60 IN TXT "a\\"b\\\\c;d \\195\\164\\010"' in text
    assert parse_zone_file(text, DOMAIN) == [Rr("TXT", "t", 'a"b\\c;d ä\n', 60)]


def test_long_txt_is_split_into_strings_of_255_bytes():
    """A TXT text over 255 bytes is written as several strings and read back joined."""
    value = "k=" + "A" * 600
    text = zone_file(DOMAIN, [Rr("TXT", "@", value, 60)])
    line = next(line for line in text.splitlines() if " TXT " in line)
    assert line.count('" "') == 2  # three strings: 255 + 255 + 92 bytes
    assert parse_zone_file(text, DOMAIN) == [Rr("TXT", "@", value, 60)]


def test_quoted_txt_value_is_kept_as_text():
    """A TXT value stored with its own quotes keeps them: the value is the text itself."""
    text = zone_file(DOMAIN, [Rr("TXT", "@", '"v=spf1 -all"', 60)])
    assert '@ 60 IN TXT "\\"v=spf1 -all\\""' in text
    assert parse_zone_file(text, DOMAIN) == [Rr("TXT", "@", '"v=spf1 -all"', 60)]


def test_duplicates_and_differing_ttls_are_kept():
    """Repeated records and records of one set with different TTLs all survive."""
    rs = [
        Rr("A", "@", "192.0.2.1", 300),
        Rr("A", "@", "192.0.2.1", 300),
        Rr("A", "@", "192.0.2.2", 900),
    ]
    assert sorted(parse_zone_file(zone_file(DOMAIN, rs), DOMAIN)) == sorted(rs)


def test_cname_beside_other_data_is_kept():
    """Records that DNS forbids together (CNAME plus A) are still copied, not dropped."""
    rs = [Rr("CNAME", "www", "web.example.net.", 60), Rr("A", "www", "192.0.2.1", 60)]
    assert same_records(parse_zone_file(zone_file(DOMAIN, rs), DOMAIN), rs)


def test_invalid_value_is_refused_with_the_record_named():
    """A value that is not valid for its type stops the copy with the record named."""
    with pytest.raises(ZoneFileError, match=r"example\.com\..*'www'.*'A'.*'not-an-ip'"):
        zone_file(DOMAIN, [Rr("A", "www", "not-an-ip", 60)])


def test_host_outside_the_domain_is_refused():
    """A host that is an absolute name outside the domain is refused."""
    with pytest.raises(ZoneFileError, match="not inside example.com"):
        zone_file(DOMAIN, [Rr("A", "www.example.org.", "192.0.2.1", 60)])


def test_absolute_host_inside_the_domain_is_made_relative():
    """A host written as an absolute name inside the domain reads back relative."""
    text = zone_file(DOMAIN, [Rr("A", "WWW.example.com.", "192.0.2.1", 60)])
    assert parse_zone_file(text, DOMAIN) == [Rr("A", "www", "192.0.2.1", 60)]


def test_hand_written_file_is_read():
    """Blank owners, $TTL, class before TTL, parentheses and comments are understood."""
    text = """\
$TTL 1h
$ORIGIN example.com.
@            IN  A     192.0.2.1   ; the apex
             IN  300 AAAA  2001:db8::1
www.example.com. 60 IN CNAME @
$ORIGIN sub.example.com.
mail         120 IN MX ( 10
                          mx1 )
txt          IN TXT "one" "two"
"""
    assert parse_zone_file(text, DOMAIN) == [
        Rr("A", "@", "192.0.2.1", 3600),
        Rr("AAAA", "@", "2001:db8::1", 300),
        Rr("CNAME", "www", "example.com.", 60),
        Rr("MX", "mail.sub", "10 mx1.sub.example.com.", 120),
        Rr("TXT", "txt.sub", '"one" "two"', 3600, quoted=True),
    ]


def test_include_directive_is_refused():
    """$INCLUDE is refused rather than followed."""
    with pytest.raises(ZoneFileError, match=r"line 1: the directive \$INCLUDE"):
        parse_zone_file("$INCLUDE /etc/passwd\n", DOMAIN)


def test_record_outside_the_domain_is_refused_when_read():
    """A file with a record outside the domain is refused."""
    with pytest.raises(ZoneFileError, match="outside the domain"):
        parse_zone_file("www.example.org. 60 IN A 192.0.2.1\n", DOMAIN)


def test_garbage_is_refused_with_the_line():
    """A line that is not a record is refused, naming its line number."""
    with pytest.raises(ZoneFileError, match="line 2"):
        parse_zone_file("@ 60 IN A 192.0.2.1\n@ 60 IN A nonsense\n", DOMAIN)


def test_same_records_counts_duplicates():
    """same_records is a multiset comparison: a missing duplicate is a difference."""
    one = Rr("A", "@", "192.0.2.1", 60)
    assert same_records([one, one], [one, one])
    assert not same_records([one, one], [one])


def test_same_records_ignores_case_of_names_but_not_of_text():
    """Type, host and names compare without case; TXT text compares exactly."""
    assert same_records(
        [Rr("cname", "WWW", "Web.Example.NET.", 60)], [Rr("CNAME", "www", "web.example.net.", 60)]
    )
    assert not same_records([Rr("TXT", "@", "Token", 60)], [Rr("TXT", "@", "token", 60)])


def test_same_records_sees_ttl_differences():
    """Records differing only in TTL are different."""
    assert not same_records([Rr("A", "@", "192.0.2.1", 60)], [Rr("A", "@", "192.0.2.1", 61)])


def test_relative_names_need_the_domain_to_compare():
    """A relative target equals its absolute form only when the domain is given."""
    relative = [Rr("MX", "@", "10 mail", 60)]
    absolute = [Rr("MX", "@", "10 mail.example.com.", 60)]
    assert same_records(relative, absolute, domain=DOMAIN)
    assert not same_records(relative, absolute)


def test_same_records_compares_invalid_values_by_text():
    """A value that cannot be parsed never raises; it is compared by its text."""
    bad = Rr("A", "www", "not-an-ip", 60)
    assert same_records([bad], [Rr("a", "WWW", "not-an-ip", 60)])
    assert not same_records([bad], [Rr("A", "www", "not-an-IP", 60)])


def test_idn_domain_and_targets_are_a_labels():
    """Unicode names are written and read back as A-labels."""
    text = zone_file("bücher.example", [Rr("CNAME", "www", "bücher.example.", 60)])
    assert "$ORIGIN xn--bcher-kva.example." in text
    back = parse_zone_file(text, "xn--bcher-kva.example")
    assert back == [Rr("CNAME", "www", "xn--bcher-kva.example.", 60)]
    assert Counter(back) == Counter([normalise(Rr("CNAME", "www", "bücher.example.", 60))])


@pytest.mark.parametrize(
    "rr",
    [
        Rr("CAA", "@", '0 issue "a" "b"', 600),
        Rr("MX", "@", "mail.example.com.", 600),
        Rr("A", "www", "300.1.1.1", 600),
        Rr("A", "www.other.org.", "192.0.2.1", 600),
        Rr("A", "@", "192.0.2.1", -1),
    ],
)
def test_check_record_refuses_exactly_what_zone_file_cannot_write(rr):
    """A record check_record refuses is one zone_file refuses, for the same reason."""
    with pytest.raises(ValueError) as refused:
        check_record(rr, "example.com")
    with pytest.raises(ZoneFileError) as failed:
        zone_file("example.com", [rr])
    assert str(refused.value) in str(failed.value)


def test_check_record_gives_the_record_as_the_zone_file_holds_it():
    """Names in the host and the value come back lower case and absolute."""
    checked = check_record(Rr("CNAME", "WWW", "Shop.Example.COM", 600), "example.com")
    assert checked == Rr("CNAME", "www", "shop.example.com.example.com.", 600)
    assert checked == normalise(Rr("CNAME", "www", "shop.example.com", 600), "example.com")


def test_txt_strings_read_from_a_server_come_back_one_by_one():
    """TXT strings "a" "b" "c" and "" "x" as served stay apart through the zone file."""
    served = [
        from_presentation(f"t.{DOMAIN}.", "TXT", 300, value, DOMAIN)
        for value in ('"a" "b" "c"', '"" "x"', '"abc"', '"\\200"')
    ]
    assert [r.quoted for r in served] == [True, True, False, True]
    text = zone_file(DOMAIN, served)
    assert '"a" "b" "c"' in text and '"" "x"' in text and '"\\200"' in text
    assert same_records(parse_zone_file(text, DOMAIN), served, domain=DOMAIN)


def test_disabled_records_and_comments_are_comment_lines_of_the_copy():
    """A disabled record and a set's comment are kept, as comments, out of the records."""
    rr = Rr("A", "d", "192.0.2.2", 300, disabled=True, comments=(("ops", "old\nweb"),))
    text = zone_file(DOMAIN, [rr, Rr("A", "www", "192.0.2.1", 300)])
    assert "; d 300 IN A 192.0.2.2" in text
    assert '; d A "ops": "old\\nweb"' in text
    assert parse_zone_file(text, DOMAIN) == [Rr("A", "www", "192.0.2.1", 300)]
