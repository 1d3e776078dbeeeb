"""The shipment intake, outbox and shipments job against the sandbox, on every database."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import insert, update
from sqlalchemy.exc import IntegrityError

from syncd.db import intake, outbox
from syncd.jobs.context import build_context
from syncd.jobs.orders import run_orders
from syncd.jobs.shipments import run_shipments
from tests.integration.orders_support import US, JobWorld
from tests.integration.shipments_support import (
    OUTBOX,
    REQUESTS,
    amazon_order,
    amazon_packages,
    confirm_calls,
    make_due,
    new_order,
    outbox_rows,
    request,
    request_count,
    request_row,
    seller_token,
)


def _control(world: JobWorld, method: str, path: str, body: Any = None) -> Any:
    import httpx  # noqa: PLC0415

    url = world.sandbox.base_urls["na"] + "/_sandbox" + path
    response = httpx.request(method, url, json=body, timeout=10)
    assert response.status_code < 300, response.text
    return response.json() if response.content else None


def test_request_reaches_amazon_once(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (2, 1))
    submitted = request(world, account, order)

    summary = run_shipments(world.ctx, account)

    assert summary.error is None
    assert (summary.accepted, summary.delivered) == (1, 1)
    row = request_row(world, submitted.request.id)
    assert row.status == intake.ACCEPTED
    [entry] = outbox_rows(world)
    assert entry.id == row.outbox_id
    assert entry.state == outbox.DELIVERED
    assert entry.package_reference_id == "1"
    assert entry.carrier_code == "Yun Express"
    assert {item.order_item_id: item.quantity for item in entry.items} == {
        item["orderItemId"]: item["quantityOrdered"] for item in order["orderItems"]
    }
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["packageReferenceId"] == "1"
    assert package["trackingNumber"] == "YT2618100710108810"
    assert amazon_order(world, account, order["orderId"])["fulfillment"]["fulfillmentStatus"] == (
        "SHIPPED"
    )
    # The order is deadline-ordered by its ship-by time.
    assert entry.deadline is not None


def test_same_request_twice_is_one(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)

    first = request(world, account, order, key="WMS-1001")
    second = request(world, account, order, key="WMS-1001")

    assert first.created
    assert not second.created
    assert second.request.id == first.request.id
    # An ERP that inserts the same key itself meets the unique key.
    values = {
        "source_system": "wms",
        "source_key": "WMS-1001",
        "account": account.name,
        "amazon_order_id": order["orderId"],
    }
    with pytest.raises(IntegrityError), world.ctx.engine.begin() as connection:
        connection.execute(insert(REQUESTS).values(**values))
    assert request_count(world) == 1
    run_shipments(world.ctx, account)
    assert len(outbox_rows(world)) == 1
    assert len(confirm_calls(world)) == 1


@pytest.mark.parametrize(
    ("case", "code"),
    [
        ("unknown_order", "unknown_order"),
        ("too_many", "quantity_exceeds_unshipped"),
        ("future", "ship_date_in_future"),
        ("no_tracking", "missing_tracking"),
        ("no_carrier", "unknown_carrier"),
        ("other_without_name", "unknown_carrier"),
        ("fba", "fba_order"),
        ("ship_plus", "ship_plus_order"),
        ("cancelled", "cancelled_order"),
        ("unknown_sku", "unknown_item"),
        ("bad_zone", "bad_time_zone"),
        ("numeric_item_id", "bad_items"),
    ],
)
def test_invalid_request_is_rejected(world: JobWorld, case: str, code: str) -> None:
    account = world.add_account("acme-na", "na", US)
    options: dict[str, Any] = {}
    if case == "fba":
        options["fulfilled_by"] = "AMAZON"
    elif case == "ship_plus":
        options["programs"] = ["FBM_SHIP_PLUS"]
    elif case == "cancelled":
        options["status"] = "CANCELLED"
    order = new_order(world, account, (2, 1), **options)
    first_item = order["orderItems"][0]["orderItemId"]
    fields: dict[str, Any] = {}
    target: dict[str, Any] | str = order
    if case == "unknown_order":
        target = "111-0000000-0000000"
    elif case == "too_many":
        fields["items"] = [{"order_item_id": first_item, "quantity": 3}]
    elif case == "future":
        fields["shipped_at"] = datetime.now(UTC) + timedelta(hours=2)
    elif case == "no_tracking":
        fields["tracking"] = "  "
    elif case == "no_carrier":
        fields["carrier"] = ""
    elif case == "other_without_name":
        fields["carrier"] = "Other"
    elif case == "unknown_sku":
        fields["items"] = [{"sku": "NO-SUCH-SKU", "quantity": 1}]
    submitted = request(world, account, target, **fields)
    if case == "bad_zone":
        _set_request(world, submitted.request.id, shipped_at_zone="Beijing")
    elif case == "numeric_item_id":
        _set_request(world, submitted.request.id, items='[{"order_item_id": 1234, "quantity": 1}]')

    summary = run_shipments(world.ctx, account)

    row = request_row(world, submitted.request.id)
    assert row.status == intake.REJECTED, row
    assert row.reject_code == code
    assert row.reject_reason
    assert summary.rejected == 1
    assert outbox_rows(world) == []
    assert confirm_calls(world) == []


def _set_request(world: JobWorld, request_id: int, **values: Any) -> None:
    with world.ctx.engine.begin() as connection:
        connection.execute(update(REQUESTS).where(REQUESTS.c.id == request_id).values(**values))


def test_beijing_time_becomes_utc(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    submitted = request(world, account, order)
    local = (datetime.now(UTC) + timedelta(hours=8) - timedelta(minutes=30)).replace(
        tzinfo=None, microsecond=0
    )
    _set_request(world, submitted.request.id, shipped_at=local, shipped_at_zone="Asia/Shanghai")

    run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert entry.ship_date == (local - timedelta(hours=8)).replace(tzinfo=UTC)
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["shipTime"].startswith(entry.ship_date.strftime("%Y-%m-%dT%H:%M:%S"))


def test_transient_failures_keep_the_reference(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order)
    world.sandbox.state.add_fault(
        {"operation": "confirmShipment", "kind": "server_error", "status": 503, "count": 3}
    )

    first = run_shipments(world.ctx, account)

    assert first.retried == 1
    assert first.delivered == 0
    [entry] = outbox_rows(world)
    assert entry.state == outbox.PENDING
    assert entry.attempts == 1
    assert entry.last_error_message
    assert entry.next_attempt_at is not None
    assert entry.next_attempt_at > datetime.now(UTC)
    make_due(world)

    second = run_shipments(world.ctx, account)

    assert second.delivered == 1
    [entry] = outbox_rows(world)
    assert (entry.state, entry.attempts) == (outbox.DELIVERED, 2)
    references = {call.body["packageDetail"]["packageReferenceId"] for call in confirm_calls(world)}
    assert references == {"1"}
    assert len(amazon_packages(world, account, order["orderId"])) == 1


def test_applied_then_timed_out_is_one(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order)
    world.sandbox.state.add_fault(
        {"operation": "confirmShipment", "kind": "apply_then_slow", "delay": 5, "count": 1}
    )

    summary = run_shipments(world.ctx, account)

    assert summary.delivered == 1, summary
    # getOrder, the confirmation that timed out, and its resend.
    assert summary.api_calls == 3
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["packageReferenceId"] == "1"


def test_permanent_failure_goes_dead(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    submitted = request(world, account, order)
    # Accepted into the outbox, then the buyer cancels before syncd sends it.
    world.sandbox.state.add_fault(
        {"operation": "confirmShipment", "kind": "throttle", "count": 100}
    )
    run_shipments(world.ctx, account)
    world.sandbox.state.clear_faults()
    world.sandbox.state.patch_order(seller_token(account), order["orderId"], status="CANCELLED")
    make_due(world)

    summary = run_shipments(world.ctx, account)

    assert request_row(world, submitted.request.id).status == intake.ACCEPTED
    assert summary.dead == 1
    [entry] = outbox_rows(world)
    assert entry.state == outbox.DEAD
    assert entry.last_error_code
    assert entry.last_error_message
    assert entry.last_request_id

    # The operator fixes the cause and retries from dead.
    world.sandbox.state.patch_order(seller_token(account), order["orderId"], status="UNSHIPPED")
    with world.ctx.engine.begin() as connection:
        assert outbox.retry_rows(connection, [entry.id], datetime.now(UTC)) == 1
    again = run_shipments(world.ctx, account)
    assert again.delivered == 1
    assert outbox_rows(world)[0].state == outbox.DELIVERED
    assert len(amazon_packages(world, account, order["orderId"])) == 1


def _ship_by_hand(world: JobWorld, account: Any, order: dict[str, Any], tracking: str) -> None:
    """Record a package as if the seller confirmed the whole order in Seller Central."""
    world.sandbox.state.add_package(
        seller_token(account),
        order["orderId"],
        {"packageReferenceId": "7", "carrier": "UPS", "trackingNumber": tracking},
    )


def _enqueue_only(world: JobWorld, account: Any) -> None:
    """Run intake but keep Amazon from accepting, so rows stay pending."""
    world.sandbox.state.add_fault(
        {"operation": "confirmShipment", "kind": "throttle", "count": 100}
    )
    run_shipments(world.ctx, account)
    world.sandbox.state.clear_faults()
    make_due(world)


def test_fulfilled_with_our_tracking_is_delivered(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order, tracking="1Z999AA10123456784", carrier="UPS")
    _enqueue_only(world, account)
    _ship_by_hand(world, account, order, "1z999aa10123456784")

    run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert entry.state == outbox.DELIVERED
    assert entry.verified_at is not None
    assert "7" in (entry.last_error_message or "")
    assert len(amazon_packages(world, account, order["orderId"])) == 1


def test_fulfilled_with_other_tracking_conflicts(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order, tracking="1Z999AA10123456784", carrier="UPS")
    _enqueue_only(world, account)
    _ship_by_hand(world, account, order, "9400100000000000000000")

    summary = run_shipments(world.ctx, account)

    assert summary.conflicts == 1
    [entry] = outbox_rows(world)
    assert entry.state == outbox.CONFLICT
    assert "9400100000000000000000" in (entry.last_error_message or "")
    assert len(amazon_packages(world, account, order["orderId"])) == 1


def test_split_shipment_gets_two_packages(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (2, 1))
    first_item, second_item = (item["orderItemId"] for item in order["orderItems"])
    request(
        world, account, order, tracking="YT1", items=[{"order_item_id": first_item, "quantity": 2}]
    )
    request(
        world, account, order, tracking="YT2", items=[{"order_item_id": second_item, "quantity": 1}]
    )
    # A third parcel for the same order finds nothing left to ship.
    third = request(world, account, order, tracking="YT3")

    summary = run_shipments(world.ctx, account)

    assert (summary.accepted, summary.rejected, summary.delivered) == (2, 1, 2)
    assert request_row(world, third.request.id).reject_code == "nothing_to_ship"
    packages = amazon_packages(world, account, order["orderId"])
    assert sorted(p["packageReferenceId"] for p in packages) == ["1", "2"]
    assert {p["trackingNumber"] for p in packages} == {"YT1", "YT2"}


def test_next_reference_skips_amazon_packages(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1, 1))
    first_item, second_item = (item["orderItemId"] for item in order["orderItems"])
    world.sandbox.state.add_package(
        seller_token(account),
        order["orderId"],
        {
            "packageReferenceId": "2",
            "carrier": "UPS",
            "trackingNumber": "1ZHAND",
            "packageItems": [{"orderItemId": first_item, "quantity": 1}],
        },
    )
    request(world, account, order)

    run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert entry.package_reference_id == "3"
    assert [(item.order_item_id, item.quantity) for item in entry.items] == [(second_item, 1)]


def test_delivered_rows_are_verified(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order)
    run_shipments(world.ctx, account)
    make_due(world)

    summary = run_shipments(world.ctx, account)

    assert summary.verified == 1
    [entry] = outbox_rows(world)
    assert entry.verified_at is not None
    stored = world.stored_orders(account)[order["orderId"]]
    assert stored.status == "SHIPPED"


def test_missing_package_never_resent(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order)
    run_shipments(world.ctx, account)
    # Amazon lost the package (or shows it late): the order has none.
    world.sandbox.state.patch_order(
        seller_token(account), order["orderId"], changes={"packages": []}
    )
    posts = len(confirm_calls(world))

    for _attempt in range(outbox.MAX_VERIFY_ATTEMPTS + 1):
        make_due(world)
        run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert entry.state == outbox.DELIVERED
    assert entry.verified_at is None
    assert entry.verify_attempts == outbox.MAX_VERIFY_ATTEMPTS
    assert entry.next_attempt_at is None
    assert len(confirm_calls(world)) == posts


def test_expired_claim_is_sent_again(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order)
    _enqueue_only(world, account)
    # A worker of another process claimed the row, sent it and died before recording the 204.
    with world.ctx.engine.begin() as connection:
        [row] = outbox.claim_due(
            connection,
            account.id,
            owner="dead-host:1:abc",
            now=datetime.now(UTC),
            ttl=timedelta(seconds=600),
            limit=10,
        )
    world.sandbox.state.add_package(
        seller_token(account),
        order["orderId"],
        {
            "packageReferenceId": row.package_reference_id,
            "carrier": row.carrier_code,
            "trackingNumber": row.tracking_number,
            "packageItems": [
                {"orderItemId": item.order_item_id, "quantity": item.quantity} for item in row.items
            ],
        },
    )

    summary = run_shipments(world.ctx, account)

    assert summary.delivered == 1
    assert len(amazon_packages(world, account, order["orderId"])) == 1


def test_deadline_order_of_claims(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    now = datetime.now(UTC)
    deadlines = [
        now + timedelta(hours=30),
        None,
        now + timedelta(hours=2),
        now + timedelta(hours=9),
    ]
    ids = []
    with world.ctx.engine.begin() as connection:
        for number, deadline in enumerate(deadlines, start=1):
            ids.append(
                outbox.enqueue(
                    connection,
                    outbox.NewShipment(
                        account_id=account.id,
                        marketplace_id=US,
                        order_id=f"111-0000000-000000{number}",
                        package_reference_id="1",
                        carrier_code="UPS",
                        carrier_name=None,
                        shipping_method=None,
                        tracking_number=f"1Z{number}",
                        ship_date=now - timedelta(hours=1),
                        items=(),
                        deadline=deadline,
                    ),
                    now,
                )
            )
        claimed = outbox.claim_due(
            connection, account.id, owner="me", now=now, ttl=timedelta(minutes=5), limit=10
        )
    assert [row.id for row in claimed] == [ids[2], ids[3], ids[0], ids[1]]


def test_workers_never_share_a_row(world: JobWorld, migrated_database_url: str) -> None:
    account = world.add_account("acme-na", "na", US)
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        for number in range(60):
            outbox.enqueue(
                connection,
                outbox.NewShipment(
                    account_id=account.id,
                    marketplace_id=US,
                    order_id=f"111-0000000-{number:07d}",
                    package_reference_id="1",
                    carrier_code="UPS",
                    carrier_name=None,
                    shipping_method=None,
                    tracking_number=f"1Z{number}",
                    ship_date=now,
                    items=(),
                    deadline=None,
                ),
                now,
            )
    other = build_context(world.ctx.settings)
    claims: dict[str, list[int]] = {"a": [], "b": []}
    start = threading.Barrier(2)

    def worker(name: str, engine: Any) -> None:
        start.wait()
        give_up = time.monotonic() + 30
        while time.monotonic() < give_up:
            with engine.begin() as connection:
                rows = outbox.claim_due(
                    connection,
                    account.id,
                    owner=name,
                    now=datetime.now(UTC),
                    ttl=timedelta(minutes=10),
                    limit=3,
                )
            claims[name].extend(row.id for row in rows)
            if not rows and len(claims["a"]) + len(claims["b"]) >= 60:
                return

    threads = [
        threading.Thread(target=worker, args=("a", world.ctx.engine)),
        threading.Thread(target=worker, args=("b", other.engine)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    other.close()

    assert not set(claims["a"]) & set(claims["b"])
    assert len(claims["a"]) + len(claims["b"]) == 60
    if not migrated_database_url.startswith("sqlite"):
        # Both took turns; SQLite's writers queue behind each other, so one may take all.
        assert claims["a"]
        assert claims["b"]


def test_unknown_account_request_rejected(world: JobWorld) -> None:
    from syncd.jobs.shipments import accounts_with_shipments  # noqa: PLC0415

    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    submitted = request(world, account, order)
    _set_request(world, submitted.request.id, account="no-such-shop")

    assert accounts_with_shipments(world.ctx) == []

    row = request_row(world, submitted.request.id)
    assert (row.status, row.reject_code) == (intake.REJECTED, "unknown_account")


def test_unmapped_carrier_goes_as_other(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order, carrier="Kurier Schmidt")

    run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert (entry.carrier_code, entry.carrier_name) == ("Other", "Kurier Schmidt")
    [call] = confirm_calls(world)
    detail = call.body["packageDetail"]
    assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Kurier Schmidt")
    with world.ctx.engine.begin() as connection:
        summary = outbox.summarize(connection, datetime.now(UTC), timedelta(hours=12))
    assert summary[account.id].carrier_other == 1


def test_intake_reads_amazon_order_once(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1, 1))
    # Ten minutes later the order lies inside the orders job's window, so syncd has a copy.
    world.sandbox.state.advance_clock(600)
    run_orders(world.ctx, account)
    assert order["orderId"] in world.stored_orders(account)
    first, second = (item["orderItemId"] for item in order["orderItems"])
    request(world, account, order, tracking="1ZA", items=[{"order_item_id": first, "quantity": 1}])
    request(world, account, order, tracking="1ZB", items=[{"order_item_id": second, "quantity": 1}])
    before = len(world.sandbox.state.calls(operation="getOrder"))

    summary = run_shipments(world.ctx, account)

    # The stored copy may be stale, so intake reads Amazon's order, once for both requests.
    assert len(world.sandbox.state.calls(operation="getOrder")) == before + 1
    assert summary.delivered == 2
    assert sorted(row.package_reference_id for row in outbox_rows(world)) == ["1", "2"]


def test_deadline_near_is_counted(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, ship_by=datetime.now(UTC) + timedelta(hours=3))
    request(world, account, order)
    _enqueue_only(world, account)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(OUTBOX).values(next_attempt_at=datetime.now(UTC) + timedelta(hours=1))
        )
        summary = outbox.summarize(connection, datetime.now(UTC), timedelta(hours=12))
    assert summary[account.id].near_deadline == 1
    assert summary[account.id].depth == 1


def test_access_denied_pauses_the_account(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    for number in range(3):
        request(world, account, new_order(world, account), tracking=f"1Z{number}")
    world.sandbox.state.add_fault({"operation": "confirmShipment", "kind": "access_denied"})

    summary = run_shipments(world.ctx, account)

    assert summary.error
    assert len(confirm_calls(world)) == 1
    rows = outbox_rows(world)
    assert {row.state for row in rows} == {outbox.PENDING}
    later = datetime.now(UTC) + timedelta(minutes=50)
    assert all(row.next_attempt_at is not None and row.next_attempt_at > later for row in rows)
    assert world.account("acme-na").status == "shipments_denied"


def test_getorder_outage_spares_due_rows(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    first = new_order(world, account)
    item = first["orderItems"][0]
    request(world, account, first, items=[{"order_item_id": item["orderItemId"], "quantity": 1}])
    _enqueue_only(world, account)
    waiting = request(world, account, new_order(world, account), tracking="1ZWAIT")
    world.sandbox.state.add_fault({"operation": "getOrder", "kind": "server_error", "status": 503})

    summary = run_shipments(world.ctx, account)

    assert summary.error is None
    assert summary.delivered == 1
    assert request_row(world, waiting.request.id).status == intake.NEW


def test_account_name_matches_any_case(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    submitted = request(world, account, new_order(world, account))
    _set_request(world, submitted.request.id, account="ACME-NA")

    summary = run_shipments(world.ctx, account)

    assert summary.delivered == 1
    assert request_row(world, submitted.request.id).status == intake.ACCEPTED


def test_conflict_settled_by_replacing(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    request(world, account, order, tracking="1Z999AA10123456784", carrier="UPS")
    _enqueue_only(world, account)
    _ship_by_hand(world, account, order, "9400100000000000000000")
    run_shipments(world.ctx, account)
    [entry] = outbox_rows(world)
    assert entry.state == outbox.CONFLICT

    with world.ctx.engine.begin() as connection:
        assert outbox.retry_rows(connection, [entry.id], datetime.now(UTC), "7") == 1
    run_shipments(world.ctx, account)

    [entry] = outbox_rows(world)
    assert (entry.state, entry.package_reference_id) == (outbox.DELIVERED, "7")
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["trackingNumber"] == "1Z999AA10123456784"


def test_reopened_request_is_not_resent(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (2, 1))
    item = order["orderItems"][0]["orderItemId"]
    submitted = request(world, account, order, items=[{"order_item_id": item, "quantity": 1}])
    run_shipments(world.ctx, account)
    # The ERP sets the accepted request back to new, as if to send it again.
    _set_request(world, submitted.request.id, status="new")

    summary = run_shipments(world.ctx, account)

    assert summary.error is None
    row = request_row(world, submitted.request.id)
    assert row.status == intake.ACCEPTED
    assert len(outbox_rows(world)) == 1
    assert len(confirm_calls(world)) == 1


def test_one_failing_order_spares_others(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    stuck = request(world, account, new_order(world, account), tracking="1ZSTUCK")
    fine = request(world, account, new_order(world, account), tracking="1ZFINE")
    # The first getOrder fails for longer than the call's own retries last.
    world.sandbox.state.add_fault(
        {"operation": "getOrder", "kind": "server_error", "status": 503, "count": 3}
    )

    summary = run_shipments(world.ctx, account)

    assert summary.deferred == 1
    assert request_row(world, stuck.request.id).status == intake.NEW
    assert request_row(world, fine.request.id).status == intake.ACCEPTED
    assert summary.delivered == 1


def test_padded_account_name_matches(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    submitted = request(world, account, new_order(world, account))
    _set_request(world, submitted.request.id, account=" Acme-NA ")

    summary = run_shipments(world.ctx, account)

    assert summary.accepted == 1


def test_ship_before_order_is_rejected(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account)
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    submitted = request(world, account, order, shipped_at=year_one + timedelta(days=400))

    run_shipments(world.ctx, account)

    assert request_row(world, submitted.request.id).reject_code == "bad_ship_date"
    assert confirm_calls(world) == []


def test_failing_requests_go_to_back(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    stuck = [
        request(world, account, new_order(world, account), tracking=f"1Z{n}") for n in range(3)
    ]
    fine = request(world, account, new_order(world, account), tracking="1ZFINE")
    # Every attempt of the first three getOrder calls fails: three deferrals end intake.
    world.sandbox.state.add_fault(
        {"operation": "getOrder", "kind": "server_error", "status": 503, "count": 9}
    )

    summary = run_shipments(world.ctx, account)

    assert summary.deferred == 3
    assert request_row(world, fine.request.id).status == intake.NEW
    with world.ctx.engine.begin() as connection:
        queue = intake.new_requests(connection, account.name, 10)
    assert [row.id for row in queue] == [fine.request.id, *(one.request.id for one in stuck)]
