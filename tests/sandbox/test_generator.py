"""The generated world: deterministic per (seed, refresh token), realistic and consistent."""

from __future__ import annotations

import re
from collections import Counter
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from syncd.sandbox import marketplaces
from syncd.sandbox.state import SandboxConfig, SandboxState
from tests.sandbox.helpers import DE, JP, SELLER_A, SELLER_B, US

ANCHOR = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
EVERY_MARKETPLACE = [m.marketplace_id for m in marketplaces.MARKETPLACES]


@pytest.fixture(scope="module")
def world() -> list[dict[str, Any]]:
    """Every order of seller A in every marketplace, with a fixed anchor."""
    state = SandboxState(SandboxConfig(seed=7, anchor=ANCHOR, clock_offset=_offset_to(ANCHOR)))
    return state.orders(SELLER_A, marketplace_ids=EVERY_MARKETPLACE)


def _offset_to(moment: datetime) -> float:
    # Puts the sandbox clock at `moment`, so scheduled changes after it have not happened.
    return (moment - datetime.now(UTC)).total_seconds()


def _state(seed: int = 7, **options: Any) -> SandboxState:
    return SandboxState(
        SandboxConfig(seed=seed, anchor=ANCHOR, clock_offset=_offset_to(ANCHOR), **options)
    )


