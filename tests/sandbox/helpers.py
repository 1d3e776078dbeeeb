"""A small SP-API client for the sandbox tests, and builders of orders and confirmations.

:func:`create_merchant_order` and :func:`confirmation_body` also serve integration tests
that confirm shipments against the sandbox.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx

from syncd.sandbox.server import SandboxServer

SELLER_A = "Atzr|sandbox-seller-a"
SELLER_B = "Atzr|sandbox-seller-b"

US = "ATVPDKIKX0DER"
CA = "A2EUQ1WTGCTBG2"
DE = "A1PA6795UKMFR9"
FR = "A13V1IB3VIYZZH"
IT = "APJ6JRA9NG5V4"
UK = "A1F83G8C2ARO7P"
JP = "A1VC38T7YXB528"
IN = "A21TJRUUN4KGV"
AU = "A39IBJ37TRP1C6"
SG = "A19VAU5U5O7RUS"

SEARCH_PATH = "/orders/2026-01-01/orders"
CONFIRM_PATH = "/orders/v0/orders/{}/shipmentConfirmation"
ALL_DATASETS = (
    "BUYER,RECIPIENT,PROCEEDS,EXPENSE,PROMOTION,CANCELLATION,FULFILLMENT,PACKAGES,TAX,PAYMENT,"
    "FULFILLMENT_ORDERS"
)
_NO_TOKEN = object()


def iso(moment: datetime) -> str:
    """Format a time as RFC 3339 in UTC with whole seconds."""
    return moment.astimezone(UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def days_ago(sandbox: SandboxServer, days: float) -> str:
    """Return the sandbox time ``days`` ago, formatted for a query."""
    return iso(sandbox.state.now() - timedelta(days=days))


def create_merchant_order(
    sandbox: SandboxServer,
    marketplace_id: str = US,
    quantities: Sequence[int] = (2, 1),
    *,
    refresh_token: str = SELLER_A,
    ship_by: datetime | None = None,
    status: str = "UNSHIPPED",
    fulfilled_by: str = "MERCHANT",
    programs: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Create an order now, one item per entry of ``quantities``; return the full document.

    By default the order is merchant-fulfilled, UNSHIPPED and not a Ship+ order, so
    confirmShipment accepts it. Its ``fulfillment.shipByWindow.latestDateTime`` is
    ``ship_by`` when given (else the generator's: the end of the second day after today).
    ``fulfilled_by="AMAZON"`` makes an FBA order, ``programs=["FBM_SHIP_PLUS"]`` a Ship+
    order (``programs`` replaces the generated programs), and ``status`` any other
    fulfillment status, such as PENDING or CANCELLED.
    """
    fulfillment: dict[str, Any] = {"fulfillmentStatus": status, "fulfilledBy": fulfilled_by}
    if ship_by is not None:
        fulfillment["shipByWindow"] = {"latestDateTime": iso(ship_by)}
    partial: dict[str, Any] = {
        "fulfillment": fulfillment,
        "orderItems": [{"quantityOrdered": quantity} for quantity in quantities],
    }
    if programs is not None:
        partial["programs"] = list(programs)
    return sandbox.state.create_order(refresh_token, marketplace_id, partial)


def confirmation_body(
    order: dict[str, Any],
    quantities: Sequence[int] | None = None,
    *,
    reference_id: str = "1",
    carrier_code: str = "UPS",
    tracking_number: str = "1Z0000000000000001",
    ship_date: str | None = None,
    **package_fields: Any,
) -> dict[str, Any]:
    """Build a valid confirmShipment body for ``order``.

    ``quantities`` gives the units of each order item, in item order (0 leaves an item
    out); by default every ordered unit ships. ``ship_date`` defaults to the order's
    ``createdTime``. Extra keyword arguments are set on ``packageDetail`` as given, such as
    ``carrierName="Kurier Schmidt"`` or ``shippingMethod="Ground"``.
    """
    items = order["orderItems"]
    counts = quantities if quantities is not None else [i["quantityOrdered"] for i in items]
    detail: dict[str, Any] = {
        "packageReferenceId": reference_id,
        "carrierCode": carrier_code,
        "trackingNumber": tracking_number,
        "shipDate": ship_date or order["createdTime"],
        "orderItems": [
            {"orderItemId": item["orderItemId"], "quantity": count}
            for item, count in zip(items, counts, strict=True)
            if count > 0
        ],
        **package_fields,
    }
    return {"marketplaceId": order["salesChannel"]["marketplaceId"], "packageDetail": detail}


