"""Accounts, leases, checkpoints, orders, order items, quarantine and runs.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-04
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


# utf8mb4 on MariaDB/MySQL whatever the database's default character set is.
_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _utc_datetime() -> sa.types.TypeEngine[object]:
    # UTC without zone, microseconds kept: DATETIME(6) on MariaDB/MySQL.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _money() -> sa.types.TypeEngine[object]:
    # Exact amounts; SQLite has no decimal type, so there they are kept as decimal text.
    return sa.Numeric(precision=18, scale=4).with_variant(sa.String(length=32), "sqlite")


def _long_text() -> sa.types.TypeEngine[object]:
    # MySQL's TEXT stops at 64 KiB; an order's raw JSON can be larger.
    return sa.Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


def upgrade() -> None:
    op.create_table(
        "syncd_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("region", sa.String(length=2), nullable=False),
        sa.Column("marketplace_ids", sa.Text(), nullable=False),
        sa.Column("included_data", sa.Text(), nullable=False),
        sa.Column("refresh_token_encrypted", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("status_reason", sa.Text(), nullable=True),
        sa.Column("next_run_at", _utc_datetime(), nullable=True),
        sa.Column("created_at", _utc_datetime(), nullable=False),
        sa.Column("updated_at", _utc_datetime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_accounts")),
        sa.UniqueConstraint("name", name=op.f("uq_syncd_accounts_name")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_checkpoints",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("watermark", _utc_datetime(), nullable=True),
        sa.Column("window_after", _utc_datetime(), nullable=True),
        sa.Column("window_before", _utc_datetime(), nullable=True),
        sa.Column("page_query", sa.Text(), nullable=True),
        sa.Column("page_token", sa.Text(), nullable=True),
        sa.Column("page_token_at", _utc_datetime(), nullable=True),
        sa.Column("updated_at", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_checkpoints_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_checkpoints")),
        sa.UniqueConstraint("account_id", "stream", name=op.f("uq_syncd_checkpoints_account_id")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_leases",
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("expires_at", _utc_datetime(), nullable=True),
        sa.Column("renewed_at", _utc_datetime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_leases_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("account_id", name=op.f("pk_syncd_leases")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_orders",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("marketplace_id", sa.String(length=32), nullable=True),
        sa.Column("sales_channel", sa.String(length=32), nullable=True),
        sa.Column("is_multichannel", sa.Boolean(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=True),
        sa.Column("fulfilled_by", sa.String(length=32), nullable=True),
        sa.Column("service_level", sa.String(length=32), nullable=True),
        sa.Column("programs", sa.Text(), nullable=True),
        sa.Column("purchase_time", _utc_datetime(), nullable=False),
        sa.Column("last_updated_time", _utc_datetime(), nullable=False),
        sa.Column("ship_by_earliest", _utc_datetime(), nullable=True),
        sa.Column("ship_by_latest", _utc_datetime(), nullable=True),
        sa.Column("deliver_by_earliest", _utc_datetime(), nullable=True),
        sa.Column("deliver_by_latest", _utc_datetime(), nullable=True),
        sa.Column("order_total", _money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("item_count", sa.Integer(), nullable=False),
        sa.Column("raw_json", _long_text(), nullable=False),
        sa.Column("content_hash", sa.String(length=64), nullable=False),
        sa.Column("buyer_pii", sa.Text(), nullable=True),
        sa.Column("recipient_pii", sa.Text(), nullable=True),
        sa.Column("tax_registrations_pii", sa.Text(), nullable=True),
        sa.Column("pii_updated_at", _utc_datetime(), nullable=True),
        sa.Column("first_seen_at", _utc_datetime(), nullable=False),
        sa.Column("synced_at", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_orders_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_orders")),
        sa.UniqueConstraint("account_id", "order_id", name=op.f("uq_syncd_orders_account_id")),
        **_TABLE_OPTIONS,
    )
    with op.batch_alter_table("syncd_orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_syncd_orders_marketplace_updated",
            ["marketplace_id", "last_updated_time"],
            unique=False,
        )

    op.create_table(
        "syncd_quarantine",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("stream", sa.String(length=32), nullable=False),
        sa.Column("record_id", sa.String(length=64), nullable=True),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("payload", _long_text(), nullable=False),
        sa.Column("status", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _utc_datetime(), nullable=False),
        sa.Column("updated_at", _utc_datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_quarantine_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_quarantine")),
        **_TABLE_OPTIONS,
    )
    op.create_table(
        "syncd_runs",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("job", sa.String(length=32), nullable=False),
        sa.Column("started_at", _utc_datetime(), nullable=False),
        sa.Column("finished_at", _utc_datetime(), nullable=False),
        sa.Column("result", sa.String(length=32), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("orders_new", sa.Integer(), nullable=False),
        sa.Column("orders_updated", sa.Integer(), nullable=False),
        sa.Column("orders_quarantined", sa.Integer(), nullable=False),
        sa.Column("pages", sa.Integer(), nullable=False),
        sa.Column("api_calls", sa.Integer(), nullable=False),
        sa.Column("throttled", sa.Integer(), nullable=False),
        sa.Column("watermark_before", _utc_datetime(), nullable=True),
        sa.Column("watermark_after", _utc_datetime(), nullable=True),
        sa.Column("clock_skew_seconds", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_runs_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_runs")),
        **_TABLE_OPTIONS,
    )
    with op.batch_alter_table("syncd_runs", schema=None) as batch_op:
        batch_op.create_index(
            "ix_syncd_runs_account_started", ["account_id", "started_at"], unique=False
        )

    op.create_table(
        "syncd_order_items",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("order_pk", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False),
        sa.Column("order_item_id", sa.String(length=64), nullable=False),
        sa.Column("seller_sku", sa.String(length=200), nullable=True),
        sa.Column("asin", sa.String(length=32), nullable=True),
        sa.Column("title", sa.Text(), nullable=True),
        sa.Column("quantity_ordered", sa.Integer(), nullable=False),
        sa.Column("quantity_shipped", sa.Integer(), nullable=True),
        sa.Column("quantity_unshipped", sa.Integer(), nullable=True),
        sa.Column("unit_price", _money(), nullable=True),
        sa.Column("item_amount", _money(), nullable=True),
        sa.Column("shipping_amount", _money(), nullable=True),
        sa.Column("tax_amount", _money(), nullable=True),
        sa.Column("discount_amount", _money(), nullable=True),
        sa.Column("proceeds_total", _money(), nullable=True),
        sa.Column("currency", sa.String(length=3), nullable=True),
        sa.Column("promotion_ids", sa.Text(), nullable=True),
        sa.Column("gift_message_pii", sa.Text(), nullable=True),
        sa.Column("raw_json", _long_text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["order_pk"],
            ["syncd_orders.id"],
            name=op.f("fk_syncd_order_items_order_pk_syncd_orders"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_order_items")),
        sa.UniqueConstraint(
            "order_pk", "order_item_id", name=op.f("uq_syncd_order_items_order_pk")
        ),
        **_TABLE_OPTIONS,
    )


def downgrade() -> None:
    # Dropping a table drops its indexes; MariaDB refuses to drop an index a foreign key uses.
    for table in (
        "syncd_order_items",
        "syncd_runs",
        "syncd_quarantine",
        "syncd_orders",
        "syncd_leases",
        "syncd_checkpoints",
        "syncd_accounts",
    ):
        op.drop_table(table)
