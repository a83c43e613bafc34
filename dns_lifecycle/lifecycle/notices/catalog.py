"""The notice catalog: one class per notice kind.

Each class owns what its notice is: the context fields stored with it (and so what
its templates may show), its ledger key, its SMS provider variables, the wording
variant its SMS template code names, and sample values for the preview gallery.

To add a kind: write a :class:`Notice` subclass here with ``kind``, its fields,
``ledger_key`` (add the key's spelling to ``keys.py``), ``sms_params`` and, if its
wording branches, ``sms_variant`` and ``preview_variants``; ``counts_days`` if its
wording says days left (the ``when`` filter, counted from ``as_of``), ``asks_action``
if it asks the account to do something (it then links to the console); add it to ``CATALOG``;
add its templates (``templates/emails/<kind>.<locale>.{subject.txt,txt,html}`` and
``templates/sms/<kind>.<locale>.txt``). The renderer, the preview and the ledger
need nothing else.
"""

# Over 500 lines on purpose: the catalog is one list, every notice kind beside the others,
# so that adding a kind (the recipe above) happens in one place.
from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, ClassVar, get_args

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from dns_lifecycle.core.errors import InputError
from dns_lifecycle.lifecycle.calendar import zone_of
from dns_lifecycle.lifecycle.expiry import REGISTRAR_FAILED
from dns_lifecycle.lifecycle.nameservers import NameserverAction
from dns_lifecycle.lifecycle.notices.base import STORED, Moment, Money, Notice, SmsParam
from dns_lifecycle.lifecycle.notices.keys import (
    auto_renew_changed_key,
    expiry_notice_key,
    order_notice_key,
    reminder_key,
    renewal_failed_key,
    ticket_resolved_key,
)

# What release did about a domain: the rule's action, or a registrar that failed the
# switch (its owner changes the name servers by hand, as for a lock).
DOMAIN_ACTIONS: tuple[str, ...] = (*get_args(NameserverAction), REGISTRAR_FAILED)

_SAMPLE_EXPIRY = "2026-12-26T02:00:00+00:00"
_SAMPLE_ORDER = "ord-20261219-000042"
FREE_NAMESERVERS = ["ns1.free-dns.example.net", "ns2.free-dns.example.net"]


def _auto_or_manual(auto_renew: bool) -> str:
    return "AUTO" if auto_renew else "MANUAL"


class Reminder(Notice):
    """Rule 1: the instance expires soon; ``offset_days`` is the reminder it is (its
    ledger identity), the days left are counted from ``as_of`` to ``expires_at``."""

    kind: ClassVar[str] = "reminder"
    counts_days: ClassVar[bool] = True
    sample: ClassVar[dict[str, Any]] = {
        "expires_at": _SAMPLE_EXPIRY,
        "offset_days": 7,
        "auto_renew": True,
        "amount": "1180.00",
        "as_of": "2026-12-19T02:00:00+00:00",
    }
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "auto-renew": {"auto_renew": True},
        "manual": {"auto_renew": False},
        # A catch-up: the 30-day reminder of a run that evaluates 8 days before expiry.
        "manual-catch-up": {
            "auto_renew": False,
            "offset_days": 30,
            "as_of": "2026-12-18T02:00:00+00:00",
        },
        "manual-last-day": {
            "auto_renew": False,
            "offset_days": 1,
            "as_of": "2026-12-25T02:00:00+00:00",
        },
        # Auto-renewal on, but the balance would not pay for it.
        "auto-renew-short": {"auto_renew": True, "balance": "86.20", "top_up": "1093.80"},
    }

    expires_at: Moment
    offset_days: int
    auto_renew: bool
    amount: Money
    # With auto-renewal on: the balance when the reminder was decided, and what it lacked
    # for the renewal (None when it covered it). A short balance is told to top up or
    # renew by hand, never that nothing needs doing.
    balance: Money | None = None
    top_up: Money | None = None

    @model_validator(mode="after")
    def _shortfall_with_its_balance(self) -> Reminder:
        if self.top_up is not None and self.balance is None:
            raise ValueError("top_up needs balance: a short balance is told with both")
        return self

    def context(self) -> dict[str, Any]:
        stored = super().context()
        # Stored only when known, so a manual reminder's context is what it always was
        # (the templates ask whether ``top_up`` is defined).
        for name in ("balance", "top_up"):
            if stored[name] is None:
                del stored[name]
        return stored

    def ledger_key(self) -> str:
        return reminder_key(self.instance_id, self.expires_at, self.offset_days)

    def offset_days_column(self) -> int | None:
        return self.offset_days

    def ref_at(self) -> datetime | None:
        return self.expires_at

    def is_short(self) -> bool:
        """Auto-renewal on, but the balance did not cover the next period."""
        return self.auto_renew and self.top_up is not None

    def sms_params(self) -> dict[str, SmsParam]:
        params = super().sms_params() | {
            "date": ("time", self.expires_at),
            "when": ("when", self.expires_at),
            "amount": ("amount", self.amount),
        }
        if self.is_short():
            # The AUTO_SHORT template names the shortfall, as the email does.
            params |= {"balance": ("amount", self.balance), "top_up": ("amount", self.top_up)}
        return params

    def sms_variant(self) -> str | None:
        return "AUTO_SHORT" if self.is_short() else _auto_or_manual(self.auto_renew)

    def asks_action(self) -> bool:
        return True  # renew, or keep the balance topped up


