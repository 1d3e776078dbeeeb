"""Quota levels on the lease, so the next holder of an account starts from them.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def _utc_datetime() -> sa.types.TypeEngine[object]:
    # UTC without zone, microseconds kept: DATETIME(6) on MariaDB/MySQL.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def upgrade() -> None:
    # batch_alter_table copies the table on SQLite, which cannot alter columns in place.
    with op.batch_alter_table("syncd_leases") as batch:
        batch.add_column(sa.Column("quota_levels", sa.Text(), nullable=True))
        batch.add_column(sa.Column("quota_saved_at", _utc_datetime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("syncd_leases") as batch:
        batch.drop_column("quota_saved_at")
        batch.drop_column("quota_levels")
