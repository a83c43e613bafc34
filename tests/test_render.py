"""Notice wording: every kind in both languages, dates in the account's time zone,
escaping, one-line subjects, and clear errors for what cannot be rendered."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from dns_lifecycle.channels.render import (
    Renderer,
    format_domain,
    format_localtime,
    format_money,
)
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import REPO_ROOT
from dns_lifecycle.lifecycle.notices import LOCALES, NOTICE_KINDS
from dns_lifecycle.lifecycle.notices.samples import sample_context

TEMPLATES = REPO_ROOT / "templates" / "emails"
CJK = re.compile(r"[\u4e00-\u9fff]")
ALL = [(kind, locale) for kind in NOTICE_KINDS for locale in LOCALES]


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(TEMPLATES)


@pytest.mark.parametrize(("kind", "locale"), ALL)
def test_every_kind_renders_in_both_locales(renderer, kind, locale):
    """Each notice renders a subject, a text part, an HTML document and an SMS."""
    context = sample_context(kind, locale)
    email = renderer.email(kind, context)
    sms = renderer.sms(kind, context)
    assert email.subject and "\n" not in email.subject
    assert email.text.strip()
    assert email.html.startswith("<!DOCTYPE html>") and email.html.rstrip().endswith("</html>")
    assert sms.text and "\n" not in sms.text


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_zh_cn_is_written_in_chinese(renderer, kind):
    """A zh-CN notice's subject, body and SMS are in Chinese."""
    context = sample_context(kind, "zh-CN", account_name="ACME")
    email = renderer.email(kind, context)
    for part in (email.subject, email.text, email.html, renderer.sms(kind, context).text):
        assert CJK.search(part), part


@pytest.mark.parametrize("kind", NOTICE_KINDS)
def test_en_us_body_is_not_in_chinese(renderer, kind):
    """An en-US notice with no Chinese data carries no Chinese wording."""
    context = sample_context(kind, "en-US")
    if kind == "released":
        context["domains"] = [d for d in context["domains"] if "xn--" not in d["name"]]
    email = renderer.email(kind, context)
    for part in (email.subject, email.text, email.html, renderer.sms(kind, context).text):
        assert not CJK.search(part), part


def test_date_shown_in_account_time_zone_en(renderer):
    """18:00 UTC on 26 Dec is 02:00 on 27 Dec in Asia/Shanghai, and is shown so."""
    context = sample_context(
        "reminder", "en-US", expires_at="2026-12-26T18:00:00+00:00", timezone="Asia/Shanghai"
    )
    email = renderer.email("reminder", context)
    assert "27 Dec 2026 02:00 (Asia/Shanghai)" in email.text
    assert "27 Dec 2026 02:00 (Asia/Shanghai)" in email.html
    assert "27 Dec 2026" in email.subject
    assert "2026-12-27 02:00" in renderer.sms("reminder", context).text


def test_date_shown_in_account_time_zone_zh(renderer):
    """The Chinese form of a date is 2026年12月27日 02:00（Asia/Shanghai）."""
    context = sample_context(
        "reminder", "zh-CN", expires_at="2026-12-26T18:00:00+00:00", timezone="Asia/Shanghai"
    )
    email = renderer.email("reminder", context)
    assert "2026年12月27日 02:00（Asia/Shanghai）" in email.text
    assert "2026年12月27日" in email.subject


def test_localtime_treats_naive_time_as_utc():
    """A stored time without an offset is UTC."""
    assert format_localtime("2026-12-26T18:00:00", "Asia/Shanghai", "en-US") == (
        "27 Dec 2026 02:00 (Asia/Shanghai)"
    )


def test_unknown_time_zone_raises_naming_it():
    """A time zone that is not an IANA name is reported by name."""
    with pytest.raises(InputError, match="Mars/Olympus"):
        format_localtime("2026-12-26T18:00:00+00:00", "Mars/Olympus", "en-US")


