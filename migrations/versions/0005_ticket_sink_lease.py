"""a lease on a ticket being handed to its sink, so the call is made outside any
transaction and a crashed run's tickets are taken up again once the lease is over

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

import models.types

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("sink_claimed_until", models.types.UTCDateTime(), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("ticket", schema=None) as batch_op:
        batch_op.drop_column("sink_claimed_until")
