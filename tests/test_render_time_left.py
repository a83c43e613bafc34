"""What a customer reads about time left, from the real templates: days counted from
the run's as_of on the account's calendar, in both languages, email and SMS."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dns_lifecycle.channels.render import Renderer, format_when
from dns_lifecycle.core.errors import InputError
from dns_lifecycle.core.settings import REPO_ROOT
from dns_lifecycle.lifecycle.notices.samples import sample_context

EXPIRY = "2026-12-26T02:00:00+00:00"  # 10:00 in Shanghai, 18:00 the 25th in Los Angeles


@pytest.fixture(scope="module")
def renderer() -> Renderer:
    return Renderer(REPO_ROOT / "templates" / "emails")


def _catch_up_reminder(locale: str, **overrides) -> dict:
    """The 30-day reminder, queued by a run 8 days before expiry."""
    values = {
        "expires_at": EXPIRY,
        "offset_days": 30,
        "auto_renew": False,
        "as_of": "2026-12-18T02:00:00+00:00",
    }
    return sample_context("reminder", locale, **(values | overrides))


def _everything(renderer: Renderer, kind: str, context: dict) -> str:
    email = renderer.email(kind, context)
    return "\n".join([email.subject, email.text, email.html, renderer.sms(kind, context).text])


def test_a_catch_up_reminder_says_8_days_in_english(renderer):
    """A 30-day reminder sent 8 days before expiry says 8 days in subject, text, HTML and SMS."""
    context = _catch_up_reminder("en-US")
    email = renderer.email("reminder", context)
    sms = renderer.sms("reminder", context)
    assert "expires in 8 days: please renew before 25 Dec 2026" in email.subject
    assert "expires in 8 days, on 25 Dec 2026 18:00 (America/Los_Angeles)." in email.text
    assert "Your DNS instance expires in 8 days" in email.html
    assert "expires in 8 days (2026-12-25 18:00)" in sms.text
    assert sms.params["when"] == "in 8 days"
    assert "30" not in _everything(renderer, "reminder", context).replace("2026", "")


def test_a_catch_up_reminder_says_8_days_in_chinese(renderer):
    """The same reminder in Chinese says 8天后 in subject, text, HTML and SMS, never 30 天."""
    context = _catch_up_reminder("zh-CN")
    email = renderer.email("reminder", context)
    sms = renderer.sms("reminder", context)
    assert "将于8天后到期，请于2026年12月26日前续费" in email.subject
    assert "将于8天后到期，到期时间为2026年12月26日 10:00（Asia/Shanghai）。" in email.text
    assert "您的 DNS 解析实例将于8天后到期" in email.html
    assert "将于8天后（2026-12-26 10:00）到期" in sms.text
    assert sms.params["when"] == "8天后"
    assert "30" not in _everything(renderer, "reminder", context).replace("2026", "")


def test_the_last_reminder_says_tomorrow_and_today(renderer):
    """One local day before expiry says tomorrow, the day itself today, in both languages."""
    tomorrow = _catch_up_reminder("zh-CN", offset_days=1, as_of="2026-12-25T01:00:00+00:00")
    today = _catch_up_reminder("en-US", offset_days=1, as_of="2026-12-25T16:00:00+00:00")
    assert "将于明天到期" in renderer.email("reminder", tomorrow).text
    assert "将于明天（2026-12-26 10:00）到期" in renderer.sms("reminder", tomorrow).text
    assert "expires today, on 25 Dec 2026 18:00" in renderer.email("reminder", today).text
    assert "expires today (2026-12-25 18:00)" in renderer.sms("reminder", today).text


def test_an_auto_renewing_reminder_also_says_the_days_left(renderer):
    """The auto-renewal wording states the real days left too."""
    context = _catch_up_reminder("en-US", auto_renew=True)
    assert "expires in 8 days, on 25 Dec 2026" in renderer.email("reminder", context).text
    assert (
        "expires in 8 days (2026-12-25 18:00) and renews" in renderer.sms("reminder", context).text
    )


def _release_warning(locale: str, timezone: str, as_of: str, release_at: str) -> dict:
    return sample_context(
        "release_warning", locale, timezone=timezone, as_of=as_of, release_at=release_at
    )


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_a_release_warning_at_13_00_for_23_59_the_same_day_says_today(renderer, locale):
    """Told at 13:00 local of a release at 23:59 local the same day: today, not tomorrow."""
    context = _release_warning(
        locale, "Asia/Shanghai", "2027-01-02T05:00:00+00:00", "2027-01-02T15:59:00+00:00"
    )
    words = _everything(renderer, "release_warning", context)
    assert ("today" if locale == "en-US" else "今天") in words
    assert "tomorrow" not in words and "明天" not in words
    email = renderer.email("release_warning", context)
    if locale == "en-US":
        assert "will be released today (" in email.subject
        assert "will be released today, 2 Jan 2027 23:59 (Asia/Shanghai)." in email.text
    else:
        assert "将于今天释放" in email.subject
        assert "将于今天（2027-01-02 23:59）释放" in renderer.sms("release_warning", context).text


def test_a_release_warning_the_evening_before_says_tomorrow(renderer):
    """Told at 20:00 of a release at 00:30 the next local day: tomorrow."""
    context = _release_warning(
        "en-US", "Asia/Shanghai", "2027-01-02T12:00:00+00:00", "2027-01-02T16:30:00+00:00"
    )
    email = renderer.email("release_warning", context)
    assert "will be released tomorrow, 3 Jan 2027 00:30 (Asia/Shanghai)." in email.text
    assert "released tomorrow, 2027-01-03 00:30" in renderer.sms("release_warning", context).text


def test_a_release_warning_across_a_spring_forward_night_says_tomorrow(renderer):
    """Los Angeles loses an hour on 14 March 2027: 23 hours ahead is still tomorrow."""
    context = _release_warning(
        "en-US",
        "America/Los_Angeles",
        "2027-03-14T07:30:00+00:00",  # 13 Mar 23:30 PST
        "2027-03-15T06:30:00+00:00",  # 14 Mar 23:30 PDT
    )
    assert "released tomorrow, 14 Mar 2027 23:30" in renderer.email("release_warning", context).text


def test_a_renewal_failure_says_when_the_instance_expires(renderer):
    """The failed auto-renewal notice says the days left to act, from its as_of."""
    context = sample_context("renewal_failed", "zh-CN", as_of="2026-12-23T02:00:00+00:00")
    assert "实例到期时间：2026年12月26日 10:00（Asia/Shanghai）（3天后）" in (
        renderer.email("renewal_failed", context).text
    )


def test_a_notice_queued_without_as_of_speaks_from_its_creation_time(renderer):
    """A pending reminder stored before notices carried as_of renders, counting from
    the time its row was created."""
    context = _catch_up_reminder("en-US")
    del context["as_of"]
    queued_at = datetime(2026, 12, 21, 2, 0, tzinfo=UTC)
    email = renderer.email("reminder", context, queued_at=queued_at)
    sms = renderer.sms("reminder", context, queued_at=queued_at)
    assert "expires in 5 days" in email.subject
    assert "expires in 5 days (2026-12-25 18:00)" in sms.text


def test_a_stored_as_of_wins_over_the_creation_time(renderer):
    """The as_of the notice carries is what it speaks from, not when the row was made."""
    context = _catch_up_reminder("en-US")
    email = renderer.email("reminder", context, queued_at=datetime(2026, 12, 24, tzinfo=UTC))
    assert "expires in 8 days" in email.subject


def test_a_notice_with_no_moment_to_count_from_is_refused_naming_it(renderer):
    """Without as_of and without a creation time, the notice cannot say the days left."""
    context = _catch_up_reminder("en-US")
    del context["as_of"]
    with pytest.raises(InputError, match=r"'reminder' notice .*'dns-cn-7f3k2q9x'.*as_of"):
        renderer.email("reminder", context)
    with pytest.raises(InputError, match=r"'reminder' notice .*as_of"):
        renderer.sms("reminder", context)


@pytest.mark.parametrize(
    ("as_of", "en", "zh"),
    [
        ("2026-12-26T01:59:00+00:00", "today", "今天"),
        ("2026-12-25T15:59:00+00:00", "tomorrow", "明天"),  # 23:59 the day before
        ("2026-12-25T16:00:00+00:00", "today", "今天"),  # 00:00 the same day
        ("2026-12-16T02:00:00+00:00", "in 10 days", "10天后"),
        ("2026-12-27T02:00:00+00:00", "on 26 Dec 2026", "2026年12月26日"),
    ],
)
def test_the_words_for_each_distance(as_of, en, zh):
    """today / tomorrow / in N days, and the date for a day already past, in Shanghai."""
    assert format_when(EXPIRY, as_of, "Asia/Shanghai", "en-US") == en
    assert format_when(EXPIRY, as_of, "Asia/Shanghai", "zh-CN") == zh


def test_a_late_expiry_notice_says_the_days_left_before_release(renderer):
    """An expiry told 5 days late says the release is in 2 days, in both languages."""
    late = "2026-12-31T02:00:00+00:00"  # release 2 Jan 2027 10:00 Shanghai
    en = sample_context("expired", "en-US", as_of=late, timezone="Asia/Shanghai")
    zh = sample_context("expired", "zh-CN", as_of=late)
    assert (
        "until 2 Jan 2027 10:00 (Asia/Shanghai), in 2 days." in renderer.email("expired", en).text
    )
    assert (
        "在2027年1月2日 10:00（Asia/Shanghai）（2天后）之前" in renderer.email("expired", zh).text
    )


@pytest.mark.parametrize(
    ("locale", "as_of", "said"),
    [
        ("en-US", "2026-12-25T20:00:00+00:00", "expires today: please renew before 10:00 today"),
        (
            "en-US",
            "2026-12-25T01:00:00+00:00",
            "expires tomorrow: please renew before 10:00 tomorrow",
        ),
        (
            "en-US",
            "2026-12-18T02:00:00+00:00",
            "expires in 8 days: please renew before 26 Dec 2026",
        ),
        ("zh-CN", "2026-12-25T20:00:00+00:00", "将于今天到期，请于今天10:00前续费"),
        ("zh-CN", "2026-12-25T01:00:00+00:00", "将于明天到期，请于明天10:00前续费"),
    ],
)
def test_a_subject_due_today_or_tomorrow_names_the_time_to_renew_before(
    renderer, locale, as_of, said
):
    """A reminder's subject says to renew before the local time when the expiry is
    today or tomorrow, never before a date that has already begun."""
    context = _catch_up_reminder(locale, as_of=as_of, offset_days=1, timezone="Asia/Shanghai")
    assert said in renderer.email("reminder", context).subject


def test_an_expired_notice_on_its_release_day_names_the_time_in_its_subject(renderer):
    """An expiry notice read on the day of release says to renew before that time today."""
    context = sample_context(
        "expired",
        "en-US",
        release_at=EXPIRY,
        as_of="2026-12-25T20:00:00+00:00",
        timezone="Asia/Shanghai",
    )
    assert "renew before 10:00 today to keep it" in renderer.email("expired", context).subject
