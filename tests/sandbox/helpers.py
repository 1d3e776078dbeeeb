"""A small SP-API client for the sandbox tests: LWA login, raw queries, control calls."""

from __future__ import annotations

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
