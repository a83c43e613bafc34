"""Column types and vocabularies shared by the tables.

A vocabulary is the closed set of words a column may hold (an instance's state, a
billing cycle, a language). Each is defined here once, as a ``Literal`` that the models
declare and as a tuple of its words (``INSTANCE_STATES``) for the code that lists or
checks them; no other module spells the set out again.
"""

from __future__ import annotations

import functools
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal, get_args
from zoneinfo import available_timezones

from sqlalchemy import DateTime, Numeric
from sqlalchemy.types import TypeDecorator
from sqlmodel import AutoString, Field

# --- vocabularies ----------------------------------------------------------------------

Locale = Literal["en-US", "zh-CN"]
LOCALES: tuple[Locale, ...] = get_args(Locale)

BillingCycle = Literal["monthly", "yearly"]
BILLING_CYCLES: tuple[BillingCycle, ...] = get_args(BillingCycle)

InstanceState = Literal["active", "expired", "released"]
INSTANCE_STATES: tuple[InstanceState, ...] = get_args(InstanceState)

ClusterKind = Literal["paid", "free"]
CLUSTER_KINDS: tuple[ClusterKind, ...] = get_args(ClusterKind)

OrderKind = Literal["auto_renewal", "manual_renewal", "upgrade"]
ORDER_KINDS: tuple[OrderKind, ...] = get_args(OrderKind)

# What a request key was given for: one namespace across orders, switches and top-ups.
RequestAction = Literal["manual_renewal", "upgrade", "auto_renew", "top_up"]
REQUEST_ACTIONS: tuple[RequestAction, ...] = get_args(RequestAction)

OrderState = Literal["pending", "paid", "failed"]
ORDER_STATES: tuple[OrderState, ...] = get_args(OrderState)

Channel = Literal["email", "sms"]
CHANNELS: tuple[Channel, ...] = get_args(Channel)

# A notification, and a ticket's delivery to the ticket sink.
DeliveryState = Literal["pending", "sent", "failed", "skipped"]
DELIVERY_STATES: tuple[DeliveryState, ...] = get_args(DeliveryState)

TicketState = Literal["open", "resolved"]
TICKET_STATES: tuple[TicketState, ...] = get_args(TicketState)

RecordType = Literal["A", "AAAA", "CNAME", "MX", "TXT", "NS", "SRV", "CAA", "PTR"]
RECORD_TYPES: tuple[RecordType, ...] = get_args(RecordType)

# Files of the time zone database that are not zones: the host's own setting, the
# POSIX default rules, and "Factory", a placeholder that shows "-00" for any time.
_NOT_ZONES = frozenset({"Factory", "localtime", "posixrules"})


@functools.cache
def time_zones() -> frozenset[str]:
    """The IANA time zone names an account may use (``available_timezones()`` without
    the entries that are files of the database rather than zones)."""
    return frozenset(
        name
        for name in available_timezones()
        if name not in _NOT_ZONES and not name.startswith(("posix/", "right/"))
    )


def word(max_length: int, **kwargs: Any) -> Any:
    """A ``Field`` for a vocabulary column: a ``Literal`` annotation stored as
    VARCHAR(max_length) (SQLModel infers no column type from a ``Literal``)."""
    return Field(max_length=max_length, sa_type=AutoString(length=max_length), **kwargs)


# --- column types ----------------------------------------------------------------------


class UTCDateTime(TypeDecorator[datetime]):
    """An aware datetime, stored as UTC, always read back aware in UTC.

    SQLite keeps no offset, so everything is normalised to UTC on the way in; a naive
    value is a programming error and is refused rather than guessed at.
    """

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r}: give it a time zone")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect):
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


# The digits of a money column: NUMERIC(14, 2).
MONEY_PRECISION, MONEY_SCALE = 14, 2
# The largest amount a money column holds: 999,999,999,999.99. What would write more
# (a balance after a top-up) is refused before it is written.
MONEY_MAX = Decimal(10) ** (MONEY_PRECISION - MONEY_SCALE) - Decimal(1).scaleb(-MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    """A Decimal with two places; stored as NUMERIC(14, 2) (text-exact on SQLite)."""

    impl = Numeric(MONEY_PRECISION, MONEY_SCALE, asdecimal=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = Decimal(value).quantize(Decimal("0.01"))
        if abs(value) > MONEY_MAX:
            # PostgreSQL would refuse it, SQLite keep it as text that nothing reads back:
            # the callers check amounts first, so this is a programming error.
            raise ValueError(f"amount {value} does not fit NUMERIC(14, 2)")
        # SQLite has no decimal type: a string keeps the cents exact.
        return str(value) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return Decimal(str(value)).quantize(Decimal("0.01"))

    def load_dialect_impl(self, dialect):
        from sqlalchemy import String

        return dialect.type_descriptor(String(32) if dialect.name == "sqlite" else self.impl)
