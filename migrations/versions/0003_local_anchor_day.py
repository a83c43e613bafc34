"""anchor days on the account's calendar

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-03 07:40:00

``instance.anchor_day`` was the day of the month of the expiry in UTC; months are now
counted on the account's own calendar, so the anchor becomes the day of the month in the
account's time zone. No column changes: each anchor is re-read from its expiry.
"""

import calendar
from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

_INSTANCE = sa.table(
    "instance",
    sa.column("id", sa.String),
    sa.column("account_id", sa.String),
    sa.column("expires_at", sa.DateTime(timezone=True)),
    sa.column("anchor_day", sa.Integer),
)
_ACCOUNT = sa.table("account", sa.column("id", sa.String), sa.column("timezone", sa.String))


def _reanchor(expires_at: datetime, anchor: int, old, new) -> int:
    """The anchor on the calendar of ``new`` of an expiry anchored on ``old``'s calendar.

    An anchor past the expiry's day (a month end of the old calendar) is kept only where
    the expiry is a month end of the new calendar too; anything else follows the day.
    """
    if expires_at.tzinfo is None:
        expires_at = expires_at.replace(tzinfo=UTC)
    before, after = expires_at.astimezone(old), expires_at.astimezone(new)
    if anchor > before.day and after.day == calendar.monthrange(after.year, after.month)[1]:
        return max(anchor, after.day)
    return after.day


def _move(to_local: bool) -> None:
    conn = op.get_bind()
    rows = conn.execute(
        sa.select(
            _INSTANCE.c.id, _INSTANCE.c.expires_at, _INSTANCE.c.anchor_day, _ACCOUNT.c.timezone
        ).join(_ACCOUNT, _ACCOUNT.c.id == _INSTANCE.c.account_id)
    ).all()
    changes = []
    for instance_id, expires_at, anchor, zone_name in rows:
        zone = ZoneInfo(zone_name)
        old, new = (UTC, zone) if to_local else (zone, UTC)
        anchor_after = _reanchor(expires_at, anchor, old, new)
        if anchor_after != anchor:
            changes.append({"b_id": instance_id, "b_anchor": anchor_after})
    if changes:
        conn.execute(
            _INSTANCE.update()
            .where(_INSTANCE.c.id == sa.bindparam("b_id"))
            .values(anchor_day=sa.bindparam("b_anchor")),
            changes,
        )


def upgrade() -> None:
    _move(to_local=True)


def downgrade() -> None:
    _move(to_local=False)
