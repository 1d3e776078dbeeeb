"""``syncd run`` with the metrics endpoint: served until stop, and a busy port stops the start."""

from __future__ import annotations

import socket
import threading
from pathlib import Path

import httpx
import pytest

from syncd import cli, daemon, systemd
from tests.integration.orders_support import JobWorld
from tests.integration.test_metrics import _free_port, _scrape, _value, _with_metrics


def test_daemon_serves_metrics_until_stop(world: JobWorld, tmp_path: Path) -> None:
    port = _free_port()
    ctx = _with_metrics(world.ctx, port)
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd_side:
        systemd_side.bind(str(tmp_path / "notify"))
        service = daemon.Daemon(
            ctx,
            daemon.Signals(ctx.stop, threading.Event()),
            lambda: ctx.settings,
            notifier=systemd.Notifier(str(tmp_path / "notify")),
        )

        try:
            service.start()
            ready = systemd_side.recv(4096)
            samples = _scrape(service.metrics)
        finally:
            ctx.stop.set()
            service.serve()

    assert b"READY=1" in ready
    assert _value(samples, "syncd_database_up") == 1
    assert service.metrics.address is None
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_busy_port_stops_run_before_ready(
    world: JobWorld,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    with (
        socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as systemd_side,
        socket.socket() as taken,
    ):
        systemd_side.bind(str(tmp_path / "notify"))
        systemd_side.setblocking(False)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])
        monkeypatch.setenv("NOTIFY_SOCKET", str(tmp_path / "notify"))
        monkeypatch.setenv("SYNCD_METRICS_PORT", str(port))

        code = cli.run(["run"])

        messages = []
        while True:
            try:
                messages.append(systemd_side.recv(4096))
            except BlockingIOError:
                break

    assert code == 2
    assert "SYNCD_METRICS_PORT" in capsys.readouterr().err
    assert not any(b"READY=1" in message for message in messages)
