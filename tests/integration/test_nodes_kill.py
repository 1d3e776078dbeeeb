"""Three ``syncd run`` nodes on one database: SIGKILL one, and the others take over its accounts.

The nodes are real processes against ``syncd sandbox serve``. Each account has merchant
orders with shipment requests; one node is killed while the nodes send them. The test then
creates a new order for every account and checks four facts. Each new order arrives within
the lease's lifetime and a margin. Every shipment became exactly one package. No watermark
ever moved backwards. The accounts were spread over the nodes.
"""

from __future__ import annotations

import itertools
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update

from syncd.crypto import Vault
from syncd.db import accounts, migrate, outbox
from syncd.db.engine import create_db_engine
from syncd.db.models import Account, Checkpoint, Lease, Order, table_of
from syncd.sandbox.external import ExternalSandbox
from syncd.shipping.submit import submit_shipment
from tests.conftest import reset_database
from tests.crash_support import command_environment, parse_time, read_events

US = "ATVPDKIKX0DER"
NODES = 3
ACCOUNTS = 6
LEASE_SECONDS = 30
HEARTBEAT_SECONDS = 2
# After the kill: the dead node's leases expire, a survivor's heartbeat claims them, and the
# next dispatch and searchOrders run store the order.
ARRIVAL_LIMIT = LEASE_SECONDS + 25  # seconds after the kill
# Orders are created this many seconds in the past, as Amazon indexes some orders late: the
# runs read up to two minutes before now and re-read SYNCD_ORDERS_LOOKBACK (900 s) behind
# the watermark, so they find them at once.
ORDER_AGE = 300

_ACCOUNTS = table_of(Account)
_CHECKPOINTS = table_of(Checkpoint)
_LEASES = table_of(Lease)
_ORDERS = table_of(Order)


@dataclass
class Samples:
    """What the sampler saw: watermark moves backwards and the lease owners over time."""

    backwards: list[str] = field(default_factory=list)
    owner_sets: list[dict[int, str | None]] = field(default_factory=list)
    count: int = 0


@pytest.mark.slow
def test_killed_node_accounts_keep_syncing(database_url: str, tmp_path: Path) -> None:
    if database_url.startswith("sqlite"):
        pytest.skip("an SQLite database serves one node")
    reset_database(database_url)
    migrate.upgrade(database_url)
    sandbox_args = (
        "--orders-per-marketplace",
        "0",
        "--marketplace",
        US,
        "--speed",
        "10",
    )
    engine = create_db_engine(database_url)
    with (
        ExternalSandbox(*sandbox_args) as sandbox,
        httpx.Client(
            base_url=sandbox.settings["SYNCD_SPAPI_ENDPOINT_NA"] + "/_sandbox", timeout=60
        ) as control,
    ):
        env = command_environment(database_url, sandbox.settings, _node_settings())
        names = _add_accounts(engine, env)
        first_orders = {name: _create_orders(control, name, 2) for name in names}

        with _nodes(env, tmp_path) as processes, _sampler(engine) as samples:
            # Every account syncs its first orders, and the accounts spread over the nodes.
            _wait_for(lambda: _stored_orders(engine) == 2 * ACCOUNTS, 90, "first orders stored")
            _wait_for(lambda: len(_holders(engine)) == NODES, 30, "accounts on every node")
            spread = Counter(_owners(engine).values())

            # Shipments go out while one node is killed.
            for name in names:
                _request_shipment(engine, name, first_orders[name][0], "A")
            victim_owner = spread.most_common(1)[0][0]
            assert victim_owner is not None
            victim = _process_of(processes, victim_owner)
            time.sleep(0.5)
            victim.kill()
            killed_at = time.monotonic()
            victim.wait(timeout=30)

            # New orders for every account and more shipments; every account is due now, as
            # SYNCD_ORDERS_INTERVAL passing would make it.
            new_orders = {name: _create_orders(control, name, 1)[0]["orderId"] for name in names}
            for name in names:
                _request_shipment(engine, name, first_orders[name][1], "B")
            _make_due(engine)

            _wait_for(
                lambda: _arrived(engine, new_orders) == set(names),
                ARRIVAL_LIMIT,
                "new orders of every account after the kill",
            )
            arrived_after = time.monotonic() - killed_at
            _wait_for(lambda: _all_delivered(engine), 60, "every shipment delivered")
            owners_after = Counter(_owners(engine).values())
            survivors = [process for process in processes if process is not victim]
            for process in survivors:
                process.send_signal(signal.SIGTERM)
            codes = [process.wait(timeout=60) for process in survivors]

        rows = _outbox_rows(engine)
        packages = {row.order_id: _packages(control, row) for row in rows}
        confirms = control.get("/calls", params={"operation": "confirmShipment"}).json()["calls"]
    engine.dispose()

    # The accounts were spread over all three nodes, and the dead node's moved on.
    assert sorted(spread.values()) == [2, 2, 2]
    assert victim_owner not in owners_after
    assert sum(owners_after.values()) == ACCOUNTS
    assert arrived_after < ARRIVAL_LIMIT
    assert codes == [0] * (NODES - 1)

    # No two nodes ever ran jobs of one account at the same time.
    assert _overlapping_runs(tmp_path) == []

    # No watermark ever moved backwards.
    assert samples.count > 20
    assert samples.backwards == []

    # Every outbox row became exactly one package, and each row was sent under one reference.
    assert len(rows) == 2 * ACCOUNTS
    for row in rows:
        mine = [
            p for p in packages[row.order_id] if p["packageReferenceId"] == row.package_reference_id
        ]
        assert len(mine) == 1, f"order {row.order_id}: {packages[row.order_id]}"
        assert len(packages[row.order_id]) == 1
        assert mine[0]["trackingNumber"] == row.tracking_number
    references: dict[str, set[str]] = defaultdict(set)
    for call in confirms:
        body = call.get("body") or {}
        if isinstance(body, dict) and call["status"] == 204:
            for package in [body.get("packageDetail") or {}]:
                references[str(package.get("trackingNumber"))].add(
                    str(package.get("packageReferenceId"))
                )
    for row in rows:
        assert references[row.tracking_number] == {row.package_reference_id}


