"""Two sample ERP/WMS schemas, made for the bridge tests, and their mapping files.

``domestic``: in the style of a MySQL-based domestic ERP: integer status codes, Beijing-time
DATETIME columns without a zone, order lines that point at the order's auto-increment id, an
``ON UPDATE`` time column, a SKU map table per shop, and a WMS table with Chinese carrier
names and write-back columns. It also runs on SQLite and PostgreSQL, with the same columns.

``modern``: in the style of a PostgreSQL ERP: text statuses, ``timestamptz`` columns, natural
keys everywhere (the lines carry the order's key), a product table with an Amazon SKU column,
and a shipment table followed by its update time.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from sqlalchemy import MetaData, text
from sqlalchemy.engine import make_url

from syncd.db.engine import create_db_engine

_DOMESTIC_MARIADB = [
    """CREATE TABLE oms_order (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        platform VARCHAR(16) NOT NULL,
        shop_code VARCHAR(32) NOT NULL,
        platform_order_no VARCHAR(64) NOT NULL,
        site VARCHAR(8),
        order_status TINYINT NOT NULL,
        warehouse_type TINYINT NOT NULL,
        order_time DATETIME NOT NULL,
        latest_ship_time DATETIME NULL,
        total_amount DECIMAL(14, 2),
        currency CHAR(3),
        receiver_name VARCHAR(128),
        receiver_zip VARCHAR(32),
        pick_status TINYINT NOT NULL DEFAULT 0,
        remark VARCHAR(255),
        created_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP,
        updated_at DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP,
        UNIQUE KEY uk_platform_order (platform, shop_code, platform_order_no)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE oms_order_item (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        order_id BIGINT NOT NULL,
        platform_item_id VARCHAR(64) NOT NULL,
        platform_sku VARCHAR(64),
        sku VARCHAR(64) NOT NULL,
        title VARCHAR(500),
        qty INT NOT NULL,
        unit_price DECIMAL(14, 2),
        UNIQUE KEY uk_order_item (order_id, platform_item_id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE base_sku_mapping (
        id INT AUTO_INCREMENT PRIMARY KEY,
        platform VARCHAR(16) NOT NULL,
        shop_code VARCHAR(32) NOT NULL,
        platform_sku VARCHAR(64) NOT NULL,
        sku VARCHAR(64) NOT NULL,
        UNIQUE KEY uk_sku (platform, shop_code, platform_sku)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
    """CREATE TABLE wms_delivery (
        id BIGINT AUTO_INCREMENT PRIMARY KEY,
        platform VARCHAR(16) NOT NULL,
        shop_code VARCHAR(32) NOT NULL,
        platform_order_no VARCHAR(64) NOT NULL,
        logistics_company VARCHAR(64),
        logistics_channel VARCHAR(64),
        tracking_no VARCHAR(64),
        delivery_time DATETIME,
        status TINYINT NOT NULL DEFAULT 1,
        amz_upload_status TINYINT NOT NULL DEFAULT 0,
        amz_upload_msg VARCHAR(500),
        amz_upload_time DATETIME,
        update_time DATETIME NOT NULL DEFAULT CURRENT_TIMESTAMP ON UPDATE CURRENT_TIMESTAMP
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4""",
]


def _portable(statements: Sequence[str], dialect: str) -> list[str]:
    """The domestic schema in SQLite's or PostgreSQL's words, with the same columns."""
    result = []
    for statement in statements:
        sql = statement.split(") ENGINE")[0] + ")"
        sql = sql.replace(" ON UPDATE CURRENT_TIMESTAMP", "").replace("TINYINT", "SMALLINT")
        if dialect == "sqlite":
            sql = sql.replace("BIGINT AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY")
            sql = sql.replace("INT AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY")
        else:
            sql = sql.replace("BIGINT AUTO_INCREMENT PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
            sql = sql.replace("INT AUTO_INCREMENT PRIMARY KEY", "SERIAL PRIMARY KEY")
            sql = sql.replace("DATETIME", "TIMESTAMP")
        sql = sql.replace("UNIQUE KEY uk_platform_order", "UNIQUE").replace(
            "UNIQUE KEY uk_order_item", "UNIQUE"
        )
        sql = sql.replace("UNIQUE KEY uk_sku", "UNIQUE")
        result.append(sql)
    return result


_MODERN_POSTGRESQL = [
    """CREATE TABLE sales_order (
        channel text NOT NULL,
        store_code text NOT NULL,
        external_order_id varchar(64) NOT NULL,
        status varchar(20) NOT NULL,
        fulfillment_channel varchar(10),
        ordered_at timestamptz NOT NULL,
        amazon_updated_at timestamptz,
        grand_total numeric(18, 4),
        currency char(3),
        ship_to_name text,
        internal_state text NOT NULL DEFAULT 'new',
        PRIMARY KEY (channel, store_code, external_order_id)
    )""",
    """CREATE TABLE sales_order_line (
        channel text NOT NULL,
        store_code text NOT NULL,
        external_order_id varchar(64) NOT NULL,
        line_id varchar(64) NOT NULL,
        sku text NOT NULL,
        quantity integer NOT NULL,
        unit_price numeric(18, 4),
        PRIMARY KEY (channel, store_code, external_order_id, line_id),
        FOREIGN KEY (channel, store_code, external_order_id)
            REFERENCES sales_order (channel, store_code, external_order_id)
    )""",
    """CREATE TABLE product (
        sku text PRIMARY KEY,
        amazon_sku text UNIQUE
    )""",
    """CREATE TABLE shipment (
        shipment_no text PRIMARY KEY,
        store_code text NOT NULL,
        external_order_id varchar(64) NOT NULL,
        carrier text,
        service text,
        tracking text,
        shipped_at timestamptz,
        updated_at timestamptz NOT NULL DEFAULT now(),
        upload_state text,
        upload_error text,
        uploaded_at timestamptz
    )""",
    """CREATE TABLE shipment_line (
        shipment_no text NOT NULL REFERENCES shipment (shipment_no),
        sku text NOT NULL,
        qty integer NOT NULL
    )""",
]

DOMESTIC_TABLES = ("oms_order_item", "oms_order", "base_sku_mapping", "wms_delivery")
MODERN_TABLES = ("shipment_line", "shipment", "sales_order_line", "sales_order", "product")


def domestic_ddl(backend: str) -> list[str]:
    """The domestic sample schema for a backend (mariadb, sqlite or postgresql)."""
    if backend in ("mariadb", "mysql"):
        return list(_DOMESTIC_MARIADB)
    return _portable(_DOMESTIC_MARIADB, backend)


def modern_ddl() -> list[str]:
    """The modern sample schema (PostgreSQL only)."""
    return list(_MODERN_POSTGRESQL)


def create_tables(url: str, statements: Sequence[str], tables: Sequence[str]) -> None:
    """Drop the sample tables if they exist, then create them."""
    drop_tables(url, tables)
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            for statement in statements:
                connection.execute(text(statement))
    finally:
        engine.dispose()


def drop_tables(url: str, tables: Sequence[str]) -> None:
    """Drop the named tables that exist."""
    engine = create_db_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(engine, only=lambda name, _meta: name in tables)
        metadata.drop_all(engine)
    finally:
        engine.dispose()


def backend_of(url: str) -> str:
    """sqlite, postgresql or mariadb."""
    name = make_url(url).get_backend_name()
    return "mariadb" if name in ("mysql", "mariadb") else name


def domestic_mapping(account: str, *, shop_code: str = "US01") -> str:
    """The mapping file of the domestic sample for one syncd account."""
    return DOMESTIC_MAPPING.replace("ACCOUNT", account).replace("SHOPCODE", shop_code)


def modern_mapping(account: str, *, store_code: str = "amz-us") -> str:
    """The mapping file of the modern sample for one syncd account."""
    return MODERN_MAPPING.replace("ACCOUNT", account).replace("STORECODE", store_code)


def write_mapping(folder: Path, content: str) -> Path:
    """Write a mapping file and return its path."""
    path = folder / "mapping.toml"
    path.write_text(content, encoding="utf-8")
    return path


DOMESTIC_MAPPING = """
version = 1

[accounts.ACCOUNT]
shop_code = "SHOPCODE"

[maps.order_status]
values = { PENDING_AVAILABILITY = 10, PENDING = 10, UNSHIPPED = 20, PARTIALLY_SHIPPED = 25, \
SHIPPED = 30, CANCELLED = 90, UNFULFILLABLE = 91 }

[maps.warehouse_type]
values = { MERCHANT = 1, AMAZON = 2 }

[skus]
table = "base_sku_mapping"
amazon_sku = "platform_sku"
erp_sku = "sku"
where = { platform = "AMAZON" }
account = { column = "shop_code", constant = "shop_code" }

[orders]
table = "oms_order"
key = ["platform", "shop_code", "platform_order_no"]

[orders.columns]
platform = { value = "AMAZON" }
shop_code = { account = "shop_code" }
platform_order_no = "order_id"
site = "marketplace_country"
order_status = { field = "status", map = "order_status" }
warehouse_type = { field = "fulfilled_by", map = "warehouse_type" }
order_time = { field = "purchase_time", zone = "Asia/Shanghai" }
latest_ship_time = { field = "ship_by_latest", zone = "Asia/Shanghai" }
total_amount = "order_total"
currency = "currency"
receiver_name = "recipient_name"
receiver_zip = "postal_code"
pick_status = { value = 0, on = "insert" }

[orders.lines]
table = "oms_order_item"
key = ["order_id", "platform_item_id"]

[orders.lines.columns]
order_id = { parent = "id" }
platform_item_id = "order_item_id"
platform_sku = "seller_sku"
sku = { field = "seller_sku", translate = "sku" }
title = { field = "title", truncate = true }
qty = "quantity_ordered"
unit_price = "unit_price"

[shipments]
source = "wms"
table = "wms_delivery"
key = "id"
changes = "update_time"
changes_zone = "Asia/Shanghai"
where = { platform = "AMAZON", status = 2 }
account = { column = "shop_code", constant = "shop_code" }
order_id = "platform_order_no"
carrier = "logistics_company"
shipping_method = "logistics_channel"
tracking_number = "tracking_no"
shipped_at = "delivery_time"
shipped_at_zone = "Asia/Shanghai"

[shipments.write_back]
status = "amz_upload_status"
message = "amz_upload_msg"
time = "amz_upload_time"
zone = "Asia/Shanghai"
values = { queued = 1, sending = 2, confirmed = 3, rejected = 8, failed = 9, cancelled = 7 }
"""

MODERN_MAPPING = """
version = 1

[accounts.ACCOUNT]
store = "STORECODE"

[maps.status]
values = { UNSHIPPED = "open", PARTIALLY_SHIPPED = "open", SHIPPED = "shipped", \
CANCELLED = "cancelled" }
default = "pending"

[skus]
table = "product"
amazon_sku = "amazon_sku"
erp_sku = "sku"

[orders]
table = "sales_order"
key = ["channel", "store_code", "external_order_id"]
multichannel = "skip"

[orders.columns]
channel = { value = "amazon" }
store_code = { account = "store" }
external_order_id = "order_id"
status = { field = "status", map = "status" }
fulfillment_channel = "fulfilled_by"
ordered_at = "purchase_time"
amazon_updated_at = "last_updated_time"
grand_total = "order_total"
currency = "currency"
ship_to_name = "recipient_name"

[orders.lines]
table = "sales_order_line"
key = ["channel", "store_code", "external_order_id", "line_id"]

[orders.lines.columns]
channel = { parent = "channel" }
store_code = { parent = "store_code" }
external_order_id = { parent = "external_order_id" }
line_id = "order_item_id"
sku = { field = "seller_sku", translate = "sku" }
quantity = "quantity_ordered"
unit_price = "unit_price"

[shipments]
source = "erp"
table = "shipment"
key = "shipment_no"
changes = "updated_at"
account = { column = "store_code", constant = "store" }
order_id = "external_order_id"
carrier = "carrier"
shipping_method = "service"
tracking_number = "tracking"
shipped_at = "shipped_at"

[shipments.items]
table = "shipment_line"
link = "shipment_no"
sku = "sku"
quantity = "qty"

[shipments.write_back]
status = "upload_state"
message = "upload_error"
time = "uploaded_at"
"""
