"""Auto-renewal (rule 2): the scan that finds the instances due.

The window is ``lifecycle.renewal.auto_renewal_window``, the range form of
``is_auto_renewal_due``; ``store.subscriptions.auto_renew_batch`` re-checks each
instance under its lock and creates the orders.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from sqlalchemy import select
from sqlmodel import col

from dns_lifecycle.lifecycle.renewal import auto_renewal_window
from dns_lifecycle.store.scan import AnySelect
from models import Instance


def auto_renewal_due(
    as_of: datetime, lead_days: int, instance_ids: list[str] | None = None
) -> Callable[[], AnySelect]:
    """Active instances with auto-renewal on whose expiry is within the lead time."""
    after, until = auto_renewal_window(as_of, lead_days)

    def query() -> AnySelect:
        stmt = select(col(Instance.id), col(Instance.expires_at)).where(
            col(Instance.state) == "active",
            col(Instance.auto_renew).is_(True),
            col(Instance.expires_at) > after,
            col(Instance.expires_at) <= until,
        )
        return stmt.where(col(Instance.id).in_(instance_ids)) if instance_ids else stmt

    return query
