"""Shipment intake and outbox cases that a review found syncd getting wrong, now fixed.

Every test here states the behaviour that docs/shipments.md or Amazon's confirmShipment rules
require: odd ERP rows reject only their own request, a stale stored order never decides a
package reference, busy accounts cannot starve others, and operator tables show ERP text as
written.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import text, update

from syncd.amazon.shipments import PackageItem
from syncd.db import intake, outbox
from syncd.jobs.orders import run_orders
from syncd.jobs.shipments import accounts_with_shipments, run_shipments
from tests.integration.orders_support import US, JobWorld
from tests.integration.shipments_support import (
    REQUESTS,
    amazon_packages,
    new_order,
    outbox_rows,
    request,
    request_row,
    seller_token,
)


def _set_request(world: JobWorld, request_id: int, **values: Any) -> None:
    with world.ctx.engine.begin() as connection:
        connection.execute(update(REQUESTS).where(REQUESTS.c.id == request_id).values(**values))


def _dialect(world: JobWorld) -> str:
    return world.ctx.engine.dialect.name


def _good_request_after(world: JobWorld, account: Any) -> int:
    """Write a valid request that comes after the odd one in the intake's order."""
    return request(
        world, account, new_order(world, account), tracking="1ZGOOD0000000001"
    ).request.id


# -- one odd ERP row must not stop the account's other shipments --------------------------------


def test_dotnet_min_ship_time_rejected(world: JobWorld) -> None:
    """0001-01-01 (.NET's DateTime.MinValue) in Beijing time lies before year 1 in UTC."""
    account = world.add_account("acme-na", "na", US)
    odd = request(world, account, new_order(world, account)).request.id
    _set_request(world, odd, shipped_at=datetime(1, 1, 1), shipped_at_zone="Asia/Shanghai")
    good = _good_request_after(world, account)

    summary = run_shipments(world.ctx, account)

    assert summary.error is None, summary.error
    assert request_row(world, odd).status == intake.REJECTED
    assert request_row(world, good).status == intake.ACCEPTED


@pytest.mark.parametrize("order_id", ["", ".", ".."])
def test_unusable_order_id_rejected(world: JobWorld, order_id: str) -> None:
    """An empty order id is what MariaDB's INSERT IGNORE stores for a missing NOT NULL column."""
    account = world.add_account("acme-na", "na", US)
    odd = request(world, account, new_order(world, account)).request.id
    _set_request(world, odd, amazon_order_id=order_id)
    good = _good_request_after(world, account)

    summary = run_shipments(world.ctx, account)

    assert summary.error is None, summary.error
    row = request_row(world, odd)
    assert (row.status, row.reject_code) == (intake.REJECTED, "unknown_order")
    assert request_row(world, good).status == intake.ACCEPTED


def test_deeply_nested_items_rejected(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    odd = request(world, account, new_order(world, account)).request.id
    _set_request(world, odd, items="[" * 5000 + "]" * 5000)
    good = _good_request_after(world, account)

    summary = run_shipments(world.ctx, account)

    assert summary.error is None, summary.error
    row = request_row(world, odd)
    assert (row.status, row.reject_code) == (intake.REJECTED, "bad_items")
    assert request_row(world, good).status == intake.ACCEPTED


def test_mariadb_zero_ship_date_rejected(world: JobWorld) -> None:
    """INSERT IGNORE, which the guide recommends, stores an invalid date as 0000-00-00."""
    if _dialect(world) not in ("mysql", "mariadb"):
        pytest.skip("only MariaDB/MySQL store zero dates")
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT IGNORE INTO syncd_shipment_requests "
                "(source_system, source_key, account, amazon_order_id, carrier, "
                "tracking_number, shipped_at, shipped_at_zone) VALUES "
                "('wms', 'SHP-ZERO', 'acme-na', :order, 'UPS', '1ZZERO', "
                "'2026-13-45 10:00:00', 'Asia/Shanghai')"
            ),
            {"order": order["orderId"]},
        )
        odd = connection.execute(
            text("SELECT id FROM syncd_shipment_requests WHERE source_key = 'SHP-ZERO'")
        ).scalar_one()
    good = _good_request_after(world, account)

    summary = run_shipments(world.ctx, account)

    assert summary.error is None, summary.error
    assert request_row(world, odd).status == intake.REJECTED
    assert request_row(world, good).status == intake.ACCEPTED


