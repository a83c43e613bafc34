"""Turn a notice (kind + context) into the words an account receives.

A notice's context is a JSON-able dict fixed when the notice was decided and stored in
its ledger row, so a notice re-rendered later says exactly what it said the first time;
except that delivery renders its relative words ("in 5 days", "today") from the moment
it sends (``at``), when that is later than the moment the notice was decided: a notice
sent late says the time left when it is read.
What each kind's context holds, its SMS variables and its SMS template code are the
notice catalog's (``lifecycle.notices.catalog``): the renderer reads a stored context
back into its catalog class and shows it.

Templates live in two folders:

    templates/emails/<kind>.<locale>.subject.txt   one line; whitespace collapsed here
    templates/emails/<kind>.<locale>.txt           the plain-text part (not escaped)
    templates/emails/<kind>.<locale>.html          the HTML part (autoescaped), extends
                                                   _layout.<locale>.html → _base.html
    templates/sms/<kind>.<locale>.txt              the SMS wording

An SMS provider sends a template registered with it and filled with variables, so
``RenderedSms.params`` are those variables (all ``str``), named by the catalog and
formatted here;
the SMS template is rendered with the context plus ``sms`` (the params), and says
nothing the params do not carry except fixed wording, so the text we record is the
text the provider sends.

Filters available to templates (locale, time zone and ``as_of`` come from the context):
``localtime``, ``localdate``, ``when`` ("in 8 days", "tomorrow", "today", counted on
local dates from the notice's ``as_of``: ``lifecycle.when``), ``deadline`` (what
"before …" names: "18:00 today", "18:00 tomorrow", or the date), ``money``, ``domain``,
``edition_name``, ``order_kind_name``, ``registrar_name``, ``reason_text``,
``join_nameservers``.

Templates also get ``action_url``: the console page of the instance when the notice
asks the account to act and ``DNSL_CONSOLE_URL`` is set, else ``None``; the SMS then
has a ``link`` variable.
"""

# Over 500 lines on purpose: one renderer. The template environments, the filters they
# register and the formats those share (times, money, domain names) change together.
from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from types import ModuleType
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
from dns_lifecycle.core.links import console_link
from dns_lifecycle.core.settings import Settings
from dns_lifecycle.lifecycle.notices import (
    Notice,
    parse_instant,
    read_stored,
)
from dns_lifecycle.lifecycle.notices.base import SmsFormat
from dns_lifecycle.lifecycle.when import days_away

_idna: ModuleType | None
try:  # The IDNA 2008 package is more faithful; the builtin codec (IDNA 2003) will do.
    import idna as _idna
except ImportError:  # pragma: no cover - depends on the environment
    _idna = None


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


def format_when(
    value: str | datetime, as_of: str | datetime | None, timezone: str, locale: str
) -> str:
    """How far ``value`` is from ``as_of`` in local days of ``timezone``: 'today',
    'tomorrow', 'in 8 days' ('今天', '明天', '8天后'); an earlier day is its date
    ('on 26 Dec 2026', '2026年12月26日'). The words fit "expires …" and "将于…到期"."""
    if as_of is None:
        raise InputError(
            "the notice has no 'as_of' to count days from; queue it with the run's as_of"
        )
    away = days_away(parse_instant(value), parse_instant(as_of), _zone(timezone))
    zh = locale == "zh-CN"
    if away.word == "today":
        return "今天" if zh else "today"
    if away.word == "tomorrow":
        return "明天" if zh else "tomorrow"
    if away.word == "later":
        # Written like the dates beside it (2026年12月26日): no spaces in the Chinese.
        return f"{away.days}天后" if zh else f"in {away.days} days"
    date = format_localdate(value, timezone, locale)
    return date if zh else f"on {date}"


