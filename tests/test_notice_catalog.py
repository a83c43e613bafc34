"""The notice catalog: keys spelled as the ledgers already hold them, contexts stored
as before, and one class per kind that queueing and rendering both use."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

import pytest
from pydantic import ValidationError

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import REPO_ROOT
from dns_lifecycle.lifecycle.notices import (
    CATALOG,
    LOCALES,
    NOTICE_KINDS,
    Addressee,
    AutoRenewChanged,
    Expired,
    OrderCreated,
    Released,
    ReleaseWarning,
    Reminder,
    RenewalFailed,
    Renewed,
    TicketResolved,
    Upgraded,
    read_stored,
)
from dns_lifecycle.lifecycle.notices.keys import (
    auto_renewal_key,
    manual_renewal_key,
    ticket_dedupe_key,
    upgrade_key,
)
from dns_lifecycle.lifecycle.notices.samples import sample_context

TO = Addressee("acct-1", "ACME Ltd.", "zh-CN", "Asia/Shanghai", "inst-1", "personal")
# 2027-03-01 12:00 in Shanghai is 04:00 UTC: keys spell the UTC instant.
EXPIRY = datetime(2027, 3, 1, 12, 0, tzinfo=timezone(timedelta(hours=8)))
NOW = datetime(2027, 2, 22, 1, 2, 3, tzinfo=UTC)
AS_OF = datetime(2027, 2, 22, 1, 0, tzinfo=UTC)
ORDER_KEY = auto_renewal_key("inst-1", EXPIRY)
COMMON = {
    "account_name": "ACME Ltd.",
    "instance_id": "inst-1",
    "timezone": "Asia/Shanghai",
    "locale": "zh-CN",
    "edition": "personal",
}
ROWS = [
    (
        Reminder.to(
            TO,
            expires_at=EXPIRY,
            offset_days=7,
            auto_renew=True,
            amount=Decimal("118"),
            as_of=AS_OF,
        ),
        "reminder:inst-1:20270301T040000Z:7d",
        {
            "as_of": "2027-02-22T01:00:00+00:00",
            "expires_at": "2027-03-01T04:00:00+00:00",
            "offset_days": 7,
            "auto_renew": True,
            "amount": "118.00",
        },
    ),
    (
        OrderCreated.to(
            TO,
            order_key=ORDER_KEY,
            order_id=42,
            order_kind="auto_renewal",
            period_start=EXPIRY,
            period_end=EXPIRY + timedelta(days=31),
            amount=Decimal("118.0"),
        ),
        "order_created:auto_renewal:inst-1:20270301T040000Z",
        {
            "order_id": 42,
            "order_kind": "auto_renewal",
            "period_start": "2027-03-01T04:00:00+00:00",
            "period_end": "2027-04-01T04:00:00+00:00",
            "amount": "118.00",
        },
    ),
    (
        Renewed.to(
            TO,
            order_key=manual_renewal_key("inst-1", "req-9"),
            order_id=43,
            order_kind="manual_renewal",
            amount=Decimal("236"),
            expires_at=EXPIRY,
            balance=Decimal("764.5"),
        ),
        "renewed:manual_renewal:inst-1:req-9",
        {
            "order_id": 43,
            "order_kind": "manual_renewal",
            "amount": "236.00",
            "expires_at": "2027-03-01T04:00:00+00:00",
            "balance": "764.50",
        },
    ),
    (
        RenewalFailed.to(
            TO,
            order_key=ORDER_KEY,
            # 23:30 on the 22nd in Shanghai (15:30 UTC): one notice per local day.
            as_of=datetime(2027, 2, 22, 23, 30, tzinfo=timezone(timedelta(hours=8))),
            order_id=42,
            amount=Decimal("118"),
            balance=Decimal("5"),
            expires_at=EXPIRY,
            reason="insufficient_balance",
        ),
        "renewal_failed:auto_renewal:inst-1:20270301T040000Z:20270222",
        {
            "as_of": "2027-02-22T15:30:00+00:00",
            "order_id": 42,
            "amount": "118.00",
            "balance": "5.00",
            "expires_at": "2027-03-01T04:00:00+00:00",
            "reason": "insufficient_balance",
        },
    ),
    (
        Upgraded.to(
            TO,
            order_key=upgrade_key("inst-1", "req-10"),
            order_id=44,
            from_edition="personal",
            to_edition="enterprise-standard",
            amount=Decimal("10.5"),
            expires_at=EXPIRY,
        ),
        "upgraded:upgrade:inst-1:req-10",
        {
            "edition": "enterprise-standard",  # the instance's edition once upgraded
            "order_id": 44,
            "from_edition": "personal",
            "to_edition": "enterprise-standard",
            "amount": "10.50",
            "expires_at": "2027-03-01T04:00:00+00:00",
        },
    ),
    (
        AutoRenewChanged.to(TO, request_key="req-11", auto_renew=False, expires_at=EXPIRY),
        "auto_renew_changed:inst-1:req-11",
        {"auto_renew": False, "expires_at": "2027-03-01T04:00:00+00:00"},
    ),
    (
        Expired.to(TO, expires_at=EXPIRY, release_at=EXPIRY + timedelta(days=7), as_of=AS_OF),
        "expired:inst-1:20270301T040000Z",
        {
            "as_of": "2027-02-22T01:00:00+00:00",
            "expires_at": "2027-03-01T04:00:00+00:00",
            "release_at": "2027-03-08T04:00:00+00:00",
        },
    ),
    (
        ReleaseWarning.to(
            TO, expires_at=EXPIRY, release_at=EXPIRY + timedelta(days=7), as_of=AS_OF
        ),
        "release_warning:inst-1:20270301T040000Z",
        {"as_of": "2027-02-22T01:00:00+00:00", "release_at": "2027-03-08T04:00:00+00:00"},
    ),
    (
        Released.to(
            TO,
            expires_at=EXPIRY,
            released_at=NOW,
            free_nameservers=["ns1.free.example", "ns2.free.example"],
            domains=[{"name": "a.cn", "action": "switched", "registrar": "hichina"}],
        ),
        "released:inst-1:20270301T040000Z",
        {
            "released_at": "2027-02-22T01:02:03+00:00",
            "free_nameservers": ["ns1.free.example", "ns2.free.example"],
            "domains": [{"name": "a.cn", "action": "switched", "registrar": "hichina"}],
        },
    ),
    (
        TicketResolved.to(TO, ticket_id=7, domain="a.cn", nameservers=["ns1.free.example"]),
        "ticket_resolved:7",
        {"domain": "a.cn", "nameservers": ["ns1.free.example"]},
    ),
]


def test_the_rows_cover_every_kind():
    """Every kind of the catalog has its key and context pinned below."""
    assert [notice.kind for notice, _, _ in ROWS] == list(NOTICE_KINDS)


@pytest.mark.parametrize(("notice", "key", "context"), ROWS, ids=NOTICE_KINDS)
def test_ledger_rows_keep_their_keys_and_contexts(notice, key, context):
    """A notice's ledger rows carry the key and the context the ledgers already hold,
    byte for byte, one row per channel."""
    rows = notice.rows(NOW)
    assert [r["key"] for r in rows] == [f"{key}:email", f"{key}:sms"]
    assert [r["channel"] for r in rows] == ["email", "sms"]
    for row in rows:
        assert row["context"] == {**COMMON, **context}
        assert list(row["context"]) == list({**COMMON, **context})  # stored in this order
        assert (row["kind"], row["account_id"], row["instance_id"]) == (
            notice.kind,
            "acct-1",
            "inst-1",
        )
        assert (row["state"], row["attempts"], row["created_at"]) == ("pending", 0, NOW)


def test_expiry_notices_name_the_expiry_they_are_about():
    """Reminders record their offset, and every expiry notice the expiry, for the scans
    that ask whether it was already sent."""
    by_kind = {notice.kind: notice.rows(NOW)[0] for notice, _, _ in ROWS}
    assert by_kind["reminder"]["offset_days"] == 7
    for kind in ("reminder", "expired", "release_warning", "released"):
        assert by_kind[kind]["ref_at"] == EXPIRY
    for kind in ("order_created", "renewed", "renewal_failed", "upgraded", "ticket_resolved"):
        assert by_kind[kind]["ref_at"] is None and by_kind[kind]["offset_days"] is None


def test_order_and_ticket_keys_are_spelled_as_before():
    """Order keys and the ticket sink's dedupe key keep their spelling."""
    assert auto_renewal_key("inst-1", EXPIRY) == "auto_renewal:inst-1:20270301T040000Z"
    assert manual_renewal_key("inst-1", "r") == "manual_renewal:inst-1:r"
    assert upgrade_key("inst-1", "r") == "upgrade:inst-1:r"
    assert ticket_dedupe_key(7, "a.cn", "domain_locked") == "ticket:7:a.cn:domain_locked"


