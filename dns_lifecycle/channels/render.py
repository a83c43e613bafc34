"""Turn a notice (kind + context) into the words an account receives.

A notice's context is a JSON-able dict fixed when the notice was decided and stored in
its ledger row, so a notice re-rendered later says exactly what it said the first time.
``CONTEXT_KEYS`` lists what each kind's context must hold.

Templates live in two folders:

    templates/emails/<kind>.<locale>.subject.txt   one line; whitespace collapsed here
    templates/emails/<kind>.<locale>.txt           the plain-text part (not escaped)
    templates/emails/<kind>.<locale>.html          the HTML part (autoescaped), extends
                                                   _layout.<locale>.html → _base.html
    templates/sms/<kind>.<locale>.txt              the SMS wording

An SMS provider sends a template registered with it and filled with variables, so
``RenderedSms.params`` are those variables (all ``str``), built here from the context;
the SMS template is rendered with the context plus ``sms`` (the params), and says
nothing the params do not carry except fixed wording, so the text we record is the
text the provider sends.

Filters available to templates (locale and time zone come from the context):
``localtime``, ``localdate``, ``money``, ``domain``, ``edition_name``,
``order_kind_name``, ``registrar_name``, ``reason_text``, ``join_nameservers``.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import (
    Environment,
    FileSystemLoader,
    StrictUndefined,
    Template,
    TemplateNotFound,
    UndefinedError,
    pass_context,
    select_autoescape,
)
from jinja2.runtime import Context
from jinja2.utils import missing

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.notices import NOTICE_KINDS
from models.types import LOCALES

try:  # The IDNA 2008 package is more faithful; the builtin codec (IDNA 2003) will do.
    import idna as _idna
except ImportError:  # pragma: no cover - depends on the environment
    _idna = None

DOMAIN_ACTIONS: tuple[str, ...] = ("switched", "domain_locked", "external_registrar")

COMMON_KEYS: tuple[str, ...] = ("account_name", "instance_id", "timezone", "locale", "edition")
CONTEXT_KEYS: dict[str, tuple[str, ...]] = {
    "reminder": ("expires_at", "offset_days", "auto_renew", "amount"),
    "order_created": ("order_id", "order_kind", "period_start", "period_end", "amount"),
    "renewed": ("order_id", "order_kind", "amount", "expires_at", "balance"),
    "renewal_failed": ("order_id", "amount", "balance", "expires_at", "reason"),
    "upgraded": ("order_id", "from_edition", "to_edition", "amount", "expires_at"),
    "auto_renew_changed": ("auto_renew", "expires_at"),
    "expired": ("expires_at", "release_at"),
    "release_warning": ("release_at",),
    "released": ("released_at", "free_nameservers", "domains"),
    "ticket_resolved": ("domain", "nameservers"),
}
DOMAIN_KEYS: tuple[str, ...] = ("name", "action", "registrar")


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


@dataclass(frozen=True)
class RenderedSms:
    text: str
    params: dict[str, str]


# --- values shown to people ------------------------------------------------------------

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")

EDITION_NAMES: dict[str, dict[str, str]] = {
    "personal": {"en-US": "Personal", "zh-CN": "个人版"},
    "enterprise-standard": {"en-US": "Enterprise Standard", "zh-CN": "企业标准版"},
    "enterprise-ultimate": {"en-US": "Enterprise Ultimate", "zh-CN": "企业旗舰版"},
}
ORDER_KIND_NAMES: dict[str, dict[str, str]] = {
    "auto_renewal": {"en-US": "automatic renewal", "zh-CN": "自动续费"},
    "manual_renewal": {"en-US": "renewal", "zh-CN": "手动续费"},
    "upgrade": {"en-US": "upgrade", "zh-CN": "升级"},
}
REGISTRAR_NAMES: dict[str, dict[str, str]] = {
    "hichina": {"en-US": "HiChina", "zh-CN": "万网（HiChina）"},
}
REASON_TEXTS: dict[str, dict[str, str]] = {
    "insufficient_balance": {
        "en-US": "your account balance does not cover the amount",
        "zh-CN": "账户余额不足以支付该订单",
    },
}


def _lookup(table: dict[str, dict[str, str]], code: str, locale: str) -> str:
    # An unknown code is shown as it is: a new edition must not stop notices going out.
    names = table.get(str(code).lower())
    return names.get(locale, names["en-US"]) if names else str(code)


def parse_instant(value: str | datetime) -> datetime:
    """An ISO-8601 string (or a datetime) as an aware datetime; naive means UTC."""
    if isinstance(value, datetime):
        moment = value
    else:
        try:
            moment = datetime.fromisoformat(str(value))
        except ValueError:
            raise InputError(
                f"{value!r} is not an ISO-8601 date and time; "
                "store notice times like '2026-12-26T02:00:00+00:00'"
            ) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@lru_cache(maxsize=512)
def _zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise InputError(
            f"unknown time zone {name!r}; set the account's timezone to an IANA name "
            "such as 'Asia/Shanghai'"
        ) from None


def format_localtime(value: str | datetime, timezone: str, locale: str) -> str:
    """'26 Dec 2026 10:00 (Asia/Shanghai)' or '2026年12月26日 10:00（Asia/Shanghai）'."""
    t = parse_instant(value).astimezone(_zone(timezone))
    if locale == "zh-CN":
        return f"{t.year}年{t.month}月{t.day}日 {t:%H:%M}（{timezone}）"
    return f"{t.day} {_MONTHS_EN[t.month - 1]} {t.year} {t:%H:%M} ({timezone})"


def format_localdate(value: str | datetime, timezone: str, locale: str) -> str:
    """'26 Dec 2026' or '2026年12月26日', the date in the given time zone."""
    t = parse_instant(value).astimezone(_zone(timezone))
    if locale == "zh-CN":
        return f"{t.year}年{t.month}月{t.day}日"
    return f"{t.day} {_MONTHS_EN[t.month - 1]} {t.year}"


def format_sms_time(value: str | datetime, timezone: str) -> str:
    """'2026-12-26 10:00': short, the same in both languages, accepted by SMS providers."""
    return f"{parse_instant(value).astimezone(_zone(timezone)):%Y-%m-%d %H:%M}"


def _decimal(value: str | Decimal | int) -> Decimal:
    try:
        amount = Decimal(str(value))
    except InvalidOperation:
        raise InputError(f"{value!r} is not an amount; store amounts like '118.00'") from None
    if not amount.is_finite():
        raise InputError(f"{value!r} is not an amount; store amounts like '118.00'")
    return amount.quantize(Decimal("0.01"))


def format_money(value: str | Decimal | int) -> str:
    """'¥1,180.00'; a negative amount as '-¥5.00'."""
    amount = _decimal(value)
    sign = "-" if amount < 0 else ""
    return f"{sign}¥{abs(amount):,.2f}"


def plain_amount(value: str | Decimal | int) -> str:
    """'1180.00': what an SMS provider's amount variable takes."""
    return f"{_decimal(value):.2f}"


