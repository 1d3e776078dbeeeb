"""A database outage in the middle of a ``syncd run``: the daemon pauses, waits and resumes.

The daemon reaches PostgreSQL or MariaDB through a TCP proxy that the test cuts, which
resets every connection and every new one, as a restarted server or a broken route would.
The shared database servers keep running. SQLite is a local file, so it has no connection
to cut and is skipped.
"""

from __future__ import annotations

import signal
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, func, select
from sqlalchemy.engine import make_url

from syncd.crypto import generate_key
from syncd.db import outbox
from syncd.db.engine import create_db_engine
from syncd.db.models import Checkpoint, Order, OutboxEntry, table_of
from syncd.sandbox.server import SandboxServer
from syncd.shipping.submit import submit_shipment
from tests.crash_support import read_events
from tests.integration.daemon_support import (
    NotifyListener,
    add_account,
    daemon_environment,
    has,
    start_daemon,
    stop_daemon,
    wait_until,
)
from tests.sandbox.helpers import create_merchant_order
from tests.tcp_proxy import TcpProxy

US = "ATVPDKIKX0DER"
ACCOUNT = "outage-na"
SELLER = f"Atzr|{ACCOUNT}"
SHIPMENTS = 3
CUT_SECONDS = 6.0  # how long the database stays unreachable
_DEFAULT_PORTS = {"postgresql": 5432, "mysql": 3306, "mariadb": 3306}
_ORDERS = table_of(Order)
_OUTBOX = table_of(OutboxEntry)
_CHECKPOINTS = table_of(Checkpoint)


def _through(url: str, proxy: TcpProxy) -> str:
    """Return ``url`` pointed at the proxy's port on 127.0.0.1."""
    return (
        make_url(url).set(host="127.0.0.1", port=proxy.port).render_as_string(hide_password=False)
    )


def _order_count(engine: Engine) -> int:
    with engine.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(_ORDERS)).scalar_one())


