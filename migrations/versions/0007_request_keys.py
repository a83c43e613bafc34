"""one namespace of request keys: a key names one request, whatever its action (a
manual renewal, an upgrade, an auto-renewal switch, a top-up) or subject

Revision ID: 0007
Revises: 0006

The keys already used are taken in: every top-up's, then each manual renewal's and
upgrade's, earliest first. A key that earlier requests used for more than one instance
is held by the earliest of them; the later orders stay as they are.
"""

from zoneinfo import ZoneInfo

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None

_TOP_UP = sa.table(
    "top_up",
    sa.column("id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("account_id", sa.String),
    sa.column("amount", models.types.Money()),
    sa.column("created_at", models.types.UTCDateTime()),
)
_ORDERS = sa.table(
    "orders",
    sa.column("id", sa.Integer),
    sa.column("key", sa.String),
    sa.column("instance_id", sa.String),
    sa.column("kind", sa.String),
    sa.column("period_start", models.types.UTCDateTime()),
    sa.column("period_end", models.types.UTCDateTime()),
    sa.column("edition_code", sa.String),
    sa.column("created_at", models.types.UTCDateTime()),
)
_INSTANCE = sa.table(
    "instance",
    sa.column("id", sa.String),
    sa.column("account_id", sa.String),
    sa.column("billing_cycle", sa.String),
)
_ACCOUNT = sa.table("account", sa.column("id", sa.String), sa.column("timezone", sa.String))
_REQUEST = sa.table(
    "request",
    sa.column("key", sa.String),
    sa.column("action", sa.String),
    sa.column("subject", sa.String),
    sa.column("params", sa.String),
    sa.column("order_id", sa.Integer),
    sa.column("top_up_id", sa.Integer),
    sa.column("created_at", models.types.UTCDateTime()),
)


def _periods(start, end, cycle: str, zone: str) -> int:
    """How many periods a renewal from ``start`` to ``end`` bought: the local months
    between them (renewals land in the month they count to) over the cycle's length."""
    tz = ZoneInfo(zone)
    a, b = start.astimezone(tz), end.astimezone(tz)
    months = (b.year - a.year) * 12 + b.month - a.month
    return months // (12 if cycle == "yearly" else 1)


def _backfill() -> None:
    conn = op.get_bind()
    rows: list[dict] = []
    held: set[str] = set()

    def hold(row: dict) -> None:
        if row["key"] not in held and len(row["key"]) <= 64:
            held.add(row["key"])
            rows.append(row)

    for top_up in conn.execute(sa.select(_TOP_UP).order_by(_TOP_UP.c.created_at, _TOP_UP.c.id)):
        hold(
            {
                "key": top_up.key,
                "action": "top_up",
                "subject": top_up.account_id,
                "params": f"amount={top_up.amount}",
                "order_id": None,
                "top_up_id": top_up.id,
                "created_at": top_up.created_at,
            }
        )
    orders = conn.execute(
        sa.select(_ORDERS, _INSTANCE.c.billing_cycle, _ACCOUNT.c.timezone)
        .join(_INSTANCE, _INSTANCE.c.id == _ORDERS.c.instance_id)
        .join(_ACCOUNT, _ACCOUNT.c.id == _INSTANCE.c.account_id)
        .where(_ORDERS.c.kind.in_(("manual_renewal", "upgrade")))
        .order_by(_ORDERS.c.created_at, _ORDERS.c.id)
    )
    for order in orders:
        prefix = f"{order.kind}:{order.instance_id}:"
        if not order.key.startswith(prefix):
            continue
        if order.kind == "upgrade":
            params = f"edition={order.edition_code}"
        else:
            n = _periods(order.period_start, order.period_end, order.billing_cycle, order.timezone)
            params = f"periods={n}"
        hold(
            {
                "key": order.key[len(prefix) :],
                "action": order.kind,
                "subject": order.instance_id,
                "params": params,
                "order_id": order.id,
                "top_up_id": None,
                "created_at": order.created_at,
            }
        )
    if rows:
        conn.execute(_REQUEST.insert(), rows)


def upgrade() -> None:
    op.create_table(
        "request",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("action", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("subject", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("params", sqlmodel.sql.sqltypes.AutoString(length=100), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("top_up_id", sa.Integer(), nullable=True),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"]),
        sa.ForeignKeyConstraint(["top_up_id"], ["top_up.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    _backfill()


def downgrade() -> None:
    op.drop_table("request")
