"""Orders API v0 ``confirmShipment``: the body built from typed values and checked first.

Amazon rejects a confirmation whose ``packageReferenceId`` is a number instead of a string
of digits, whose ``orderItems`` is one object instead of a list, whose ``carrierCode`` is
``Other`` without a ``carrierName``, or whose ``shipDate`` lies in the future. The body is
therefore built only from a :class:`Package` whose checks passed, so none of these requests
is ever sent.

Sending the same ``packageReferenceId`` for the same order again edits that package, which
makes the call safe to repeat after a timeout. A new reference on an order whose items are
all shipped gets a 400 "PackageToUpdateNotFound … order already fulfilled"; that answer does
not prove this shipment is on Amazon (someone may have shipped the order with another
tracking number), so :func:`is_already_fulfilled` lets the caller look at the packages.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from syncd import errors
from syncd.amazon.client import ApiResponse, SellerAccount, SpApiClient
from syncd.amazon.operations import CONFIRM_SHIPMENT
from syncd.amazon.retry import RetryPolicy
from syncd.i18n import gettext as _
from syncd.shipping.carriers import Carrier

_DIGITS = re.compile(r"[1-9][0-9]*")
_ALREADY_FULFILLED = re.compile(
    r"PackageToUpdateNotFound|order already fulfilled|not finding a matching package",
    re.IGNORECASE,
)
# A ship date may lie this far ahead of Amazon's clock as measured: the Date header has whole
# seconds only, and a warehouse clock a little fast should not fail a real shipment.
SHIP_DATE_TOLERANCE = timedelta(seconds=5)
MAX_TEXT = 100  # characters Amazon takes in carrierName, shippingMethod and trackingNumber


@dataclass(frozen=True)
class PackageItem:
    """One order item in a package: Amazon's order item id and how many of it."""

    order_item_id: str
    quantity: int


@dataclass(frozen=True)
class Package:
    """The ``packageDetail`` of one confirmation."""

    package_reference_id: str
    carrier: Carrier
    tracking_number: str
    ship_date: datetime
    items: tuple[PackageItem, ...]
    shipping_method: str | None = None

    def problems(self, now: datetime) -> list[str]:
        """Return every reason Amazon would reject this package, in the operator's language.

        Args:
            now: Amazon's current time (the client's clock), for the ship date.
        """
        return [*self._header_problems(now), *self._item_problems()]

    def _header_problems(self, now: datetime) -> list[str]:
        found = []
        reference = self.package_reference_id
        if not isinstance(reference, str) or not _DIGITS.fullmatch(reference):
            found.append(
                _("the package reference {value!r} is not a positive whole number").format(
                    value=reference
                )
            )
        if not self.carrier.code:
            found.append(_("the carrier code is missing"))
        elif self.carrier.is_other and not (self.carrier.name or "").strip():
            found.append(_("carrier code Other needs the carrier's name"))
        if not self.tracking_number.strip():
            found.append(_("the tracking number is missing"))
        found.extend(
            _("{field} is longer than {limit} characters").format(field=label, limit=MAX_TEXT)
            for label, value in (
                ("carrierName", self.carrier.name),
                ("shippingMethod", self.shipping_method),
                ("trackingNumber", self.tracking_number),
            )
            if value is not None and len(value) > MAX_TEXT
        )
        if self.ship_date.utcoffset() is None:
            found.append(_("the ship date has no time zone"))
        elif self.ship_date > now + SHIP_DATE_TOLERANCE:
            found.append(
                _("the ship date {date} lies in the future").format(
                    date=self.ship_date.astimezone(UTC).isoformat()
                )
            )
        return found

    def _item_problems(self) -> list[str]:
        found = [] if self.items else [_("the package holds no items")]
        for item in self.items:
            if not isinstance(item.order_item_id, str) or not item.order_item_id:
                found.append(_("an order item id is missing"))
            if isinstance(item.quantity, bool) or not isinstance(item.quantity, int):
                found.append(_("a quantity is not a whole number"))
            elif item.quantity < 1:
                found.append(
                    _("the quantity of item {item} is below 1").format(item=item.order_item_id)
                )
        return found

    def to_body(self, marketplace_id: str) -> dict[str, Any]:
        """Return the ConfirmShipmentRequest body, fields in the model's order."""
        detail: dict[str, Any] = {
            "packageReferenceId": self.package_reference_id,
            "carrierCode": self.carrier.code,
        }
        if self.carrier.name:
            detail["carrierName"] = self.carrier.name
        if self.shipping_method:
            detail["shippingMethod"] = self.shipping_method
        detail["trackingNumber"] = self.tracking_number
        detail["shipDate"] = format_ship_date(self.ship_date)
        detail["orderItems"] = [
            {"orderItemId": item.order_item_id, "quantity": item.quantity} for item in self.items
        ]
        return {"marketplaceId": marketplace_id, "packageDetail": detail}


def format_ship_date(value: datetime) -> str:
    """Format a time as Amazon's examples do: UTC, whole seconds, ``Z``."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def package_reference(value: int | str) -> str:
    """Return a package reference as the string of digits Amazon requires."""
    text = str(value).strip()
    if not _DIGITS.fullmatch(text):
        raise ValueError(f"package reference {value!r} is not a positive whole number")
    return text


def next_package_reference(used: Sequence[str]) -> str:
    """Return one more than the highest numeric reference in ``used`` ("1" when none).

    References that are not numbers (a package made elsewhere) do not count.
    """
    numbers = [int(ref) for ref in used if isinstance(ref, str) and _DIGITS.fullmatch(ref)]
    return str(max(numbers, default=0) + 1)


def is_already_fulfilled(error: errors.ApiError) -> bool:
    """Return whether Amazon refused a new package because the order is fully shipped."""
    if error.status_code != 400:
        return False
    text = f"{error.error_message} {error.details}"
    return bool(_ALREADY_FULFILLED.search(text))


class ShipmentsClient:
    """confirmShipment for one seller account."""

    def __init__(
        self, client: SpApiClient, account: SellerAccount, retry: RetryPolicy | None = None
    ) -> None:
        self.client = client
        self.account = account
        self.retry = retry

    def confirm(self, order_id: str, marketplace_id: str, package: Package) -> ApiResponse:
        """Send one confirmation; success is Amazon's 204.

        Raises:
            errors.RequestError: the package breaks one of Amazon's rules; nothing is sent.
            errors.ApiError: as classified by the client; see :func:`is_already_fulfilled`.
        """
        problems = package.problems(self.client.clock.now())
        if problems:
            raise errors.RequestError(CONFIRM_SHIPMENT.name, "; ".join(problems))
        return self.client.call(
            self.account,
            CONFIRM_SHIPMENT,
            path_params={"orderId": order_id},
            json_body=package.to_body(marketplace_id),
            retry=self.retry,
        )