def format_deadline(
    value: str | datetime, as_of: str | datetime | None, timezone: str, locale: str
) -> str:
    """What "before …" names in a subject: the local time when ``value`` falls today or
    tomorrow as seen from ``as_of`` ('18:00 today', '今天18:00'), the date when later
    ('26 Dec 2026'), the date and time when already past. "Before 14 Mar" read on
    14 March would name a moment already gone."""
    if as_of is None:
        raise InputError(
            "the notice has no 'as_of' to count days from; queue it with the run's as_of"
        )
    away = days_away(parse_instant(value), parse_instant(as_of), _zone(timezone))
    zh = locale == "zh-CN"
    if away.word == "today":
        return f"今天{away.local:%H:%M}" if zh else f"{away.local:%H:%M} today"
    if away.word == "tomorrow":
        return f"明天{away.local:%H:%M}" if zh else f"{away.local:%H:%M} tomorrow"
    if away.word == "later":
        return format_localdate(value, timezone, locale)
    return format_localtime(value, timezone, locale)


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


# How an amount reads, per locale: the symbol before, thousands grouped, two decimals.
# Both languages write yuan as '¥1,180.00'.
MONEY_FORMATS: dict[str, str] = {"en-US": "{sign}¥{amount:,.2f}", "zh-CN": "{sign}¥{amount:,.2f}"}


def format_money(value: str | Decimal | int, locale: str = "en-US") -> str:
    """'¥1,180.00'; a negative amount as '-¥5.00'. The one way an amount is shown to
    an account, in an email and in an SMS alike (``MONEY_FORMATS``)."""
    amount = _decimal(value)
    shape = MONEY_FORMATS.get(locale, MONEY_FORMATS["en-US"])
    return shape.format(sign="-" if amount < 0 else "", amount=abs(amount))


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


@pass_context
def _f_when(ctx: Context, value: Any) -> str:
    return format_when(
        value, _ctx_value(ctx, "as_of"), _ctx_value(ctx, "timezone"), _ctx_value(ctx, "locale")
    )


@pass_context
def _f_money(ctx: Context, value: Any) -> str:
    return format_money(value, _ctx_value(ctx, "locale"))


@pass_context
def _f_deadline(ctx: Context, value: Any) -> str:
    return format_deadline(
        value, _ctx_value(ctx, "as_of"), _ctx_value(ctx, "timezone"), _ctx_value(ctx, "locale")
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
    "when": _f_when,
    "deadline": _f_deadline,
    "money": _f_money,
    "domain": format_domain,
    "edition_name": _localized(EDITION_NAMES),
    "order_kind_name": _localized(ORDER_KIND_NAMES),
    "registrar_name": _localized(REGISTRAR_NAMES),
    "reason_text": _localized(REASON_TEXTS),
    "join_nameservers": _f_join_nameservers,
}


# --- SMS variables ---------------------------------------------------------------------


def sms_params(notice: Notice) -> dict[str, str]:
    """The provider template variables of a notice, as the strings the provider takes."""
    shown: dict[SmsFormat, Callable[[Any], str]] = {
        "text": str,
        "line": one_line,
        "time": lambda moment: format_sms_time(moment, notice.timezone),
        "when": lambda moment: format_when(moment, notice.as_of, notice.timezone, notice.locale),
        "amount": lambda value: format_money(value, notice.locale),
        "edition": lambda code: _lookup(EDITION_NAMES, code, notice.locale),
        "order_kind": lambda code: _lookup(ORDER_KIND_NAMES, code, notice.locale),
        "domain": unicode_domain,
    }
    return {name: shown[fmt](value) for name, (fmt, value) in notice.sms_params().items()}


# --- the renderer ----------------------------------------------------------------------


def check_context(
    kind: str,
    context: Mapping[str, Any],
    queued_at: datetime | None = None,
    at: datetime | None = None,
) -> Notice:
    """The catalog's notice for a stored context; ``InputError`` names every key it
    lacks (and any bad value), before a template gets half-way through. A context
    without ``as_of`` speaks from ``queued_at`` (when its row was created); one sent
    ``at`` a later moment than its ``as_of`` speaks from ``at``."""
    notice = read_stored(kind, context, queued_at)
    if at is not None and (notice.as_of is None or parse_instant(at) > notice.as_of):
        return notice.model_copy(update={"as_of": parse_instant(at)})
    return notice


_TEXT_BLANK_RUNS = re.compile(r"\n{3,}")


