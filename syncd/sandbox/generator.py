"""Deterministic order generator: realistic orders per (seed, seller, marketplace).

Every random choice comes from a generator seeded by the sandbox seed, the seller and the
marketplace, so the same refresh token gets the same orders in every run with the same
seed and anchor time. Orders are built in Amazon's Orders API v2026-01-01 shape with every
dataset filled in. The request's ``includedData`` later selects the datasets a client gets.

Amounts are ``Decimal`` and written as strings with the currency's decimals (none for JPY).
``unitPrice`` is the price of one unit; an item's ``proceedsTotal`` is the sum of its
breakdowns (ITEM = unit price x quantity, plus SHIPPING, DISCOUNT and TAX where present)
and the order's ``grandTotal`` is the sum of its items' totals.
"""

from __future__ import annotations

import random
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from syncd.sandbox import catalog, clock, lifecycle
from syncd.sandbox.lifecycle import Document, SandboxOrder
from syncd.sandbox.marketplaces import Marketplace
from syncd.sandbox.sellers import Seller, seeded_random

_SHIPPING_FEE_USD = Decimal("4.99")
_DISCOUNT_SHARE = Decimal("0.10")
_SERVICE_LEVELS = ("STANDARD",) * 6 + ("EXPEDITED", "EXPEDITED", "SECOND_DAY", "NEXT_DAY")
_CROSS_BORDER_SHARE = 0.6


@dataclass(frozen=True)
class GeneratorSettings:
    """Settings of the generated world other than the seller."""

    seed: int
    anchor: datetime  # generated orders lie before this time, scheduled changes after it
    history_days: int
    orders_per_marketplace: int


@dataclass(frozen=True)
class ScheduledChange:
    """A status change that takes effect when the sandbox clock reaches ``at``."""

    at: datetime
    order_id: str
    status: str


@dataclass(frozen=True)
class ItemSpec:
    """Fields a caller fixes for a created order's item; the generator fills in the rest."""

    sku: str | None = None
    asin: str | None = None
    title: str | None = None
    quantity: int | None = None
    unit_price: Decimal | None = None


@dataclass
class GeneratedOrders:
    """The orders of one seller in one marketplace and their scheduled changes."""

    orders: list[SandboxOrder]
    changes: list[ScheduledChange]


def format_amount(amount: Decimal, decimals: int) -> str:
    """Write an amount with exactly ``decimals`` decimals, rounding half up."""
    return str(amount.quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP))


def money(amount: Decimal, marketplace: Marketplace) -> Document:
    """Return Amazon's Money object for an amount in the marketplace's currency."""
    return {
        "amount": format_amount(amount, marketplace.currency_decimals),
        "currencyCode": marketplace.currency,
    }


def local_price(usd: Decimal, marketplace: Marketplace) -> Decimal:
    """Convert a USD price level into a local price that ends like a shop price (x.99, 1480)."""
    value = usd * catalog.PRICE_FACTORS[marketplace.currency]
    if marketplace.currency_decimals == 0:
        return max(Decimal(100), (value / 100).quantize(Decimal(1)) * 100 - 20)
    return max(Decimal(1), value.to_integral_value(rounding=ROUND_FLOOR)) - Decimal("0.01")


def is_cross_border(seed: int, order_id: str) -> bool:
    """Return whether an MFN order ships from the seller's warehouse in China."""
    return seeded_random(seed, order_id, "cross-border").random() < _CROSS_BORDER_SHARE