class OrderCreated(Notice):
    """Rule 2: an auto-renewal order was created."""

    kind: ClassVar[str] = "order_created"
    identity: ClassVar[tuple[str, ...]] = ("order_key",)
    sample: ClassVar[dict[str, Any]] = {
        "order_id": _SAMPLE_ORDER,
        "order_kind": "auto_renewal",
        "period_start": _SAMPLE_EXPIRY,
        "period_end": "2027-12-26T02:00:00+00:00",
        "amount": "1180.00",
    }
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "auto-renewal": {"order_kind": "auto_renewal"},
        "manual-renewal": {"order_kind": "manual_renewal"},
    }

    order_key: str | None = Field(default=None, exclude=True)
    order_id: int | str
    order_kind: str
    period_start: Moment
    period_end: Moment
    amount: Money

    def ledger_key(self) -> str:
        assert self.order_key is not None
        return order_notice_key(self.kind, self.order_key)

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "order": ("text", self.order_id),
            "type": ("order_kind", self.order_kind),
            "amount": ("amount", self.amount),
            "date": ("time", self.period_end),
        }

    def asks_action(self) -> bool:
        return self.order_kind == "auto_renewal"  # make sure the balance covers it


class Renewed(Notice):
    """Rules 2 and 3: an order renewed the instance."""

    kind: ClassVar[str] = "renewed"
    identity: ClassVar[tuple[str, ...]] = ("order_key",)
    sample: ClassVar[dict[str, Any]] = {
        "order_id": _SAMPLE_ORDER,
        "order_kind": "auto_renewal",
        "amount": "1180.00",
        "expires_at": "2027-12-26T02:00:00+00:00",
        "balance": "320.50",
    }

    order_key: str | None = Field(default=None, exclude=True)
    order_id: int | str
    order_kind: str
    amount: Money
    expires_at: Moment
    balance: Money

    def ledger_key(self) -> str:
        assert self.order_key is not None
        return order_notice_key(self.kind, self.order_key)

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "amount": ("amount", self.amount),
            "date": ("time", self.expires_at),
            "balance": ("amount", self.balance),
        }


class RenewalFailed(Notice):
    """Rule 2: the balance did not cover the auto-renewal order (told once a local day)."""

    kind: ClassVar[str] = "renewal_failed"
    identity: ClassVar[tuple[str, ...]] = ("order_key",)
    counts_days: ClassVar[bool] = True
    sample: ClassVar[dict[str, Any]] = {
        "order_id": _SAMPLE_ORDER,
        "amount": "1180.00",
        "balance": "86.20",
        "expires_at": _SAMPLE_EXPIRY,
        "reason": "insufficient_balance",
        "as_of": "2026-12-20T02:00:00+00:00",
    }

    order_key: str | None = Field(default=None, exclude=True)
    order_id: int | str
    amount: Money
    balance: Money
    expires_at: Moment
    reason: str  # a code, worded by the template in the account's language

    def ledger_key(self) -> str:
        assert self.order_key is not None and self.as_of is not None
        return renewal_failed_key(self.order_key, self.as_of, zone_of(self.timezone))

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "amount": ("amount", self.amount),
            "balance": ("amount", self.balance),
            "date": ("time", self.expires_at),
        }

    def asks_action(self) -> bool:
        return True  # top up or renew by hand


