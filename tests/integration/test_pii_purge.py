"""The pii_purge job on every database: which orders it clears, when, and what stays clear."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from syncd import cli
from syncd.amazon.models.orders import Order
from syncd.crypto import Vault
from syncd.db import accounts, bridge_state, runs
from syncd.db.accounts import AccountRecord
from syncd.db.order_rows import build_rows
from syncd.db.orders import store_orders
from syncd.jobs import pii_purge
from syncd.jobs.orders import run_orders
from syncd.jobs.pii_purge import run_pii_purge
from tests.erp_samples import (
    DOMESTIC_TABLES,
    backend_of,
    create_tables,
    domestic_ddl,
    domestic_mapping,
    drop_tables,
    write_mapping,
)
from tests.integration.bridge_support import BridgeWorld, bridge_world, fetch_orders
from tests.integration.orders_support import ITEMS, ORDERS, US, JobWorld
from tests.integration.shipments_support import new_order

NOW = datetime(2026, 12, 5, 8, 0, 0, 250_000, tzinfo=UTC)
DAY = timedelta(days=1)
TICK = timedelta(microseconds=1)


def _iso(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")


def _store(
    world: JobWorld,
    account: AccountRecord,
    order_id: str,
    status: str,
    updated: datetime,
    *,
    deliver_by: datetime | None = None,
    with_pii: bool = True,
) -> None:
    """Store one order, as the orders job would, with or without buyer data."""
    fulfillment: dict[str, Any] = {"fulfillmentStatus": status}
    if deliver_by is not None:
        fulfillment["deliverByWindow"] = {"latestDateTime": _iso(deliver_by)}
    item: dict[str, Any] = {"orderItemId": f"{order_id}-1", "quantityOrdered": 1}
    raw: dict[str, Any] = {
        "orderId": order_id,
        "createdTime": _iso(updated - 3 * DAY),
        "lastUpdatedTime": _iso(updated),
        "salesChannel": {"channelName": "AMAZON", "marketplaceId": US},
        "fulfillment": fulfillment,
        "orderItems": [item],
    }
    if with_pii:
        raw["buyer"] = {"buyerName": f"Buyer {order_id}", "buyerEmail": f"{order_id}@example.com"}
        raw["recipient"] = {"deliveryAddress": {"name": f"Buyer {order_id}", "postalCode": "98101"}}
        raw["tax"] = {"taxRegistrations": [{"taxRegistrationNumber": f"DE{order_id}"}]}
        item["fulfillment"] = {"packing": {"giftOption": {"giftMessage": f"Gift {order_id}"}}}
    rows = build_rows(Order.model_validate(raw), raw, world.ctx.vault)
    with world.ctx.engine.begin() as connection:
        store_orders(connection, account.id, [rows], NOW - 40 * DAY)


def _pii_state(world: JobWorld) -> dict[str, tuple[bool, bool, bool]]:
    """Per order id: whether any order PII column, a gift message, pii_purged_at is set."""
    with world.ctx.engine.begin() as connection:
        orders = list(connection.execute(select(ORDERS)))
        gifts = {
            row.order_pk
            for row in connection.execute(
                select(ITEMS.c.order_pk).where(ITEMS.c.gift_message_pii.is_not(None))
            )
        }
    return {
        row.order_id: (
            any(
                getattr(row, column) is not None
                for column in ("buyer_pii", "recipient_pii", "tax_registrations_pii")
            ),
            row.id in gifts,
            row.pii_purged_at is not None,
        )
        for row in orders
    }


HELD = (True, True, False)
PURGED = (False, False, True)


def test_purge_follows_retention_rule(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    start = NOW - 30 * DAY
    cases = {
        "shipped-at-boundary": ("SHIPPED", NOW - 60 * DAY, start, PURGED),
        "shipped-before-boundary": ("SHIPPED", NOW - 60 * DAY, start + TICK, HELD),
        "shipped-no-date-old": ("SHIPPED", start - DAY, None, PURGED),
        "shipped-no-date-recent": ("SHIPPED", start + DAY, None, HELD),
        "cancelled-at-boundary": ("CANCELLED", start, None, PURGED),
        "cancelled-recent": ("CANCELLED", start + TICK, None, HELD),
        "unfulfillable-old": ("UNFULFILLABLE", NOW - 90 * DAY, None, PURGED),
        "unshipped-old": ("UNSHIPPED", NOW - 90 * DAY, None, HELD),
        "partial-old": ("PARTIALLY_SHIPPED", NOW - 90 * DAY, start - DAY, HELD),
        "pending-old": ("PENDING", NOW - 90 * DAY, None, HELD),
    }
    for order_id, (status, updated, deliver_by, _expected) in cases.items():
        _store(world, account, order_id, status, updated, deliver_by=deliver_by)
    world.ctx.now = lambda: NOW

    summary = run_pii_purge(world.ctx)

    state = _pii_state(world)
    for order_id, (*_fields, expected) in cases.items():
        assert state[order_id] == expected, order_id
    assert summary.orders == 4
    assert summary.gift_messages == 4
    assert summary.error is None


def test_purge_with_zero_retention_days(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    _store(world, account, "delivered-now", "SHIPPED", NOW - DAY, deliver_by=NOW)
    _store(world, account, "delivers-later", "SHIPPED", NOW - DAY, deliver_by=NOW + TICK)
    _store(world, account, "cancelled-now", "CANCELLED", NOW)
    world.ctx.now = lambda: NOW
    world.ctx.settings = world.ctx.settings.model_copy(update={"pii_retention_days": 0})

    run_pii_purge(world.ctx)

    state = _pii_state(world)
    assert state["delivered-now"] == PURGED
    assert state["delivers-later"] == HELD
    assert state["cancelled-now"] == PURGED


def test_orders_without_pii_untouched(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    _store(world, account, "no-pii", "CANCELLED", NOW - 90 * DAY, with_pii=False)
    with world.ctx.engine.begin() as connection:
        before = connection.execute(select(ORDERS)).one()._asdict()
    world.ctx.now = lambda: NOW

    summary = run_pii_purge(world.ctx)

    with world.ctx.engine.begin() as connection:
        after = connection.execute(select(ORDERS)).one()._asdict()
    assert after == before
    assert summary.orders == 0


def test_purge_pages_through_many_orders(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    account = world.add_account("acme-na", "na", US)
    for number in range(7):
        _store(world, account, f"old-{number}", "CANCELLED", NOW - 40 * DAY)
    _store(world, account, "open", "UNSHIPPED", NOW - 40 * DAY)
    monkeypatch.setattr(pii_purge, "PAGE_SIZE", 2)
    world.ctx.now = lambda: NOW

    summary = run_pii_purge(world.ctx)

    state = _pii_state(world)
    assert summary.orders == 7
    assert all(state[f"old-{number}"] == PURGED for number in range(7))
    assert state["open"] == HELD
    log = capsys.readouterr().err
    assert '"event": "pii_purged"' in log
    assert '"orders": 7' in log
    assert "Buyer old-" not in log


def test_refetched_purged_order_stays_clean(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1, 1))
    order_id = order["orderId"]
    token = f"Atzr|{account.name}"
    items = order["orderItems"]
    items[0]["fulfillment"]["packing"] = {"giftOption": {"giftMessage": "Alles Gute, Oma"}}
    world.sandbox.state.patch_order(token, order_id, changes={"orderItems": items})
    fetch_orders(world, account, order_id)
    assert _pii_state(world)[order_id] == HELD
    world.sandbox.state.patch_order(token, order_id, status="CANCELLED")
    fetch_orders(world, account, order_id)
    world.ctx.now = lambda: datetime.now(UTC) + 31 * DAY

    assert run_pii_purge(world.ctx).orders == 1
    assert _pii_state(world)[order_id] == PURGED
    # Amazon still returns the buyer, the address and the gift message, in a newer version.
    world.sandbox.state.patch_order(
        token, order_id, changes={"fulfillment": {"fulfillmentServiceLevel": "EXPEDITED"}}
    )
    fetch_orders(world, account, order_id)

    [row] = world.stored_orders(account).values()
    assert row.service_level == "EXPEDITED"
    assert _pii_state(world)[order_id] == PURGED
    assert "Alles Gute" not in str(world.stored_items(row.id))


def test_missing_key_stores_nothing(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    world.ctx.vault = Vault(None)

    summary = run_orders(world.ctx, account)

    assert summary.result == runs.FAILED
    assert summary.error is not None
    assert "SYNCD_ENCRYPTION_KEY" in summary.error
    assert world.stored_orders(account) == {}
    assert world.watermark(account) is None


def test_cli_refuses_orders_without_key(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    account = world.add_account("acme-na", "na", US)
    key = world.ctx.settings.encryption_key
    assert key is not None
    monkeypatch.delenv("SYNCD_ENCRYPTION_KEY")

    assert cli.run(["once", "orders"]) == 2
    assert cli.run(["run"]) == 2

    err = capsys.readouterr().err
    assert "SYNCD_ENCRYPTION_KEY = (not set)" in err
    assert "syncd key generate" in err
    assert world.stored_orders(account) == {}
    # The orders wait at Amazon: the first run with the key fetches them, PII encrypted.
    monkeypatch.setenv("SYNCD_ENCRYPTION_KEY", key.get_secret_value())
    assert cli.run(["once", "orders"]) == 0
    stored = world.stored_orders(account)
    assert stored
    assert any(row.buyer_pii for row in stored.values())
    with world.ctx.engine.begin() as connection:
        assert accounts.get_account(connection, "acme-na").status == accounts.ACTIVE


@pytest.fixture
def erp_purge(
    world: JobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BridgeWorld]:
    """The domestic sample ERP in syncd's database; its mapping purges the ERP's PII."""
    url = world.ctx.settings.database_url
    create_tables(url, domestic_ddl(backend_of(url)), DOMESTIC_TABLES)
    mapping = write_mapping(tmp_path, domestic_mapping("acme-na"))
    yield from bridge_world(world, url, mapping, monkeypatch, pii_retention_days="0")
    drop_tables(url, DOMESTIC_TABLES)


def _receiver(bridge: BridgeWorld, order_id: str) -> Any:
    [row] = bridge.rows(
        "SELECT receiver_name, receiver_zip FROM oms_order WHERE platform_order_no = :id",
        id=order_id,
    )
    return row


def test_command_clears_erp_and_syncd(
    erp_purge: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = erp_purge.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    erp_purge.run()
    name = order["recipient"]["deliveryAddress"]["name"]
    assert _receiver(erp_purge, order["orderId"]).receiver_name == name
    # Cancelled in syncd's copy only, so no bridge pass writes the ERP row again.
    with world.ctx.engine.begin() as connection:
        connection.execute(
            ORDERS.update().where(ORDERS.c.order_id == order["orderId"]).values(status="CANCELLED")
        )
    assert cli.run(["status"]) == 0
    before = capsys.readouterr().out

    assert cli.run(["once", "pii-purge"]) == 0
    assert cli.run(["status"]) == 0

    out = capsys.readouterr().out
    assert "Buyer data (PII): 1 order holds it; 1 is past the 0-day retention" in before
    assert "Buyer data cleared: orders 1," in out
    assert "ERP orders cleared: 1." in out
    assert "Buyer data (PII): no order holds any." in out
    row = _receiver(erp_purge, order["orderId"])
    assert row.receiver_name is None
    assert row.receiver_zip is None
    assert _pii_state(world)[order["orderId"]][2] is True


def test_command_keeps_erp_without_purge(
    erp_purge: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    mapping = erp_purge.mapping_path
    mapping.write_text(
        mapping.read_text(encoding="utf-8") + "\n[pii]\npurge = false\n", encoding="utf-8"
    )
    world = erp_purge.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    erp_purge.run()
    with world.ctx.engine.begin() as connection:
        connection.execute(
            ORDERS.update().where(ORDERS.c.order_id == order["orderId"]).values(status="CANCELLED")
        )

    assert cli.run(["once", "pii-purge"]) == 0

    out = capsys.readouterr().out
    assert "Buyer data cleared: orders 1," in out
    assert "ERP orders cleared" not in out
    name = order["recipient"]["deliveryAddress"]["name"]
    assert _receiver(erp_purge, order["orderId"]).receiver_name == name


def test_command_defers_erp_to_busy_bridge(
    erp_purge: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = erp_purge.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    erp_purge.run()
    with world.ctx.engine.begin() as connection:
        connection.execute(
            ORDERS.update().where(ORDERS.c.order_id == order["orderId"]).values(status="CANCELLED")
        )
        bridge_state.take_lease(connection, "bridge", "other-node", datetime.now(UTC), 300)

    assert cli.run(["once", "pii-purge"]) == 1

    captured = capsys.readouterr()
    assert "Buyer data cleared: orders 1," in captured.out
    assert "Another syncd process is running the bridge" in captured.err
    name = order["recipient"]["deliveryAddress"]["name"]
    assert _receiver(erp_purge, order["orderId"]).receiver_name == name


def test_status_names_next_purge(world: JobWorld, capsys: pytest.CaptureFixture[str]) -> None:
    account = world.add_account("acme-na", "na", US)
    recent = datetime.now(UTC) - DAY
    _store(world, account, "recent", "CANCELLED", recent)
    _store(world, account, "open", "UNSHIPPED", recent)

    assert cli.run(["status"]) == 0

    out = capsys.readouterr().out
    expected = (recent + 30 * DAY).strftime("%Y-%m-%d %H:%M UTC")
    assert (
        f"Buyer data (PII): 2 orders hold it; the next one's retention ends at {expected}." in out
    )
