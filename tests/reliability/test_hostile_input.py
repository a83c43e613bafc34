"""Hostile input: inventory files built to break the import, and customer-supplied text
built to break the emails (header injection, HTML, internationalized names, lengths)."""

from __future__ import annotations

import copy
import email
import email.policy
import json
from datetime import timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from markupsafe import escape
from sqlalchemy import func, select

from dns_lifecycle.admin import cli
from dns_lifecycle.admin.inventory import import_inventory, validate_inventory
from dns_lifecycle.channels.email import EmailMessage
from dns_lifecycle.channels.email import memory as email_memory
from dns_lifecycle.channels.email.message import build_mime, message_id_for
from dns_lifecycle.channels.render import Renderer, one_line
from dns_lifecycle.core.errors import InventoryInvalid
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.notices.samples import sample_context
from dns_lifecycle.lifecycle.zonefile import Rr, zone_file
from flows.common import open_run
from flows.delivery import deliver_pending
from flows.release import release_due
from flows.reminders import plan_reminders
from models import Account, Cluster, Domain, Edition, Instance, Notification, Record, Ticket
from tests.http_sink import HttpSink, Reply
from tests.reliability.conftest import AS_OF, SENDER, ledger, reminder_fleet, with_settings
from tests.smtp_server import SmtpTestServer

RENDERER = Renderer(Settings().templates_dir)
HEADERS = ["From", "To", "Subject", "Message-ID", "MIME-Version", "Content-Type"]
MODELS = (Edition, Cluster, Account, Instance, Domain, Record, Notification)


def inventory(
    *,
    name: str = "Alice Smith",
    email_address: str = "alice@example.com",
    phone: str = "+14155550123",
    domain: str = "alice.example.com",
    expires_at=AS_OF + timedelta(days=5),
    state: str = "active",
) -> dict[str, Any]:
    """A small valid inventory: one account with one instance and one domain."""
    return {
        "editions": [
            {"code": "personal", "rank": 1, "monthly_price": "10.00", "yearly_price": "100.00"}
        ],
        "clusters": [
            {"code": "free", "kind": "free", "nameservers": ["ns1.free.example", "ns2.free.ex"]},
            {"code": "paid", "kind": "paid", "nameservers": ["ns1.paid.example", "ns2.paid.ex"]},
        ],
        "accounts": [
            {
                "id": "acct-a",
                "name": name,
                "email": email_address,
                "phone": phone,
                "locale": "en-US",
                "timezone": "Asia/Shanghai",
                "balance": "0.00",
            },
        ],
        "instances": [
            {
                "id": "inst-a",
                "account": "acct-a",
                "edition": "personal",
                "billing_cycle": "monthly",
                "expires_at": expires_at.isoformat(),
                "auto_renew": False,
                "state": state,
                "cluster": "paid",
                "domains": [
                    {
                        "name": domain,
                        "registrar": "hichina",
                        "epp_statuses": [],
                        "records": [{"type": "A", "host": "@", "value": "192.0.2.1", "ttl": 600}],
                    },
                ],
            }
        ],
    }


def counts(session) -> dict[str, int]:
    return {
        m.__name__: session.execute(select(func.count()).select_from(m)).scalar_one()
        for m in MODELS
    }


def refusal(db, doc) -> InventoryInvalid:
    with db.session() as s, pytest.raises(InventoryInvalid) as caught:
        import_inventory(doc, s, now=AS_OF)
    return caught.value


def _mime(kind: str, context: dict, to: str = "alice@example.com") -> email.message.Message:
    rendered = RENDERER.email(kind, context)
    message = EmailMessage("k:email", to, rendered.subject, rendered.text, rendered.html)
    return email.message_from_bytes(build_mime(message, SENDER), policy=email.policy.default)


# --- header injection ------------------------------------------------------------------

