"""the anchor's local time of day, kept while a daylight-saving gap has moved an expiry
off it, so that the next period returns to it

Revision ID: 0008
Revises: 0007

No value can be recovered for an expiry already moved: those renew from the moved time,
as before, until an operator imports the anchor time.
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("anchor_time", sa.Time(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("instance", schema=None) as batch_op:
        batch_op.drop_column("anchor_time")