def _outbox_states(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [str(state) for state in connection.execute(select(_OUTBOX.c.state)).scalars()]


def _names(log: Path) -> list[str]:
    return [event["event"] for event in read_events(log)]


def _index(events: list[dict[str, Any]], name: str) -> int:
    return next(i for i, event in enumerate(events) if event["event"] == name)


def _finished_after_outage(log: Path) -> bool:
    """True once an orders run that began after the outage has finished."""
    events = read_events(log)
    names = [event["event"] for event in events]
    if "database_reachable_again" not in names:
        return False
    back = _index(events, "database_reachable_again")
    return any(
        event["event"] == "orders_run_finished" and event["result"] == "succeeded"
        for event in events[back:]
    )


def test_outage_pauses_then_resumes_without_loss(
    migrated_database_url: str, sandbox_factory: Any, tmp_path: Path
) -> None:
    parsed = make_url(migrated_database_url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        pytest.skip("SQLite is a local file: there is no connection for a TCP proxy to cut")
    shop: SandboxServer = sandbox_factory(speed=1000, orders_per_marketplace=300)
    # Slow searches stretch the first run over several seconds, so the cut lands inside it.
    shop.state.add_fault({"kind": "slow", "operation": "searchOrders", "delay": 0.3})
    key = generate_key()
    add_account(migrated_database_url, key, ACCOUNT, "na", US)
    engine = create_db_engine(migrated_database_url)
    shipped = [create_merchant_order(shop, US, (1,), refresh_token=SELLER) for _ in range(3)]
    for number, order in enumerate(shipped):
        submit_shipment(
            engine,
            account=ACCOUNT,
            order_id=order["orderId"],
            carrier="云途",
            tracking_number=f"YT26181007101088{number}",
            shipped_at=datetime.now(UTC) - timedelta(minutes=5),
            source_system="wms",
            source_key=f"outage-{number}",
        )

    target_port = parsed.port or _DEFAULT_PORTS[backend]
    log = tmp_path / "daemon.log"
    with (
        TcpProxy(parsed.host or "127.0.0.1", target_port) as proxy,
        NotifyListener(str(tmp_path / "notify")) as listener,
        log.open("w", encoding="utf-8") as stream,
    ):
        env = daemon_environment(
            _through(migrated_database_url, proxy),
            shop,
            key,
            NOTIFY_SOCKET=listener.address,
            SYNCD_DATABASE_RETRY_MAX_DELAY="2",
            # A confirmation whose outcome was lost in the cut is sent again (to the same
            # package) at the account's next shipments run; the short claim is a backstop.
            SYNCD_SHIPMENT_CLAIM_SECONDS="30",
        )
        process = start_daemon(env, stream)
        try:
            listener.wait_for(has("READY"), timeout=60)
            wait_until(lambda: _order_count(engine) > 0, 60, "the first stored orders")
            proxy.cut()
            time.sleep(CUT_SECONDS)
            alive_during_cut = process.poll() is None
            stored_during_cut = _order_count(engine)
            proxy.restore()
            wait_until(lambda: _finished_after_outage(log), 120, "an orders run after the outage")
            wait_until(
                lambda: _outbox_states(engine) == [outbox.DELIVERED] * SHIPMENTS,
                120,
                "every shipment delivered",
            )
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        finally:
            stop_daemon(process)

    events = read_events(log)
    names = [event["event"] for event in events]
    statuses = [m.fields.get("STATUS", "") for m in listener.received()]
    watermark = _watermark(engine)
    stored = _stored_orders(engine)
    engine.dispose()

    assert alive_during_cut
    assert code == 0
    unreachable = [event for event in events if event["event"] == "database_unreachable"]
    assert unreachable
    assert {"attempt", "retry_in_seconds", "error", "database"} <= set(unreachable[0])
    assert all(event["retry_in_seconds"] <= 2 for event in unreachable)
    assert names.count("database_reachable_again") >= 1
    assert _index(events, "database_unreachable") < _index(events, "database_reachable_again")
    assert "worker_failed" not in names
    assert "scheduler_job_failed" not in names
    assert any(status.startswith("paused: database unreachable") for status in statuses)
    # No order lost, none stored twice.
    assert watermark is not None
    expected = {
        doc["orderId"]
        for doc in shop.state.orders(SELLER, marketplace_ids=[US])
        if datetime.fromisoformat(doc["lastUpdatedTime"].replace("Z", "+00:00")) <= watermark
    }
    assert stored_during_cut > 0
    assert expected <= set(stored)
    assert len(stored) == len(set(stored))
    # Every shipment confirmed once: one package per order, however often it was sent.
    for order in shipped:
        assert len(shop.state.packages(SELLER, order["orderId"])) == 1


def _watermark(engine: Engine) -> datetime | None:
    with engine.connect() as connection:
        value = connection.execute(
            select(_CHECKPOINTS.c.watermark).where(_CHECKPOINTS.c.stream == "orders")
        ).scalar_one_or_none()
    return None if value is None else value.replace(tzinfo=value.tzinfo or UTC)


def _stored_orders(engine: Engine) -> list[str]:
    with engine.connect() as connection:
        return [
            str(order_id) for order_id in connection.execute(select(_ORDERS.c.order_id)).scalars()
        ]


def test_start_waits_for_unreachable_database(
    migrated_database_url: str, sandbox_factory: Any, tmp_path: Path
) -> None:
    parsed = make_url(migrated_database_url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        pytest.skip("SQLite is a local file: there is no connection for a TCP proxy to cut")
    shop: SandboxServer = sandbox_factory(speed=1000, orders_per_marketplace=20)
    key = generate_key()
    add_account(migrated_database_url, key, ACCOUNT, "na", US)
    log = tmp_path / "daemon.log"
    with (
        TcpProxy(parsed.host or "127.0.0.1", parsed.port or _DEFAULT_PORTS[backend]) as proxy,
        NotifyListener(str(tmp_path / "notify")) as listener,
        log.open("w", encoding="utf-8") as stream,
    ):
        proxy.cut()  # the database server is still booting
        env = daemon_environment(
            _through(migrated_database_url, proxy),
            shop,
            key,
            NOTIFY_SOCKET=listener.address,
            WATCHDOG_USEC="2000000",
            SYNCD_DATABASE_RETRY_MAX_DELAY="1",
        )
        process = start_daemon(env, stream)
        try:
            wait_until(
                lambda: [e for e in read_events(log) if e["event"] == "database_unreachable"][2:],
                60,
                "three tries to reach the database",
            )
            waiting = listener.received()
            alive_while_waiting = process.poll() is None
            proxy.restore()
            ready = listener.wait_for(has("READY"), timeout=60)
            wait_until(lambda: "orders_run_finished" in _names(log), 60, "an orders run")
            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        finally:
            stop_daemon(process)

    names = _names(log)
    assert alive_while_waiting
    assert code == 0
    assert not any("READY" in m.fields for m in waiting)
    assert any(m.fields.get("STATUS", "").startswith("waiting for the database") for m in waiting)
    assert any("EXTEND_TIMEOUT_USEC" in m.fields for m in waiting)
    assert any(m.fields.get("WATCHDOG") == "1" for m in waiting)
    assert ready >= len(waiting)
    assert names.index("database_reachable_again") < names.index("daemon_ready")
