"""The bridge end to end: sandbox orders into the sample ERP, WMS rows to confirmShipment."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from syncd import cli
from syncd.db import bridge_state, quarantine
from syncd.jobs.shipments import run_shipments
from tests.erp_samples import (
    DOMESTIC_TABLES,
    backend_of,
    create_tables,
    domestic_ddl,
    domestic_mapping,
    drop_tables,
    write_mapping,
)
from tests.integration.bridge_support import (
    BridgeWorld,
    bridge_world,
    fetch_orders,
    separate_database_url,
)
from tests.integration.orders_support import ORDERS, US, JobWorld
from tests.integration.shipments_support import amazon_packages, new_order

SHANGHAI = ZoneInfo("Asia/Shanghai")


@pytest.fixture(params=["same", "separate"])
def domestic(
    request: pytest.FixtureRequest,
    world: JobWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> Iterator[BridgeWorld]:
    """The domestic sample ERP in syncd's database or in a database of its own."""
    url = world.ctx.settings.database_url
    erp_url = url if request.param == "same" else separate_database_url(url, tmp_path)
    yield from _domestic_world(world, erp_url, tmp_path, monkeypatch)


def _domestic_world(
    world: JobWorld,
    erp_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    **settings: str,
) -> Iterator[BridgeWorld]:
    """Create the domestic tables in ``erp_url``, yield a bridge on them, drop them after."""
    create_tables(erp_url, domestic_ddl(backend_of(erp_url)), DOMESTIC_TABLES)
    mapping = write_mapping(tmp_path, domestic_mapping("acme-na"))
    yield from bridge_world(world, erp_url, mapping, monkeypatch, **settings)
    drop_tables(erp_url, DOMESTIC_TABLES)