@lru_cache(maxsize=65536)
def _unicode_label(label: str) -> str:
    if not label.lower().startswith("xn--"):
        return label
    if _idna is not None:
        try:
            return _idna.decode(label.lower())
        except (_idna.IDNAError, UnicodeError, ValueError):
            pass  # e.g. an emoji label: invalid under IDNA 2008, valid under IDNA 2003
    try:
        return label.lower().encode("ascii").decode("idna")
    except UnicodeError:
        return label  # not a valid A-label at all: show what we have


@lru_cache(maxsize=65536)
def unicode_domain(name: str) -> str:
    """The Unicode form of a domain name; labels that do not decode stay as they are."""
    return ".".join(_unicode_label(label) for label in str(name).split("."))


def format_domain(name: str) -> str:
    """'云栖科技.中国 (xn--9kqv99bt6d0ov.xn--fiqs8s)' for an internationalized name; an
    ASCII name unchanged. The A-label stays visible so a look-alike name can be told
    apart from the one the account owns."""
    name = str(name)
    shown = unicode_domain(name)
    return name if shown == name else f"{shown} ({name})"


# Unicode category Cc (control characters) is exactly these two ranges.
_CONTROL_CHARS = re.compile("[\x00-\x1f\x7f-\x9f]")


def one_line(text: str) -> str:
    """Any whitespace run (CR, LF, tab, U+2028 …) becomes one space; other control
    characters go. A header built from this cannot be split into two."""
    return _CONTROL_CHARS.sub("", " ".join(str(text).split()))


# --- filters (read locale and time zone from the template context) --------------------