# -- setup ---------------------------------------------------------------------------------------


def _node_settings() -> dict[str, str]:
    return {
        "SYNCD_LEASE_SECONDS": str(LEASE_SECONDS),
        "SYNCD_NODE_HEARTBEAT": str(HEARTBEAT_SECONDS),
        "SYNCD_DISPATCH_INTERVAL": "1",
        "SYNCD_SHIPMENTS_INTERVAL": "1",
        "SYNCD_ORDERS_INTERVAL": "60",
        "SYNCD_ORDERS_BACKFILL_DAYS": "1",
        "SYNCD_CLOCK_SKEW_MARGIN": "0",
        "SYNCD_SHIPMENT_RETRY_BASE_DELAY": "1",
        "SYNCD_SHIPMENT_RETRY_MAX_DELAY": "2",
        "SYNCD_HTTP_READ_TIMEOUT": "5",
        "SYNCD_LOG_LEVEL": "info",
    }


def _seller_token(name: str) -> str:
    return f"Atzr|nodes-{name}"


def _add_accounts(engine: Engine, env: dict[str, str]) -> list[str]:
    vault = Vault(SecretStr(env["SYNCD_ENCRYPTION_KEY"]))
    names = [f"node-shop-{number}" for number in range(ACCOUNTS)]
    with engine.begin() as connection:
        for name in names:
            accounts.save_account(
                connection,
                vault,
                name=name,
                region="na",
                marketplace_ids=(US,),
                included_data=("FULFILLMENT", "PACKAGES"),
                refresh_token=SecretStr(_seller_token(name)),
                now=datetime.now(UTC),
            )
    return names


def _create_orders(control: httpx.Client, name: str, count: int) -> list[dict[str, Any]]:
    """Create unshipped merchant orders of one item, created and updated ORDER_AGE ago."""
    created = []
    at = (datetime.now(UTC) - timedelta(seconds=ORDER_AGE)).strftime("%Y-%m-%dT%H:%M:%SZ")
    for _ in range(count):
        response = control.post(
            "/orders",
            json={
                "refresh_token": _seller_token(name),
                "marketplace_id": US,
                "order": {
                    "createdTime": at,
                    "lastUpdatedTime": at,
                    "fulfillment": {"fulfilledBy": "MERCHANT"},
                    "orderItems": [{"quantityOrdered": 1}],
                },
            },
        )
        response.raise_for_status()
        created.append(response.json()["order"])
    return created


def _request_shipment(engine: Engine, name: str, order: dict[str, Any], wave: str) -> None:
    order_id = order["orderId"]
    submit_shipment(
        engine,
        account=name,
        order_id=order_id,
        carrier="UPS",
        tracking_number=f"1Z{wave}{order_id.replace('-', '')}",
        shipped_at=datetime.now(UTC) - timedelta(minutes=5),
        source_system="nodes-test",
        source_key=f"{order_id}/{wave}",
    )


