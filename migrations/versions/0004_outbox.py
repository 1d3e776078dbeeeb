"""Shipment intake and outbox: tracking numbers from the warehouse to Amazon.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-05
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import mysql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}


def _datetime() -> sa.types.TypeEngine[object]:
    # Without zone, microseconds kept: DATETIME(6) on MariaDB/MySQL.
    return sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")


def _big_id() -> sa.types.TypeEngine[object]:
    # BIGINT that still auto-increments on SQLite, which only does so for INTEGER.
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _binary_string(length: int) -> sa.types.TypeEngine[object]:
    return sa.String(length=length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def upgrade() -> None:
    op.create_table(
        "syncd_shipment_requests",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("contract_version", sa.Integer(), server_default="1", nullable=False),
        # Compared byte for byte on MariaDB/MySQL: keys that differ in case stay two requests.
        sa.Column("source_system", _binary_string(64), nullable=False),
        sa.Column("source_key", _binary_string(128), nullable=False),
        sa.Column("account", sa.String(length=64), nullable=False),
        sa.Column("amazon_order_id", sa.String(length=64), nullable=False),
        sa.Column("carrier", sa.String(length=100), nullable=True),
        sa.Column("carrier_name", sa.String(length=100), nullable=True),
        sa.Column("shipping_method", sa.String(length=100), nullable=True),
        sa.Column("tracking_number", sa.String(length=100), nullable=True),
        sa.Column("shipped_at", _datetime(), nullable=True),
        sa.Column("shipped_at_zone", sa.String(length=64), nullable=True),
        sa.Column("items", sa.Text(), nullable=True),
        sa.Column("status", sa.String(length=32), server_default="new", nullable=False),
        sa.Column("reject_code", sa.String(length=32), nullable=True),
        sa.Column("reject_reason", sa.Text(), nullable=True),
        sa.Column("outbox_id", sa.BigInteger(), nullable=True),
        sa.Column("processed_at", _datetime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_shipment_requests")),
        sa.UniqueConstraint(
            "source_system", "source_key", name=op.f("uq_syncd_shipment_requests_source_system")
        ),
        **_TABLE_OPTIONS,
    )
    op.create_index(
        "ix_syncd_shipment_requests_status",
        "syncd_shipment_requests",
        ["status", "id"],
        unique=False,
    )
    op.create_table(
        "syncd_outbox",
        sa.Column("id", _big_id(), autoincrement=True, nullable=False),
        sa.Column("account_id", sa.Integer(), nullable=False),
        sa.Column("request_id", sa.BigInteger(), nullable=True),
        sa.Column("marketplace_id", sa.String(length=32), nullable=False),
        sa.Column("order_id", sa.String(length=64), nullable=False),
        sa.Column("package_reference_id", sa.String(length=32), nullable=False),
        sa.Column("carrier_code", sa.String(length=100), nullable=False),
        sa.Column("carrier_name", sa.String(length=100), nullable=True),
        sa.Column("shipping_method", sa.String(length=100), nullable=True),
        sa.Column("tracking_number", sa.String(length=100), nullable=False),
        sa.Column("ship_date", _datetime(), nullable=False),
        sa.Column("items", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=32), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", _datetime(), nullable=True),
        sa.Column("claimed_by", sa.String(length=128), nullable=True),
        sa.Column("claim_expires_at", _datetime(), nullable=True),
        sa.Column("deadline", _datetime(), nullable=True),
        sa.Column("last_error_code", sa.String(length=100), nullable=True),
        sa.Column("last_error_message", sa.Text(), nullable=True),
        sa.Column("last_request_id", sa.String(length=100), nullable=True),
        sa.Column("sent_at", _datetime(), nullable=True),
        sa.Column("verified_at", _datetime(), nullable=True),
        sa.Column("verify_attempts", sa.Integer(), nullable=False),
        sa.Column("created_at", _datetime(), nullable=False),
        sa.Column("updated_at", _datetime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["account_id"],
            ["syncd_accounts.id"],
            name=op.f("fk_syncd_outbox_account_id_syncd_accounts"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_syncd_outbox")),
        sa.UniqueConstraint(
            "account_id", "order_id", "package_reference_id", name=op.f("uq_syncd_outbox_account_id")
        ),
        sa.UniqueConstraint("request_id", name=op.f("uq_syncd_outbox_request_id")),
        **_TABLE_OPTIONS,
    )
    op.create_index(
        "ix_syncd_outbox_due", "syncd_outbox", ["account_id", "state", "next_attempt_at"]
    )
    op.create_index("ix_syncd_outbox_state_deadline", "syncd_outbox", ["state", "deadline"])


def downgrade() -> None:
    op.drop_index("ix_syncd_outbox_state_deadline", table_name="syncd_outbox")
    op.drop_index("ix_syncd_outbox_due", table_name="syncd_outbox")
    op.drop_table("syncd_outbox")
    op.drop_index("ix_syncd_shipment_requests_status", table_name="syncd_shipment_requests")
    op.drop_table("syncd_shipment_requests")