def _ctx_value(ctx: Context, key: str) -> Any:
    value = ctx.resolve_or_missing(key)
    if value is missing:
        raise UndefinedError(f"{key!r} is undefined")
    return value


@pass_context
def _f_localtime(ctx: Context, value: Any, timezone: str | None = None) -> str:
    return format_localtime(
        value, timezone or _ctx_value(ctx, "timezone"), _ctx_value(ctx, "locale")
    )


@pass_context
def _f_localdate(ctx: Context, value: Any, timezone: str | None = None) -> str:
    return format_localdate(
        value, timezone or _ctx_value(ctx, "timezone"), _ctx_value(ctx, "locale")
    )


def _localized(table: dict[str, dict[str, str]]) -> Callable[..., str]:
    @pass_context
    def name(ctx: Context, code: str) -> str:
        return _lookup(table, code, _ctx_value(ctx, "locale"))

    return name


def _f_join_nameservers(names: Iterable[str], sep: str = ", ") -> str:
    return sep.join(str(n) for n in names)


FILTERS: dict[str, Callable[..., Any]] = {
    "localtime": _f_localtime,
    "localdate": _f_localdate,
    "money": format_money,
    "domain": format_domain,
    "edition_name": _localized(EDITION_NAMES),
    "order_kind_name": _localized(ORDER_KIND_NAMES),
    "registrar_name": _localized(REGISTRAR_NAMES),
    "reason_text": _localized(REASON_TEXTS),
    "join_nameservers": _f_join_nameservers,
}


# --- SMS variables ---------------------------------------------------------------------


def _sms_params(kind: str, c: Mapping[str, Any]) -> dict[str, str]:
    tz, locale = c["timezone"], c["locale"]

    def when(key: str) -> str:
        return format_sms_time(c[key], tz)

    params = {"name": one_line(c["account_name"]), "instance": str(c["instance_id"])}
    if kind == "reminder":
        params |= {
            "date": when("expires_at"),
            "days": str(c["offset_days"]),
            "amount": plain_amount(c["amount"]),
        }
    elif kind == "order_created":
        params |= {
            "order": str(c["order_id"]),
            "type": _lookup(ORDER_KIND_NAMES, c["order_kind"], locale),
            "amount": plain_amount(c["amount"]),
            "date": when("period_end"),
        }
    elif kind == "renewed":
        params |= {
            "amount": plain_amount(c["amount"]),
            "date": when("expires_at"),
            "balance": plain_amount(c["balance"]),
        }
    elif kind == "renewal_failed":
        params |= {
            "amount": plain_amount(c["amount"]),
            "balance": plain_amount(c["balance"]),
            "date": when("expires_at"),
        }
    elif kind == "upgraded":
        params |= {
            "edition": _lookup(EDITION_NAMES, c["to_edition"], locale),
            "amount": plain_amount(c["amount"]),
        }
    elif kind == "auto_renew_changed":
        params |= {"date": when("expires_at")}
    elif kind in ("expired", "release_warning"):
        params |= {"date": when("release_at")}
    elif kind == "released":
        todo = sum(1 for d in c["domains"] if d["action"] != "switched")
        params |= {"date": when("released_at"), "count": str(todo)}
    elif kind == "ticket_resolved":
        params |= {"domain": unicode_domain(c["domain"])}
    return params


# --- the renderer ----------------------------------------------------------------------


def _check_kind(kind: str) -> None:
    if kind not in NOTICE_KINDS:
        raise InputError(f"unknown notice kind {kind!r}; use one of: {', '.join(NOTICE_KINDS)}")


def _check_kind_locale(kind: str, locale: Any) -> None:
    _check_kind(kind)
    if locale not in LOCALES:
        raise InputError(
            f"unknown locale {locale!r} for a {kind!r} notice; use one of: {', '.join(LOCALES)}"
        )


