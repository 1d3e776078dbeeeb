"""``syncd run`` under a stand-in for systemd: a real NOTIFY_SOCKET and real signals.

Each test starts the daemon as a child process against the local sandbox and an SQLite
database, the way systemd starts the service, and reads the datagrams it sends.
"""

from __future__ import annotations

import itertools
import json
import signal
import sqlite3
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from syncd.crypto import generate_key
from syncd.db import migrate
from syncd.sandbox.server import SandboxServer
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

US = "ATVPDKIKX0DER"
WATCHDOG_USEC = "1000000"  # a ping every half second


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    migrate.upgrade(url)
    return url


@pytest.fixture
def shop(sandbox_factory: object) -> SandboxServer:
    return sandbox_factory(speed=1000, orders_per_marketplace=20)  # type: ignore[operator, no-any-return]


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[NotifyListener]:
    with NotifyListener(str(tmp_path / "notify")) as notify:
        yield notify


def _events(path: Path) -> list[str]:
    return [event["event"] for event in read_events(path)]


def test_daemon_notifies_through_its_life(
    sqlite_url: str, shop: SandboxServer, listener: NotifyListener, tmp_path: Path
) -> None:
    key = generate_key()
    add_account(sqlite_url, key, "acme-na", "na", US)
    env_file = tmp_path / "syncd.env"
    env_file.write_text("SYNCD_ORDERS_INTERVAL=300\n", encoding="utf-8")
    env = daemon_environment(
        sqlite_url,
        shop,
        key,
        NOTIFY_SOCKET=listener.address,
        WATCHDOG_USEC=WATCHDOG_USEC,
        SYNCD_ENV_FILE=str(env_file),
    )
    log = tmp_path / "daemon.log"
    with log.open("w", encoding="utf-8") as stream:
        process = start_daemon(env, stream)
        try:
            ready = listener.wait_for(has("READY"), timeout=60)
            ready_at = listener.received()[ready].at
            first = listener.received()[0]
            pings_from = listener.wait_for(has("WATCHDOG"), timeout=5, after=ready)
            time.sleep(2.0)
            pings = [m for m in listener.received()[pings_from:] if m.fields.get("WATCHDOG") == "1"]

            env_file.write_text("SYNCD_ORDERS_INTERVAL=600\n", encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            reloading = listener.wait_for(has("RELOADING"), timeout=10, after=ready + 1)
            ready_again = listener.wait_for(has("READY"), timeout=10, after=reloading)

            env_file.write_text("SYNCD_ORDERS_INTERVAL=5\n", encoding="utf-8")
            process.send_signal(signal.SIGHUP)
            reloading_bad = listener.wait_for(has("RELOADING"), timeout=10, after=ready_again)
            listener.wait_for(has("READY"), timeout=10, after=reloading_bad)
            alive_after_bad_reload = process.poll() is None
            listener.wait_for(has("WATCHDOG"), timeout=5, after=reloading_bad)

            process.send_signal(signal.SIGTERM)
            code = process.wait(timeout=60)
        finally:
            stop_daemon(process)

    messages = listener.received()
    events = read_events(log)
    names = [event["event"] for event in events]
    # READY comes first, with a status line, and only once the scheduler runs.
    assert first.fields.get("READY") == "1"
    assert "accounts held" in first.fields["STATUS"]
    assert names.index("dispatcher_started") < names.index("daemon_ready")
    assert ready_at > 0
    assert len(pings) >= 3
    gaps = [later.at - earlier.at for earlier, later in itertools.pairwise(pings)]
    assert max(gaps) < 1.0
    assert "MONOTONIC_USEC" in messages[reloading].fields
    assert "STATUS" in messages[ready_again].fields
    reloaded = [event for event in events if event["event"] == "settings_reloaded"]
    assert [event["settings"] for event in reloaded] == [["orders_interval"]]
    assert alive_after_bad_reload
    failed = [event for event in events if event["event"] == "settings_reload_failed"]
    assert len(failed) == 1
    assert any("SYNCD_ORDERS_INTERVAL" in problem for problem in failed[0]["problems"])
    assert any(m.fields.get("STOPPING") == "1" for m in messages)
    assert code == 0
    assert names[-1] == "dispatcher_stopped"
    stopping = next(index for index, m in enumerate(messages) if m.fields.get("STOPPING") == "1")
    assert all("READY" not in m.fields for m in messages[stopping:])


def test_abstract_socket_gets_ready_and_stopping(
    sqlite_url: str, shop: SandboxServer, tmp_path: Path
) -> None:
    key = generate_key()
    with NotifyListener(f"@syncd-test-{uuid.uuid4().hex}") as listener:
        env = daemon_environment(sqlite_url, shop, key, NOTIFY_SOCKET=listener.address)
        with (tmp_path / "daemon.log").open("w", encoding="utf-8") as stream:
            process = start_daemon(env, stream)
            try:
                listener.wait_for(has("READY"), timeout=60)
                process.send_signal(signal.SIGTERM)
                code = process.wait(timeout=60)
            finally:
                stop_daemon(process)
        messages = listener.received()

    assert code == 0
    assert [key for m in messages for key in m.fields if key in ("READY", "STOPPING")] == [
        "READY",
        "STOPPING",
    ]
    # Without WATCHDOG_USEC the daemon sends no pings.
    assert not any("WATCHDOG" in m.fields for m in messages)


def test_invalid_settings_never_send_ready(
    sqlite_url: str, shop: SandboxServer, listener: NotifyListener, tmp_path: Path
) -> None:
    env = daemon_environment(
        sqlite_url,
        shop,
        generate_key(),
        NOTIFY_SOCKET=listener.address,
        SYNCD_ORDERS_INTERVAL="5",
    )
    log = tmp_path / "daemon.log"
    with log.open("w", encoding="utf-8") as stream:
        process = start_daemon(env, stream)
        code = process.wait(timeout=60)
    time.sleep(0.3)  # a datagram sent just before the exit would still arrive

    assert code == 2
    assert "SYNCD_ORDERS_INTERVAL" in log.read_text(encoding="utf-8")
    assert listener.received() == []


def test_unmigrated_database_never_sends_ready(
    shop: SandboxServer, listener: NotifyListener, tmp_path: Path
) -> None:
    empty = tmp_path / "empty.sqlite3"
    sqlite3.connect(empty).close()
    env = daemon_environment(
        f"sqlite:///{empty}", shop, generate_key(), NOTIFY_SOCKET=listener.address
    )
    log = tmp_path / "daemon.log"
    with log.open("w", encoding="utf-8") as stream:
        process = start_daemon(env, stream)
        code = process.wait(timeout=60)
    time.sleep(0.3)

    assert code != 0
    assert "syncd db upgrade" in log.read_text(encoding="utf-8")
    assert listener.received() == []


def test_status_line_counts_synced_orders(
    sqlite_url: str, shop: SandboxServer, listener: NotifyListener, tmp_path: Path
) -> None:
    key = generate_key()
    add_account(sqlite_url, key, "acme-na", "na", US)
    env = daemon_environment(sqlite_url, shop, key, NOTIFY_SOCKET=listener.address)
    log = tmp_path / "daemon.log"
    with log.open("w", encoding="utf-8") as stream:
        process = start_daemon(env, stream)
        try:
            listener.wait_for(has("READY"), timeout=60)
            wait_until(lambda: "orders_run_finished" in _events(log), 60, "the first orders run")
            count = len(listener.received())
            process.send_signal(signal.SIGHUP)  # a reload refreshes the status line too
            again = listener.wait_for(has("READY"), timeout=10, after=count)
        finally:
            stop_daemon(process)

    status = listener.received()[again].fields["STATUS"]
    finished = next(e for e in read_events(log) if e["event"] == "orders_run_finished")
    synced = finished["orders_new"] + finished["orders_updated"]
    assert synced > 0
    assert f"orders synced in the last hour {synced};" in status
    assert "accounts held 0 of 1" in status or "accounts held 1 of 1" in status
    assert json.dumps(status)  # one line of text