def _naive(value: datetime | str) -> datetime:
    """A DATETIME read back, which SQLite returns as text."""
    moment = datetime.fromisoformat(value) if isinstance(value, str) else value
    return moment.replace(microsecond=0)


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def test_orders_land_in_domestic_erp(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    first = new_order(world, account, (2, 1))
    cancelled = new_order(world, account, (1,), status="CANCELLED")
    sku = first["orderItems"][0]["product"]["sellerSku"]
    domestic.execute(
        "INSERT INTO base_sku_mapping (platform, shop_code, platform_sku, sku) "
        "VALUES ('AMAZON', 'US01', :sku, 'ERP-SKU-1')",
        sku=sku,
    )
    fetch_orders(world, account, first["orderId"], cancelled["orderId"])

    summary = domestic.run()

    assert summary.projection is not None
    assert summary.projection.projected >= 2
    [row] = domestic.rows(
        "SELECT * FROM oms_order WHERE platform_order_no = :id", id=first["orderId"]
    )
    assert row.platform == "AMAZON"
    assert row.shop_code == "US01"
    assert row.site == "US"
    assert row.order_status == 20
    assert row.warehouse_type == 1
    assert row.pick_status == 0
    purchase = _utc(first["createdTime"]).astimezone(SHANGHAI).replace(tzinfo=None)
    assert _naive(row.order_time) == purchase.replace(microsecond=0)
    lines = domestic.rows(
        "SELECT * FROM oms_order_item WHERE order_id = :id ORDER BY platform_item_id", id=row.id
    )
    assert len(lines) == 2
    by_item = {line.platform_item_id: line for line in lines}
    first_item = first["orderItems"][0]
    assert by_item[first_item["orderItemId"]].sku == "ERP-SKU-1"
    assert by_item[first_item["orderItemId"]].qty == 2
    [cancelled_row] = domestic.rows(
        "SELECT order_status FROM oms_order WHERE platform_order_no = :id",
        id=cancelled["orderId"],
    )
    assert cancelled_row.order_status == 90


def test_erp_owned_column_keeps_value(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    domestic.run()
    domestic.execute(
        "UPDATE oms_order SET pick_status = 3 WHERE platform_order_no = :id", id=order["orderId"]
    )
    world.sandbox.state.patch_order(
        f"Atzr|{account.name}",
        order["orderId"],
        status="SHIPPED",
    )
    fetch_orders(world, account, order["orderId"])

    domestic.run()

    [row] = domestic.rows(
        "SELECT pick_status, order_status FROM oms_order WHERE platform_order_no = :id",
        id=order["orderId"],
    )
    assert row.order_status == 30
    assert row.pick_status == 3


def test_wms_row_reaches_amazon(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1, 1))
    shipped = (datetime.now(UTC) - timedelta(minutes=30)).astimezone(SHANGHAI)
    domestic.execute(
        "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, logistics_company, "
        "logistics_channel, tracking_no, delivery_time, status) VALUES ('AMAZON', 'US01', :id, "
        "'云途', '云途全球专线挂号', 'YT2618100710108810', :at, 2)",
        id=order["orderId"],
        at=shipped.replace(tzinfo=None, microsecond=0),
    )

    summary = domestic.run()
    assert summary.feed is not None
    assert summary.feed.new == 1
    run_shipments(domestic.ctx, account)
    domestic.run()

    [package] = amazon_packages(world, account, order["orderId"])
    assert package["trackingNumber"] == "YT2618100710108810"
    assert package["carrier"] == "Yun Express"
    [row] = domestic.rows("SELECT amz_upload_status, amz_upload_msg FROM wms_delivery")
    assert row.amz_upload_status == 3
    assert row.amz_upload_msg is None


def test_rejected_wms_row_written_back(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    domestic.execute(
        "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, logistics_company, "
        "tracking_no, delivery_time, status) VALUES ('AMAZON', 'US01', :id, '云途', '', :at, 2)",
        id=order["orderId"],
        at=datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0) - timedelta(seconds=2),
    )
    domestic.run()
    run_shipments(domestic.ctx, account)

    domestic.run()

    [row] = domestic.rows("SELECT id, amz_upload_status, amz_upload_msg FROM wms_delivery")
    assert row.amz_upload_status == 8
    assert "missing_tracking" in row.amz_upload_msg
    domestic.execute(
        "UPDATE wms_delivery SET tracking_no = 'YT0000000000000001' WHERE id = :id", id=row.id
    )
    # Without ON UPDATE (SQLite, PostgreSQL) the pass's overlap finds the fixed row again.
    domestic.run()
    run_shipments(domestic.ctx, account)
    domestic.run()
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["trackingNumber"] == "YT0000000000000001"
    [row] = domestic.rows("SELECT amz_upload_status FROM wms_delivery")
    assert row.amz_upload_status == 3


def _reject_trigger(domestic: BridgeWorld, order_id: str) -> None:
    """An ERP trigger that refuses one order, as ERPs do with their own rules."""
    backend = backend_of(domestic.erp_url)
    if backend == "sqlite":
        domestic.execute(
            "CREATE TRIGGER erp_rule BEFORE INSERT ON oms_order "
            f"WHEN NEW.platform_order_no = '{order_id}' "
            "BEGIN SELECT RAISE(ABORT, 'blocked by ERP rule 42'); END"
        )
    elif backend == "mariadb":
        domestic.execute(
            "CREATE TRIGGER erp_rule BEFORE INSERT ON oms_order FOR EACH ROW BEGIN "
            f"IF NEW.platform_order_no = '{order_id}' THEN SIGNAL SQLSTATE '45000' "
            "SET MESSAGE_TEXT = 'blocked by ERP rule 42'; END IF; END"
        )
    else:
        domestic.execute(
            "CREATE FUNCTION erp_rule() RETURNS trigger AS $$ BEGIN "
            f"IF NEW.platform_order_no = '{order_id}' THEN "
            "RAISE EXCEPTION 'blocked by ERP rule 42'; END IF; RETURN NEW; END $$ "
            "LANGUAGE plpgsql"
        )
        domestic.execute(
            "CREATE TRIGGER erp_rule BEFORE INSERT ON oms_order "
            "FOR EACH ROW EXECUTE FUNCTION erp_rule()"
        )


def _drop_trigger(domestic: BridgeWorld) -> None:
    if backend_of(domestic.erp_url) == "postgresql":
        domestic.execute("DROP TRIGGER erp_rule ON oms_order")
        domestic.execute("DROP FUNCTION erp_rule()")
    else:
        domestic.execute("DROP TRIGGER erp_rule")


def test_order_rejected_by_erp_is_quarantined(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    good = new_order(world, account, (1,))
    bad = new_order(world, account, (2,))
    fetch_orders(world, account, good["orderId"], bad["orderId"])
    _reject_trigger(domestic, bad["orderId"])

    summary = domestic.run()

    assert summary.projection is not None
    assert summary.projection.quarantined == 1
    assert domestic.rows(
        "SELECT 1 FROM oms_order WHERE platform_order_no = :id", id=good["orderId"]
    )
    assert not domestic.rows(
        "SELECT 1 FROM oms_order WHERE platform_order_no = :id", id=bad["orderId"]
    )
    with world.ctx.engine.begin() as connection:
        [entry] = quarantine.list_entries(connection)
    assert entry.stream == "erp_orders"
    assert entry.record_id == bad["orderId"]
    assert "blocked by ERP rule 42" in entry.reason

    _drop_trigger(domestic)
    assert domestic.run().projection.projected == 0  # waits for a re-drive
    with world.ctx.engine.begin() as connection:
        pks = bridge_state.projected_pks(connection, account.id, [bad["orderId"]])
        bridge_state.forget_outcome(connection, pks)
    domestic.run()
    assert domestic.rows("SELECT 1 FROM oms_order WHERE platform_order_no = :id", id=bad["orderId"])
    with world.ctx.engine.begin() as connection:
        assert quarantine.list_entries(connection) == []


def test_crash_between_databases_no_duplicate(
    domestic: BridgeWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1, 2))
    fetch_orders(world, account, order["orderId"])
    # Without the unique index only syncd's natural-key lookup prevents a second row.
    domestic.execute("DROP TABLE oms_order_item")
    for statement in domestic_ddl(backend_of(domestic.erp_url)):
        if "oms_order_item" in statement:
            domestic.execute(
                statement.replace("UNIQUE KEY uk_order_item", "KEY ix_order_item").replace(
                    ",\n    UNIQUE (order_id, platform_item_id)", ""
                )
            )
    calls = []

    def crash(*args: object, **kwargs: object) -> None:
        calls.append(args)
        raise RuntimeError("killed between the ERP's commit and syncd's")

    with monkeypatch.context() as patch:
        patch.setattr(bridge_state, "record_outcomes", crash)
        with pytest.raises(RuntimeError):
            domestic.bridge.run()
    assert calls

    domestic.run()
    domestic.run()

    orders = domestic.rows(
        "SELECT id FROM oms_order WHERE platform_order_no = :id", id=order["orderId"]
    )
    assert len(orders) == 1
    lines = domestic.rows("SELECT id FROM oms_order_item WHERE order_id = :id", id=orders[0].id)
    assert len(lines) == 2


def test_cli_runs_and_reports_bridge(
    domestic: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])

    assert cli.run(["bridge", "check"]) == 0
    assert cli.run(["once", "bridge"]) == 0
    assert cli.run(["status"]) == 0
    assert cli.run(["bridge", "reproject"]) == 0

    out = capsys.readouterr().out
    assert "fits the tables" in out
    assert "ERP orders: written 1," in out
    assert "Bridge to the ERP" in out
    assert "WMS shipments (wms)" in out
    assert "1 order is written into the ERP again" in out
    assert domestic.rows(
        "SELECT 1 FROM oms_order WHERE platform_order_no = :id", id=order["orderId"]
    )


