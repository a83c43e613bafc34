"""Renewal reminders (rule 1): which instances are due in a window, and queueing them.

One range scan per offset window (``lifecycle.reminders.reminder_windows``): the
instances in it are active (``REMINDED_STATE``) and not yet reminded of that offset
for their current expiry, the rule ``lifecycle.reminders.reminder_due`` states per
instance. Nothing here commits.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, exists, select
from sqlmodel import Session

from dns_lifecycle.lifecycle.notices import Reminder
from dns_lifecycle.lifecycle.pricing import period_price
from dns_lifecycle.lifecycle.reminders import REMINDED_STATE, Window
from dns_lifecycle.store.notifications import insert_notices, overtaken_in_ledger
from dns_lifecycle.store.scan import ADDRESSEE_COLUMNS, row_addressee
from models import Account, Edition, Instance, Notification


def reminders_due(
    window: Window, instance_ids: list[str] | None = None
) -> Callable[[], Select[Any]]:
    """Instances owed the reminder of ``window``, for ``scan_batches``."""
    already = exists().where(
        and_(
            Notification.instance_id == Instance.id,
            Notification.kind == Reminder.kind,
            Notification.offset_days == window.offset_days,
            Notification.ref_at == Instance.expires_at,
        )
    )

    def query() -> Select[Any]:
        stmt = (
            select(
                *ADDRESSEE_COLUMNS,
                Instance.auto_renew,
                Instance.billing_cycle,
                Edition.monthly_price,
                Edition.yearly_price,
            )
            .join(Account, Account.id == Instance.account_id)
            .join(Edition, Edition.code == Instance.edition_code)
            .where(
                Instance.state == REMINDED_STATE,
                Instance.expires_at > window.after,
                Instance.expires_at <= window.until,
                ~already,
                # A backfill never sends a reminder a later notice overtook.
                ~overtaken_in_ledger(
                    Reminder.kind, window.offset_days, Instance.id, Instance.expires_at
                ),
            )
        )
        if instance_ids:
            stmt = stmt.where(Instance.id.in_(instance_ids))
        return stmt

    return query


def queue_reminders(
    session: Session, rows: Sequence[Any], *, offset_days: int, as_of: datetime, now: datetime
) -> int:
    """Queue the ``offset_days`` reminder for each of ``rows`` (from
    :func:`reminders_due`), speaking as of ``as_of``; returns how many notices were new."""
    notices: list[dict[str, Any]] = []
    for r in rows:
        notices += Reminder.to(
            row_addressee(r),
            expires_at=r.expires_at,
            offset_days=offset_days,
            as_of=as_of,
            auto_renew=r.auto_renew,
            amount=period_price(r.monthly_price, r.yearly_price, r.billing_cycle),
        ).rows(now)
    return insert_notices(session, notices)