class OrderGenerator:
    """Builds orders and their history. Holds no state besides its settings."""

    def __init__(self, settings: GeneratorSettings) -> None:
        self.settings = settings

    def generate(
        self, seller: Seller, marketplace: Marketplace, taken_ids: set[str]
    ) -> GeneratedOrders:
        """Generate one marketplace's orders for a seller, with their scheduled changes."""
        rng = seller.rng(self.settings.seed, "orders", marketplace.marketplace_id)
        result = GeneratedOrders(orders=[], changes=[])
        for _ in range(self.settings.orders_per_marketplace):
            created = self._pick_created_time(rng, marketplace)
            order = self.new_order(seller, marketplace, rng, created, taken_ids)
            self._play_history(rng, seller, marketplace, order, created)
            result.orders.append(order)
            result.changes.extend(self._schedule_changes(rng, order))
        return result

    def new_order(
        self,
        seller: Seller,
        marketplace: Marketplace,
        rng: random.Random,
        created: datetime,
        taken_ids: set[str],
        *,
        fulfilled_by: str | None = None,
        channel: str | None = None,
        item_specs: list[ItemSpec] | None = None,
    ) -> SandboxOrder:
        """Build a priced UNSHIPPED order created at ``created``, every dataset filled in."""
        order_id = self._new_order_id(rng, marketplace, taken_ids)
        fulfilled_by = fulfilled_by or ("AMAZON" if rng.random() < 0.55 else "MERCHANT")
        if channel is None:
            is_mcf = fulfilled_by == "AMAZON" and rng.random() < 0.04
            channel = "NON_AMAZON" if is_mcf else "AMAZON"
        programs = _pick_programs(rng, fulfilled_by, channel, marketplace)
        merchant = fulfilled_by == "MERCHANT"

        specs = item_specs or _pick_item_specs(rng)
        items = [
            self._build_item(rng, seller, marketplace, spec, index=index, merchant=merchant)
            for index, spec in enumerate(specs)
        ]
        document: Document = {"orderId": order_id}
        if rng.random() < 0.3:
            alias = f"{seller.brand}-{created:%Y%m%d}-{rng.randint(1, 9999):04d}"
            document["orderAliases"] = [{"aliasId": alias, "aliasType": "SELLER_ORDER_ID"}]
        document["createdTime"] = clock.format_time(created)
        document["lastUpdatedTime"] = clock.format_time(created)
        if programs:
            document["programs"] = programs
        document["salesChannel"] = _sales_channel(marketplace, channel)
        document.update(self._people(rng, marketplace, merchant, programs))
        document["proceeds"] = _order_proceeds(items, marketplace)
        document["payment"] = _payment(rng, marketplace, document["proceeds"], programs)
        document["fulfillment"] = _order_fulfillment(rng, created, fulfilled_by, marketplace)
        if "AMAZON_EASY_SHIP" in programs:
            fulfillment_order_id = f"FO{rng.randint(10**11, 10**12 - 1)}"
            document["fulfillmentOrders"] = [{"fulfillmentOrderId": fulfillment_order_id}]
        document["orderItems"] = items
        return SandboxOrder(seller.seller_id, marketplace.marketplace_id, document)

    def shipper(self, seller: Seller, marketplace: Marketplace, order_id: str) -> lifecycle.Shipper:
        """Return the ship-from address and carriers of one order, the same on every call."""
        cross_border = is_cross_border(self.settings.seed, order_id)
        return seller.shipper_for(marketplace, cross_border=cross_border)

    # -- history -------------------------------------------------------------------------------

    def _pick_created_time(self, rng: random.Random, marketplace: Marketplace) -> datetime:
        anchor = self.settings.anchor.replace(microsecond=0)
        oldest = max(
            marketplace.retention_start(anchor) + timedelta(days=1),
            anchor - timedelta(days=self.settings.history_days),
        )
        span = max(60.0, (anchor - oldest).total_seconds())
        draw = rng.random()
        if draw < 0.05:
            span = min(span, 3600.0)
        elif draw < 0.25:
            span = min(span, 86400.0)
        return anchor - timedelta(seconds=int(rng.uniform(30, span)))

    def _play_history(
        self,
        rng: random.Random,
        seller: Seller,
        marketplace: Marketplace,
        order: SandboxOrder,
        created: datetime,
    ) -> None:
        latest = self.settings.anchor.replace(microsecond=0) - timedelta(seconds=1)
        age_hours = (latest - created).total_seconds() / 3600
        status = _pick_final_status(rng, age_hours, order)
        shipper = self.shipper(seller, marketplace, order.order_id)
        released = created + timedelta(seconds=rng.randint(60, 1800))
        shipped = released + timedelta(seconds=rng.randint(3600, 48 * 3600))
        cancelled = created + timedelta(minutes=rng.randint(5, 360))
        cancel_while_pending = status == "CANCELLED" and rng.random() < 0.4
        # A step whose time lies after the anchor has not happened yet: the order stays at the
        # step before, and _schedule_changes may make it happen later. Clamping such times to
        # the anchor instead would pile many orders up at one lastUpdatedTime.
        if status in ("SHIPPED", "PARTIALLY_SHIPPED") and shipped > latest:
            status = "UNSHIPPED"
        if status in ("CANCELLED", "UNSHIPPED", "UNFULFILLABLE") and released > latest:
            status = "PENDING"
        if cancel_while_pending and cancelled > latest:
            status = "PENDING"

        if status == "PENDING":
            at = min(created + timedelta(seconds=rng.randint(0, 120)), latest)
            lifecycle.set_status(order, "PENDING", at, rng, shipper)
        elif status == "CANCELLED" and cancel_while_pending:
            lifecycle.set_status(order, "PENDING", created, rng, shipper)
            lifecycle.set_status(order, "CANCELLED", cancelled, rng, shipper)
        elif status in ("CANCELLED", "UNSHIPPED", "UNFULFILLABLE"):
            lifecycle.set_status(order, status, released, rng, shipper)
        else:
            if status == "SHIPPED" and len(order.document["orderItems"]) > 1 and rng.random() < 0.3:
                first = released + timedelta(seconds=(shipped - released).total_seconds() // 2)
                lifecycle.set_status(order, "PARTIALLY_SHIPPED", first, rng, shipper)
            lifecycle.set_status(order, status, shipped, rng, shipper)
            _mark_delivered(order, latest - timedelta(days=5))

    def _schedule_changes(self, rng: random.Random, order: SandboxOrder) -> list[ScheduledChange]:
        anchor = self.settings.anchor.replace(microsecond=0)

        def after(low_seconds: int, high_seconds: int, start: datetime = anchor) -> datetime:
            return start + timedelta(seconds=rng.randint(low_seconds, high_seconds))

        changes: list[ScheduledChange] = []
        status = order.status
        if status == "PENDING":
            released = after(120, 3 * 3600)
            if rng.random() < 0.15:
                return [ScheduledChange(released, order.order_id, "CANCELLED")]
            changes.append(ScheduledChange(released, order.order_id, "UNSHIPPED"))
            if rng.random() < 0.4:
                changes.append(
                    ScheduledChange(after(3600, 48 * 3600, released), order.order_id, "SHIPPED")
                )
        elif status == "UNSHIPPED":
            draw = rng.random()
            if draw < 0.45:
                changes.append(ScheduledChange(after(1200, 48 * 3600), order.order_id, "SHIPPED"))
            elif draw < 0.5:
                changes.append(ScheduledChange(after(600, 24 * 3600), order.order_id, "CANCELLED"))
        elif status == "PARTIALLY_SHIPPED" and rng.random() < 0.5:
            changes.append(ScheduledChange(after(3600, 72 * 3600), order.order_id, "SHIPPED"))
        return changes

    # -- building blocks -----------------------------------------------------------------------

    def _new_order_id(
        self, rng: random.Random, marketplace: Marketplace, taken_ids: set[str]
    ) -> str:
        prefixes = catalog.ORDER_ID_PREFIXES[marketplace.region]
        while True:
            middle, last = rng.randint(0, 9_999_999), rng.randint(0, 9_999_999)
            order_id = f"{rng.choice(prefixes)}-{middle:07d}-{last:07d}"
            if order_id not in taken_ids:
                taken_ids.add(order_id)
                return order_id

    def _build_item(
        self,
        rng: random.Random,
        seller: Seller,
        marketplace: Marketplace,
        spec: ItemSpec,
        *,
        index: int,
        merchant: bool,
    ) -> Document:
        product = rng.choice(catalog.PRODUCTS)
        quantity = spec.quantity or _pick_quantity(rng)
        unit_price = spec.unit_price or local_price(product.base_price_usd, marketplace)
        shipping = Decimal(0)
        if merchant and index == 0 and rng.random() < 0.3:
            shipping = local_price(_SHIPPING_FEE_USD + 1, marketplace)
        discount = Decimal(0)
        if rng.random() < 0.1:
            discount = (unit_price * quantity * _DISCOUNT_SHARE).quantize(
                Decimal(1).scaleb(-marketplace.currency_decimals), rounding=ROUND_HALF_UP
            )

        item: Document = {
            "orderItemId": _new_item_id(rng),
            "quantityOrdered": quantity,
            "product": {
                "asin": spec.asin or seller.asins[product.code],
                "title": spec.title or product.title(marketplace.language),
                "sellerSku": spec.sku or seller.sku(product),
                "condition": {"conditionType": "NEW", "conditionSubtype": "NEW"},
                "price": {"unitPrice": money(unit_price, marketplace)},
            },
            "proceeds": _item_proceeds(marketplace, unit_price * quantity, shipping, discount),
        }
        if discount:
            item["promotion"] = {
                "breakdowns": [{"promotionId": f"PROMO-{rng.randint(1000, 9999)}"}]
            }
        if marketplace.country_code == "JP" and rng.random() < 0.3:
            item["expense"] = _points_expense(unit_price * quantity, marketplace)
        item["fulfillment"] = _item_fulfillment(rng, marketplace, quantity, merchant=merchant)
        item["tax"] = _item_tax(marketplace)
        return item

    def _people(
        self, rng: random.Random, marketplace: Marketplace, merchant: bool, programs: list[str]
    ) -> Document:
        style = catalog.NAME_STYLES[marketplace.language]
        name = style.join(rng.choice(style.given), rng.choice(style.family))
        buyer: Document = {"buyerName": name}
        if merchant:
            local_part = "".join(
                rng.choice("abcdefghijklmnopqrstuvwxyz0123456789") for _ in range(16)
            )
            buyer["buyerEmail"] = f"{local_part}@marketplace.{marketplace.name.lower()}"
        company: str | None = None
        if "AMAZON_BUSINESS" in programs:
            company = _company_name(rng, style, marketplace)
            buyer["buyerCompanyName"] = company
            if rng.random() < 0.5:
                buyer["buyerPurchaseOrderNumber"] = f"PO-{rng.randint(100000, 999999)}"

        address = _delivery_address(rng, marketplace, name, company, with_phone=merchant)
        people: Document = {"buyer": buyer, "recipient": {"deliveryAddress": address}}
        if company is not None and marketplace.region == "eu":
            vat_number = f"{marketplace.country_code}{rng.randint(10**8, 10**9 - 1)}"
            people["tax"] = {
                "taxRegistrations": [
                    {
                        "entityType": "BUYER",
                        "taxRegistrationType": "VAT",
                        "taxRegistrationNumber": vat_number,
                        "legalName": company,
                    }
                ]
            }
        return people


# -- pure helpers ------------------------------------------------------------------------------


def _pick_final_status(rng: random.Random, age_hours: float, order: SandboxOrder) -> str:
    if order.document["salesChannel"]["channelName"] == "NON_AMAZON":
        return _weighted(rng, (("SHIPPED", 85), ("UNSHIPPED", 10), ("UNFULFILLABLE", 5)))
    if age_hours < 0.5:
        table: tuple[tuple[str, int], ...] = (("PENDING", 55), ("UNSHIPPED", 45))
    elif age_hours < 24:
        table = (
            ("PENDING", 5),
            ("UNSHIPPED", 45),
            ("SHIPPED", 40),
            ("CANCELLED", 5),
            ("PARTIALLY_SHIPPED", 5),
        )
    elif age_hours < 72:
        table = (("UNSHIPPED", 15), ("SHIPPED", 70), ("CANCELLED", 8), ("PARTIALLY_SHIPPED", 7))
    else:
        table = (("SHIPPED", 88), ("CANCELLED", 10), ("PARTIALLY_SHIPPED", 2))
    return _weighted(rng, table)


def _weighted(rng: random.Random, table: tuple[tuple[str, int], ...]) -> str:
    values = [value for value, _ in table]
    weights = [weight for _, weight in table]
    return rng.choices(values, weights=weights)[0]


def _pick_programs(
    rng: random.Random, fulfilled_by: str, channel: str, marketplace: Marketplace
) -> list[str]:
    if channel == "NON_AMAZON":
        return []
    programs: list[str] = []
    draw = rng.random()
    # Easy Ship: Amazon picks up and delivers merchant orders; modelled for India only.
    if fulfilled_by == "MERCHANT" and marketplace.country_code == "IN" and draw < 0.3:
        return ["AMAZON_EASY_SHIP"]
    if fulfilled_by == "AMAZON" and draw < 0.4:
        programs.append("PRIME")
    elif fulfilled_by == "MERCHANT" and draw < 0.05:
        programs.append("PRIME")  # Seller Fulfilled Prime
    elif fulfilled_by == "MERCHANT" and draw < 0.10:
        programs.append("FBM_SHIP_PLUS")
    if rng.random() < 0.05:
        programs.append("AMAZON_BUSINESS")
    return programs


def _pick_item_specs(rng: random.Random) -> list[ItemSpec]:
    count = _weighted(rng, (("1", 70), ("2", 20), ("3", 7), ("4", 3)))
    return [ItemSpec() for _ in range(int(count))]


def _pick_quantity(rng: random.Random) -> int:
    return int(_weighted(rng, (("1", 75), ("2", 15), ("3", 6), ("5", 4))))


def _new_item_id(rng: random.Random) -> str:
    # Amazon's order item ids are 14 digits; some start with zeros.
    if rng.random() < 0.15:
        return "0" + "".join(rng.choice("0123456789") for _ in range(13))
    return str(rng.randint(10**13, 10**14 - 1))


def _points_expense(line_total: Decimal, marketplace: Marketplace) -> Document:
    # Amazon points (JP): the generator grants one point per 100 yen, each worth one yen.
    points = int(line_total / 100)
    return {
        "pointsCost": {
            "pointsGranted": {
                "pointsNumber": points,
                "pointsMonetaryValue": money(Decimal(points), marketplace),
            }
        }
    }


def _item_fulfillment(
    rng: random.Random, marketplace: Marketplace, quantity: int, *, merchant: bool
) -> Document:
    fulfillment: Document = {"quantityFulfilled": 0, "quantityUnfulfilled": quantity}
    if merchant and rng.random() < 0.05:
        message = catalog.GIFT_MESSAGES.get(marketplace.language, catalog.GIFT_MESSAGES["en"])
        fulfillment["packing"] = {
            "giftOption": {"giftMessage": message, "giftWrapLevel": "STANDARD"}
        }
    return fulfillment


def _item_tax(marketplace: Marketplace) -> Document:
    collector = catalog.tax_collector(marketplace.country_code, marketplace.region)
    return {"taxCollections": [{"model": "MARKETPLACE_FACILITATOR", "responsibleParty": collector}]}


def _sales_channel(marketplace: Marketplace, channel: str) -> Document:
    sales_channel: Document = {"channelName": channel, "marketplaceId": marketplace.marketplace_id}
    if channel == "AMAZON":
        sales_channel["marketplaceName"] = marketplace.name
    return sales_channel


def _company_name(rng: random.Random, style: catalog.NameStyle, marketplace: Marketplace) -> str:
    family = rng.choice(style.family)
    suffix = catalog.COMPANY_SUFFIXES.get(marketplace.country_code, "Ltd")
    if marketplace.country_code == "JP":
        return f"{suffix}{family}商事"
    return f"{family} {suffix}"


def _delivery_address(
    rng: random.Random,
    marketplace: Marketplace,
    name: str,
    company: str | None,
    *,
    with_phone: bool,
) -> Document:
    place = rng.choice(catalog.PLACES[marketplace.country_code])
    number = rng.randint(1, 250)
    address: Document = {"name": name}
    if company is not None:
        address["companyName"] = company
    address["addressLine1"] = place.street.format(n=number)
    if rng.random() < 0.2:
        address["addressLine2"] = f"{rng.randint(1, 30)}"
    address["city"] = place.city
    address["stateOrRegion"] = place.state
    address["postalCode"] = place.postal_code
    address["countryCode"] = marketplace.country_code
    if with_phone:
        digits = "".join(rng.choice("0123456789") for _ in range(9))
        address["phone"] = f"{catalog.PHONE_PREFIXES[marketplace.country_code]} {digits}"
    if marketplace.country_code == "BR":
        address["extendedFields"] = {
            "streetName": place.street.split(",")[0],
            "streetNumber": str(number),
            "neighborhood": "Centro",
        }
    address["addressType"] = "COMMERCIAL" if company is not None else "RESIDENTIAL"
    return address


def _item_proceeds(
    marketplace: Marketplace, item_total: Decimal, shipping: Decimal, discount: Decimal
) -> Document:
    breakdowns: list[Document] = [{"type": "ITEM", "subtotal": money(item_total, marketplace)}]
    if shipping:
        breakdowns.append({"type": "SHIPPING", "subtotal": money(shipping, marketplace)})
    if discount:
        value = money(-discount, marketplace)
        breakdowns.append(
            {
                "type": "DISCOUNT",
                "subtotal": value,
                "detailedBreakdowns": [{"subtype": "ITEM", "value": value}],
            }
        )
    rate = catalog.SALES_TAX_RATES.get(marketplace.country_code)
    tax = Decimal(0)
    if rate is not None:
        tax = ((item_total + shipping - discount) * rate).quantize(Decimal("0.01"), ROUND_HALF_UP)
        value = money(tax, marketplace)
        breakdowns.append(
            {
                "type": "TAX",
                "subtotal": value,
                "detailedBreakdowns": [{"subtype": "ITEM", "value": value}],
            }
        )
    total = item_total + shipping - discount + tax
    return {"proceedsTotal": money(total, marketplace), "breakdowns": breakdowns}


def _order_proceeds(items: list[Document], marketplace: Marketplace) -> Document:
    sums: dict[str, Decimal] = defaultdict(Decimal)
    grand_total = Decimal(0)
    for item in items:
        grand_total += Decimal(item["proceeds"]["proceedsTotal"]["amount"])
        for breakdown in item["proceeds"]["breakdowns"]:
            sums[breakdown["type"]] += Decimal(breakdown["subtotal"]["amount"])
    return {
        "grandTotal": money(grand_total, marketplace),
        "breakdowns": [
            {"type": kind, "subtotal": money(amount, marketplace)} for kind, amount in sums.items()
        ],
    }


def _payment(
    rng: random.Random, marketplace: Marketplace, proceeds: Document, programs: list[str]
) -> Document:
    method = "CreditCard"
    if "AMAZON_BUSINESS" in programs:
        method = "Invoice"
    elif marketplace.country_code == "JP" and rng.random() < 0.2:
        method = "ConvenienceStore"
    elif marketplace.country_code == "BR" and rng.random() < 0.4:
        method = "Pix"
    execution: Document = {"paymentMethod": method, "paymentAmount": proceeds["grandTotal"]}
    if marketplace.country_code == "BR" and method in ("CreditCard", "Pix"):
        execution["acquirerId"] = str(rng.randint(10**7, 10**8 - 1))
        execution["authorizationCode"] = str(rng.randint(100000, 999999))
        if method == "CreditCard":
            execution["cardBrand"] = rng.choice(("Visa", "Mastercard", "Elo"))
    return {"paymentExecutions": [execution]}


def _order_fulfillment(
    rng: random.Random, created: datetime, fulfilled_by: str, marketplace: Marketplace
) -> Document:
    fulfillment: Document = {
        "fulfillmentStatus": "UNSHIPPED",
        "fulfilledBy": fulfilled_by,
        "fulfillmentServiceLevel": rng.choice(_SERVICE_LEVELS),
    }
    if fulfilled_by != "MERCHANT":
        return fulfillment
    day = created.replace(hour=0, minute=0, second=0)
    fulfillment["shipByWindow"] = {
        "earliestDateTime": clock.format_time(created),
        "latestDateTime": clock.format_time(day + timedelta(days=3, seconds=-1)),
    }
    fulfillment["deliverByWindow"] = {
        "earliestDateTime": clock.format_time(day + timedelta(days=5)),
        "latestDateTime": clock.format_time(day + timedelta(days=15, seconds=-1)),
    }
    return fulfillment


def _mark_delivered(order: SandboxOrder, before: datetime) -> None:
    # Packages shipped long ago have arrived; documents are replaced, never edited in place.
    packages: list[dict[str, Any]] = order.document.get("packages", [])
    delivered = []
    for package in packages:
        ship_time = clock.parse_time(package["shipTime"])
        if ship_time is not None and ship_time < before:
            delivered.append({**package, "packageStatus": {"status": "DELIVERED"}})
        else:
            delivered.append(package)
    if packages:
        order.document = {**order.document, "packages": delivered}