def test_unparsable_ship_time_spares_others(world: JobWorld) -> None:
    """On SQLite the ERP writes text, and 2026/12/04 is how many Chinese systems write a date."""
    account = world.add_account("acme-na", "na", US)
    other = world.add_account("acme-eu", "eu", "A1PA6795UKMFR9")
    yesterday = (datetime.now(UTC) + timedelta(hours=8) - timedelta(days=1)).strftime(
        "%Y/%m/%d %H:%M:%S"
    )
    order = new_order(world, account)
    with world.ctx.engine.begin() as connection:
        # Text, as an ERP's own SQL writes it. PostgreSQL and MariaDB parse it themselves.
        connection.execute(
            text(
                "INSERT INTO syncd_shipment_requests "
                "(contract_version, source_system, source_key, account, amazon_order_id, "
                "carrier, tracking_number, shipped_at, shipped_at_zone, status) VALUES "
                "(1, 'wms', 'SHP-SLASH', 'acme-na', :order, 'UPS', '1ZSLASH', :shipped_at, "
                "'Asia/Shanghai', 'new')"
            ),
            {"order": order["orderId"], "shipped_at": yesterday},
        )
    good = request(world, other, new_order(world, other), tracking="1ZEU").request.id

    busy = accounts_with_shipments(world.ctx)

    assert {found.name for found in busy} >= {"acme-eu"}
    summary = run_shipments(world.ctx, world.account("acme-eu"))
    assert summary.error is None, summary.error
    assert request_row(world, good).status == intake.ACCEPTED


# -- syncd's copy of the order and the intake table ------------------------------------------------


def test_stale_copy_overwrites_hand_package(world: JobWorld) -> None:
    """The reference comes from Amazon's order, not from a stored copy missing a newer package."""
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (2, 1))
    world.sandbox.state.advance_clock(600)
    run_orders(world.ctx, account)
    first, second = order["orderItems"]
    # After the orders job read the order, the seller ships the second item in Seller Central.
    world.sandbox.state.add_package(
        seller_token(account),
        order["orderId"],
        {
            "carrier": "UPS",
            "trackingNumber": "1ZHAND0000000001",
            "packageItems": [{"orderItemId": second["orderItemId"], "quantity": 1}],
        },
    )
    request(world, account, order, items=[{"order_item_id": first["orderItemId"], "quantity": 2}])

    run_shipments(world.ctx, account)

    trackings = sorted(
        p["trackingNumber"] for p in amazon_packages(world, account, order["orderId"])
    )
    assert trackings == ["1ZHAND0000000001", "YT2618100710108810"]


def test_stale_pending_copy_not_final(world: JobWorld) -> None:
    """syncd's stored copy shows pending, while Amazon has released the order."""
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,), status="PENDING")
    world.sandbox.state.advance_clock(600)
    run_orders(world.ctx, account)
    world.sandbox.state.patch_order(seller_token(account), order["orderId"], status="UNSHIPPED")
    item = order["orderItems"][0]
    submitted = request(
        world, account, order, items=[{"order_item_id": item["orderItemId"], "quantity": 1}]
    )

    run_shipments(world.ctx, account)

    row = request_row(world, submitted.request.id)
    assert row.reject_code != "pending_order", row.reject_reason
    assert row.status == intake.ACCEPTED


def test_source_keys_differ_by_case(world: JobWorld) -> None:
    """The contract makes (source_system, source_key) unique, compared as the ERP wrote it."""
    account = world.add_account("acme-na", "na", US)

    lower = request(world, account, new_order(world, account), key="pkg-a1", tracking="1ZA")
    upper = request(world, account, new_order(world, account), key="PKG-A1", tracking="1ZB")
    accented = request(world, account, new_order(world, account), key="Müller-7", tracking="1ZC")
    plain = request(world, account, new_order(world, account), key="Muller-7", tracking="1ZD")

    assert lower.created
    assert upper.created
    assert accented.created
    assert plain.created


# -- the daemon and the operator -------------------------------------------------------------------


