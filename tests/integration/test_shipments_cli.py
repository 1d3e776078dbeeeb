"""``syncd ship``, ``syncd once shipments``, ``syncd outbox …`` and the outbox in ``status``."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import UTC, datetime

import pytest
from sqlalchemy import update

from syncd import cli, config
from syncd.crypto import generate_key
from syncd.db import accounts, outbox
from syncd.db.engine import create_db_engine
from syncd.jobs.context import build_context
from syncd.jobs.shipments import run_shipments
from syncd.sandbox.server import SandboxServer
from tests.integration.orders_support import US
from tests.integration.shipments_support import OUTBOX
from tests.sandbox.helpers import create_merchant_order

REFRESH_TOKEN = "Atzr|IwEBI-cli-shipper"


@pytest.fixture
def shop(
    migrated_database_url: str,
    sandbox_factory: object,
    monkeypatch: pytest.MonkeyPatch,
) -> SandboxServer:
    """Settings for the CLI and one NA account of a sandbox seller."""
    server: SandboxServer = sandbox_factory(speed=1000)  # type: ignore[operator]
    env = {
        **server.settings_env(),
        "SYNCD_DATABASE_URL": migrated_database_url,
        "SYNCD_ENCRYPTION_KEY": generate_key(),
        "SYNCD_RETRY_BASE_DELAY": "0.01",
        "SYNCD_LANGUAGE": "en",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setattr(sys, "stdin", io.StringIO(REFRESH_TOKEN + "\n"))
    args = ["account", "add", "acme-us", "--region", "na", "--marketplace", "US"]
    assert cli.run([*args, "--refresh-token-file", "-"]) == 0
    return server


def _rows(url: str) -> list[outbox.OutboxRow]:
    engine = create_db_engine(url)
    with engine.begin() as connection:
        rows = outbox.list_rows(connection)
    engine.dispose()
    return rows


def test_ship_then_once_sends(
    shop: SandboxServer, migrated_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    order = create_merchant_order(shop, US, (1, 2), refresh_token=REFRESH_TOKEN)
    sku = order["orderItems"][1]["product"]["sellerSku"]
    capsys.readouterr()

    args = ["ship", order["orderId"], "--carrier", "燕文", "--tracking", "UG123456789CN"]
    assert cli.run([*args, "--items", f"{sku}=2"]) == 0
    assert "Request 1 received" in capsys.readouterr().out
    assert cli.run([*args, "--items", f"{sku}=2"]) == 0
    assert "exists already" in capsys.readouterr().out

    assert cli.run(["once", "shipments"]) == 0
    out = capsys.readouterr().out
    assert "delivered 1" in out
    [row] = _rows(migrated_database_url)
    assert (row.state, row.carrier_code) == (outbox.DELIVERED, "Yanwen")
    assert [item.quantity for item in row.items] == [2]
    packages = shop.state.packages(REFRESH_TOKEN, order["orderId"])
    assert len(packages) == 1

    assert cli.run(["outbox", "list"]) == 0
    listed = capsys.readouterr().out
    assert order["orderId"] in listed
    assert "delivered" in listed
    assert cli.run(["status"]) == 0
    assert "Shipments to Amazon" in capsys.readouterr().out


def test_rejected_request_is_listed(
    shop: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    order = create_merchant_order(
        shop, US, (1,), refresh_token=REFRESH_TOKEN, fulfilled_by="AMAZON"
    )
    assert cli.run(["ship", order["orderId"], "--carrier", "UPS", "--tracking", "1Z1"]) == 0

    assert cli.run(["once", "shipments"]) == 0
    assert "rejected 1" in capsys.readouterr().out
    assert cli.run(["outbox", "rejected"]) == 0
    listed = capsys.readouterr().out
    assert "fba_order" in listed


def _make_dead_row(shop: SandboxServer, order_id: str) -> None:
    """Enqueue the shipment while Amazon throttles, then send it after the buyer cancelled."""
    ctx = build_context(config.load_settings())
    with ctx.engine.begin() as connection:
        account = accounts.get_account(connection, "acme-us")
    shop.state.add_fault({"operation": "confirmShipment", "kind": "throttle", "count": 50})
    run_shipments(ctx, account)
    shop.state.clear_faults()
    shop.state.patch_order(REFRESH_TOKEN, order_id, status="CANCELLED")
    with ctx.engine.begin() as connection:
        connection.execute(update(OUTBOX).values(next_attempt_at=datetime.now(UTC)))
    run_shipments(ctx, account)
    ctx.close()


def test_retry_and_cancel_rows(
    shop: SandboxServer, migrated_database_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    order = create_merchant_order(shop, US, (1,), refresh_token=REFRESH_TOKEN)
    assert cli.run(["ship", order["orderId"], "--carrier", "UPS", "--tracking", "1Z1"]) == 0
    _make_dead_row(shop, order["orderId"])
    [row] = _rows(migrated_database_url)
    assert row.state == outbox.DEAD
    capsys.readouterr()

    assert cli.run(["outbox", "list", "--state", "dead"]) == 0
    assert order["orderId"] in capsys.readouterr().out
    assert cli.run(["outbox", "cancel", "999"]) == 2
    assert cli.run(["outbox", "retry", str(row.id), "--replace-package", "x1"]) == 2
    assert cli.run(["outbox", "retry", "--all-dead", "--replace-package", "2"]) == 2
    assert cli.run(["outbox", "retry", "--all-dead"]) == 0
    assert _rows(migrated_database_url)[0].state == outbox.PENDING
    assert cli.run(["outbox", "cancel", str(row.id)]) == 0
    assert _rows(migrated_database_url)[0].state == outbox.CANCELLED
    assert cli.run(["outbox", "retry", str(row.id)]) == 2


def test_daemon_sends_new_requests(
    shop: SandboxServer, migrated_database_url: str, tmp_path: object
) -> None:
    order = create_merchant_order(shop, US, (1,), refresh_token=REFRESH_TOKEN)
    env = {
        **os.environ,
        "SYNCD_SHIPMENTS_INTERVAL": "1",
        "SYNCD_ORDERS_INTERVAL": "3600",
        "SYNCD_LOG_FORMAT": "json",
    }
    daemon = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert cli.run(["ship", order["orderId"], "--carrier", "顺丰", "--tracking", "SF1"]) == 0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            rows = _rows(migrated_database_url)
            if rows and rows[0].state == outbox.DELIVERED:
                break
            time.sleep(0.5)
        assert [row.state for row in _rows(migrated_database_url)] == [outbox.DELIVERED]
    finally:
        daemon.send_signal(signal.SIGTERM)
        _out, errors = daemon.communicate(timeout=60)
    assert daemon.returncode == 0, errors[-2000:]
    assert '"event": "shipment_delivered"' in errors
    [package] = shop.state.packages(REFRESH_TOKEN, order["orderId"])
    assert package["carrier"] == "SF Express"
