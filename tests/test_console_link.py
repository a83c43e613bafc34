"""A way to act: DNSL_CONSOLE_URL checked at settings load, and a console link (a
button in HTML, the URL in text and SMS) in every notice that asks for something."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from dns_lifecycle.channels.render import Renderer
from dns_lifecycle.core.links import check_console_url, console_link
from dns_lifecycle.core.settings import REPO_ROOT, Settings
from dns_lifecycle.lifecycle.notices import LOCALES
from dns_lifecycle.lifecycle.notices.samples import sample_context

CONSOLE = "https://dns.console.example.com/instances/{instance_id}"
LINK = "https://dns.console.example.com/instances/dns-cn-7f3k2q9x"
TEMPLATES = REPO_ROOT / "templates" / "emails"

# Notices that ask for something, with the context that makes them ask.
ASKING = [
    ("reminder", {"auto_renew": False}),
    ("reminder", {"auto_renew": True}),
    ("order_created", {"order_kind": "auto_renewal"}),
    ("renewal_failed", {}),
    ("auto_renew_changed", {"auto_renew": False}),
    ("auto_renew_changed", {"auto_renew": True}),
    ("expired", {}),
    ("release_warning", {}),
    ("released", {}),  # the sample has domains that need new name servers
]
# Notices that only inform.
INFORMING = [
    ("order_created", {"order_kind": "manual_renewal"}),
    ("renewed", {}),
    ("upgraded", {}),
    ("ticket_resolved", {}),
    ("released", {"domains": [{"name": "a.cn", "action": "switched", "registrar": "hichina"}]}),
]


def _ids(cases):
    return [
        f"{kind}-{'-'.join(f'{k}={v}' for k, v in o.items() if k != 'domains')}"
        for kind, o in cases
    ]


@pytest.fixture(scope="module")
def linked() -> Renderer:
    return Renderer(TEMPLATES, console_url=CONSOLE)


@pytest.fixture(scope="module")
def unlinked() -> Renderer:
    return Renderer(TEMPLATES)


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "overrides"), ASKING, ids=_ids(ASKING))
def test_a_notice_that_asks_carries_the_link_everywhere(linked, kind, overrides, locale):
    """A button in the HTML part, the URL in the text part and in the SMS."""
    context = sample_context(kind, locale, **overrides)
    email = linked.email(kind, context)
    sms = linked.sms(kind, context)
    assert f'<a href="{LINK}"' in email.html
    assert LINK in email.text
    assert LINK in sms.text and sms.params["link"] == LINK


@pytest.mark.parametrize("locale", LOCALES)
@pytest.mark.parametrize(("kind", "overrides"), ASKING, ids=_ids(ASKING))
def test_no_link_when_no_console_is_set(unlinked, kind, overrides, locale):
    """Without DNSL_CONSOLE_URL, the same notices carry no link and no empty button."""
    context = sample_context(kind, locale, **overrides)
    email = unlinked.email(kind, context)
    sms = unlinked.sms(kind, context)
    assert "http" not in email.text and "http" not in sms.text and "link" not in sms.params
    assert "<a " not in email.html


@pytest.mark.parametrize(("kind", "overrides"), INFORMING, ids=_ids(INFORMING))
def test_a_notice_that_only_informs_has_no_link(linked, kind, overrides):
    """Renewed, upgraded, resolved: nothing to do, so no button."""
    context = sample_context(kind, "en-US", **overrides)
    assert LINK not in linked.email(kind, context).html
    assert LINK not in linked.sms(kind, context).text


def test_the_instance_id_is_encoded_in_the_link(linked):
    """An id with characters that mean something in a URL cannot change its path."""
    context = sample_context("expired", "en-US", instance_id="a/b?c")
    assert (
        "https://dns.console.example.com/instances/a%2Fb%3Fc"
        in linked.email("expired", context).text
    )


def test_the_html_link_is_escaped():
    """The URL is escaped in the HTML attribute it sits in."""
    renderer = Renderer(TEMPLATES, console_url="https://c.example.com/i/{instance_id}?a=1&b=2")
    html = renderer.email("expired", sample_context("expired", "en-US")).html
    assert 'href="https://c.example.com/i/dns-cn-7f3k2q9x?a=1&amp;b=2"' in html


def test_the_settings_take_the_console_url_from_the_environment(monkeypatch):
    """DNSL_CONSOLE_URL is read and kept; empty means unset."""
    monkeypatch.setenv("DNSL_CONSOLE_URL", CONSOLE)
    assert Settings().console_url == CONSOLE
    monkeypatch.setenv("DNSL_CONSOLE_URL", "")
    assert Settings().console_url is None


@pytest.mark.parametrize(
    ("template", "message"),
    [
        ("https://c.example.com/{instance}", "placeholder {instance}: the only one allowed"),
        ("https://c.example.com/{account_id}/{instance_id}", "placeholder {account_id}"),
        ("https://c.example.com/{instance_id!r}", "placeholder {instance_id}"),
        ("https://c.example.com/{instance_id:>9}", "placeholder {instance_id}"),
        ("https://c.example.com/{}", r"placeholder \{\}"),
        ("https://c.example.com/{instance_id", "unmatched brace"),
        ("ftp://c.example.com/{instance_id}", "not an http\\(s\\) URL"),
        ("c.example.com/{instance_id}", "not an http\\(s\\) URL"),
        ("https:///{instance_id}", "not an http\\(s\\) URL"),
    ],
)
def test_a_bad_console_url_is_refused_at_settings_load(template, message):
    """Only {instance_id} may be a placeholder, and the URL is http(s) with a host."""
    with pytest.raises(ValidationError, match=message):
        Settings(console_url=template)


def test_a_console_url_without_placeholder_links_to_the_same_page():
    """A console home page is a valid template: every link goes there."""
    assert check_console_url("https://console.example.com/dns") == "https://console.example.com/dns"
    assert console_link("https://console.example.com/dns", "x") == "https://console.example.com/dns"


def test_doubled_braces_stay_literal():
    """'{{' is a literal brace, as in Python's format strings."""
    template = "https://c.example.com/#{{x}}/{instance_id}"
    assert console_link(check_console_url(template), "i-1") == "https://c.example.com/#{x}/i-1"