def _dead_row_past_deadline(world: JobWorld, account: Any) -> None:
    """Add a row that Amazon rejected for an order whose ship-by deadline has passed."""
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        row_id = outbox.enqueue(
            connection,
            outbox.NewShipment(
                account_id=account.id,
                marketplace_id=US,
                order_id="111-0000000-0000001",
                package_reference_id="1",
                carrier_code="UPS",
                carrier_name=None,
                shipping_method=None,
                tracking_number="1ZDEAD",
                ship_date=now - timedelta(days=2),
                items=(PackageItem("11111111111111", 1),),
                deadline=now - timedelta(days=1),
            ),
            now,
        )
        outbox.set_values(connection, row_id, now, state=outbox.DEAD, next_attempt_at=None)


def test_dead_rows_do_not_starve_others(world: JobWorld) -> None:
    """With the default two shipment workers, accounts later by name must still get a turn."""
    from syncd.scheduler import Dispatcher  # noqa: PLC0415

    for name in ("a-shop", "b-shop"):
        _dead_row_past_deadline(world, world.add_account(name, "na", US))
    waiting = world.add_account("c-shop", "na", US)
    submitted = request(world, waiting, new_order(world, waiting))
    dispatcher = Dispatcher(world.ctx)
    try:
        for _tick in range(3):
            dispatcher.dispatch_shipments()
            for future in list(dispatcher.shipping.values()):
                future.result(timeout=60)
    finally:
        dispatcher.ship_pool.shutdown(wait=True)
        dispatcher.pool.shutdown(wait=True)

    assert request_row(world, submitted.request.id).status == intake.ACCEPTED


def test_rejected_list_shows_bracketed_text(
    world: JobWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """ERP text such as a SKU [/ABC] is data, not console markup."""
    from syncd import cli  # noqa: PLC0415

    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order, key="[WMS]SHP-1", items=[{"sku": "[/ABC]", "quantity": 1}])
    run_shipments(world.ctx, account)
    capsys.readouterr()

    code = cli.run(["outbox", "rejected"])

    output = capsys.readouterr()
    assert code == 0, output.err
    assert "[WMS]SHP-1" in output.out
    assert "[/ABC]" in output.out


def test_ship_default_date_with_fast_clock(
    world: JobWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """syncd ship's default ship date comes from the server's clock, here 2 minutes fast."""
    from syncd import cli  # noqa: PLC0415

    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    world.sandbox.state.set_clock_offset(-120)

    assert cli.run(["ship", order["orderId"], "--carrier", "UPS", "--tracking", "1ZFAST"]) == 0
    cli.run(["once", "shipments"])

    output = capsys.readouterr()
    entries = outbox_rows(world)
    assert [entry.state for entry in entries] == [outbox.DELIVERED], output.out + output.err


def test_ship_long_tracking_clear_error(
    world: JobWorld, capsys: pytest.CaptureFixture[str]
) -> None:
    """PostgreSQL and MariaDB reject 120 characters in a String(100) column."""
    from syncd import cli  # noqa: PLC0415

    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    tracking = "1Z" + "9" * 118

    code = cli.run(
        ["ship", order["orderId"], "--carrier", "UPS", "--tracking", tracking, "--source-key", "K1"]
    )

    output = capsys.readouterr()
    if code == 0:
        # SQLite keeps the text, and the guide states that such a row goes dead as request_not_sent.
        run_shipments(world.ctx, account)
        [entry] = outbox_rows(world)
        assert entry.last_error_code == "request_not_sent"
    else:
        assert "100" in output.err


def test_confirm_403_status_survives_orders_run(world: JobWorld) -> None:
    """A successful orders run keeps the status that shows Amazon rejecting confirmations."""
    account = world.add_account("acme-na", "na", US)
    request(world, account, new_order(world, account))
    world.sandbox.state.add_fault({"operation": "confirmShipment", "kind": "access_denied"})
    run_shipments(world.ctx, account)
    assert world.account("acme-na").status == "shipments_denied"

    world.sandbox.state.advance_clock(600)
    run_orders(world.ctx, world.account("acme-na"))

    assert world.account("acme-na").status == "shipments_denied"
    [entry] = outbox_rows(world)
    assert entry.state == outbox.PENDING