def _tidy_text(text: str) -> str:
    # Conditionals in the plain-text templates leave blank runs; one blank line is enough.
    lines = [line.rstrip() for line in text.strip().splitlines()]
    return _TEXT_BLANK_RUNS.sub("\n\n", "\n".join(lines)) + "\n"


class Renderer:
    """Renders notices from one template folder; each template is compiled once."""

    def __init__(
        self,
        templates_dir: Path,
        sms_templates_dir: Path | None = None,
        *,
        console_url: str | None = None,
    ) -> None:
        self.templates_dir = Path(templates_dir)
        # A URL template checked by the settings (``core.links``); None: no links.
        self.console_url = console_url
        self.sms_templates_dir = (
            Path(sms_templates_dir)
            if sms_templates_dir is not None
            else self.templates_dir.parent / "sms"
        )
        self._email_env = self._environment(self.templates_dir)
        self._sms_env = self._environment(self.sms_templates_dir)
        self._email_cache: dict[tuple[str, str], tuple[Template, Template, Template]] = {}
        self._sms_cache: dict[tuple[str, str], Template] = {}

    @classmethod
    def for_settings(cls, settings: Settings) -> Renderer:
        """The renderer the settings describe: their templates, their console link."""
        return cls(settings.templates_dir, console_url=settings.console_url)

    def action_url(self, notice: Notice) -> str | None:
        """Where the account acts on ``notice``: its instance's console page, when the
        notice asks for something and a console URL is set."""
        if self.console_url is None or not notice.asks_action():
            return None
        return console_link(self.console_url, notice.instance_id)

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

    def email(
        self,
        kind: str,
        context: dict,
        *,
        queued_at: datetime | None = None,
        at: datetime | None = None,
    ) -> RenderedEmail:
        """Subject, text and HTML of one notice, in the language of ``context['locale']``;
        ``queued_at``: when its row was created, for a context without ``as_of``; ``at``:
        the moment it is sent, that its days left count from if later than ``as_of``."""
        notice = check_context(kind, context, queued_at, at)
        subject, text, html = self._email_templates(kind, notice.locale)
        values = self._shown(notice)
        with _naming(kind, context):
            return RenderedEmail(
                # The subject becomes a header: whatever a template or a value holds,
                # it leaves here as one line.
                subject=one_line(subject.render(values)),
                text=_tidy_text(text.render(values)),
                html=html.render(values).strip() + "\n",
            )

    def sms(
        self,
        kind: str,
        context: dict,
        *,
        queued_at: datetime | None = None,
        at: datetime | None = None,
    ) -> RenderedSms:
        """The SMS wording of one notice and the provider template variables behind it;
        ``queued_at`` and ``at`` as for :meth:`email`."""
        notice = check_context(kind, context, queued_at, at)
        template = self._sms_template(kind, notice.locale)
        with _naming(kind, context):
            params = sms_params(notice)
            link = self.action_url(notice)
            if link is not None:
                params["link"] = link
            text = one_line(template.render({**self._shown(notice), "sms": params}))
        return RenderedSms(text=text, params=params)

    def _shown(self, notice: Notice) -> dict[str, Any]:
        # An account name typed with a line break reads as one line wherever it is shown.
        return {
            **notice.context(),
            "account_name": one_line(notice.account_name),
            "action_url": self.action_url(notice),
        }


@contextmanager
def _naming(kind: str, context: Mapping[str, Any]) -> Iterator[None]:
    """Re-raise a template's missing variable, or a value it cannot show, as an error
    that names the notice."""
    notice = (
        f"the {kind!r} notice ({context.get('locale')}) for instance {context.get('instance_id')!r}"
    )
    try:
        yield
    except UndefinedError as exc:
        raise InputError(f"rendering {notice} failed: {exc}; add it to the notice context") from exc
    except InputError as exc:
        raise InputError(f"rendering {notice} failed: {exc}") from exc


def sms_template_code(prefix: str, kind: str, context: Mapping[str, Any]) -> str:
    """The provider template a stored notice is sent with (the catalog names it)."""
    return read_stored(kind, context).sms_template_code(prefix)
