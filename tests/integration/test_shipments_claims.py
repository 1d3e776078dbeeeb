"""Rows left claimed by a process that died: when does the next process pick them up?"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import update

from syncd.db import leases, outbox
from syncd.db.models import Lease, OutboxEntry, table_of
from syncd.jobs.shipments import accounts_with_shipments, run_shipments
from tests.integration.orders_support import US, JobWorld
from tests.integration.shipments_support import amazon_packages, new_order, outbox_rows, request

LEASES = table_of(Lease)
OUTBOX = table_of(OutboxEntry)
DEAD_OWNER = "dead-host:4242:0123456789ab"


def test_dead_process_claims_are_due(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        outbox.enqueue(
            connection,
            outbox.NewShipment(
                account_id=account.id,
                marketplace_id=US,
                order_id="111-0000000-0000001",
                package_reference_id="1",
                carrier_code="UPS",
                carrier_name=None,
                shipping_method=None,
                tracking_number="1Z0000000000000001",
                ship_date=now - timedelta(hours=1),
                items=(),
                deadline=None,
            ),
            now,
        )
        # A process took the lease, claimed the row and was killed before recording anything.
        leases.ensure_lease(connection, account.id)
        assert leases.acquire_lease(connection, account.id, DEAD_OWNER, timedelta(minutes=5))
        [row] = outbox.claim_due(
            connection,
            account.id,
            owner=DEAD_OWNER,
            now=now,
            ttl=timedelta(seconds=world.ctx.settings.shipment_claim_seconds),
            limit=10,
        )
        # Its lease has run out since; its claim has not.
        connection.execute(
            update(LEASES)
            .where(LEASES.c.account_id == account.id)
            .values(expires_at=now - timedelta(seconds=1))
        )

    assert row.state == outbox.SENDING
    due = [found.name for found in accounts_with_shipments(world.ctx)]

    assert due == [account.name]


def test_own_claim_cut_short_is_resent(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    order = new_order(world, account, (1,))
    request(world, account, order)
    assert run_shipments(world.ctx, account).accepted == 1
    # The first confirmation went out, then the database went away before its outcome was
    # stored: the row is still claimed by this very process.
    now = datetime.now(UTC)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(OUTBOX).values(
                state=outbox.SENDING,
                claimed_by=world.ctx.owner,
                claim_expires_at=now + timedelta(minutes=10),
                attempts=1,
            )
        )

    summary = run_shipments(world.ctx, account)

    assert summary.error is None
    [entry] = outbox_rows(world)
    assert entry.state == outbox.DELIVERED
    [package] = amazon_packages(world, account, order["orderId"])
    assert package["packageReferenceId"] == entry.package_reference_id
