"""Two sample ERP/WMS schemas for the bridge tests, and their mapping files.

``domestic``: the example that syncd ships in syncd/bridge/examples, read from there. It
follows a MySQL-based domestic ERP. Status codes are integers, and DATETIME columns hold
Beijing time without a zone. Order lines point at the order's auto-increment id, one time
column has ``ON UPDATE``, a table maps SKUs per shop, and a WMS table has Chinese carrier
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

from syncd.bridge import examples
from syncd.db.engine import create_db_engine

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
    return examples.example_schema(backend)


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
    return examples.example_mapping({account: shop_code})


def modern_mapping(account: str, *, store_code: str = "amz-us") -> str:
    """The mapping file of the modern sample for one syncd account."""
    return MODERN_MAPPING.replace("ACCOUNT", account).replace("STORECODE", store_code)


def write_mapping(folder: Path, content: str) -> Path:
    """Write a mapping file and return its path."""
    path = folder / "mapping.toml"
    path.write_text(content, encoding="utf-8")
    return path


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
