"""What every notice shares: its addressee, its ledger rows, its typed context.

Rule 8: every step that changes an account's service is told by email *and* SMS. The
rows are built here and written by the step in the same transaction as its decision,
so a notice exists exactly when the change it reports does.

A notice kind is a :class:`Notice` subclass. Its fields are the context stored in
the ledger row (what the templates show); fields marked ``exclude=True`` and listed in
``identity`` only make its ledger key and stay out of the stored context. Building one
validates it; the renderer reads a stored context back into the same class.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    ValidationInfo,
    field_validator,
    model_validator,
)

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.notices.keys import channel_key
from models.types import CHANNELS, LOCALES

# The renderer is told to read stored contexts, which carry no identity fields.
STORED = {"stored": True}


@dataclass(frozen=True)
class Addressee:
    """The parts of an account and instance every notice mentions."""

    account_id: str
    account_name: str
    locale: str
    timezone: str
    instance_id: str
    edition: str


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def money(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(Decimal("0.01")))


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


def _instant(value: Any) -> datetime:
    try:
        return parse_instant(value)
    except InputError as exc:
        raise ValueError(str(exc)) from None


def _amount(value: Any) -> Decimal:
    try:
        amount = Decimal(str(value))
    except ArithmeticError:
        amount = Decimal("NaN")
    if not amount.is_finite():
        raise ValueError(f"{value!r} is not an amount; store amounts like '118.00'")
    return amount


# A moment, stored as UTC ISO-8601 text; an amount, stored as text with two decimals.
Moment = Annotated[datetime, BeforeValidator(_instant), PlainSerializer(iso, return_type=str)]
Money = Annotated[Decimal, BeforeValidator(_amount), PlainSerializer(money, return_type=str)]

# How the renderer turns a value into an SMS provider variable (always a string).
# "when" is a moment said relative to the notice's as_of ("in 8 days", "tomorrow").
SmsFormat = Literal["text", "line", "time", "when", "amount", "edition", "order_kind", "domain"]
SmsParam = tuple[SmsFormat, Any]


def notice_rows(
    kind: str,
    to: Addressee,
    key: str,
    created_at: datetime,
    context: dict[str, Any],
    *,
    offset_days: int | None = None,
    ref_at: datetime | None = None,
) -> list[dict[str, Any]]:
    """Ledger rows (one per channel) for one notice; ``key`` gets ``:email``/``:sms``.

    The untyped form of :meth:`Notice.rows`, for callers not yet on the catalog.
    """
    full_context = {
        "account_name": to.account_name,
        "instance_id": to.instance_id,
        "timezone": to.timezone,
        "locale": to.locale,
        "edition": to.edition,
        **context,
    }
    return _rows(
        kind, to.account_id, to.instance_id, key, created_at, full_context, offset_days, ref_at
    )


def _rows(
    kind: str,
    account_id: str,
    instance_id: str,
    key: str,
    created_at: datetime,
    context: dict[str, Any],
    offset_days: int | None,
    ref_at: datetime | None,
) -> list[dict[str, Any]]:
    return [
        {
            "key": channel_key(key, channel),
            "account_id": account_id,
            "instance_id": instance_id,
            "channel": channel,
            "kind": kind,
            "offset_days": offset_days,
            "ref_at": ref_at,
            "context": context,
            "state": "pending",
            "attempts": 0,
            "created_at": created_at,
        }
        for channel in CHANNELS
    ]


class Notice(BaseModel):
    """One notice owed to an account; subclasses are the notice kinds."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: ClassVar[str]
    # Fields (declared ``exclude=True``) that only make the ledger key: required when
    # queueing, absent from the stored context.
    identity: ClassVar[tuple[str, ...]] = ()
    # For the preview gallery and tests: this kind's sample values, and the variants
    # of its wording worth showing (name -> values that select it).
    sample: ClassVar[dict[str, Any]] = {}
    # Whether its wording counts days ("expires in 8 days", "released today"): such a
    # notice needs ``as_of`` to count from when it is queued.
    counts_days: ClassVar[bool] = False
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {}

    account_id: str | None = Field(default=None, exclude=True)
    account_name: str
    instance_id: str
    timezone: str
    locale: str
    edition: str
    # The moment the notice speaks from: the as_of of the run that decided it. Days
    # left are counted from it, so a notice says what was true when it was decided.
    as_of: Moment | None = None

    @field_validator("locale")
    @classmethod
    def _known_locale(cls, locale: str) -> str:
        if locale not in LOCALES:
            raise ValueError(
                f"unknown locale {locale!r} for a {cls.kind!r} notice; "
                f"use one of: {', '.join(LOCALES)}"
            )
        return locale

    @model_validator(mode="after")
    def _identified(self, info: ValidationInfo) -> Self:
        if not (info.context or {}).get("stored"):
            needed = ("account_id", *self.identity, *(("as_of",) if self.counts_days else ()))
            lacking = [name for name in needed if getattr(self, name) is None]
            if lacking:
                raise ValueError(
                    f"a {self.kind!r} notice to queue needs {', '.join(lacking)} "
                    "(its ledger key and the moment it speaks from)"
                )
        return self

    @classmethod
    def to(cls, addressee: Addressee, **fields: Any) -> Self:
        """This notice for ``addressee``, with the kind's own ``fields``."""
        return cls(
            account_id=addressee.account_id,
            account_name=addressee.account_name,
            instance_id=addressee.instance_id,
            timezone=addressee.timezone,
            locale=addressee.locale,
            edition=addressee.edition,
            **fields,
        )

    # --- the ledger -----------------------------------------------------------------

    @abstractmethod
    def ledger_key(self) -> str:
        """The notice's unique key in the ledger, without the channel (``keys.py``)."""

    def offset_days_column(self) -> int | None:
        """The ledger's ``offset_days`` column (reminders only)."""
        return None

    def ref_at(self) -> datetime | None:
        """The ledger's ``ref_at`` column: the expiry a notice is about, when it is."""
        return None

    def context(self) -> dict[str, Any]:
        """What the ledger row stores and the templates show (``as_of`` when known)."""
        stored = self.model_dump(mode="json")
        if stored["as_of"] is None:
            del stored["as_of"]
        return stored

    def rows(self, created_at: datetime) -> list[dict[str, Any]]:
        """Ledger rows, one per channel."""
        assert self.account_id is not None  # a stored notice is not queued again
        return _rows(
            self.kind,
            self.account_id,
            self.instance_id,
            self.ledger_key(),
            created_at,
            self.context(),
            self.offset_days_column(),
            self.ref_at(),
        )

    def asks_action(self) -> bool:
        """Whether the notice asks the account to do something (renew, top up, change
        name servers): such a notice carries a link to the console, when one is set."""
        return False

    # --- SMS --------------------------------------------------------------------------

    def sms_params(self) -> dict[str, SmsParam]:
        """The provider template's variables, each with how to show it."""
        return {"name": ("line", self.account_name), "instance": ("text", self.instance_id)}

    def sms_variant(self) -> str | None:
        """Which wording of this kind: a provider's SMS template cannot branch."""
        return None

    def sms_template_code(self, prefix: str) -> str:
        """The provider template: one per kind, wording variant and language."""
        variant = self.sms_variant()
        return (
            prefix
            + self.kind.upper()
            + (f"_{variant}" if variant else "")
            + ("_ZH" if self.locale == "zh-CN" else "_EN")
        )