def _items(world: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [item for order in world for item in order["orderItems"]]


def _time(value: str) -> datetime:
    return datetime.fromisoformat(value)


def test_same_seed_and_token_give_same_orders() -> None:
    first = _state().orders(SELLER_A, marketplace_ids=[DE, JP])
    second = _state().orders(SELLER_A, marketplace_ids=[DE, JP])

    assert first == second


def test_other_token_gives_other_orders() -> None:
    state = _state()

    ids_a = {order["orderId"] for order in state.orders(SELLER_A, marketplace_ids=[DE])}
    ids_b = {order["orderId"] for order in state.orders(SELLER_B, marketplace_ids=[DE])}

    assert ids_a.isdisjoint(ids_b)
    assert state.seller_id(SELLER_A) != state.seller_id(SELLER_B)


def test_other_seed_gives_other_orders() -> None:
    ids_7 = {o["orderId"] for o in _state(seed=7).orders(SELLER_A, marketplace_ids=[DE])}
    ids_8 = {o["orderId"] for o in _state(seed=8).orders(SELLER_A, marketplace_ids=[DE])}

    assert ids_7.isdisjoint(ids_8)


def test_orders_per_marketplace_setting() -> None:
    state = _state(orders_per_marketplace=15)

    orders = state.orders(SELLER_A, marketplace_ids=[DE, US])

    assert Counter(o["salesChannel"]["marketplaceId"] for o in orders) == {DE: 15, US: 15}


def test_sellers_sell_only_in_configured_marketplaces() -> None:
    state = _state(marketplace_ids=(DE,))

    assert state.orders(SELLER_A, marketplace_ids=[US]) == []
    assert len(state.orders(SELLER_A, marketplace_ids=[DE])) == 120


def test_order_ids_look_like_amazon(world: list[dict[str, Any]]) -> None:
    ids = [order["orderId"] for order in world]

    assert all(re.fullmatch(r"\d{3}-\d{7}-\d{7}", order_id) for order_id in ids)
    assert len(ids) == len(set(ids))
    assert any(order_id.startswith("0") for order_id in ids)


def test_item_ids_are_14_digits(world: list[dict[str, Any]]) -> None:
    ids = [item["orderItemId"] for item in _items(world)]

    assert all(re.fullmatch(r"\d{14}", item_id) for item_id in ids)
    assert any(item_id.startswith("0") for item_id in ids)


def test_mix_of_orders(world: list[dict[str, Any]]) -> None:
    fulfilled_by = Counter(order["fulfillment"]["fulfilledBy"] for order in world)
    statuses = Counter(order["fulfillment"]["fulfillmentStatus"] for order in world)
    channels = Counter(order["salesChannel"]["channelName"] for order in world)
    programs = Counter(program for order in world for program in order.get("programs", []))

    assert fulfilled_by["AMAZON"] > 100
    assert fulfilled_by["MERCHANT"] > 100
    assert {"PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED"} <= statuses.keys()
    assert channels["NON_AMAZON"] > 0
    assert {"PRIME", "FBM_SHIP_PLUS", "AMAZON_BUSINESS"} <= programs.keys()
    assert any(len(order["orderItems"]) > 1 for order in world)
    assert any(item["quantityOrdered"] > 1 for item in _items(world))


def test_non_amazon_orders_are_fulfilled_by_amazon(world: list[dict[str, Any]]) -> None:
    mcf = [o for o in world if o["salesChannel"]["channelName"] == "NON_AMAZON"]

    assert all(order["fulfillment"]["fulfilledBy"] == "AMAZON" for order in mcf)
    assert all("marketplaceName" not in order["salesChannel"] for order in mcf)


def test_money_has_currency_decimals(world: list[dict[str, Any]]) -> None:
    for order in world:
        marketplace = marketplaces.find_marketplace(order["salesChannel"]["marketplaceId"])
        assert marketplace is not None
        pattern = r"-?\d+" if marketplace.currency == "JPY" else r"-?\d+\.\d{2}"
        for money in _money_values(order):
            assert money["currencyCode"] == marketplace.currency
            assert re.fullmatch(pattern, money["amount"]), money


def _money_values(node: Any) -> list[dict[str, str]]:
    if isinstance(node, dict):
        if set(node) == {"amount", "currencyCode"}:
            return [node]
        return [money for value in node.values() for money in _money_values(value)]
    if isinstance(node, list):
        return [money for value in node for money in _money_values(value)]
    return []


def test_item_proceeds_add_up(world: list[dict[str, Any]]) -> None:
    priced = [item for item in _items(world) if "proceeds" in item]

    assert priced
    for item in priced:
        breakdowns = {
            b["type"]: Decimal(b["subtotal"]["amount"]) for b in item["proceeds"]["breakdowns"]
        }
        unit = Decimal(item["product"]["price"]["unitPrice"]["amount"])
        assert breakdowns["ITEM"] == unit * item["quantityOrdered"]
        assert Decimal(item["proceeds"]["proceedsTotal"]["amount"]) == sum(breakdowns.values())


def test_grand_total_is_sum_of_items(world: list[dict[str, Any]]) -> None:
    for order in world:
        if "proceeds" not in order:
            continue
        items_total = sum(
            Decimal(item["proceeds"]["proceedsTotal"]["amount"]) for item in order["orderItems"]
        )
        assert Decimal(order["proceeds"]["grandTotal"]["amount"]) == items_total
        by_type = sum(Decimal(b["subtotal"]["amount"]) for b in order["proceeds"]["breakdowns"])
        assert by_type == items_total


def test_quantities_match_status(world: list[dict[str, Any]]) -> None:
    for order in world:
        status = order["fulfillment"]["fulfillmentStatus"]
        shipped = [item["fulfillment"]["quantityFulfilled"] for item in order["orderItems"]]
        open_units = [item["fulfillment"]["quantityUnfulfilled"] for item in order["orderItems"]]
        ordered = [item["quantityOrdered"] for item in order["orderItems"]]
        if status in ("PENDING", "UNSHIPPED"):
            assert shipped == [0] * len(ordered)
            assert open_units == ordered
        elif status == "SHIPPED":
            assert shipped == ordered
            assert not any(open_units)
        elif status == "PARTIALLY_SHIPPED":
            assert 0 < sum(shipped) < sum(ordered)
            assert [s + u for s, u in zip(shipped, open_units, strict=True)] == ordered
        elif status == "CANCELLED":
            assert not any(open_units)
            assert all("cancellation" in item for item in order["orderItems"])


def test_packages_cover_shipped_units(world: list[dict[str, Any]]) -> None:
    merchant_shipped = [
        o
        for o in world
        if o["fulfillment"]["fulfilledBy"] == "MERCHANT"
        and o["fulfillment"]["fulfillmentStatus"] in ("SHIPPED", "PARTIALLY_SHIPPED")
    ]

    assert merchant_shipped
    for order in merchant_shipped:
        packed: Counter[str] = Counter()
        for package in order["packages"]:
            assert package["packageReferenceId"].isdigit()
            for entry in package["packageItems"]:
                packed[entry["orderItemId"]] += entry["quantity"]
        shipped = {
            i["orderItemId"]: i["fulfillment"]["quantityFulfilled"] for i in order["orderItems"]
        }
        assert packed == Counter({k: v for k, v in shipped.items() if v})
    assert not any("packages" in o for o in world if o["fulfillment"]["fulfilledBy"] == "AMAZON")


def test_merchant_orders_have_windows(world: list[dict[str, Any]]) -> None:
    for order in world:
        fulfillment = order["fulfillment"]
        if fulfillment["fulfilledBy"] == "MERCHANT":
            assert {"shipByWindow", "deliverByWindow"} <= fulfillment.keys()


def test_times_are_ordered_and_recent(world: list[dict[str, Any]]) -> None:
    for order in world:
        created = _time(order["createdTime"])
        updated = _time(order["lastUpdatedTime"])
        assert ANCHOR - timedelta(days=30) <= created <= updated <= ANCHOR


def test_texts_use_local_scripts(world: list[dict[str, Any]]) -> None:
    titles = " ".join(item["product"]["title"] for item in _items(world))
    names = " ".join(o["buyer"]["buyerName"] for o in world if "buyer" in o)
    text = titles + names

    assert re.search(r"[\u4e00-\u9fff]", text), "Chinese"
    assert re.search(r"[\u3040-\u30ff]", text), "Japanese kana"
    assert re.search(r"[äöüß]", text), "German"
    assert re.search(r"[şğı]", text), "Turkish"
    assert re.search(r"[\u0600-\u06ff]", text), "Arabic"
    assert "'" in names


def test_unit_price_is_per_unit() -> None:
    state = _state()
    body = {
        "orderItems": [
            {"quantityOrdered": 3, "product": {"price": {"unitPrice": {"amount": "19.99"}}}}
        ]
    }

    order = state.create_order(SELLER_A, DE, body)

    item = order["orderItems"][0]
    assert item["product"]["price"]["unitPrice"] == {"amount": "19.99", "currencyCode": "EUR"}
    item_line = next(b for b in item["proceeds"]["breakdowns"] if b["type"] == "ITEM")
    assert item_line["subtotal"]["amount"] == "59.97"


def test_yen_amounts_have_no_decimals() -> None:
    orders = _state().orders(SELLER_A, marketplace_ids=[JP])

    amounts = [m["amount"] for o in orders for m in _money_values(o)]
    assert amounts
    assert all("." not in amount for amount in amounts)