def check_context(kind: str, context: Mapping[str, Any]) -> None:
    """Raise ``InputError`` naming every key the context of ``kind`` lacks (and any bad
    domain entry), before a template gets half-way through."""
    _check_kind(kind)
    missing = [k for k in (*COMMON_KEYS, *CONTEXT_KEYS[kind]) if k not in context]
    if missing:
        raise InputError(
            f"the context of a {kind!r} notice for instance "
            f"{context.get('instance_id', '?')!r} lacks {', '.join(missing)}; "
            "the code that queues this notice must fill them in"
        )
    _check_kind_locale(kind, context["locale"])
    if kind == "released":
        for i, domain in enumerate(context["domains"]):
            lacks = [k for k in DOMAIN_KEYS if k not in domain]
            if lacks:
                raise InputError(
                    f"domains[{i}] of the 'released' notice for instance "
                    f"{context['instance_id']!r} lacks {', '.join(lacks)}"
                )
            if domain["action"] not in DOMAIN_ACTIONS:
                raise InputError(
                    f"domain {domain['name']!r} has unknown action {domain['action']!r}; "
                    f"use one of: {', '.join(DOMAIN_ACTIONS)}"
                )


_TEXT_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy_text(text: str) -> str:
    # Conditionals in the plain-text templates leave blank runs; one blank line is enough.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _TEXT_BLANK_RUNS.sub("\n\n", "\n".join(lines)) + "\n"


class Renderer:
    """Renders notices from one template folder; each template is compiled once."""

    def __init__(self, templates_dir: Path, sms_templates_dir: Path | None = None) -> None:
        self.templates_dir = Path(templates_dir)
        self.sms_templates_dir = (
            Path(sms_templates_dir)
            if sms_templates_dir is not None
            else self.templates_dir.parent / "sms"
        )
        self._email_env = self._environment(self.templates_dir)
        self._sms_env = self._environment(self.sms_templates_dir)
        self._email_cache: dict[tuple[str, str], tuple[Template, Template, Template]] = {}
        self._sms_cache: dict[tuple[str, str], Template] = {}

    @staticmethod
    def _environment(folder: Path) -> Environment:
        env = Environment(
            loader=FileSystemLoader(folder),
            autoescape=select_autoescape(["html"]),
            undefined=StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
            # Templates do not change while a run goes on; skip the stat on every use.
            auto_reload=False,
        )
        env.filters.update(FILTERS)
        return env

    def _load(self, env: Environment, name: str) -> Template:
        try:
            return env.get_template(name)
        except TemplateNotFound:
            folder = env.loader.searchpath[0]  # type: ignore[union-attr]
            raise InputError(f"template {name!r} is missing from {folder}; add it") from None

    def _email_templates(self, kind: str, locale: str) -> tuple[Template, Template, Template]:
        key = (kind, locale)
        found = self._email_cache.get(key)
        if found is None:
            env = self._email_env
            found = (
                self._load(env, f"{kind}.{locale}.subject.txt"),
                self._load(env, f"{kind}.{locale}.txt"),
                self._load(env, f"{kind}.{locale}.html"),
            )
            self._email_cache[key] = found
        return found

    def _sms_template(self, kind: str, locale: str) -> Template:
        key = (kind, locale)
        found = self._sms_cache.get(key)
        if found is None:
            found = self._sms_cache[key] = self._load(self._sms_env, f"{kind}.{locale}.txt")
        return found

    def email(self, kind: str, context: dict) -> RenderedEmail:
        """Subject, text and HTML of one notice, in the language of ``context['locale']``."""
        check_context(kind, context)
        subject, text, html = self._email_templates(kind, context["locale"])
        values = _shown(context)
        with _naming(kind, context):
            return RenderedEmail(
                # The subject becomes a header: whatever a template or a value holds,
                # it leaves here as one line.
                subject=one_line(subject.render(values)),
                text=_tidy_text(text.render(values)),
                html=html.render(values).strip() + "\n",
            )

    def sms(self, kind: str, context: dict) -> RenderedSms:
        """The SMS wording of one notice and the provider template variables behind it."""
        check_context(kind, context)
        template = self._sms_template(kind, context["locale"])
        with _naming(kind, context):
            params = _sms_params(kind, context)
            text = one_line(template.render({**_shown(context), "sms": params}))
        return RenderedSms(text=text, params=params)


def _shown(context: Mapping[str, Any]) -> dict[str, Any]:
    # An account name typed with a line break reads as one line wherever it is shown.
    return {**context, "account_name": one_line(context["account_name"])}


@contextmanager
def _naming(kind: str, context: Mapping[str, Any]) -> Iterator[None]:
    """Re-raise a template's missing variable as an error that names the notice."""
    try:
        yield
    except UndefinedError as exc:
        raise InputError(
            f"rendering the {kind!r} notice ({context.get('locale')}) for instance "
            f"{context.get('instance_id')!r} failed: {exc}; add it to the notice context"
        ) from exc


