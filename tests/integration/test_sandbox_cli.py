"""``syncd sandbox serve`` in its own process serves orders that Amazon's model accepts."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from syncd import config
from syncd.amazon.client import SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.operations import SEARCH_ORDERS
from syncd.amazon.orders import SearchOrdersQuery
from syncd.sandbox.external import ExternalSandbox
from tests import spec
from tests.integration.conftest import DE, JP, US, make_account

DATASETS = ("FULFILLMENT", "PROCEEDS", "BUYER", "RECIPIENT", "PACKAGES", "PROMOTION", "TAX")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Run ``syncd sandbox serve --port 0`` and point the settings at the ports it prints."""
    sandbox = ExternalSandbox("--speed", "100")
    with sandbox:
        for key, value in sandbox.settings.items():
            monkeypatch.setenv(key, value)
        yield sandbox.settings
    assert sandbox.returncode == 0


@pytest.mark.parametrize(
    ("region", "marketplace_id"), [("na", US), ("eu", DE), ("fe", JP)], ids=["US", "DE", "JP"]
)
def test_served_orders_validate_against_the_model(
    served: dict[str, str], region: str, marketplace_id: str
) -> None:
    query = SearchOrdersQuery(
        (marketplace_id,), last_updated_after=utc_now() - timedelta(days=30), included_data=DATASETS
    )
    query = query.with_before(utc_now() - timedelta(minutes=5))

    with SpApiClient(config.load_settings()) as client:
        response = client.call(
            make_account(region, marketplace_id),
            SEARCH_ORDERS,
            query=query.to_query(),  # type: ignore[arg-type]
        )

    assert served["SYNCD_ENVIRONMENT"] == "sandbox"
    spec.validate_response("searchOrders", 200, response.body)
    orders = response.body["orders"]
    assert orders
    assert {order["salesChannel"]["marketplaceId"] for order in orders} == {marketplace_id}
