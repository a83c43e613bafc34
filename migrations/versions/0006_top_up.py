"""top-ups of an account's balance, one per request key, so that a repeated request
adds nothing

Revision ID: 0006
Revises: 0005
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

import models.types

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "top_up",
        sa.Column("key", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("account_id", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("amount", models.types.Money(precision=14, scale=2), nullable=False),
        sa.Column("created_at", models.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(["account_id"], ["account.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("key"),
    )
    with op.batch_alter_table("top_up", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_top_up_account_id"), ["account_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("top_up", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_top_up_account_id"))
    op.drop_table("top_up")
