"""Pacing of confirmShipment against Amazon's plan (2 requests per second, burst 10).

The sandbox's token bucket, being on the server like Amazon's, counts a request when the
request arrives, one network latency after the client took its token. When one request takes
longer on the way than a later one, a client that sends each request the moment its own
bucket refills reaches the server before the server's token has.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from syncd.amazon.shipments import PackageItem
from syncd.db import outbox
from syncd.jobs.shipments import run_shipments
from tests.integration.orders_support import US, JobWorld
from tests.integration.shipments_support import confirm_calls, new_order, outbox_rows

SHIPMENTS = 12  # the burst of 10, then two calls paced at the plan's rate
FIRST_CALL_DELAY = 0.06  # seconds: network latency of the first request above the others


def test_latency_jitter_causes_no_throttling(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)
    world.sandbox.state.update_settings(speed=1.0)
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        for number in range(SHIPMENTS):
            order = new_order(world, account, (1,))
            outbox.enqueue(
                connection,
                outbox.NewShipment(
                    account_id=account.id,
                    marketplace_id=US,
                    order_id=order["orderId"],
                    package_reference_id="1",
                    carrier_code="UPS",
                    carrier_name=None,
                    shipping_method=None,
                    tracking_number=f"1Z{number:016d}",
                    ship_date=now - timedelta(minutes=5),
                    items=(PackageItem(order["orderItems"][0]["orderItemId"], 1),),
                    deadline=None,
                ),
                now,
            )
    http = world.ctx.client.http
    send = http.send
    delayed: list[str] = []

    def send_with_latency(request: httpx.Request, **options: Any) -> httpx.Response:
        if request.url.path.endswith("/shipmentConfirmation") and not delayed:
            delayed.append(request.url.path)
            time.sleep(FIRST_CALL_DELAY)  # the token is taken, the request is still on its way
        return send(request, **options)

    monkeypatch.setattr(http, "send", send_with_latency)

    summary = run_shipments(world.ctx, account)

    assert delayed
    assert summary.delivered == SHIPMENTS
    assert all(row.state == outbox.DELIVERED for row in outbox_rows(world))
    statuses = [call.status for call in confirm_calls(world)]
    assert statuses.count(429) == 0, statuses
