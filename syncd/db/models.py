"""SQLAlchemy metadata of the tables syncd owns; every table name starts with ``syncd_``.

Alembic's migrations under ``migrations/`` create these tables; a test checks that the
migrations and this metadata agree on every database syncd supports. docs/schema.md
describes every table and column for the people who read them from an ERP.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    String,
    Table,
    Text,
    UniqueConstraint,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

from syncd.db.types import LocalDateTime, LongText, Money, UtcDateTime

TABLE_PREFIX = "syncd_"

# Deterministic constraint names, so migrations can alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

# Amazon's ids are opaque strings; 64 characters leave room beyond today's 19.
ID_LENGTH = 64
# Big enough for Amazon's marketplace ids, ISO currency codes and syncd's status words.
CODE_LENGTH = 32

# Every table is utf8mb4 on MariaDB/MySQL, whatever the database's default (often latin1 or
# utf8mb3, which cannot hold all of Amazon's text).
MYSQL_TABLE_OPTIONS = {
    "mysql_engine": "InnoDB",
    "mysql_charset": "utf8mb4",
    "mysql_collate": "utf8mb4_unicode_ci",
}

# BIGINT primary keys that still auto-increment on SQLite, which only does so for INTEGER.
BigId = BigInteger().with_variant(Integer(), "sqlite")


class Base(DeclarativeBase):
    """Declarative base of syncd's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def BinaryString(length: int) -> TypeEngine[str]:  # noqa: N802 - reads like a column type
    """VARCHAR compared byte for byte: ``utf8mb4_bin`` on MariaDB/MySQL, as is elsewhere."""
    return String(length).with_variant(
        mysql.VARCHAR(length, charset="utf8mb4", collation="utf8mb4_bin"), "mysql", "mariadb"
    )