NASTY = st.sampled_from(
    [
        "\r",
        "\n",
        "\r\n",
        "\u2028",
        "\x0b",
        "\x85",
        "Bcc: evil@example.org",
        "To: x@y.z",
        "\r\nBcc: evil@example.org\r\n",
        "<script>alert(1)</script>",
        "&amp;",
        '"',
        "=?utf-8?q?x?=",
    ]
)
HOSTILE_TEXT = st.lists(NASTY | st.text(max_size=8), min_size=1, max_size=6).map("".join)


@settings(max_examples=80, deadline=None)
@given(
    name=HOSTILE_TEXT,
    domain=HOSTILE_TEXT,
    kind=st.sampled_from(["reminder", "released", "renewal_failed", "expired"]),
    locale=st.sampled_from(["en-US", "zh-CN"]),
)
def test_no_name_or_domain_can_write_a_header(name, domain, kind, locale):
    """Whatever an account or domain name holds, the message has exactly its own headers
    and the subject stays one line."""
    context = sample_context(kind, locale, account_name=name)
    if kind == "released":
        context["domains"][0]["name"] = domain
    message = _mime(kind, context)
    assert list(message.keys()) == HEADERS
    assert message["To"] == "alice@example.com"
    assert not any(ch in str(message["Subject"]) for ch in "\r\n\u2028")


@settings(max_examples=60, deadline=None)
@given(name=HOSTILE_TEXT)
def test_html_in_a_name_is_escaped(name):
    """An account name shows in the HTML part escaped, never as markup."""
    message = _mime("reminder", sample_context("reminder", "en-US", account_name=name))
    html = message.get_body(("html",)).get_content()
    assert str(escape(one_line(name))) in html
    assert "<script" not in html


def test_a_recipient_with_a_line_break_is_refused_and_nothing_is_sent(lite_db, lite_settings):
    """An address with CR/LF fails permanently, reaches no server, and the rest go out."""
    reminder_fleet(lite_db, 3)
    with lite_db.session() as s:
        account = s.get(Account, "acct-1")
        account.email = "victim@example.com\r\nBcc: evil@example.org"
        s.add(account)
        s.commit()
    with SmtpTestServer() as server:
        real = with_settings(
            lite_settings, email_backend="smtp", smtp_port=server.port, email_from=SENDER
        )
        with open_run(AS_OF, False, 100, settings=real) as ctx:
            plan_reminders(ctx)
            deliver_pending(ctx)
        rows = [r for r in ledger(lite_db).values() if r.channel == "email"]
        (bad,) = [r for r in rows if r.account_id == "acct-1"]
        assert bad.state == "failed" and "line break" in bad.error
        assert all(r.state == "sent" for r in rows if r is not bad)
        assert sorted(server.recipients()) == ["acct-0@example.com", "acct-2@example.com"]
        assert all(b"evil" not in m.content for m in server.received)


def test_an_imported_script_in_a_name_is_escaped_end_to_end(lite_db, lite_settings):
    """A name with markup is accepted by import, and the email delivered for it shows
    it as text."""
    name = '<script>alert("owned")</script> & <b>Co</b>'
    with lite_db.session() as s:
        import_inventory(inventory(name=name), s, now=AS_OF)
        s.commit()
    with open_run(AS_OF, False, 100, settings=lite_settings) as ctx:
        plan_reminders(ctx)
        deliver_pending(ctx)
    (sent,) = email_memory.outbox
    assert "<script" not in sent.html and "<b>Co" not in sent.html
    assert (
        "&lt;script&gt;alert(&#34;owned&#34;)&lt;/script&gt; &amp; &lt;b&gt;Co&lt;/b&gt;"
        in sent.html
    )
    assert name in sent.text and name in sent.subject  # plain text stays as typed


# --- internationalized domain names ----------------------------------------------------

IDN = "例子.测试"
A_LABEL = "xn--fsqu00a.xn--0zwm56d"