class SpApi:
    """Talks to a sandbox like an SP-API client would, one seller per instance."""

    def __init__(self, sandbox: SandboxServer, refresh_token: str = SELLER_A) -> None:
        self.sandbox = sandbox
        self.refresh_token = refresh_token
        self.http = httpx.Client(timeout=10.0)
        self._access_token: str | None = None

    def close(self) -> None:
        """Close the HTTP connections."""
        self.http.close()

    def lwa(self, **fields: str) -> httpx.Response:
        """POST a form to the LWA endpoint; the sandbox's client credentials by default."""
        env = self.sandbox.settings_env()
        form = {
            "client_id": env["SYNCD_LWA_CLIENT_ID"],
            "client_secret": env["SYNCD_LWA_CLIENT_SECRET"],
            **fields,
        }
        return self.http.post(self.sandbox.lwa_token_url, data=form)

    def token(self) -> str:
        """Return an access token for this seller, logging in once."""
        if self._access_token is None:
            response = self.lwa(grant_type="refresh_token", refresh_token=self.refresh_token)
            assert response.status_code == 200, response.text
            self._access_token = str(response.json()["access_token"])
        return self._access_token

    def get(
        self,
        region: str,
        path: str,
        params: dict[str, str] | None = None,
        *,
        query: str | None = None,
        token: Any = _NO_TOKEN,
    ) -> httpx.Response:
        """GET an SP-API path; ``query`` is sent byte for byte instead of ``params``."""
        access_token = self.token() if token is _NO_TOKEN else token
        headers = {} if access_token is None else {"x-amz-access-token": access_token}
        url = self.sandbox.base_urls[region] + path
        if query is not None:
            return self.http.get(f"{url}?{query}", headers=headers)
        return self.http.get(url, params=params, headers=headers)

    def search(self, region: str = "eu", **params: str) -> httpx.Response:
        """Call searchOrders with the given parameters."""
        return self.get(region, SEARCH_PATH, params)

    def post(
        self,
        region: str,
        path: str,
        body: Any = None,
        *,
        content: bytes | None = None,
        token: Any = _NO_TOKEN,
    ) -> httpx.Response:
        """POST JSON to an SP-API path; ``content`` is sent byte for byte instead of ``body``."""
        access_token = self.token() if token is _NO_TOKEN else token
        headers = {"content-type": "application/json"}
        if access_token is not None:
            headers["x-amz-access-token"] = access_token
        url = self.sandbox.base_urls[region] + path
        raw = content if content is not None else json.dumps(body).encode("utf-8")
        return self.http.post(url, content=raw, headers=headers)

    def confirm_shipment(
        self, region: str, order_id: str, body: Any, *, content: bytes | None = None
    ) -> httpx.Response:
        """Call confirmShipment for an order with a JSON body (or raw ``content``)."""
        return self.post(region, CONFIRM_PATH.format(order_id), body, content=content)

    def get_order(self, region: str, order_id: str, included: str | None = None) -> httpx.Response:
        """Call getOrder, with ``includedData`` when given."""
        params = {} if included is None else {"includedData": included}
        return self.get(region, f"{SEARCH_PATH}/{order_id}", params)

    def search_pages(self, region: str = "eu", **params: str) -> list[dict[str, Any]]:
        """Fetch every page of a search and return the page bodies."""
        pages: list[dict[str, Any]] = []
        query = dict(params)
        while True:
            response = self.search(region, **query)
            assert response.status_code == 200, response.text
            pages.append(response.json())
            token = pages[-1].get("pagination", {}).get("nextToken")
            if token is None:
                return pages
            query = {**params, "paginationToken": token}

    def control(
        self, method: str, path: str, body: dict[str, Any] | None = None, region: str = "na"
    ) -> httpx.Response:
        """Call a control endpoint under /_sandbox/."""
        url = self.sandbox.base_urls[region] + "/_sandbox" + path
        return self.http.request(method, url, json=body)