def test_money_is_shown_in_yuan_with_two_decimals():
    """Amounts read ¥118.00, with thousands grouped."""
    assert format_money("118.00") == "¥118.00"
    assert format_money("1180") == "¥1,180.00"
    assert format_money("-5.5") == "-¥5.50"


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize("kind", ["reminder", "order_created", "renewed", "renewal_failed"])
def test_an_amount_reads_the_same_in_the_email_and_the_sms(renderer, kind, locale):
    """The email and the SMS of a notice show its amount alike: ¥1,180.00."""
    context = sample_context(kind, locale) | {"amount": "1180.00"}
    email, sms = renderer.email(kind, context), renderer.sms(kind, context)
    assert "¥1,180.00" in email.text and "¥1,180.00" in sms.text
    assert sms.params["amount"] == "¥1,180.00"
    assert "1180.00" not in sms.text and "元" not in sms.text


@pytest.mark.parametrize("locale", LOCALES)
def test_auto_renew_reminder_says_something_else(renderer, locale):
    """With auto-renewal on the reminder asks for balance, with it off for a renewal."""
    auto = renderer.email("reminder", sample_context("reminder", locale, auto_renew=True))
    manual = renderer.email("reminder", sample_context("reminder", locale, auto_renew=False))
    assert auto.subject != manual.subject and auto.text != manual.text
    if locale == "en-US":
        assert "renewed automatically" in auto.text and "at least ¥1,180.00" in auto.text
        assert "Please renew it before" in manual.text
    else:
        assert "自动续费" in auto.text and "不低于 ¥1,180.00" in auto.text
        assert "前完成续费" in manual.text


@pytest.mark.parametrize("locale", LOCALES)
def test_auto_renew_sms_differs(renderer, locale):
    """The reminder SMS also tells auto-renewal apart from renewal by hand."""
    auto = renderer.sms("reminder", sample_context("reminder", locale, auto_renew=True))
    manual = renderer.sms("reminder", sample_context("reminder", locale, auto_renew=False))
    assert auto.text != manual.text


@pytest.mark.parametrize("locale", LOCALES)
def test_short_balance_reminder_sms_names_the_shortfall(renderer, locale):
    """With auto-renewal on and the balance short, the reminder SMS names the balance, the
    price and the top-up, and asks to top up or renew by hand."""
    context = sample_context("reminder", locale, auto_renew=True)
    context |= {"balance": "86.20", "top_up": "1093.80"}
    text = renderer.sms("reminder", context).text
    assert "¥86.20" in text and "¥1,180.00" in text and "¥1,093.80" in text
    if locale == "en-US":
        assert "top up at least ¥1,093.80" in text and "renew by hand" in text
        assert "renews automatically" not in text
    else:
        assert "充值至少¥1,093.80" in text and "手动续费" in text
        assert "届时将自动续费" not in text


@pytest.mark.parametrize("locale", LOCALES)
def test_account_name_is_escaped_in_html_only(renderer, locale):
    """Markup in an account name is shown as text in the HTML part, verbatim in the text part."""
    name = '<script>alert("x")</script> & Co'
    email = renderer.email("renewed", sample_context("renewed", locale, account_name=name))
    assert "<script>" not in email.html
    assert "&lt;script&gt;" in email.html and "&amp; Co" in email.html
    assert name in email.text


@pytest.mark.parametrize(("kind", "locale"), ALL)
def test_line_breaks_in_account_name_never_reach_the_subject(renderer, kind, locale):
    """CR/LF in an account name cannot add a header line to the subject."""
    context = sample_context(kind, locale, account_name="Evil\r\nBcc: victim@example.com")
    subject = renderer.email(kind, context).subject
    assert "\r" not in subject and "\n" not in subject
    assert "Evil Bcc: victim@example.com" in subject