def test_an_idn_is_punycode_in_storage_and_on_the_wire_and_unicode_to_read(lite_db, lite_settings):
    """Stored as its A-label; the registrar call and the SMTP recipient use punycode;
    the email shows the Unicode name with the A-label beside it."""
    doc = inventory(
        email_address=f"owner@{IDN}",
        domain=IDN,
        expires_at=AS_OF - timedelta(days=8),
        state="expired",
    )
    with lite_db.session() as s:
        import_inventory(doc, s, now=AS_OF)
        s.commit()
        assert s.execute(select(Domain.name)).scalars().all() == [A_LABEL]

    def registrar_api(request):
        # The lock is read (GET) just before the switch (PUT).
        return Reply(200, {"epp_statuses": []} if request.method == "GET" else {"ok": True})

    with SmtpTestServer() as server, HttpSink(registrar_api) as registrar:
        real = with_settings(
            lite_settings,
            email_backend="smtp",
            smtp_port=server.port,
            email_from=SENDER,
            registrar_backend="http",
            registrar_url=registrar.url,
        )
        with open_run(AS_OF, False, 100, settings=real) as ctx:
            report = release_due(ctx)
            deliver_pending(ctx)
        assert report.counts["instances_released"] == 1
        assert [r.path for r in registrar.requests] == [
            f"/domains/{A_LABEL}",
            f"/domains/{A_LABEL}/nameservers",
        ]
        (received,) = server.received
        assert received.rcpt_tos == [f"owner@{A_LABEL}"]
        message = received.parsed()
        assert message["To"] == f"owner@{A_LABEL}"
        (key,) = [k for k in ledger(lite_db) if k.endswith(":email")]
        assert message["Message-ID"] == message_id_for(key, SENDER)
        shown = f"{IDN} ({A_LABEL})"
        assert shown in message.get_body(("html",)).get_content()
        assert shown in message.get_body(("plain",)).get_content()


@pytest.mark.parametrize(
    ("typed", "wire"),
    [
        ("owner@faß.de", "owner@xn--fa-hia.de"),  # IDNA 2003 would make it fass.de
        ("owner@Bücher.example", "owner@xn--bcher-kva.example"),
        (f"owner@{IDN}", f"owner@{A_LABEL}"),
    ],
)
def test_an_imported_idn_address_is_mailed_to_that_domain(lite_db, lite_settings, typed, wire):
    """The recipient on the wire is the A-label the import validated (IDNA 2008), in the
    envelope and in the To header alike."""
    with lite_db.session() as s:
        import_inventory(inventory(email_address=typed), s, now=AS_OF)
        s.commit()
    with SmtpTestServer() as server:
        real = with_settings(
            lite_settings, email_backend="smtp", smtp_port=server.port, email_from=SENDER
        )
        with open_run(AS_OF, False, 100, settings=real) as ctx:
            plan_reminders(ctx)
            deliver_pending(ctx)
        (received,) = server.received
    assert received.rcpt_tos == [wire]
    assert received.parsed()["To"] == wire


# --- lengths and phone numbers ---------------------------------------------------------

BAD_FIELDS = [
    ("accounts[0].name", "N" * 201, "longer than 200"),
    ("accounts[0].email", "a" * 64 + "@" + "b" * 190 + ".example.com", "longer than 254"),
    ("accounts[0].email", "a" * 65 + "@example.com", "longer than 64"),
    ("accounts[0].id", "a" * 65, "longer than 64"),
    ("instances[0].domains[0].name", "a" * 64 + ".example.com", "not a valid domain name"),
    ("instances[0].domains[0].name", ("abcdefghi." * 26) + "com", "not a valid domain name"),
    ("accounts[0].phone", "+86 138 0013 8000", "E.164"),
    ("accounts[0].phone", "13800138000", "E.164"),
    ("accounts[0].phone", "+0123456789", "E.164"),
    ("accounts[0].phone", "+1234567890123456", "E.164"),
    ("accounts[0].phone", "+8613800138a00", "E.164"),
    ("accounts[0].phone", "", "E.164"),
    ("accounts[0].phone", 8613800138000, "expected a phone number string"),
    ("accounts[0].phone", "+8613800138000\r\n", "E.164"),
]


def _put(doc: dict, path: str, value: Any) -> None:
    section, rest = path.split("[0].", 1)
    target = doc[section][0]
    if rest.startswith("domains[0]."):
        target, rest = target["domains"][0], rest.removeprefix("domains[0].")
    target[rest] = value


