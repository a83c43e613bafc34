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

from sqlalchemy import and_, exists, select
from sqlmodel import Session, col

from dns_lifecycle.lifecycle.notices import Reminder
from dns_lifecycle.lifecycle.pricing import period_price
from dns_lifecycle.lifecycle.reminders import REMINDED_STATE, Window
from dns_lifecycle.store.notifications import insert_notices, overtaken_in_ledger
from dns_lifecycle.store.scan import ADDRESSEE_COLUMNS, AnySelect, row_addressee
from models import Account, Edition, Instance, Notification


def reminders_due(window: Window, instance_ids: list[str] | None = None) -> Callable[[], AnySelect]:
    """Instances owed the reminder of ``window``, for ``scan_batches``."""
    already = exists().where(
        and_(
            col(Notification.instance_id) == Instance.id,
            col(Notification.kind) == Reminder.kind,
            col(Notification.offset_days) == window.offset_days,
            col(Notification.ref_at) == Instance.expires_at,
        )
    )

    def query() -> AnySelect:
        stmt = (
            select(
                *ADDRESSEE_COLUMNS,
                col(Instance.auto_renew),
                col(Account.balance),
                col(Instance.billing_cycle),
                col(Edition.monthly_price),
                col(Edition.yearly_price),
            )
            .join(Account, col(Account.id) == Instance.account_id)
            .join(Edition, col(Edition.code) == Instance.edition_code)
            .where(
                col(Instance.state) == REMINDED_STATE,
                col(Instance.expires_at) > window.after,
                col(Instance.expires_at) <= window.until,
                ~already,
                # A backfill never sends a reminder a later notice overtook.
                ~overtaken_in_ledger(
                    Reminder.kind, window.offset_days, Instance.id, Instance.expires_at
                ),
            )
        )
        if instance_ids:
            stmt = stmt.where(col(Instance.id).in_(instance_ids))
        return stmt

    return query


def queue_reminders(
    session: Session, rows: Sequence[Any], *, offset_days: int, as_of: datetime, now: datetime
) -> int:
    """Queue the ``offset_days`` reminder for each of ``rows`` (from
    :func:`reminders_due`), speaking as of ``as_of``; returns how many notices were new."""
    notices: list[dict[str, Any]] = []
    for r in rows:
        price = period_price(r.monthly_price, r.yearly_price, r.billing_cycle)
        short = r.auto_renew and r.balance < price
        notices += Reminder.to(
            row_addressee(r),
            expires_at=r.expires_at,
            offset_days=offset_days,
            as_of=as_of,
            auto_renew=r.auto_renew,
            amount=price,
            balance=r.balance if r.auto_renew else None,
            top_up=price - r.balance if short else None,
        ).rows(now)
    return insert_notices(session, notices)