class Upgraded(Notice):
    """Rule 4: the instance moved to a higher edition."""

    kind: ClassVar[str] = "upgraded"
    identity: ClassVar[tuple[str, ...]] = ("order_key",)
    sample: ClassVar[dict[str, Any]] = {
        "edition": "enterprise-ultimate",
        "order_id": "ord-20260715-000917",
        "from_edition": "enterprise-standard",
        "to_edition": "enterprise-ultimate",
        "amount": "1056.44",
        "expires_at": _SAMPLE_EXPIRY,
    }

    order_key: str | None = Field(default=None, exclude=True)
    order_id: int | str
    from_edition: str
    to_edition: str
    amount: Money
    expires_at: Moment

    @model_validator(mode="before")
    @classmethod
    def _of_the_new_edition(cls, data: Any) -> Any:
        # The notice is about the instance as upgraded: what it says of "the edition"
        # (the footer) is the new one, also for a notice stored with the old one.
        if isinstance(data, dict) and data.get("to_edition") is not None:
            return {**data, "edition": data["to_edition"]}
        return data

    def ledger_key(self) -> str:
        assert self.order_key is not None
        return order_notice_key(self.kind, self.order_key)

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "edition": ("edition", self.to_edition),
            "amount": ("amount", self.amount),
        }


class AutoRenewChanged(Notice):
    """Rule 2: auto-renewal was switched on or off."""

    kind: ClassVar[str] = "auto_renew_changed"
    identity: ClassVar[tuple[str, ...]] = ("request_key",)
    sample: ClassVar[dict[str, Any]] = {"auto_renew": True, "expires_at": _SAMPLE_EXPIRY}
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "on": {"auto_renew": True},
        "off": {"auto_renew": False},
    }

    request_key: str | None = Field(default=None, exclude=True)
    auto_renew: bool
    expires_at: Moment

    def ledger_key(self) -> str:
        assert self.request_key is not None
        return auto_renew_changed_key(self.instance_id, self.request_key)

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {"date": ("time", self.expires_at)}

    def sms_variant(self) -> str | None:
        return _auto_or_manual(self.auto_renew)

    def asks_action(self) -> bool:
        return True  # keep the balance up, or renew by hand


class Expired(Notice):
    """Rule 5: the instance expired; it is released at ``release_at``."""

    kind: ClassVar[str] = "expired"
    counts_days: ClassVar[bool] = True
    sample: ClassVar[dict[str, Any]] = {
        "expires_at": _SAMPLE_EXPIRY,
        "release_at": "2027-01-02T02:00:00+00:00",
        "as_of": "2026-12-26T02:00:00+00:00",
    }

    expires_at: Moment
    release_at: Moment

    def ledger_key(self) -> str:
        return expiry_notice_key(self.kind, self.instance_id, self.expires_at)

    def ref_at(self) -> datetime | None:
        return self.expires_at

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {"date": ("time", self.release_at)}

    def asks_action(self) -> bool:
        return True  # renew before release


class ReleaseWarning(Notice):
    """Rule 5: the last warning, in the 24 hours before release."""

    kind: ClassVar[str] = "release_warning"
    identity: ClassVar[tuple[str, ...]] = ("expires_at",)
    counts_days: ClassVar[bool] = True
    sample: ClassVar[dict[str, Any]] = {
        "release_at": "2027-01-02T02:00:00+00:00",
        "as_of": "2027-01-01T02:00:00+00:00",
    }
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "tomorrow": {},
        # Told at 13:00 of a release at 23:59 the same day, both in Shanghai.
        "today": {
            "timezone": "Asia/Shanghai",
            "release_at": "2027-01-02T15:59:00+00:00",
            "as_of": "2027-01-02T05:00:00+00:00",
        },
    }

    expires_at: datetime | None = Field(default=None, exclude=True)
    release_at: Moment

    def ledger_key(self) -> str:
        assert self.expires_at is not None
        return expiry_notice_key(self.kind, self.instance_id, self.expires_at)

    def ref_at(self) -> datetime | None:
        return self.expires_at

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "date": ("time", self.release_at),
            "when": ("when", self.release_at),
        }

    def asks_action(self) -> bool:
        return True  # renew now