@pytest.mark.parametrize(("path", "value", "words"), BAD_FIELDS)
def test_over_long_fields_and_bad_phone_numbers_get_a_clear_error(lite_db, path, value, words):
    """Each is refused at its path, saying why, with the value shown short and escaped."""
    doc = inventory()
    _put(doc, path, value)
    exc = refusal(lite_db, doc)
    # An id refused also leaves its references dangling: those are listed after it.
    assert exc.errors[0][0] == path and len(exc.errors) == (2 if path.endswith(".id") else 1)
    message = exc.errors[0][1]
    assert words in message, message
    assert len(message) < 400 and "\r" not in message and "\n" not in message


@settings(
    max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(phone=st.text(alphabet="+0123456789 -()x\n", max_size=18) | st.text(max_size=18))
def test_any_phone_is_accepted_only_as_e164(lite_db, phone):
    """A phone number is taken only in E.164 form; anything else is refused at its path."""
    with lite_db.session() as s:
        try:
            validate_inventory(inventory(phone=phone), s, now=AS_OF)
        except InventoryInvalid as exc:
            assert [p for p, _ in exc.errors] == ["accounts[0].phone"], exc.errors
            assert "E.164" in exc.errors[0][1]
            accepted = False
        else:
            accepted = True
    digits = phone[1:]
    assert accepted == (
        phone.startswith("+")
        and digits.isascii()
        and digits.isdigit()
        and 8 <= len(digits) <= 15
        and digits[0] != "0"
    )


# --- all or nothing --------------------------------------------------------------------


def _mutations() -> st.SearchStrategy[tuple[list, Any]]:
    leaves = (
        st.none()
        | st.booleans()
        | st.integers()
        | st.text(max_size=20)
        | HOSTILE_TEXT
        | st.sampled_from(["", "x" * 300, "例子.测试", "+1", "-1.00", "2027-01-01"])
    )
    return st.tuples(st.sampled_from(_positions(inventory())), leaves)


def _positions(value: Any, trail: tuple = ()) -> list[tuple]:
    found = [trail] if trail else []
    if isinstance(value, dict):
        for key, child in value.items():
            found += _positions(child, (*trail, key))
    elif isinstance(value, list):
        for i, child in enumerate(value):
            found += _positions(child, (*trail, i))
    return found


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(changes=st.lists(_mutations(), min_size=1, max_size=3))
def test_a_damaged_file_is_imported_whole_or_not_at_all(lite_db, changes):
    """Damage anywhere gives a clean refusal with nothing written, or a whole import."""
    doc = copy.deepcopy(inventory())
    for trail, value in changes:
        parent = doc
        try:
            for step in trail[:-1]:
                parent = parent[step]
            parent[trail[-1]] = value
        except (KeyError, IndexError, TypeError):
            continue
    with lite_db.session() as s:
        try:
            imported = import_inventory(doc, s, now=AS_OF)
        except InventoryInvalid as exc:
            assert exc.errors
            assert set(counts(s).values()) == {0}  # nothing written, not even flushed
        else:
            assert counts(s)["Instance"] == imported.get("instances", 0)
        s.rollback()


def test_the_cli_refuses_a_bad_file_without_a_traceback(
    lite_settings, tmp_path, monkeypatch, capsys
):
    """`dns-lifecycle import` of a file with several bad entries exits 2, lists each with
    its path, shows no traceback and writes nothing."""
    doc = inventory(name="Eve\r\nBcc: evil@example.org", phone="12345")
    doc["instances"][0]["domains"][0]["name"] = "evil.example\nBcc: x@y.z"
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(doc), encoding="utf-8")
    monkeypatch.setenv("DATABASE_URL", lite_settings.database_url)
    assert cli.main(["import", str(path)]) == 2
    out, err = capsys.readouterr()
    assert "Traceback" not in out + err
    for where in ("accounts[0].name", "accounts[0].phone", "instances[0].domains[0].name"):
        assert where in err
    assert "\nBcc:" not in err
    from dns_lifecycle.core.db import Database

    db = Database(lite_settings)
    try:
        with db.session() as s:
            assert set(counts(s).values()) == {0}
    finally:
        db.dispose()