@contextmanager
def _nodes(env: dict[str, str], work_dir: Path) -> Iterator[list[subprocess.Popen[bytes]]]:
    """Start the nodes; any still running at the end is killed."""
    processes = []
    for number in range(NODES):
        log = (work_dir / f"node-{number}.log").open("wb")
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "syncd", "run"],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )
        )
        log.close()
    try:
        yield processes
    finally:
        for process in processes:
            if process.poll() is None:
                process.kill()
                process.wait(timeout=30)


def _process_of(processes: list[subprocess.Popen[bytes]], owner: str) -> subprocess.Popen[bytes]:
    """Return the process whose lease owner id is ``owner`` (host:pid:random)."""
    pid = int(owner.split(":")[1])
    return next(process for process in processes if process.pid == pid)


# -- observation ---------------------------------------------------------------------------------


@contextmanager
def _sampler(engine: Engine) -> Iterator[Samples]:
    """Read every watermark and lease owner again and again until the block ends."""
    samples = Samples()
    done = threading.Event()
    seen: dict[int, datetime] = {}

    def sample() -> None:
        while not done.wait(0.3):
            with engine.begin() as connection:
                marks = connection.execute(
                    select(_CHECKPOINTS.c.account_id, _CHECKPOINTS.c.watermark)
                ).all()
            for account_id, watermark in marks:
                previous = seen.get(account_id)
                if previous is not None and (watermark is None or watermark < previous):
                    samples.backwards.append(f"account {account_id}: {previous} -> {watermark}")
                if watermark is not None:
                    seen[account_id] = watermark
            samples.owner_sets.append(_owners(engine))
            samples.count += 1

    thread = threading.Thread(target=sample, name="watermark-sampler", daemon=True)
    thread.start()
    try:
        yield samples
    finally:
        done.set()
        thread.join(timeout=30)


def _wait_for(condition: Callable[[], bool], seconds: float, what: str) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {seconds} s waiting for: {what}")
        time.sleep(0.25)


def _stored_orders(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(connection.execute(select(func.count()).select_from(_ORDERS)).scalar_one())


def _owners(engine: Engine) -> dict[int, str | None]:
    with engine.begin() as connection:
        rows = connection.execute(select(_LEASES.c.account_id, _LEASES.c.owner))
        return {int(row.account_id): row.owner for row in rows}


def _holders(engine: Engine) -> set[str]:
    return {owner for owner in _owners(engine).values() if owner is not None}


def _make_due(engine: Engine) -> None:
    with engine.begin() as connection:
        connection.execute(
            update(_ACCOUNTS).values(next_run_at=datetime.now(UTC) - timedelta(seconds=1))
        )


def _arrived(engine: Engine, new_orders: dict[str, str]) -> set[str]:
    """Return the names of the accounts whose new order syncd has stored."""
    with engine.begin() as connection:
        return set(
            connection.execute(
                select(_ACCOUNTS.c.name)
                .join(_ORDERS, _ORDERS.c.account_id == _ACCOUNTS.c.id)
                .where(_ORDERS.c.order_id.in_(list(new_orders.values())))
            ).scalars()
        )


def _outbox_rows(engine: Engine) -> list[outbox.OutboxRow]:
    with engine.begin() as connection:
        return outbox.list_rows(connection, limit=1000)


def _all_delivered(engine: Engine) -> bool:
    rows = _outbox_rows(engine)
    return len(rows) == 2 * ACCOUNTS and all(row.state == outbox.DELIVERED for row in rows)


def _packages(control: httpx.Client, row: outbox.OutboxRow) -> list[dict[str, Any]]:
    response = control.get(
        f"/orders/{row.order_id}/packages", params={"refresh_token": _seller_token(row.account)}
    )
    response.raise_for_status()
    packages: list[dict[str, Any]] = response.json()["packages"]
    return packages


def _overlapping_runs(work_dir: Path) -> list[str]:
    """Return the runs of one account by two nodes whose times overlap, from the node logs."""
    spans: dict[str, list[tuple[datetime, datetime, int]]] = defaultdict(list)
    for number in range(NODES):
        for event in read_events(work_dir / f"node-{number}.log"):
            if event["event"] not in ("orders_run_finished", "shipments_run_finished"):
                continue
            end = parse_time(str(event["timestamp"]))
            start = end - timedelta(milliseconds=float(event["duration_ms"]))
            spans[str(event["account"])].append((start, end, number))
    found = []
    for account, runs in spans.items():
        for (start, end, node), (other_start, other_end, other) in itertools.combinations(runs, 2):
            if node != other and start < other_end and other_start < end:
                found.append(f"{account}: node {node} {start}-{end}, node {other} {other_start}")
    return found