def table_of(model: type[Base]) -> Table:
    """Return a model's Core table, for the batched statements of the stores."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


class Account(Base):
    """One seller authorization in one region."""

    __tablename__ = "syncd_accounts"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    region: Mapped[str] = mapped_column(String(2))
    marketplace_ids: Mapped[str] = mapped_column(Text)  # comma-separated, as Amazon takes them
    included_data: Mapped[str] = mapped_column(Text)  # comma-separated includedData values
    refresh_token_encrypted: Mapped[str] = mapped_column(Text)  # Fernet token
    status: Mapped[str] = mapped_column(String(CODE_LENGTH), default="active")
    status_reason: Mapped[str | None] = mapped_column(Text)
    next_run_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Lease(Base):
    """Lease of an account: the worker that owns it and until when; one row per account."""

    __tablename__ = "syncd_leases"
    # A node renews and gives back its leases by owner. Without the index InnoDB locks every
    # row such a statement scans, so the other nodes' claims skip them all meanwhile.
    __table_args__ = (Index("ix_syncd_leases_owner", "owner"), MYSQL_TABLE_OPTIONS)

    account_id: Mapped[int] = mapped_column(
        ForeignKey("syncd_accounts.id", ondelete="CASCADE"), primary_key=True
    )
    owner: Mapped[str | None] = mapped_column(String(128))
    expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    renewed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # Amazon's quota buckets of the account as the last holder left them, for the next one.
    quota_levels: Mapped[str | None] = mapped_column(Text)
    quota_saved_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Checkpoint(Base):
    """Position of one query stream of an account (for example the account's orders)."""

    __tablename__ = "syncd_checkpoints"
    __table_args__ = (UniqueConstraint("account_id", "stream"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(CODE_LENGTH))
    watermark: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    window_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    page_query: Mapped[str | None] = mapped_column(Text)
    page_token: Mapped[str | None] = mapped_column(Text)
    page_token_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Order(Base):
    """One Amazon order, as the latest version syncd has seen."""

    __tablename__ = "syncd_orders"
    __table_args__ = (
        UniqueConstraint("account_id", "order_id"),
        Index("ix_syncd_orders_marketplace_updated", "marketplace_id", "last_updated_time"),
        Index("ix_syncd_orders_synced_at", "synced_at"),  # the ERP projection's changes
        # The orders holding PII (pii_updated_at set, pii_purged_at not), for the purge.
        Index("ix_syncd_orders_pii", "pii_purged_at", "pii_updated_at"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    order_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    marketplace_id: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    sales_channel: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    is_multichannel: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    fulfilled_by: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    service_level: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    programs: Mapped[str | None] = mapped_column(Text)  # comma-separated
    purchase_time: Mapped[datetime] = mapped_column(UtcDateTime)
    last_updated_time: Mapped[datetime] = mapped_column(UtcDateTime)
    ship_by_earliest: Mapped[datetime | None] = mapped_column(UtcDateTime)
    ship_by_latest: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deliver_by_earliest: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deliver_by_latest: Mapped[datetime | None] = mapped_column(UtcDateTime)
    order_total: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    item_count: Mapped[int] = mapped_column(Integer, default=0)
    # Amazon's order without buyer, recipient, tax registrations and gift messages.
    raw_json: Mapped[str] = mapped_column(LongText)
    content_hash: Mapped[str] = mapped_column(String(64))  # SHA-256 of what Amazon sent
    buyer_pii: Mapped[str | None] = mapped_column(Text)  # encrypted JSON of `buyer`
    recipient_pii: Mapped[str | None] = mapped_column(Text)  # encrypted JSON of `recipient`
    # Encrypted JSON of `tax.taxRegistrations`: the buyer's company, tax id and address.
    tax_registrations_pii: Mapped[str | None] = mapped_column(Text)
    pii_updated_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    # When the retention purge cleared the PII columns; later fetches store no PII again.
    pii_purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    synced_at: Mapped[datetime] = mapped_column(UtcDateTime)


class OrderItem(Base):
    """One line of an order."""

    __tablename__ = "syncd_order_items"
    __table_args__ = (UniqueConstraint("order_pk", "order_item_id"), MYSQL_TABLE_OPTIONS)

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    # Indexed by the unique constraint, whose first column it is.
    order_pk: Mapped[int] = mapped_column(BigId, ForeignKey("syncd_orders.id", ondelete="CASCADE"))
    order_item_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    seller_sku: Mapped[str | None] = mapped_column(String(200))
    asin: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    title: Mapped[str | None] = mapped_column(Text)
    quantity_ordered: Mapped[int] = mapped_column(Integer)
    quantity_shipped: Mapped[int | None] = mapped_column(Integer)
    quantity_unshipped: Mapped[int | None] = mapped_column(Integer)
    unit_price: Mapped[Decimal | None] = mapped_column(Money)
    item_amount: Mapped[Decimal | None] = mapped_column(Money)
    shipping_amount: Mapped[Decimal | None] = mapped_column(Money)
    tax_amount: Mapped[Decimal | None] = mapped_column(Money)
    discount_amount: Mapped[Decimal | None] = mapped_column(Money)
    proceeds_total: Mapped[Decimal | None] = mapped_column(Money)
    currency: Mapped[str | None] = mapped_column(String(3))
    promotion_ids: Mapped[str | None] = mapped_column(Text)  # comma-separated
    gift_message_pii: Mapped[str | None] = mapped_column(Text)  # encrypted
    raw_json: Mapped[str] = mapped_column(LongText)  # the item without its gift message


class Quarantine(Base):
    """A record that could not be parsed or stored, kept for a later retry."""

    __tablename__ = "syncd_quarantine"
    __table_args__ = MYSQL_TABLE_OPTIONS

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    stream: Mapped[str] = mapped_column(String(CODE_LENGTH))
    record_id: Mapped[str | None] = mapped_column(String(ID_LENGTH))
    reason: Mapped[str] = mapped_column(Text)
    payload: Mapped[str] = mapped_column(LongText)  # the record without PII, as in raw_json
    status: Mapped[str] = mapped_column(String(CODE_LENGTH), default="open")
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Run(Base):
    """One run of a job for one account, summarised for ``syncd status``."""

    __tablename__ = "syncd_runs"
    __table_args__ = (
        Index("ix_syncd_runs_account_started", "account_id", "started_at"),
        Index("ix_syncd_runs_finished_at", "finished_at"),  # the daemon's status line
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    job: Mapped[str] = mapped_column(String(CODE_LENGTH))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime] = mapped_column(UtcDateTime)
    result: Mapped[str] = mapped_column(String(CODE_LENGTH))
    error: Mapped[str | None] = mapped_column(Text)
    orders_new: Mapped[int] = mapped_column(Integer, default=0)
    orders_updated: Mapped[int] = mapped_column(Integer, default=0)
    orders_quarantined: Mapped[int] = mapped_column(Integer, default=0)
    pages: Mapped[int] = mapped_column(Integer, default=0)
    api_calls: Mapped[int] = mapped_column(Integer, default=0)
    throttled: Mapped[int] = mapped_column(Integer, default=0)
    watermark_before: Mapped[datetime | None] = mapped_column(UtcDateTime)
    watermark_after: Mapped[datetime | None] = mapped_column(UtcDateTime)
    clock_skew_seconds: Mapped[float | None] = mapped_column(Float)


class ShipmentRequest(Base):
    """A shipment that an ERP or WMS requests syncd to confirm: the intake contract, version 1.

    The ERP inserts rows in its own transaction and fills only the columns above ``status``;
    syncd validates each new row and moves it into the outbox, or records why it rejected
    it. docs/schema.md describes the contract.
    """

    __tablename__ = "syncd_shipment_requests"
    __table_args__ = (
        UniqueConstraint("source_system", "source_key"),
        Index("ix_syncd_shipment_requests_status", "status", "id"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    contract_version: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    # The requester ("wms", "erp", "cli" …) and its own key, unique together. Compared byte for
    # byte on MariaDB/MySQL too, so keys that differ in case or accents stay two requests.
    source_system: Mapped[str] = mapped_column(BinaryString(64))
    source_key: Mapped[str] = mapped_column(BinaryString(128))
    account: Mapped[str] = mapped_column(String(64))  # syncd account name
    amazon_order_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    carrier: Mapped[str | None] = mapped_column(String(100))  # as the WMS writes it
    carrier_name: Mapped[str | None] = mapped_column(String(100))  # needed for carrier Other
    shipping_method: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str | None] = mapped_column(String(100))
    # The ship time as the warehouse wrote it, in the time zone named beside it.
    shipped_at: Mapped[datetime | None] = mapped_column(LocalDateTime)
    shipped_at_zone: Mapped[str | None] = mapped_column(String(64))  # "Asia/Shanghai", "+08:00"
    # JSON list of {"order_item_id" or "sku", "quantity"}; empty: every unshipped item.
    items: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(CODE_LENGTH), default="new", server_default="new")
    reject_code: Mapped[str | None] = mapped_column(String(CODE_LENGTH))
    reject_reason: Mapped[str | None] = mapped_column(Text)
    outbox_id: Mapped[int | None] = mapped_column(BigInteger)
    processed_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class OutboxEntry(Base):
    """One package to confirm to Amazon, and the state of its delivery."""

    __tablename__ = "syncd_outbox"
    __table_args__ = (
        UniqueConstraint("account_id", "order_id", "package_reference_id"),
        Index("ix_syncd_outbox_due", "account_id", "state", "next_attempt_at"),
        Index("ix_syncd_outbox_state_deadline", "state", "deadline"),
        MYSQL_TABLE_OPTIONS,
    )

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    request_id: Mapped[int | None] = mapped_column(BigInteger, unique=True)
    marketplace_id: Mapped[str] = mapped_column(String(CODE_LENGTH))
    order_id: Mapped[str] = mapped_column(String(ID_LENGTH))
    # Fixed when the row is made and sent with every resend, so Amazon edits one package.
    package_reference_id: Mapped[str] = mapped_column(String(CODE_LENGTH))
    carrier_code: Mapped[str] = mapped_column(String(100))
    carrier_name: Mapped[str | None] = mapped_column(String(100))
    shipping_method: Mapped[str | None] = mapped_column(String(100))
    tracking_number: Mapped[str] = mapped_column(String(100))
    ship_date: Mapped[datetime] = mapped_column(UtcDateTime)
    items: Mapped[str] = mapped_column(Text)  # JSON list of {"order_item_id", "quantity"}
    state: Mapped[str] = mapped_column(String(CODE_LENGTH))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claim_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    deadline: Mapped[datetime | None] = mapped_column(UtcDateTime)  # the order's latest ship-by
    last_error_code: Mapped[str | None] = mapped_column(String(100))
    last_error_message: Mapped[str | None] = mapped_column(Text)
    last_request_id: Mapped[str | None] = mapped_column(String(100))
    sent_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # Amazon's 204
    verified_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # seen in the packages
    verify_attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class BridgePosition(Base):
    """Position of one bridge pass and the process that runs it now (a lease by name).

    Names: ``projection`` (canonical orders into the ERP), ``wms:SOURCE`` (the WMS rows read
    so far) and ``bridge`` (the lease of the whole bridge, so only one process writes the
    ERP's tables at a time).
    """

    __tablename__ = "syncd_bridge_positions"
    __table_args__ = MYSQL_TABLE_OPTIONS

    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    position: Mapped[str | None] = mapped_column(Text)  # JSON, by the pass that owns it
    owner: Mapped[str | None] = mapped_column(String(128))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime)


class ErpOrder(Base):
    """Record of one canonical order in the ERP: the version projected and the keys used."""

    __tablename__ = "syncd_erp_orders"
    __table_args__ = MYSQL_TABLE_OPTIONS

    order_pk: Mapped[int] = mapped_column(
        BigId, ForeignKey("syncd_orders.id", ondelete="CASCADE"), primary_key=True
    )
    account_id: Mapped[int] = mapped_column(ForeignKey("syncd_accounts.id", ondelete="CASCADE"))
    # The content_hash of the order version handled last; a different one means "project again".
    content_hash: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(CODE_LENGTH))  # projected, skipped, quarantined
    # JSON of the natural keys of the order row and its line rows, for the PII purge.
    erp_keys: Mapped[str | None] = mapped_column(Text)
    has_pii: Mapped[bool] = mapped_column(Boolean, default=False)
    pii_purged_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    error: Mapped[str | None] = mapped_column(Text)
    projected_at: Mapped[datetime] = mapped_column(UtcDateTime)


class WmsWriteBack(Base):
    """The state syncd last wrote into a WMS row's write-back columns."""

    __tablename__ = "syncd_wms_write_backs"
    __table_args__ = MYSQL_TABLE_OPTIONS

    request_id: Mapped[int] = mapped_column(
        BigId, ForeignKey("syncd_shipment_requests.id", ondelete="CASCADE"), primary_key=True
    )
    state: Mapped[str] = mapped_column(String(CODE_LENGTH))
    message_hash: Mapped[str | None] = mapped_column(String(64))
    is_final: Mapped[bool] = mapped_column(Boolean, default=False)
    written_at: Mapped[datetime] = mapped_column(UtcDateTime)


class Node(Base):
    """One running ``syncd run`` process sharing this database, with its heartbeat."""

    __tablename__ = "syncd_nodes"
    __table_args__ = MYSQL_TABLE_OPTIONS

    owner: Mapped[str] = mapped_column(String(128), primary_key=True)  # the lease owner name
    hostname: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    version: Mapped[str] = mapped_column(String(32))
    started_at: Mapped[datetime] = mapped_column(UtcDateTime)
    heartbeat_at: Mapped[datetime] = mapped_column(UtcDateTime)
    accounts_held: Mapped[int] = mapped_column(Integer, default=0)
    status: Mapped[str | None] = mapped_column(Text)  # the one-line summary systemd shows


class LwaSecret(Base):
    """An LWA client secret syncd has used, known only by a fingerprint, to track its age.

    Amazon expires client secrets 180 days after they are made. Unless a setting gives the
    real date, the age counts from the first time syncd saw the secret, the latest day it
    can have been made.
    """

    __tablename__ = "syncd_lwa_secrets"
    __table_args__ = MYSQL_TABLE_OPTIONS

    fingerprint: Mapped[str] = mapped_column(String(64), primary_key=True)  # SHA-256, hex
    first_seen_at: Mapped[datetime] = mapped_column(UtcDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    refused_at: Mapped[datetime | None] = mapped_column(UtcDateTime)  # LWA: invalid_client