# --- data that import accepted and the lifecycle could not handle ----------------------

RECORDS = "instances[0].domains[0].records"


def with_records(*records: tuple[str, str, str], registrar: str = "hichina", **kw: Any) -> dict:
    """The small inventory with these (type, host, value) records on its domain."""
    doc = inventory(**kw)
    domain = doc["instances"][0]["domains"][0]
    domain["registrar"] = registrar
    domain["records"] = [{"type": t, "host": h, "value": v, "ttl": 600} for t, h, v in records]
    return doc


@pytest.mark.parametrize(
    "value",
    ['0 issue "a" "b"', '0 issue "letsencrypt.org', "0 issue"],
)
def test_a_record_value_the_zone_file_cannot_hold_is_refused_at_import(lite_db, value):
    """A CAA value the zone-file writer rejects is refused at its path, with the form
    to write, instead of failing the instance's release every day."""
    exc = refusal(lite_db, with_records(("CAA", "@", value)))
    [(path, message)] = exc.errors
    assert path == f"{RECORDS}[0].value"
    assert "not a valid CAA value" in message and '0 issue "letsencrypt.org"' in message


@pytest.mark.parametrize("value", ["::ffff:1.2.3.4", "::FFFF:0102:0304", "0::ffff:1.2.3.4"])
def test_an_ipv4_mapped_aaaa_is_refused_at_import_naming_the_a_record(lite_db, value):
    """An AAAA of an IPv4-mapped address (which PowerDNS refuses) is refused in one line
    at its path, saying to give it as an A record."""
    exc = refusal(lite_db, with_records(("AAAA", "@", value)))
    [(path, message)] = exc.errors
    assert path == f"{RECORDS}[0].value"
    assert "IPv4-mapped" in message and "A record with the value '1.2.3.4'" in message
    assert "\n" not in message


_VALUE_PARTS = st.sampled_from(
    ["0", "10", "5060", "issue", '"a"', '"b"', "a.example.", "mail", "-x-", ".", "1.2.3.4",
     "::1", "x" * 64, '"', "\\", ";", "(", "@"]
)  # fmt: skip


@settings(
    max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    rtype=st.sampled_from(["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR"]),
    value=st.lists(_VALUE_PARTS, min_size=1, max_size=5).map(" ".join),
)
def test_every_record_import_accepts_can_be_written_to_a_zone_file(lite_db, rtype, value):
    """Whatever record value the import accepts, the zone file of its domain can be
    written, so the instance can be released."""
    doc = with_records((rtype, "www", value))
    with lite_db.session() as s:
        try:
            checked = validate_inventory(doc, s, now=AS_OF)
        except InventoryInvalid as exc:
            assert [p for p, _ in exc.errors] == [f"{RECORDS}[0].value"], exc.errors
            return
    [domain] = checked.domains["inst-a"]
    zone_file(domain.name, [Rr(r.type, r.host, r.value, r.ttl) for r in domain.records])


@pytest.mark.parametrize("typed", ["hichina ", " HiChina", "HICHINA  "])
def test_hichina_is_one_registrar_however_it_is_written(lite_db, lite_settings, typed):
    """A HiChina domain written with spaces or capitals is stored as 'hichina' and
    switched at release like any HiChina domain: no ticket, no foreign registrar."""
    doc = with_records(
        ("A", "@", "192.0.2.1"),
        registrar=typed,
        expires_at=AS_OF - timedelta(days=8),
        state="expired",
    )
    with lite_db.session() as s:
        import_inventory(doc, s, now=AS_OF)
        s.commit()
        assert s.execute(select(Domain.registrar)).scalars().all() == ["hichina"]
    with open_run(AS_OF, False, 100, settings=lite_settings) as ctx:
        report = release_due(ctx)
    assert report.counts["instances_released"] == 1
    with lite_db.session() as s:
        assert s.execute(select(func.count()).select_from(Ticket)).scalar_one() == 0
        [domain] = s.execute(select(Domain)).scalars()
        assert domain.nameservers == ["ns1.free.example", "ns2.free.ex"]


