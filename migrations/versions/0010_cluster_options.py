"""a cluster's backend options in one JSON column, checked by the backend's own model

The columns of the PowerDNS backend (api_url, server_id, catalog) become keys of
``options``; the embedded backend takes none.

Revision ID: 0010
Revises: 0009
"""

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

MOVED = ("api_url", "server_id", "catalog")


def upgrade() -> None:
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.add_column(sa.Column("options", sa.JSON(), nullable=False, server_default="{}"))
    conn = op.get_bind()
    cluster = sa.table(
        "cluster",
        sa.column("code", sa.String),
        sa.column("backend", sa.String),
        sa.column("options", sa.JSON),
        *(sa.column(name, sa.String) for name in MOVED),
    )
    rows = conn.execute(
        sa.select(cluster.c.code, cluster.c.backend, *(cluster.c[name] for name in MOVED))
    ).all()
    for row in rows:
        # The embedded backend never read these columns (server_id kept its default).
        if row.backend == "database":
            continue
        options = {name: row._mapping[name] for name in MOVED if row._mapping[name] is not None}
        conn.execute(cluster.update().where(cluster.c.code == row.code).values(options=options))
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        for name in MOVED:
            batch_op.drop_column(name)


def downgrade() -> None:
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("api_url", sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True)
        )
        batch_op.add_column(
            sa.Column(
                "server_id",
                sqlmodel.sql.sqltypes.AutoString(length=64),
                nullable=False,
                server_default="localhost",
            )
        )
        batch_op.add_column(
            sa.Column("catalog", sqlmodel.sql.sqltypes.AutoString(length=253), nullable=True)
        )
    conn = op.get_bind()
    cluster = sa.table(
        "cluster",
        sa.column("code", sa.String),
        sa.column("options", sa.JSON),
        *(sa.column(name, sa.String) for name in MOVED),
    )
    for row in conn.execute(sa.select(cluster.c.code, cluster.c.options)).all():
        options = row.options or {}
        values = {name: options[name] for name in MOVED if name in options}
        if values:
            conn.execute(cluster.update().where(cluster.c.code == row.code).values(**values))
    with op.batch_alter_table("cluster", schema=None) as batch_op:
        batch_op.drop_column("options")
