"""The bridge: positions of its passes, the orders projected into the ERP, WMS write-backs.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0005"
down_revision = "0004"
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


def _big_id() -> sa.types.TypeEngine[object]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_index("ix_syncd_orders_synced_at", "syncd_orders", ["synced_at"])
    op.create_table(
        "syncd_bridge_positions",
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("position", sa.Text(), nullable=True),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("lease_expires_at", _datetime(), nullable=True),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_syncd_bridge_positions")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_erp_orders",
        sa.Column("order_pk", _big_id(), nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=True),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("erp_keys", sa.Text(), nullable=True),
        sa.Column("has_pii", sa.Boolean(), nullable=False),
        sa.Column("pii_purged_at", _datetime(), nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("projected_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_pk"],
            ["syncd_orders.id"],
            name=op.f("fk_syncd_erp_orders_order_pk_syncd_orders"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_erp_orders_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("order_pk", name=op.f("pk_syncd_erp_orders")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_wms_write_backs",
        sa.Column("request_id", _big_id(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("message_hash", sa.String(length=64), nullable=True),
        sa.Column("is_final", sa.Boolean(), nullable=False),
        sa.Column("written_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["request_id"],
            ["syncd_shipment_requests.id"],
            name=op.f("fk_syncd_wms_write_backs_request_id_syncd_shipment_requests"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("request_id", name=op.f("pk_syncd_wms_write_backs")),
        **_TABLE_OPTIONS,
    )


def downgrade() -> None:
    op.drop_table("syncd_wms_write_backs")
    op.drop_table("syncd_erp_orders")
    op.drop_table("syncd_bridge_positions")
    op.drop_index("ix_syncd_orders_synced_at", table_name="syncd_orders")