# --- sample data for previews and tests ------------------------------------------------

FREE_NAMESERVERS = ["ns1.free-dns.example.net", "ns2.free-dns.example.net"]

_SAMPLE_COMMON: dict[str, dict[str, Any]] = {
    "en-US": {
        "account_name": "Northwind Trading Ltd.",
        "instance_id": "dns-cn-7f3k2q9x",
        "timezone": "America/Los_Angeles",
        "locale": "en-US",
        "edition": "enterprise-standard",
    },
    "zh-CN": {
        "account_name": "杭州云栖科技有限公司",
        "instance_id": "dns-cn-7f3k2q9x",
        "timezone": "Asia/Shanghai",
        "locale": "zh-CN",
        "edition": "enterprise-standard",
    },
}

_SAMPLE_KIND: dict[str, dict[str, Any]] = {
    "reminder": {
        "expires_at": "2026-12-26T02:00:00+00:00",
        "offset_days": 7,
        "auto_renew": True,
        "amount": "1180.00",
    },
    "order_created": {
        "order_id": "ord-20261219-000042",
        "order_kind": "auto_renewal",
        "period_start": "2026-12-26T02:00:00+00:00",
        "period_end": "2027-12-26T02:00:00+00:00",
        "amount": "1180.00",
    },
    "renewed": {
        "order_id": "ord-20261219-000042",
        "order_kind": "auto_renewal",
        "amount": "1180.00",
        "expires_at": "2027-12-26T02:00:00+00:00",
        "balance": "320.50",
    },
    "renewal_failed": {
        "order_id": "ord-20261219-000042",
        "amount": "1180.00",
        "balance": "86.20",
        "expires_at": "2026-12-26T02:00:00+00:00",
        "reason": "insufficient_balance",
    },
    "upgraded": {
        "order_id": "ord-20260715-000917",
        "from_edition": "enterprise-standard",
        "to_edition": "enterprise-ultimate",
        "amount": "1056.44",
        "expires_at": "2026-12-26T02:00:00+00:00",
    },
    "auto_renew_changed": {"auto_renew": True, "expires_at": "2026-12-26T02:00:00+00:00"},
    "expired": {
        "expires_at": "2026-12-26T02:00:00+00:00",
        "release_at": "2027-01-02T02:00:00+00:00",
    },
    "release_warning": {"release_at": "2027-01-02T02:00:00+00:00"},
    "released": {
        "released_at": "2027-01-02T02:00:00+00:00",
        "free_nameservers": FREE_NAMESERVERS,
        "domains": [
            {"name": "northwind-trading.com", "action": "switched", "registrar": "hichina"},
            {
                "name": "xn--9kqv99bt6d0ov.xn--fiqs8s",
                "action": "domain_locked",
                "registrar": "hichina",
            },
            {
                "name": "northwind-shop.de",
                "action": "external_registrar",
                "registrar": "GoDaddy",
            },
        ],
    },
    "ticket_resolved": {"domain": "northwind-shop.de", "nameservers": FREE_NAMESERVERS},
}


def sample_context(kind: str, locale: str, **overrides: Any) -> dict:
    """A realistic context for ``kind`` in ``locale``; ``overrides`` replace keys."""
    _check_kind_locale(kind, locale)
    context: dict[str, Any] = {**_SAMPLE_COMMON[locale], **_SAMPLE_KIND[kind]}
    # Fresh lists and dicts: a caller may change the sample without changing the next one.
    for key, value in context.items():
        if isinstance(value, list):
            context[key] = [dict(v) if isinstance(v, dict) else v for v in value]
    context.update(overrides)
    return context


def sms_template_code(prefix: str, kind: str, context: Mapping[str, Any]) -> str:
    """The provider template a notice is sent with: one per kind, wording variant and
    language, because a provider's SMS template cannot branch."""
    code = prefix + kind.upper()
    if kind in ("reminder", "auto_renew_changed"):
        code += "_AUTO" if context["auto_renew"] else "_MANUAL"
    elif kind == "released":
        todo = any(d["action"] != "switched" for d in context["domains"])
        code += "_ACTION" if todo else "_DONE"
    return code + ("_ZH" if context["locale"] == "zh-CN" else "_EN")