def test_other_registrars_are_trimmed_and_keep_their_spelling(lite_db):
    """Another registrar's name is stored without surrounding spaces, as written."""
    with lite_db.session() as s:
        import_inventory(with_records(registrar="  GoDaddy "), s, now=AS_OF)
        assert s.execute(select(Domain.registrar)).scalars().all() == ["GoDaddy"]
        s.rollback()


@pytest.mark.parametrize(
    ("records", "words"),
    [
        ((("CNAME", "www", "a.example."), ("CNAME", "WWW", "b.example.")), "CNAME"),
        ((("CNAME", "Www", "a.example."), ("A", "www", "192.0.2.1")), "CNAME"),
        ((("A", "www", "192.0.2.1"), ("CNAME", "wWw", "a.example.")), "CNAME"),
        ((("CNAME", "www", "A.Example."), ("CNAME", "WWW", "a.example.")), "the same record"),
        ((("MX", "@", "10 MAIL.example.com."), ("MX", "@", "10 mail.example.com.")), "same"),
    ],
)
def test_names_compare_without_case(lite_db, records, words):
    """Hosts and names in values that differ only in case are the same name: a CNAME
    beside other data at it, or the same record twice, is refused at the second record."""
    exc = refusal(lite_db, with_records(*records))
    [(path, message)] = exc.errors
    assert path.startswith(f"{RECORDS}[1]") and words in message


def test_records_of_different_names_may_sit_beside_a_cname(lite_db):
    """A CNAME at www and records at the apex and at other names are accepted."""
    doc = with_records(
        ("CNAME", "www", "alice.example.com."),
        ("A", "@", "192.0.2.1"),
        ("A", "www2", "192.0.2.1"),
        ("TXT", "WWW2", "hello"),
    )
    with lite_db.session() as s:
        assert import_inventory(doc, s, now=AS_OF)["records"] == 4
        s.rollback()


def test_a_cname_at_the_apex_is_refused(lite_db):
    """A CNAME at '@', which would sit beside the zone's own SOA and NS, is refused at
    its host even as the domain's only record."""
    [(path, message)] = refusal(lite_db, with_records(("CNAME", "@", "a.example."))).errors
    assert path == f"{RECORDS}[0].host" and "SOA and NS" in message


def test_two_ttls_in_one_record_set_are_refused(lite_db):
    """Records of one host and type with two TTLs are refused at the second one's TTL,
    since DNS serves a set with one TTL; other hosts and types keep their own."""
    doc = with_records(
        ("A", "www", "192.0.2.1"),
        ("A", "WWW", "192.0.2.2"),
        ("AAAA", "www", "2001:db8::1"),
        ("A", "@", "192.0.2.3"),
    )
    records = doc["instances"][0]["domains"][0]["records"]
    records[1]["ttl"] = 300
    records[2]["ttl"] = 60
    records[3]["ttl"] = 86400
    [(path, message)] = refusal(lite_db, doc).errors
    assert path == f"{RECORDS}[1].ttl" and "TTL 600" in message and f"{RECORDS}[0]" in message


@pytest.mark.parametrize("zone", ["localtime", "Factory", "posixrules", "posix/UTC", "right/UTC"])
def test_only_real_time_zones_are_accepted(lite_db, zone):
    """Entries of the time zone database that are not zones are refused."""
    doc = inventory()
    doc["accounts"][0]["timezone"] = zone
    [(path, message)] = refusal(lite_db, doc).errors
    assert path == "accounts[0].timezone" and "IANA" in message


def test_real_time_zones_and_their_links_are_accepted(lite_db):
    """Canonical zones and their links (UTC, Asia/Calcutta) are accepted."""
    for zone in ("UTC", "Asia/Calcutta", "America/New_York"):
        doc = inventory()
        doc["accounts"][0]["timezone"] = zone
        with lite_db.session() as s:
            validate_inventory(doc, s, now=AS_OF)
