"""Storing orders: PII kept when a version leaves it out, exact money, version rules."""

from __future__ import annotations

import copy
import json
import threading
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, select

from syncd.amazon.models.orders import Order
from syncd.crypto import Vault, generate_key
from syncd.db import accounts, quarantine
from syncd.db.engine import create_db_engine
from syncd.db.models import Order as OrderModel
from syncd.db.models import OrderItem, table_of
from syncd.db.order_rows import build_rows, strip_pii
from syncd.db.orders import store_orders

ORDERS = table_of(OrderModel)
ITEMS = table_of(OrderItem)
NOW = datetime(2026, 5, 10, 12, 0, tzinfo=UTC)

RAW: dict[str, Any] = {
    "orderId": "028-0000000-0000001",
    "createdTime": "2026-05-10T08:00:00Z",
    "lastUpdatedTime": "2026-05-10T09:00:00Z",
    "salesChannel": {"channelName": "AMAZON", "marketplaceId": "A33AVAJ2PDY3EV"},
    "fulfillment": {"fulfillmentStatus": "UNSHIPPED", "fulfilledBy": "MERCHANT"},
    "buyer": {"buyerName": "Ayşe Yılmaz", "buyerEmail": "x@marketplace.amazon.com.tr"},
    "recipient": {"deliveryAddress": {"name": "Ayşe Yılmaz", "city": "İstanbul"}},
    "tax": {"taxRegistrations": [{"legalName": "Yılmaz Ltd.", "taxRegistrationNumber": "123"}]},
    "proceeds": {"grandTotal": {"amount": "12345678901234.1234", "currencyCode": "TRY"}},
    "orderItems": [
        {
            "orderItemId": "00012345678901",
            "quantityOrdered": 2,
            "product": {
                "sellerSku": "SKU-1",
                "price": {"unitPrice": {"amount": "0.1", "currencyCode": "TRY"}},
            },
            "proceeds": {
                "proceedsTotal": {"amount": "0.3", "currencyCode": "TRY"},
                "breakdowns": [
                    {"type": "ITEM", "subtotal": {"amount": "0.1", "currencyCode": "TRY"}},
                    {"type": "ITEM", "subtotal": {"amount": "0.2", "currencyCode": "TRY"}},
                    {"type": "TAX", "subtotal": {"amount": "9.99", "currencyCode": "EUR"}},
                ],
            },
            "fulfillment": {
                "quantityFulfilled": 0,
                "quantityUnfulfilled": 2,
                "packing": {"giftOption": {"giftMessage": "İyi ki doğdun!", "giftWrapLevel": "X"}},
            },
        }
    ],
}


@pytest.fixture
def store(migrated_database_url: str) -> tuple[Engine, Vault, int]:
    """An engine on a migrated database, a vault, and an account to store orders under."""
    engine = create_db_engine(migrated_database_url)
    vault = Vault(SecretStr(generate_key()))
    with engine.begin() as connection:
        account = accounts.save_account(
            connection,
            vault,
            name="Acme-TR",
            region="eu",
            marketplace_ids=("A33AVAJ2PDY3EV",),
            included_data=("FULFILLMENT",),
            refresh_token=SecretStr("Atzr|x"),
            now=NOW,
        )
    return engine, vault, account.id


def _store(store: tuple[Engine, Vault, int], raw: dict[str, Any]) -> Any:
    engine, vault, account_id = store
    rows = build_rows(Order.model_validate(raw), raw, vault)
    with engine.begin() as connection:
        return store_orders(connection, account_id, [rows], NOW)


def _row(store: tuple[Engine, Vault, int]) -> Any:
    with store[0].begin() as connection:
        return connection.execute(select(ORDERS)).one()


def _items(store: tuple[Engine, Vault, int]) -> list[Any]:
    with store[0].begin() as connection:
        return list(connection.execute(select(ITEMS)))


def test_pii_goes_to_encrypted_columns_only() -> None:
    clean, parts = strip_pii(RAW)

    text = json.dumps(clean, ensure_ascii=False)
    assert "Ayşe" not in text
    assert "Yılmaz Ltd." not in text
    assert "İyi ki" not in text
    assert parts.buyer == RAW["buyer"]
    assert parts.tax_registrations == RAW["tax"]["taxRegistrations"]
    assert parts.gift_messages == {"00012345678901": "İyi ki doğdun!"}
    assert RAW["buyer"]["buyerName"] == "Ayşe Yılmaz"  # the input is not changed


def test_money_is_exact_on_every_database(store: tuple[Engine, Vault, int]) -> None:
    _store(store, RAW)

    row = _row(store)
    item = _items(store)[0]
    assert row.order_total == Decimal("12345678901234.1234")
    assert item.item_amount == Decimal("0.3")  # two ITEM breakdowns add up exactly
    assert item.tax_amount is None  # in EUR, not the line's TRY
    assert item.unit_price == Decimal("0.1")
    assert item.currency == "TRY"


def test_money_beyond_four_places_is_rounded_alike_everywhere(
    store: tuple[Engine, Vault, int],
) -> None:
    raw = copy.deepcopy(RAW)
    raw["proceeds"]["grandTotal"]["amount"] = "10.00005"
    _store(store, raw)

    assert _row(store).order_total == Decimal("10.0001")  # half away from zero, as DECIMAL


