"""initial schema

Revision ID: 0001
Revises: 
Create Date: 2026-11-26 06:44:47.267062
"""

from alembic import op
import sqlalchemy as sa
import sqlmodel
import models.types


revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('account',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False),
    sa.Column('phone', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('balance', models.types.Money(precision=14, scale=2), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    op.create_table('cluster',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('nameservers', sa.JSON(), nullable=False),
    sa.PrimaryKeyConstraint('code')
    )
    op.create_table('edition',
    sa.Column('code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('rank', sa.Integer(), nullable=False),
    sa.Column('monthly_price', models.types.Money(precision=14, scale=2), nullable=False),
    sa.Column('yearly_price', models.types.Money(precision=14, scale=2), nullable=False),
    sa.PrimaryKeyConstraint('code'),
    sa.UniqueConstraint('rank')
    )
    op.create_table('instance',
    sa.Column('id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('edition_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('billing_cycle', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('expires_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('anchor_day', sa.Integer(), nullable=False),
    sa.Column('auto_renew', sa.Boolean(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('cluster_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('released_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['cluster_code'], ['cluster.code'], ),
    sa.ForeignKeyConstraint(['edition_code'], ['edition.code'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_instance_account_id'), ['account_id'], unique=False)
        batch_op.create_index('ix_instance_state_expires', ['state', 'expires_at'], unique=False)

    op.create_table('domain',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('registrar', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('epp_statuses', sa.JSON(), nullable=False),
    sa.Column('nameservers', sa.JSON(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('name')
    )
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_domain_instance_id'), ['instance_id'], unique=False)

    op.create_table('notification',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('account_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('channel', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('offset_days', sa.Integer(), nullable=True),
    sa.Column('ref_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('context', sa.JSON(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('error', sqlmodel.sql.sqltypes.AutoString(length=1000), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('sent_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('claim_token', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('claimed_until', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['account_id'], ['account.id'], ),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index('ix_notification_instance_kind', ['instance_id', 'kind'], unique=False)
        batch_op.create_index('ix_notification_state_id', ['state', 'id'], unique=False)

    op.create_table('orders',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('period_start', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('period_end', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('amount', models.types.Money(precision=14, scale=2), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
    sa.Column('edition_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=True),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('paid_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('key')
    )
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_orders_instance_id'), ['instance_id'], unique=False)

    op.create_table('zone_snapshot',
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('domain_name', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('zone_text', sa.Text(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('zone_snapshot', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_zone_snapshot_instance_id'), ['instance_id'], unique=False)

    op.create_table('record',
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('cluster_code', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('type', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('host', sqlmodel.sql.sqltypes.AutoString(length=253), nullable=False),
    sa.Column('value', sqlmodel.sql.sqltypes.AutoString(length=4000), nullable=False),
    sa.Column('ttl', sa.Integer(), nullable=False),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['cluster_code'], ['cluster.code'], ),
    sa.ForeignKeyConstraint(['domain_id'], ['domain.id'], ),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('record', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_record_domain_id'), ['domain_id'], unique=False)

    op.create_table('ticket',
    sa.Column('domain_id', sa.Integer(), nullable=False),
    sa.Column('instance_id', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=32), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False),
    sa.Column('open_key', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('details', sa.JSON(), nullable=False),
    sa.Column('created_at', models.types.UTCDateTime(timezone=True), nullable=False),
    sa.Column('resolved_at', models.types.UTCDateTime(timezone=True), nullable=True),
    sa.Column('id', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['domain_id'], ['domain.id'], ),
    sa.ForeignKeyConstraint(['instance_id'], ['instance.id'], ),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('open_key')
    )
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_ticket_domain_id'), ['domain_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('ticket', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_ticket_domain_id'))

    op.drop_table('ticket')
    with op.batch_alter_table('record', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_record_domain_id'))

    op.drop_table('record')
    with op.batch_alter_table('zone_snapshot', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_zone_snapshot_instance_id'))

    op.drop_table('zone_snapshot')
    with op.batch_alter_table('orders', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_orders_instance_id'))

    op.drop_table('orders')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index('ix_notification_state_id')
        batch_op.drop_index('ix_notification_instance_kind')

    op.drop_table('notification')
    with op.batch_alter_table('domain', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_domain_instance_id'))

    op.drop_table('domain')
    with op.batch_alter_table('instance', schema=None) as batch_op:
        batch_op.drop_index('ix_instance_state_expires')
        batch_op.drop_index(batch_op.f('ix_instance_account_id'))

    op.drop_table('instance')
    op.drop_table('edition')
    op.drop_table('cluster')
    op.drop_table('account')
