"""live DNS clusters and the staged release of each domain

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-03 07:40:00
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models.types


revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table('cluster', schema=None) as batch_op:
        batch_op.add_column(sa.Column('backend', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False, server_default='database'))
        batch_op.add_column(sa.Column('api_url', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True))
        batch_op.add_column(sa.Column('server_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False, server_default='localhost'))
        batch_op.add_column(sa.Column('nameserver_addresses', sa.JSON(), nullable=False, server_default='[]'))

    op.create_table('domain_release',
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('stage', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('records', sa.JSON(), nullable=True),
    sa.Column('delegation', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('switch_task', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('verify_failures', sa.Integer(), nullable=False),
    sa.Column('blocked', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=True),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('verified_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('delegated_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('drain_until', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('deleted_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('updated_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domain.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('domain_id')
    )
    with op.batch_alter_table('domain_release', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domain_release_instance_id'), ['instance_id'], unique=False)
        batch_op.create_index('ix_domain_release_stage', ['stage'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('domain_release', schema=None) as batch_op:
        batch_op.drop_index('ix_domain_release_stage')
        batch_op.drop_index(batch_op.f('ix_domain_release_instance_id'))
    op.drop_table('domain_release')
    with op.batch_alter_table('cluster', schema=None) as batch_op:
        batch_op.drop_column('nameserver_addresses')
        batch_op.drop_column('server_id')
        batch_op.drop_column('api_url')
        batch_op.drop_column('backend')
