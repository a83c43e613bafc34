"""Notices owed to an account: one ledger row per channel, with what it will say.

Rule 8: every step that changes an account's service is told by email *and* SMS. The
rows are built here and written by the step in the same transaction as its decision,
so a notice exists exactly when the change it reports does.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

CHANNELS = ("email", "sms")
NOTICE_KINDS = (
    "reminder",
    "order_created",
    "renewed",
    "renewal_failed",
    "upgraded",
    "auto_renew_changed",
    "expired",
    "release_warning",
    "released",
    "ticket_resolved",
)


@dataclass(frozen=True)
class Addressee:
    """The parts of an account and instance every notice mentions."""

    account_id: str
    account_name: str
    locale: str
    timezone: str
    instance_id: str
    edition: str


def stamp(moment: datetime) -> str:
    """A moment as it appears in ledger and order keys: UTC, to the second."""
    return moment.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")


def iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def money(amount: Decimal) -> str:
    return str(Decimal(amount).quantize(Decimal("0.01")))


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
    """Ledger rows (one per channel) for one notice; ``key`` gets ``:email``/``:sms``."""
    full_context = {
        "account_name": to.account_name,
        "instance_id": to.instance_id,
        "timezone": to.timezone,
        "locale": to.locale,
        "edition": to.edition,
        **context,
    }
    return [
        {
            "key": f"{key}:{channel}",
            "account_id": to.account_id,
            "instance_id": to.instance_id,
            "channel": channel,
            "kind": kind,
            "offset_days": offset_days,
            "ref_at": ref_at,
            "context": full_context,
            "state": "pending",
            "attempts": 0,
            "created_at": created_at,
        }
        for channel in CHANNELS
    ]