def _write_templates(folder: Path, kind: str, locale: str, subject: str, body: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{kind}.{locale}.subject.txt").write_text(subject, encoding="utf-8")
    (folder / f"{kind}.{locale}.txt").write_text(body, encoding="utf-8")
    (folder / f"{kind}.{locale}.html").write_text(f"<p>{body}</p>", encoding="utf-8")


def test_subject_is_one_line_whatever_the_template(tmp_path):
    """A subject template that breaks lines still yields a one-line subject."""
    _write_templates(tmp_path, "renewed", "en-US", "Renewed\n\t{{ instance_id }}\r\n ok", "x")
    email = Renderer(tmp_path).email("renewed", sample_context("renewed", "en-US"))
    assert email.subject == "Renewed dns-cn-7f3k2q9x ok"


def test_variable_missing_from_context_raises(renderer):
    """A context without a key the notice needs is refused, naming the key."""
    context = sample_context("reminder", "en-US")
    del context["amount"]
    with pytest.raises(InputError, match="amount"):
        renderer.email("reminder", context)
    with pytest.raises(InputError, match="amount"):
        renderer.sms("reminder", context)


def test_undefined_template_variable_raises(tmp_path):
    """A template that uses a variable the context lacks raises instead of printing blank."""
    _write_templates(tmp_path, "renewed", "en-US", "Subject", "Hi {{ no_such_value }}")
    with pytest.raises(InputError, match="no_such_value"):
        Renderer(tmp_path).email("renewed", sample_context("renewed", "en-US"))


def test_missing_domain_field_raises(renderer):
    """A released domain without its registrar is refused, naming the field."""
    context = sample_context("released", "en-US")
    del context["domains"][0]["registrar"]
    with pytest.raises(InputError, match="registrar"):
        renderer.email("released", context)


def test_unknown_domain_action_raises(renderer):
    """A released domain with an action the wording does not cover is refused."""
    context = sample_context("released", "en-US")
    context["domains"][0]["action"] = "vanished"
    with pytest.raises(InputError, match="vanished.*switched, domain_locked, external_registrar"):
        renderer.email("released", context)


@pytest.mark.parametrize(
    ("locale", "says"), [("en-US", "no longer answer"), ("zh-CN", "已停止解析")]
)
def test_a_released_domain_whose_paid_copy_went_with_the_release_gets_no_date(
    renderer, locale, says
):
    """A ticketed domain whose paid copy was deleted with the release (the database
    backend) is told that the old name servers no longer answer, with no date."""
    context = sample_context("released", locale)
    context["domains"] = [
        {
            "name": "a.cn",
            "action": "domain_locked",
            "registrar": "hichina",
            "paid_copy_deleted": True,
        }
    ]
    email = renderer.email("released", context)
    for part in (email.text, email.html):
        assert says in part
        assert "soon after that date" not in part and "该日期之后" not in part


def test_unknown_kind_raises_listing_the_kinds(renderer):
    """An unknown notice kind is named, with the kinds there are."""
    with pytest.raises(InputError, match=r"'birthday'.*reminder, order_created"):
        renderer.email("birthday", sample_context("renewed", "en-US"))
    with pytest.raises(InputError, match="'birthday'"):
        renderer.sms("birthday", sample_context("renewed", "en-US"))
    with pytest.raises(InputError, match="'birthday'"):
        sample_context("birthday", "en-US")


def test_unknown_locale_raises_listing_the_locales(renderer):
    """An unknown locale is named, with the locales there are."""
    context = {**sample_context("renewed", "en-US"), "locale": "fr-FR"}
    with pytest.raises(InputError, match=r"'fr-FR'.*en-US, zh-CN"):
        renderer.email("renewed", context)
    with pytest.raises(InputError, match="'fr-FR'"):
        renderer.sms("renewed", context)
    with pytest.raises(InputError, match="'fr-FR'"):
        sample_context("renewed", "fr-FR")


def test_missing_template_file_raises_naming_it(tmp_path):
    """A template folder without a notice's file says which file to add."""
    with pytest.raises(InputError, match=r"renewed\.en-US\.subject\.txt"):
        Renderer(tmp_path).email("renewed", sample_context("renewed", "en-US"))


def test_templates_are_compiled_once(tmp_path):
    """A renderer keeps its compiled templates: later renders do not read the files."""
    _write_templates(tmp_path, "renewed", "en-US", "S {{ instance_id }}", "B")
    renderer = Renderer(tmp_path)
    context = sample_context("renewed", "en-US")
    first = renderer.email("renewed", context)
    for path in tmp_path.iterdir():
        path.unlink()
    assert renderer.email("renewed", context) == first


def test_idn_shown_in_unicode_with_punycode():
    """An xn-- name is shown in Unicode with its A-label beside it; ASCII names as they are."""
    assert format_domain("xn--9kqv99bt6d0ov.xn--fiqs8s") == (
        "云栖科技.中国 (xn--9kqv99bt6d0ov.xn--fiqs8s)"
    )
    assert format_domain("example.com") == "example.com"


def test_invalid_idn_labels_are_tolerated():
    """A label that is not valid punycode is left as it is; the rest still decodes."""
    assert format_domain("xn--zz.com") == "xn--zz.com"
    assert format_domain("xn--zz.xn--fiqs8s") == "xn--zz.中国 (xn--zz.xn--fiqs8s)"
    # Valid under IDNA 2003 only (the idna package refuses it): still decoded.
    assert format_domain("xn--ls8h.la") == "\U0001f4a9.la (xn--ls8h.la)"


@pytest.mark.parametrize("locale", LOCALES)
def test_released_notice_says_what_to_do_per_domain(renderer, locale):
    """Each released domain gets its own instruction, listing the free name servers."""
    context = sample_context("released", locale)
    email = renderer.email("released", context)
    assert "云栖科技.中国 (xn--9kqv99bt6d0ov.xn--fiqs8s)" in email.text
    assert "云栖科技.中国 (xn--9kqv99bt6d0ov.xn--fiqs8s)" in email.html
    for ns in context["free_nameservers"]:
        assert email.text.count(ns) == 3  # the list, the locked domain, the other registrar
    if locale == "en-US":
        assert "Nothing to do" in email.text
        assert "EPP update lock" in email.text and "website may become unreachable" in email.text
        assert "At GoDaddy, set its name servers to exactly" in email.text
        assert "GoDaddy's own DNS servers" in email.text
    else:
        assert "无需操作" in email.text
        assert "解除域名锁定" in email.text and "网站可能无法访问" in email.text
        assert "请登录GoDaddy" in email.text


def test_released_with_nothing_to_do_says_so(renderer):
    """When every domain was switched, neither subject nor SMS asks for action."""
    context = sample_context("released", "en-US")
    context["domains"] = [context["domains"][0]]
    assert "action" not in renderer.email("released", context).subject
    sms = renderer.sms("released", context)
    assert sms.params["count"] == "0" and "Nothing for you to do" in sms.text


@pytest.mark.parametrize(("kind", "locale"), ALL)
def test_sms_params_are_strings_shown_in_the_text(renderer, kind, locale):
    """SMS provider variables are strings, and the wording shows every one of them."""
    sms = renderer.sms(kind, sample_context(kind, locale))
    assert sms.params and all(isinstance(v, str) for v in sms.params.values())
    assert {"name", "instance"} <= sms.params.keys()
    for value in sms.params.values():
        assert value in sms.text


def test_unknown_edition_code_is_shown_as_is(renderer):
    """A new edition without a display name still renders, under its code."""
    context = sample_context("upgraded", "zh-CN", to_edition="enterprise-galaxy")
    assert "enterprise-galaxy" in renderer.email("upgraded", context).text


def test_sample_context_is_fresh_each_time():
    """Changing one sample context does not change the next."""
    first = sample_context("released", "en-US")
    first["domains"][0]["action"] = "domain_locked"
    first["free_nameservers"].append("ns3.example.net")
    second = sample_context("released", "en-US")
    assert second["domains"][0]["action"] == "switched"
    assert "ns3.example.net" not in second["free_nameservers"]