@pytest.mark.parametrize(("notice", "key", "context"), ROWS, ids=NOTICE_KINDS)
def test_a_stored_context_reads_back_as_the_same_notice(notice, key, context):
    """Rendering reads the stored context into the class that queued it."""
    stored = notice.rows(NOW)[0]["context"]
    again = read_stored(notice.kind, stored)
    assert type(again) is type(notice)
    assert again.context() == stored


@pytest.mark.parametrize("cls", [c for c in CATALOG.values() if c.identity], ids=lambda c: c.kind)
def test_a_notice_to_queue_needs_what_its_key_is_made_of(cls):
    """Queueing a notice without the fields of its key is refused, naming them."""
    fields = read_stored(cls.kind, sample_context(cls.kind, "en-US")).context()
    with pytest.raises(ValidationError, match=cls.identity[0]):
        cls(account_id="acct-1", **fields)


def test_a_notice_refuses_a_field_its_kind_does_not_have():
    """A context key no template reads is a mistake in the code that queues it."""
    with pytest.raises(ValidationError, match="colour"):
        Expired.to(TO, expires_at=EXPIRY, release_at=EXPIRY, as_of=AS_OF, colour="red")


def test_a_bad_value_in_a_stored_context_is_named():
    """An amount that is not one is reported with the notice and the field."""
    context = {**sample_context("renewed", "en-US"), "amount": "lots"}
    with pytest.raises(InputError, match=r"'renewed' notice .* amount: .*'lots' is not an amount"):
        read_stored("renewed", context)


