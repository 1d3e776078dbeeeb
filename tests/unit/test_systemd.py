"""The sd_notify protocol over a real Unix datagram socket, and the watchdog's rule."""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from structlog.testing import capture_logs

from syncd import systemd
from syncd.daemon import DaemonFigures, Watchdog, format_status
from syncd.db.outage import OutageState


@pytest.fixture
def listener(tmp_path: Path) -> Iterator[tuple[str, socket.socket]]:
    """A datagram socket bound in a temporary folder, as systemd's NOTIFY_SOCKET would be."""
    path = tmp_path / "notify"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    sock.settimeout(2)
    yield str(path), sock
    sock.close()


def _receive(sock: socket.socket) -> list[str]:
    return sock.recv(4096).decode("utf-8").split("\n")


def test_ready_carries_status_line(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    notifier = systemd.Notifier(address)

    sent = notifier.ready("accounts 3\nheld 2")

    assert sent
    assert _receive(sock) == ["READY=1", "STATUS=accounts 3 held 2"]
    notifier.close()


def test_each_message_is_one_datagram(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    notifier = systemd.Notifier(address)

    notifier.watchdog()
    notifier.status("running")
    notifier.stopping()

    assert _receive(sock) == ["WATCHDOG=1"]
    assert _receive(sock) == ["STATUS=running"]
    assert _receive(sock) == ["STOPPING=1"]
    notifier.close()


def test_reloading_sends_monotonic_time(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    notifier = systemd.Notifier(address)
    before = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000

    notifier.reloading()

    fields = _receive(sock)
    assert fields[0] == "RELOADING=1"
    assert fields[1].startswith("MONOTONIC_USEC=")
    assert int(fields[1].split("=")[1]) >= before
    notifier.close()


def test_abstract_socket_name_works() -> None:
    name = f"syncd-test-{uuid.uuid4().hex}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(2)
    try:
        notifier = systemd.Notifier("@" + name)
        assert notifier.ready()
        assert _receive(sock) == ["READY=1"]
        notifier.close()
    finally:
        sock.close()


def test_notifier_without_socket_does_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NOTIFY_SOCKET", raising=False)

    notifier = systemd.Notifier.from_environment()

    assert not notifier.is_enabled
    assert not notifier.ready("ignored")
    assert not notifier.watchdog()


def test_missing_socket_is_logged_not_raised(tmp_path: Path) -> None:
    notifier = systemd.Notifier(str(tmp_path / "gone"))

    with capture_logs() as logs:
        sent = notifier.ready()

    assert not sent
    assert [entry["event"] for entry in logs] == ["systemd_notify_failed"]
    assert logs[0]["fields"] == ["READY"]


def test_unsupported_socket_form_disables(tmp_path: Path) -> None:
    with capture_logs() as logs:
        notifier = systemd.Notifier("vsock:2:1234")

    assert not notifier.is_enabled
    assert logs[0]["event"] == "systemd_notify_socket_unsupported"


@pytest.mark.parametrize(
    ("usec", "pid", "expected"),
    [
        ("30000000", None, 30.0),
        ("30000000", "own", 30.0),
        ("30000000", "1", None),
        ("0", None, None),
        ("soon", None, None),
        (None, None, None),
    ],
    ids=["set", "own-pid", "other-pid", "zero", "not-a-number", "unset"],
)
def test_watchdog_timeout_reads_environment(
    monkeypatch: pytest.MonkeyPatch, usec: str | None, pid: str | None, expected: float | None
) -> None:
    for name, value in (("WATCHDOG_USEC", usec), ("WATCHDOG_PID", pid)):
        if value is None:
            monkeypatch.delenv(name, raising=False)
        else:
            monkeypatch.setenv(name, str(os.getpid()) if value == "own" else value)

    assert systemd.watchdog_timeout() == expected


def _pings(sock: socket.socket, seconds: float) -> int:
    """Count the WATCHDOG=1 datagrams that arrive within ``seconds``."""
    count = 0
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            data = sock.recv(4096)
        except TimeoutError:
            break
        count += data == b"WATCHDOG=1"
    return count


def test_watchdog_pings_while_heartbeat_fresh(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    watchdog = Watchdog(systemd.Notifier(address), 0.05, heartbeat_age=lambda: 1.0, max_age=30)

    watchdog.start()
    try:
        pings = _pings(sock, 0.5)
    finally:
        watchdog.stop()

    assert pings >= 4


def test_stuck_heartbeat_stops_watchdog_pings(listener: tuple[str, socket.socket]) -> None:
    address, sock = listener
    age = [1.0]
    watchdog = Watchdog(systemd.Notifier(address), 0.05, heartbeat_age=lambda: age[0], max_age=30)

    with capture_logs() as logs:
        watchdog.start()
        try:
            assert _pings(sock, 0.3) >= 2
            age[0] = 31.0  # the scheduler stopped running its heartbeat job
            time.sleep(0.1)  # a ping already under way may still arrive
            _pings(sock, 0.05)
            withheld = _pings(sock, 0.5)
            age[0] = 0.0
            resumed = _pings(sock, 0.3)
        finally:
            watchdog.stop()

    assert withheld == 0
    assert resumed >= 2
    events = [entry["event"] for entry in logs]
    assert events.count("watchdog_pings_withheld") == 1
    assert "watchdog_pings_resumed" in events


def test_watchdog_stop_ends_thread(listener: tuple[str, socket.socket]) -> None:
    address, _sock = listener
    watchdog = Watchdog(systemd.Notifier(address), 10.0, heartbeat_age=lambda: 0.0)
    watchdog.start()

    started = time.monotonic()
    watchdog.stop()

    assert time.monotonic() - started < 1.0
    assert not any(thread.name == "syncd-watchdog" for thread in threading.enumerate())


FIGURES = DaemonFigures(
    accounts=5, held=3, orders_last_hour=120, outbox_pending=2, outbox_dead=1, quarantined=4
)


def test_status_line_counts_everything() -> None:
    line = format_status(FIGURES, None)

    assert line == (
        "accounts held 3 of 5; orders synced in the last hour 120; "
        "outbox pending 2, dead 1; quarantined 4"
    )


def test_status_line_shows_database_pause() -> None:
    outage = OutageState(datetime(2026, 5, 10, 12, 0, 5, tzinfo=UTC), attempts=3, retry_in=7.6)

    line = format_status(FIGURES, outage)

    assert line.startswith(
        "paused: database unreachable since 12:00:05 UTC, 3 tries, next in 8 s; accounts held 3"
    )
    assert "\n" not in line
