"""Running the sandbox: ports, start and stop, several at once, and the CLI."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import httpx
import pytest
from click.testing import CliRunner

from syncd.sandbox.cli import sandbox as sandbox_group
from syncd.sandbox.server import SandboxServer, SandboxStartError
from syncd.sandbox.state import SandboxConfig

SETTING_KEYS = {
    "SYNCD_ENVIRONMENT",
    "SYNCD_LWA_TOKEN_URL",
    "SYNCD_SPAPI_ENDPOINT_NA",
    "SYNCD_SPAPI_ENDPOINT_EU",
    "SYNCD_SPAPI_ENDPOINT_FE",
    "SYNCD_LWA_CLIENT_ID",
    "SYNCD_LWA_CLIENT_SECRET",
}


def _sandbox_threads() -> set[threading.Thread]:
    return {thread for thread in threading.enumerate() if thread.name == "syncd-sandbox"}


@pytest.fixture
def running_before() -> set[threading.Thread]:
    """Sandbox threads that other tests (the session sandbox) keep running."""
    return _sandbox_threads()


def _free_port_block() -> int:
    """Return a port P such that P, P+1 and P+2 are free right now."""
    for _ in range(50):
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = int(probe.getsockname()[1])
        if port > 65000:
            continue
        try:
            bound = []
            for offset in range(3):
                sock = socket.socket()
                bound.append(sock)
                sock.bind(("127.0.0.1", port + offset))
        except OSError:
            continue
        finally:
            for sock in bound:
                sock.close()
        return port
    raise RuntimeError("no block of three free ports found")


def test_start_and_stop_are_quick(running_before: set[threading.Thread]) -> None:
    started = time.perf_counter()
    server = SandboxServer(SandboxConfig(orders_per_marketplace=1)).start()
    start_time = time.perf_counter() - started
    response = httpx.get(server.base_urls["fe"] + "/_sandbox/clock", timeout=5)
    stopping = time.perf_counter()
    server.stop()
    stop_time = time.perf_counter() - stopping

    assert response.status_code == 200
    assert start_time < 1.0
    assert stop_time < 1.0
    assert _sandbox_threads() == running_before


def test_stop_with_open_connection_is_quick(running_before: set[threading.Thread]) -> None:
    server = SandboxServer(SandboxConfig(orders_per_marketplace=1)).start()
    client = httpx.Client()
    client.get(server.base_urls["na"] + "/_sandbox/clock")

    stopping = time.perf_counter()
    server.stop()
    client.close()

    assert time.perf_counter() - stopping < 1.0
    assert _sandbox_threads() == running_before


def test_fixed_port_uses_three_consecutive_ports() -> None:
    port = _free_port_block()

    with SandboxServer(port=port) as server:
        urls = server.base_urls

    assert server.ports == {"na": port, "eu": port + 1, "fe": port + 2}
    assert urls == {
        "na": f"http://127.0.0.1:{port}",
        "eu": f"http://127.0.0.1:{port + 1}",
        "fe": f"http://127.0.0.1:{port + 2}",
    }
    assert server.lwa_token_url == f"http://127.0.0.1:{port}/auth/o2/token"


def test_taken_port_fails_to_start() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(SandboxStartError, match=f"port {port}"):
            SandboxServer(port=port).start()


def test_several_sandboxes_at_once(running_before: set[threading.Thread]) -> None:
    with (
        SandboxServer(SandboxConfig(seed=1)) as first,
        SandboxServer(SandboxConfig(seed=2)) as second,
    ):
        first.state.set_clock_offset(100)
        first_offset = httpx.get(first.base_urls["na"] + "/_sandbox/clock").json()["offset_seconds"]
        second_offset = httpx.get(second.base_urls["na"] + "/_sandbox/clock").json()[
            "offset_seconds"
        ]

    assert first_offset == 100
    assert second_offset == 0
    assert _sandbox_threads() == running_before


def test_settings_env() -> None:
    config = SandboxConfig(client_id="my-client", client_secret="my-secret")

    with SandboxServer(config) as server:
        env = server.settings_env()

    assert set(env) == SETTING_KEYS
    assert env["SYNCD_ENVIRONMENT"] == "sandbox"
    assert env["SYNCD_LWA_TOKEN_URL"] == server.lwa_token_url
    assert env["SYNCD_SPAPI_ENDPOINT_EU"] == server.base_urls["eu"]
    assert env["SYNCD_LWA_CLIENT_ID"] == "my-client"
    assert env["SYNCD_LWA_CLIENT_SECRET"] == "my-secret"


def test_sandbox_env_fixture(sandbox_env: dict[str, str]) -> None:
    assert os.environ["SYNCD_ENVIRONMENT"] == "sandbox"
    assert os.environ["SYNCD_SPAPI_ENDPOINT_NA"] == sandbox_env["SYNCD_SPAPI_ENDPOINT_NA"]


def test_cli_serve_prints_settings_and_stops_on_sigterm() -> None:
    code = (
        "from syncd.sandbox.cli import sandbox; "
        "sandbox(['serve', '--port', '0', '--orders-per-marketplace', '3', '--log-level', 'error'])"
    )
    env = {**os.environ, "LANGUAGE": "en"}
    process = subprocess.Popen(  # noqa: S603 - runs this interpreter on a fixed snippet
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        lines = []
        assert process.stdout is not None
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if "Ctrl+C" in line:
                break
        settings = dict(line.split("=", 1) for line in lines if line.startswith("SYNCD_"))
        token = httpx.post(
            settings["SYNCD_LWA_TOKEN_URL"],
            data={
                "grant_type": "refresh_token",
                "refresh_token": "Atzr|cli",
                "client_id": settings["SYNCD_LWA_CLIENT_ID"],
                "client_secret": settings["SYNCD_LWA_CLIENT_SECRET"],
            },
            timeout=5,
        )
        process.send_signal(signal.SIGTERM)
        exit_code = process.wait(timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert lines[0].startswith("The SP-API sandbox is running")
    assert set(settings) == SETTING_KEYS
    assert settings["SYNCD_ENVIRONMENT"] == "sandbox"
    assert token.status_code == 200
    assert exit_code == 0


def test_cli_rejects_bad_fault() -> None:
    result = CliRunner().invoke(
        sandbox_group, ["serve", "--fault", json.dumps({"kind": "explode"})]
    )

    assert result.exit_code == 2
    assert "--fault" in result.output


def test_cli_rejects_unknown_marketplace() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--marketplace", "XX"])

    assert result.exit_code == 2
    assert "unknown marketplace ids" in result.output


def test_cli_help_lists_options() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--help"])

    assert result.exit_code == 0
    for option in (
        "--port",
        "--host",
        "--seed",
        "--speed",
        "--no-quotas",
        "--token-lifetime",
        "--orders-per-marketplace",
        "--pii-roles",
        "--fault",
    ):
        assert option in result.output
