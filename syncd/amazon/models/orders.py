"""Orders API v2026-01-01: the ``searchOrders`` and ``getOrder`` response shapes.

Only ``orderId``, ``createdTime`` and ``lastUpdatedTime`` are required here. Everything else
may be missing: datasets appear only when requested through ``includedData``, pending orders
carry no prices, and cancelled orders may lack fulfillment details. Ids are strings, and a
numeric id is rejected rather than silently losing its leading zeros.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from syncd.amazon.models.base import AmazonModel, DateTimeRange, Money, UtcDatetime

NON_AMAZON_CHANNEL = "NON_AMAZON"
FULFILLED_BY_AMAZON = "AMAZON"
FULFILLED_BY_MERCHANT = "MERCHANT"


class Alias(AmazonModel):
    """Another identifier of the order, such as the seller's own order number."""

    alias_id: str
    alias_type: str


class SalesChannel(AmazonModel):
    """The sales channel and marketplace of the order."""

    channel_name: str | None = None  # AMAZON or NON_AMAZON (multi-channel fulfilment)
    marketplace_id: str | None = None
    marketplace_name: str | None = None


class Buyer(AmazonModel):
    """Buyer data; returned only with includedData=BUYER and the restricted roles."""

    buyer_name: str | None = None
    buyer_email: str | None = None
    buyer_company_name: str | None = None
    buyer_purchase_order_number: str | None = None


class Address(AmazonModel):
    """A delivery address (PII)."""

    name: str | None = None
    company_name: str | None = None
    address_line1: str | None = Field(default=None, alias="addressLine1")
    address_line2: str | None = Field(default=None, alias="addressLine2")
    address_line3: str | None = Field(default=None, alias="addressLine3")
    city: str | None = None
    district_or_county: str | None = None
    state_or_region: str | None = None
    municipality: str | None = None
    postal_code: str | None = None
    country_code: str | None = None
    phone: str | None = None
    address_type: str | None = None
    extended_fields: dict[str, Any] | None = None


class Recipient(AmazonModel):
    """Recipient data; returned only with includedData=RECIPIENT and the restricted roles."""

    delivery_address: Address | None = None
    delivery_preference: dict[str, Any] | None = None


class ProceedsBreakdown(AmazonModel):
    """One category of proceeds (ITEM, SHIPPING, TAX, DISCOUNT, …)."""

    type: str
    status: str | None = None
    subtotal: Money | None = None
    detailed_breakdowns: list[dict[str, Any]] | None = None


class OrderProceeds(AmazonModel):
    """The seller's proceeds for the whole order."""

    grand_total: Money | None = None
    breakdowns: list[ProceedsBreakdown] = []


class OrderFulfillment(AmazonModel):
    """The order's fulfilment: status, who ships it, and the promised windows."""

    fulfillment_status: str | None = None  # PENDING, UNSHIPPED, SHIPPED, CANCELLED, …
    fulfilled_by: str | None = None  # AMAZON or MERCHANT
    fulfillment_service_level: str | None = None
    ship_by_window: DateTimeRange | None = None
    deliver_by_window: DateTimeRange | None = None
    label_printing_window: DateTimeRange | None = None


class ItemPrice(AmazonModel):
    """The item's price; ``unit_price`` is the price of ONE unit, not of the line."""

    unit_price: Money | None = None
    price_designation: str | None = None


class ItemProduct(AmazonModel):
    """The product of an order item."""

    asin: str | None = None
    title: str | None = None
    seller_sku: str | None = None
    condition: dict[str, Any] | None = None
    price: ItemPrice | None = None
    serial_numbers: list[str] = []
    customization: dict[str, Any] | None = None


class ItemProceeds(AmazonModel):
    """The seller's proceeds for one line; ``proceeds_total`` covers all its units."""

    proceeds_total: Money | None = None
    breakdowns: list[ProceedsBreakdown] = []


class ItemFulfillment(AmazonModel):
    """Shipped and unshipped quantities of one line."""

    quantity_fulfilled: int | None = None
    quantity_unfulfilled: int | None = None
    picking: dict[str, Any] | None = None
    packing: dict[str, Any] | None = None
    shipping: dict[str, Any] | None = None


class PromotionBreakdown(AmazonModel):
    """A promotion applied to an item."""

    promotion_id: str | None = None


class ItemPromotion(AmazonModel):
    """The promotions of an item."""

    breakdowns: list[PromotionBreakdown] = []


class OrderItem(AmazonModel):
    """One line of an order."""

    order_item_id: str
    quantity_ordered: int
    product: ItemProduct | None = None
    programs: list[str] = []
    proceeds: ItemProceeds | None = None
    expense: dict[str, Any] | None = None
    promotion: ItemPromotion | None = None
    cancellation: dict[str, Any] | None = None
    fulfillment: ItemFulfillment | None = None
    tax: dict[str, Any] | None = None
    measurement: dict[str, Any] | None = None
    associated_order_items: list[dict[str, Any]] = []


class PackageStatus(AmazonModel):
    """A package's status; ``detailed_status`` is documented but not always sent."""

    status: str | None = None
    detailed_status: str | None = None


class PackageItem(AmazonModel):
    """Quantity of one order item in a package."""

    order_item_id: str
    quantity: int


class OrderPackage(AmazonModel):
    """A package confirmed for a merchant-fulfilled order (includedData=PACKAGES)."""

    package_reference_id: str
    created_time: UtcDatetime | None = None
    package_status: PackageStatus | None = None
    carrier: str | None = None
    ship_time: UtcDatetime | None = None
    shipping_service: str | None = None
    tracking_number: str | None = None
    ship_from_address: dict[str, Any] | None = None
    package_items: list[PackageItem] = []


class Order(AmazonModel):
    """One order as Orders API v2026-01-01 returns it."""

    order_id: str
    created_time: UtcDatetime
    last_updated_time: UtcDatetime
    order_aliases: list[Alias] = []
    programs: list[str] = []
    associated_orders: list[dict[str, Any]] = []
    sales_channel: SalesChannel | None = None
    buyer: Buyer | None = None
    recipient: Recipient | None = None
    proceeds: OrderProceeds | None = None
    payment: dict[str, Any] | None = None
    tax: dict[str, Any] | None = None
    fulfillment: OrderFulfillment | None = None
    order_items: list[OrderItem] = []
    packages: list[OrderPackage] | None = None
    fulfillment_orders: list[dict[str, Any]] | None = None

    @property
    def marketplace_id(self) -> str | None:
        """The marketplace the order was placed in."""
        return None if self.sales_channel is None else self.sales_channel.marketplace_id

    @property
    def is_multichannel(self) -> bool:
        """True for a multi-channel fulfilment order (not an Amazon sale)."""
        return (
            self.sales_channel is not None and self.sales_channel.channel_name == NON_AMAZON_CHANNEL
        )

    @property
    def fulfillment_status(self) -> str | None:
        """The order status, or None when FULFILLMENT was not requested."""
        return None if self.fulfillment is None else self.fulfillment.fulfillment_status


class SearchOrdersResponse(AmazonModel):
    """One page of ``searchOrders``; orders stay raw so that each is parsed on its own."""

    orders: list[Any]  # an element that is not an object is quarantined, not the page
    pagination: dict[str, Any] | None = None
    last_updated_before: UtcDatetime | None = None
    created_before: UtcDatetime | None = None


class GetOrderResponse(AmazonModel):
    """The ``getOrder`` response."""

    order: Order