def test_absent_pii_parts_are_kept(store: tuple[Engine, Vault, int]) -> None:
    _, vault, _ = store
    _store(store, RAW)
    newer = copy.deepcopy(RAW)
    newer["lastUpdatedTime"] = "2026-05-10T10:00:00Z"
    newer["fulfillment"]["fulfillmentStatus"] = "SHIPPED"
    del newer["buyer"]
    del newer["tax"]
    del newer["orderItems"][0]["fulfillment"]["packing"]
    newer["recipient"] = {"deliveryAddress": {"name": "Mehmet", "city": "Ankara"}}

    result = _store(store, newer)

    row = _row(store)
    item = _items(store)[0]
    assert result.updated == 1
    assert row.status == "SHIPPED"
    assert json.loads(vault.decrypt(row.buyer_pii, "t"))["buyerName"] == "Ayşe Yılmaz"
    assert (
        json.loads(vault.decrypt(row.tax_registrations_pii, "t"))[0]["legalName"] == "Yılmaz Ltd."
    )
    assert json.loads(vault.decrypt(row.recipient_pii, "t"))["deliveryAddress"]["city"] == "Ankara"
    assert vault.decrypt(item.gift_message_pii, "t") == "İyi ki doğdun!"


def test_versions_unchanged_and_older_are_not_written(store: tuple[Engine, Vault, int]) -> None:
    _store(store, RAW)
    first = _row(store)

    same = _store(store, RAW)
    older = copy.deepcopy(RAW)
    older["lastUpdatedTime"] = "2026-05-10T08:30:00Z"
    older["fulfillment"]["fulfillmentStatus"] = "PENDING"
    skipped = _store(store, older)

    assert (same.new, same.updated, same.unchanged) == (0, 0, 1)
    assert skipped.older_skipped == 1
    row = _row(store)
    assert row.status == "UNSHIPPED"
    assert row.synced_at == first.synced_at


def test_duplicate_order_in_batch_keeps_newest(store: tuple[Engine, Vault, int]) -> None:
    engine, vault, account_id = store
    newer = copy.deepcopy(RAW)
    newer["lastUpdatedTime"] = "2026-05-10T11:00:00Z"
    newer["fulfillment"]["fulfillmentStatus"] = "SHIPPED"
    batch = [build_rows(Order.model_validate(r), r, vault) for r in (newer, RAW)]

    with engine.begin() as connection:
        result = store_orders(connection, account_id, batch, NOW)

    assert result.new == 1
    assert _row(store).status == "SHIPPED"
    assert _row(store).last_updated_time == NOW - timedelta(hours=1)


def test_account_names_ignore_case(store: tuple[Engine, Vault, int]) -> None:
    with store[0].begin() as connection:
        found = accounts.find_account(connection, "ACME-tr")
    assert found is not None
    assert found.name == "acme-tr"


def test_older_version_waits_for_newer_writer(store: tuple[Engine, Vault, int]) -> None:
    engine, vault, account_id = store
    _store(store, RAW)  # the stored version: 09:00
    newer = copy.deepcopy(RAW)
    newer["lastUpdatedTime"] = "2026-05-10T11:00:00Z"
    newer["fulfillment"]["fulfillmentStatus"] = "CANCELLED"
    older = copy.deepcopy(RAW)
    older["lastUpdatedTime"] = "2026-05-10T10:00:00Z"
    older["fulfillment"]["fulfillmentStatus"] = "SHIPPED"
    newer_rows = build_rows(Order.model_validate(newer), newer, vault)
    older_rows = build_rows(Order.model_validate(older), older, vault)
    newer_stored = threading.Event()

    def write_newer_and_commit_late() -> None:
        with engine.begin() as connection:
            store_orders(connection, account_id, [newer_rows], NOW)
            newer_stored.set()
            time.sleep(0.5)  # the other writer reads and compares meanwhile

    writer = threading.Thread(target=write_newer_and_commit_late)
    writer.start()
    assert newer_stored.wait(10)
    with engine.begin() as connection:
        result = store_orders(connection, account_id, [older_rows], NOW)
    writer.join()

    row = _row(store)
    assert row.status == "CANCELLED"
    assert row.last_updated_time == datetime(2026, 5, 10, 11, tzinfo=UTC)
    assert result.older_skipped == 1


def test_nul_characters_leave_text_columns(store: tuple[Engine, Vault, int]) -> None:
    raw = copy.deepcopy(RAW)
    raw["orderItems"][0]["product"]["title"] = "Cable\u0000 2m"

    _store(store, raw)

    item = _items(store)[0]
    assert item.title == "Cable 2m"
    assert json.loads(item.raw_json)["product"]["title"] == "Cable\u0000 2m"


def test_quarantine_entry_fits_its_columns(store: tuple[Engine, Vault, int]) -> None:
    engine, _vault, account_id = store
    long_id = "1" * 80
    with engine.begin() as connection:
        entry_id = quarantine.quarantine_record(
            connection,
            account_id=account_id,
            stream="orders",
            record_id=long_id,
            reason="订单无效 " * 5_000,
            payload=json.dumps({"orderId": long_id}),
            now=NOW,
        )
        entry = quarantine.get_entry(connection, entry_id)

    assert entry is not None
    assert entry.record_id == "1" * 63 + "…"
    assert len(entry.reason) == quarantine.MAX_REASON_LENGTH
    assert entry.reason.endswith("…")
    assert long_id in entry.payload