class ReleasedDomain(BaseModel):
    """What release did about one domain's delegation."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    action: str
    registrar: str
    # For a domain its owner must re-delegate: by when, before the paid copy goes.
    change_by: Moment | None = Field(default=None, exclude_if=lambda v: v is None)
    # The paid copy went with the release (a cluster with no DNS caches to wait for,
    # the database backend): the old name servers answer no more, there is no date.
    paid_copy_deleted: bool = Field(default=False, exclude_if=lambda v: not v)

    @field_validator("action")
    @classmethod
    def _known_action(cls, action: str) -> str:
        if action not in DOMAIN_ACTIONS:
            raise ValueError(f"unknown action {action!r}; use one of: {', '.join(DOMAIN_ACTIONS)}")
        return action


class Released(Notice):
    """Rules 6 and 7: the instance was released; what each domain needs."""

    kind: ClassVar[str] = "released"
    identity: ClassVar[tuple[str, ...]] = ("expires_at",)
    sample: ClassVar[dict[str, Any]] = {
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
    }

    expires_at: datetime | None = Field(default=None, exclude=True)
    released_at: Moment
    free_nameservers: list[str]
    domains: list[ReleasedDomain]

    def ledger_key(self) -> str:
        assert self.expires_at is not None
        return expiry_notice_key(self.kind, self.instance_id, self.expires_at)

    def ref_at(self) -> datetime | None:
        return self.expires_at

    def domains_to_act_on(self) -> int:
        return sum(1 for d in self.domains if d.action != "switched")

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {
            "date": ("time", self.released_at),
            "count": ("text", self.domains_to_act_on()),
        }

    def sms_variant(self) -> str | None:
        return "ACTION" if self.domains_to_act_on() else "DONE"

    def asks_action(self) -> bool:
        return self.domains_to_act_on() > 0  # unlock, or change the name servers


class TicketResolved(Notice):
    """Rule 7: the domain's delegation now points where the ticket asked (seen in DNS),
    or a person closed the ticket once its action was done (``by_hand``: no name
    servers are claimed, none having been checked)."""

    kind: ClassVar[str] = "ticket_resolved"
    identity: ClassVar[tuple[str, ...]] = ("ticket_id",)
    sample: ClassVar[dict[str, Any]] = {
        "domain": "northwind-shop.de",
        "nameservers": FREE_NAMESERVERS,
    }
    preview_variants: ClassVar[dict[str, dict[str, Any]]] = {
        "seen-in-dns": {"by_hand": False},
        "by-hand": {"by_hand": True, "nameservers": []},
    }

    ticket_id: int | None = Field(default=None, exclude=True)
    domain: str
    nameservers: list[str]
    by_hand: bool = False

    def ledger_key(self) -> str:
        assert self.ticket_id is not None
        return ticket_resolved_key(self.ticket_id)

    def context(self) -> dict[str, Any]:
        # Stored only when set: the rows of tickets closed by DNS stay as they were.
        stored = super().context()
        if not self.by_hand:
            del stored["by_hand"]
        return stored

    def sms_params(self) -> dict[str, SmsParam]:
        return super().sms_params() | {"domain": ("domain", self.domain)}


CATALOG: dict[str, type[Notice]] = {
    cls.kind: cls
    for cls in (
        Reminder,
        OrderCreated,
        Renewed,
        RenewalFailed,
        Upgraded,
        AutoRenewChanged,
        Expired,
        ReleaseWarning,
        Released,
        TicketResolved,
    )
}
NOTICE_KINDS: tuple[str, ...] = tuple(CATALOG)


def notice_class(kind: str) -> type[Notice]:
    try:
        return CATALOG[kind]
    except KeyError:
        raise InputError(
            f"unknown notice kind {kind!r}; use one of: {', '.join(NOTICE_KINDS)}"
        ) from None


def read_stored(kind: str, context: Mapping[str, Any], queued_at: datetime | None = None) -> Notice:
    """The notice a ledger row's ``kind`` and ``context`` hold, checked; an
    ``InputError`` names every missing or bad value.

    A row queued before notices carried ``as_of`` speaks from ``queued_at``, the
    row's creation time: the closest record of when it was decided.
    """
    cls = notice_class(kind)
    if queued_at is not None and isinstance(context, Mapping) and context.get("as_of") is None:
        context = {**context, "as_of": queued_at}
    try:
        return cls.model_validate(context, context=STORED)
    except ValidationError as exc:
        instance = context.get("instance_id", "?") if isinstance(context, Mapping) else "?"
        missing = [_path(e["loc"]) for e in exc.errors() if e["type"] == "missing"]
        if missing:
            raise InputError(
                f"the context of a {kind!r} notice for instance {instance!r} lacks "
                f"{', '.join(missing)}; the code that queues this notice must fill them in"
            ) from None
        problems = "; ".join(f"{_path(e['loc'])}: {e['msg']}" for e in exc.errors())
        raise InputError(
            f"the context of a {kind!r} notice for instance {instance!r} is invalid: {problems}"
        ) from None


def _path(loc: tuple[int | str, ...]) -> str:
    text = ""
    for part in loc:
        text += f"[{part}]" if isinstance(part, int) else (f".{part}" if text else str(part))
    return text