@pytest.mark.parametrize(
    ("kind", "overrides", "code"),
    [
        ("reminder", {"auto_renew": True}, "SMS_DNSL_REMINDER_AUTO_EN"),
        ("reminder", {"auto_renew": False}, "SMS_DNSL_REMINDER_MANUAL_EN"),
        (
            "reminder",
            {"auto_renew": True, "balance": "86.20", "top_up": "1093.80"},
            "SMS_DNSL_REMINDER_AUTO_SHORT_EN",
        ),
        (
            "reminder",
            {"auto_renew": True, "balance": "86.20", "locale": "zh-CN"},
            "SMS_DNSL_REMINDER_AUTO_ZH",
        ),
        ("auto_renew_changed", {"auto_renew": False}, "SMS_DNSL_AUTO_RENEW_CHANGED_MANUAL_EN"),
        ("released", {}, "SMS_DNSL_RELEASED_ACTION_EN"),
        (
            "released",
            {"domains": [{"name": "a.cn", "action": "switched", "registrar": "hichina"}]},
            "SMS_DNSL_RELEASED_DONE_EN",
        ),
        ("renewed", {}, "SMS_DNSL_RENEWED_EN"),
        ("ticket_resolved", {"locale": "zh-CN"}, "SMS_DNSL_TICKET_RESOLVED_ZH"),
    ],
)
def test_sms_template_code_names_kind_variant_and_language(kind, overrides, code):
    """The provider template is one per kind, wording variant and language."""
    locale = overrides.pop("locale", "en-US")
    notice = read_stored(kind, sample_context(kind, locale, **overrides))
    assert notice.sms_template_code("SMS_DNSL_") == code


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_every_kind_has_its_templates(kind):
    """A kind in the catalog has an email (subject, text, HTML) and an SMS template in
    every language."""
    for locale in LOCALES:
        for name in (
            f"{kind}.{locale}.subject.txt",
            f"{kind}.{locale}.txt",
            f"{kind}.{locale}.html",
        ):
            assert (REPO_ROOT / "templates" / "emails" / name).is_file(), name
        assert (REPO_ROOT / "templates" / "sms" / f"{kind}.{locale}.txt").is_file()


def test_sms_variables_are_declared_by_the_kind():
    """Each kind names its SMS variables after the shared name and instance."""
    notice = read_stored("reminder", sample_context("reminder", "en-US"))
    assert list(notice.sms_params()) == ["name", "instance", "date", "when", "amount"]


def test_a_short_balance_reminder_adds_the_balance_and_top_up_to_its_sms_variables():
    """A reminder whose balance falls short gives the SMS template the balance and what
    it lacks, so that the template can name the shortfall."""
    context = sample_context("reminder", "en-US", balance="86.20", top_up="1093.80")
    params = read_stored("reminder", context).sms_params()
    assert list(params) == ["name", "instance", "date", "when", "amount", "balance", "top_up"]


def test_a_reminder_with_a_top_up_but_no_balance_is_refused():
    """A shortfall is stored with the balance it falls short of, or not at all."""
    context = sample_context("reminder", "en-US", top_up="1093.80")
    with pytest.raises(InputError, match="top_up needs balance"):
        read_stored("reminder", context)


def test_an_upgrade_notice_speaks_of_the_new_edition_even_if_stored_with_the_old():
    """A pending upgrade notice stored with the edition before the upgrade reads back
    with the edition it was upgraded to."""
    stored = {**sample_context("upgraded", "en-US"), "edition": "personal"}
    assert read_stored("upgraded", stored).edition == stored["to_edition"]
