"""ticket sink delivery state

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 06:50:54.986121
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models.types


revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.add_column(sa.Column('sink_state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False, server_default='pending'))
        batch_op.add_column(sa.Column('sink_attempts', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('sink_error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_column('sink_error')
        batch_op.drop_column('sink_attempts')
        batch_op.drop_column('sink_state')