def test_cli_check_lists_mapping_errors(
    domestic: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    domestic.mapping_path.write_text(
        domestic.mapping_path.read_text(encoding="utf-8").replace(
            'zone = "Asia/Shanghai" }', 'zone = "Asia/Beijing" }'
        ),
        encoding="utf-8",
    )

    assert cli.run(["bridge", "check"]) == 1

    captured = capsys.readouterr()
    assert "Asia/Beijing is not a time zone name" in captured.out
    assert "the bridge does not write anything" in captured.err


def test_corrected_tracking_edits_package(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    domestic.execute(
        "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, logistics_company, "
        "tracking_no, delivery_time, status) VALUES ('AMAZON', 'US01', :id, '燕文', "
        "'LY000000001CN', :at, 2)",
        id=order["orderId"],
        at=datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0) - timedelta(seconds=2),
    )
    domestic.run()
    run_shipments(domestic.ctx, account)
    domestic.run()
    domestic.execute("UPDATE wms_delivery SET tracking_no = 'LY000000002CN'")

    summary = domestic.run()
    assert summary.feed is not None
    assert summary.feed.amended == 1
    run_shipments(domestic.ctx, account)
    domestic.run()

    [package] = amazon_packages(world, account, order["orderId"])
    assert package["packageReferenceId"] == "1"
    assert package["trackingNumber"] == "LY000000002CN"
    [row] = domestic.rows("SELECT amz_upload_status FROM wms_delivery")
    assert row.amz_upload_status == 3


def test_status_names_unlisted_accounts(
    domestic: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = domestic.world
    listed = world.add_account("acme-na", "na", US)
    unlisted = world.add_account("other-shop", "na", US)
    ours = new_order(world, listed, (1,))
    fetch_orders(world, listed, ours["orderId"])

    summary = domestic.run()
    assert cli.run(["status"]) == 0

    assert summary.projection is not None
    assert summary.projection.unmapped_accounts == [unlisted.name]
    assert "so not written: other-shop" in capsys.readouterr().out


@pytest.fixture
def no_retention(
    world: JobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BridgeWorld]:
    """The domestic ERP in syncd's database, with PII kept no day past its retention start."""
    url = world.ctx.settings.database_url
    yield from _domestic_world(world, url, tmp_path, monkeypatch, pii_retention_days="0")


def _receiver(bridge: BridgeWorld, order_id: str) -> Any:
    [row] = bridge.rows(
        "SELECT receiver_name, receiver_zip FROM oms_order WHERE platform_order_no = :id",
        id=order_id,
    )
    return row


def test_pii_cleared_after_retention(no_retention: BridgeWorld) -> None:
    world = no_retention.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    no_retention.run()
    name = order["recipient"]["deliveryAddress"]["name"]
    assert _receiver(no_retention, order["orderId"]).receiver_name == name

    world.sandbox.state.patch_order(f"Atzr|{account.name}", order["orderId"], status="CANCELLED")
    fetch_orders(world, account, order["orderId"])
    summary = no_retention.run()

    assert summary.projection is not None
    row = _receiver(no_retention, order["orderId"])
    assert row.receiver_name is None
    assert row.receiver_zip is None


def test_purge_clears_unchanged_orders(no_retention: BridgeWorld) -> None:
    world = no_retention.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    no_retention.run()
    # The order turns cancelled in syncd's copy only: the ERP row is not written again,
    # so only the purge pass can clear it.
    with world.ctx.engine.begin() as connection:
        connection.execute(
            ORDERS.update().where(ORDERS.c.order_id == order["orderId"]).values(status="CANCELLED")
        )

    no_retention.run()

    assert _receiver(no_retention, order["orderId"]).receiver_name is None


@pytest.fixture
def small_batches(
    world: JobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[BridgeWorld]:
    """The domestic ERP in syncd's database, read five rows at a time."""
    url = world.ctx.settings.database_url
    yield from _domestic_world(world, url, tmp_path, monkeypatch, bridge_batch_size="5")


def test_same_second_rows_all_read(small_batches: BridgeWorld) -> None:
    world = small_batches.world
    world.add_account("acme-na", "na", US)
    # One statement: every row gets the same update_time, to the second, from the database.
    with small_batches.erp().begin() as connection:
        connection.execute(
            text(
                "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, "
                "logistics_company, tracking_no, delivery_time, status) VALUES ('AMAZON', "
                "'US01', :order_id, '云途', :tracking, '2026-12-05 10:00:00', 2)"
            ),
            [{"order_id": f"111-0000000-{n:07d}", "tracking": f"YT{n:016d}"} for n in range(12)],
        )

    summary = small_batches.run()

    assert summary.feed is not None
    assert summary.feed.new == 12


def _with_mapping(bridge: BridgeWorld, old: str, new: str) -> None:
    text_now = bridge.mapping_path.read_text(encoding="utf-8")
    assert old in text_now
    bridge.mapping_path.write_text(text_now.replace(old, new), encoding="utf-8")


def test_failing_hook_quarantines_its_order(domestic: BridgeWorld) -> None:
    _with_mapping(
        domestic,
        'pick_status = { value = 0, on = "insert" }',
        'pick_status = { value = 0, on = "insert" }\nremark = { code = "tests.erp_hooks.broken" }',
    )
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    single = new_order(world, account, (1,))
    double = new_order(world, account, (2,))
    fetch_orders(world, account, single["orderId"], double["orderId"])

    summary = domestic.run()

    assert summary.projection is not None
    assert summary.projection.quarantined == 1
    [row] = domestic.rows("SELECT remark FROM oms_order")
    assert row.remark == "ok"
    with world.ctx.engine.begin() as connection:
        [entry] = quarantine.list_entries(connection)
    assert entry.record_id == double["orderId"]
    assert "tests.erp_hooks.broken failed (KeyError at erp_hooks.py:" in entry.reason
    # The exception's message may quote buyer data, so the reason leaves it out.
    assert "gift_wrap" not in entry.reason


def test_update_time_written_only_on_change(domestic: BridgeWorld) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    domestic.run()
    [first] = domestic.rows("SELECT updated_at FROM oms_order")
    beijing_now = datetime.now(SHANGHAI).replace(tzinfo=None)
    assert abs(_naive(first.updated_at) - beijing_now) < timedelta(minutes=1)

    later = datetime.now(UTC) + timedelta(minutes=10)
    domestic.ctx.now = lambda: later
    with world.ctx.engine.begin() as connection:
        pks = bridge_state.projected_pks(connection, account.id, [order["orderId"]])
        bridge_state.forget_outcome(connection, pks)
    domestic.run()
    [unchanged] = domestic.rows("SELECT updated_at FROM oms_order")
    world.sandbox.state.patch_order(f"Atzr|{account.name}", order["orderId"], status="SHIPPED")
    fetch_orders(world, account, order["orderId"])
    domestic.run()
    [changed] = domestic.rows("SELECT updated_at FROM oms_order")

    assert _naive(unchanged.updated_at) == _naive(first.updated_at)
    assert _naive(changed.updated_at) - _naive(first.updated_at) >= timedelta(minutes=9)


def test_reproject_reaches_older_orders(
    domestic: BridgeWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    world = domestic.world
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    fetch_orders(world, account, order["orderId"])
    domestic.run()
    # Hours later the pass's window no longer reaches the order.
    later = datetime.now(UTC) + timedelta(hours=3)
    domestic.ctx.now = lambda: later
    domestic.run()
    domestic.execute("UPDATE oms_order SET order_status = 0")

    assert cli.run(["bridge", "reproject"]) == 0
    domestic.run()

    [row] = domestic.rows("SELECT order_status FROM oms_order")
    assert row.order_status == 20
    assert "1 order is written into the ERP again" in capsys.readouterr().out
