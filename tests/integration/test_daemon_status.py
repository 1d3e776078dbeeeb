"""The daemon's one-line systemd status counts what ``syncd status`` counts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from syncd import daemon, status
from syncd.db import outbox, quarantine
from tests.integration.orders_support import US, JobWorld


def _shipment(account_id: int, number: int) -> outbox.NewShipment:
    return outbox.NewShipment(
        account_id=account_id,
        marketplace_id=US,
        order_id=f"111-0000000-000000{number}",
        package_reference_id="1",
        carrier_code="UPS",
        carrier_name=None,
        shipping_method=None,
        tracking_number=f"1Z000000000000000{number}",
        ship_date=datetime.now(UTC) - timedelta(hours=1),
        items=(),
        deadline=None,
    )


def test_status_line_matches_status_figures(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        ids = [outbox.enqueue(connection, _shipment(account.id, n), now) for n in range(1, 5)]
        outbox.set_values(connection, ids[0], now, state=outbox.DEAD)
        outbox.set_values(connection, ids[1], now, state=outbox.DELIVERED)
        quarantine.quarantine_record(
            connection,
            account_id=account.id,
            stream="orders",
            record_id="111-0000000-0000009",
            reason="unreadable",
            payload="{}",
            now=now,
        )

    with world.ctx.engine.begin() as connection:
        figures = daemon.read_figures(connection, world.ctx.owner, now)
        shipments = status.gather_shipments(connection, now, timedelta(hours=12))
        [account_status] = status.gather_status(connection, now)

    [summary] = shipments.outbox.values()
    assert figures.outbox_pending == summary.depth == 2
    assert figures.outbox_dead == summary.by_state[outbox.DEAD] == 1
    assert figures.quarantined == account_status.quarantined == 1
    assert figures.accounts == 1
