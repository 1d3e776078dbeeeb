"""A production service: nodes sharing the database, LWA secret ages, purged PII.

Also indexes leases by owner (node heartbeats) and runs by finish time (status line).

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None

_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _datetime() -> sa.types.TypeEngine[object]:
    # A time without zone that keeps microseconds, which MariaDB/MySQL need DATETIME(6) for.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    op.add_column("syncd_orders", sa.Column("pii_purged_at", _datetime(), nullable=True))
    op.create_index(
        "ix_syncd_orders_pii", "syncd_orders", ["pii_purged_at", "pii_updated_at"], unique=False
    )
    op.create_index("ix_syncd_leases_owner", "syncd_leases", ["owner"], unique=False)
    op.create_index("ix_syncd_runs_finished_at", "syncd_runs", ["finished_at"], unique=False)
    op.create_table(
        "syncd_nodes",
        sa.Column("owner", sa.String(length=128), nullable=False),
        sa.Column("hostname", sa.String(length=255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("version", sa.String(length=32), nullable=False),
        sa.Column("started_at", _datetime(), nullable=False),
        sa.Column("heartbeat_at", _datetime(), nullable=False),
        sa.Column("accounts_held", sa.Integer(), nullable=False),
        sa.Column("status", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("owner", name=op.f("pk_syncd_nodes")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_lwa_secrets",
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("first_seen_at", _datetime(), nullable=False),
        sa.Column("last_used_at", _datetime(), nullable=True),
        sa.Column("refused_at", _datetime(), nullable=True),
        sa.PrimaryKeyConstraint("fingerprint", name=op.f("pk_syncd_lwa_secrets")),
        **_TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("syncd_lwa_secrets")
    op.drop_table("syncd_nodes")
    op.drop_index("ix_syncd_runs_finished_at", table_name="syncd_runs")
    op.drop_index("ix_syncd_leases_owner", table_name="syncd_leases")
    op.drop_index("ix_syncd_orders_pii", table_name="syncd_orders")
    op.drop_column("syncd_orders", "pii_purged_at")
