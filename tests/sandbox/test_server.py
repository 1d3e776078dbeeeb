"""Running the sandbox: ports, start and stop, several at once, and the CLI."""

from __future__ import annotations

import errno
import io
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import click
import httpx
import pytest
from click.testing import CliRunner

from syncd import cli_base, logs
from syncd.sandbox import cli as sandbox_cli
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
        with pytest.raises(SandboxStartError, match=f"port {port}") as caught:
            SandboxServer(port=port).start()

    assert caught.value.host == "127.0.0.1"
    assert caught.value.port == port
    assert caught.value.cause is not None
    assert caught.value.cause.errno == errno.EADDRINUSE


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
    process = subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        settings = _read_settings(process)
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
        remaining_stdout, stderr = process.communicate(timeout=10)
        exit_code = process.returncode
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert remaining_stdout == ""
    assert stderr.startswith("The SP-API sandbox is running")
    assert "Ctrl+C" in stderr
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
    assert '--marketplace "XX" is not valid: expected one of ' in result.output
    assert "ATVPDKIKX0DER" in result.output


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


def _marked(message: str) -> str:
    return f"«{message}»"


@contextmanager
def _taken_port() -> Iterator[int]:
    """Yield a port that another socket listens on until the block ends."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        yield int(taken.getsockname()[1])


def test_cli_bad_fault_message_is_short() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--fault", '{"kind": "thrott"}'])

    assert result.exit_code == 2
    assert (
        'Invalid fault rule {"kind": "thrott"}: kind "thrott" is not valid: expected one of '
        "throttle, server_error, " in result.output
    )
    assert "pydantic" not in result.output


def test_cli_bad_fault_json() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--fault", '{"kind": '])

    assert result.exit_code == 2
    assert "not valid JSON (error at character 10)" in result.output


def test_cli_fault_message_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_cli, "_", _marked)

    result = CliRunner().invoke(
        sandbox_group, ["serve", "--fault", '{"kind": "throttle", "count": 0, "after": -1}']
    )

    # The problem, its range and the range's noun are each a message, so each is marked.
    assert "«Invalid fault rule " in result.output
    assert "«count 0 is not valid: expected ««a whole number» of at least 1»»«; »" in (
        result.output
    )


def test_cli_taken_port_message() -> None:
    with _taken_port() as port:
        result = CliRunner().invoke(sandbox_group, ["serve", "--port", str(port)])

    assert result.exit_code == 1
    assert result.output == (
        f"Error: Cannot listen on 127.0.0.1 port {port}: the port is already in use. "
        "Choose another --port (the sandbox also uses the two ports after it), "
        "or --port 0 to pick three free ports.\n"
    )


def test_cli_taken_port_message_is_translated(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(sandbox_cli, "_", _marked)

    with _taken_port() as port:
        result = CliRunner().invoke(sandbox_group, ["serve", "--port", str(port)])

    assert f"«Cannot listen on 127.0.0.1 port {port}: «the port is already in use»." in (
        result.output
    )
    assert "«Choose another --port" in result.output


def test_cli_uses_syncd_command_classes() -> None:
    assert isinstance(sandbox_group, cli_base.Group)
    assert isinstance(sandbox_group.commands["serve"], cli_base.Command)


def test_cli_help_has_named_placeholders() -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", "--help"])

    for option, placeholder in [
        ("--port", "PORT"),
        ("--host", "HOST"),
        ("--seed", "SEED"),
        ("--speed", "FACTOR"),
        ("--token-lifetime", "SECONDS"),
        ("--orders-per-marketplace", "N"),
        ("--history-days", "DAYS"),
        ("--marketplace", "MARKETPLACE"),
        ("--client-id", "CLIENT_ID"),
        ("--client-secret", "CLIENT_SECRET"),
        ("--clock-offset", "SECONDS"),
        ("--fault", "RULE"),
    ]:
        assert f"{option} {placeholder} " in result.output
    for type_name in ("INTEGER", "TEXT", "FLOAT", "RANGE", "None"):
        assert type_name not in result.output


@pytest.mark.parametrize(
    ("option", "value"),
    [("--port", "abc"), ("--seed", "abc"), ("--token-lifetime", "1.5")],
)
def test_cli_number_errors_name_translated_type(option: str, value: str) -> None:
    result = CliRunner().invoke(sandbox_group, ["serve", option, value])

    assert result.exit_code == 2
    assert f"{value!r} is not a valid integer." in result.output


# Prints what the serve command shows, with every message marked as gettext returned it.
_MARKED_HELP = """
import gettext, json
from syncd import i18n

class Marked(gettext.NullTranslations):
    def gettext(self, message):
        return "«" + message + "»"

i18n._active = Marked()
from syncd.sandbox.cli import sandbox
serve = sandbox.commands["serve"]
print(json.dumps({
    "group_help": sandbox.help,
    "serve_help": serve.help,
    "options_metavar": serve.options_metavar,
    "options": [
        [param.opts[0], param.metavar, getattr(param, "help", None), param.type.name]
        for param in serve.params
    ],
}))
"""


def test_cli_help_texts_and_placeholders_are_translated() -> None:
    completed = subprocess.run(
        [sys.executable, "-c", _MARKED_HELP], capture_output=True, text=True, check=True
    )
    command = json.loads(completed.stdout)
    serve = sandbox_group.commands["serve"]
    choices = {p.opts[0] for p in serve.params if isinstance(p.type, click.Choice)}
    flags = {p.opts[0] for p in serve.params if isinstance(p, click.Option) and p.is_flag}

    assert command["group_help"].startswith("«")
    assert command["serve_help"].startswith("«")
    assert command["options_metavar"] == "«[OPTIONS]»"
    for option, metavar, help_text, type_name in command["options"]:
        assert help_text.startswith("«"), option
        if option not in choices | flags:
            assert metavar.startswith("«"), option
        if type_name in ("integer", "number", "float", "integer range", "float range"):
            pytest.fail(f"{option} has the untranslated type name {type_name}")


@pytest.mark.parametrize("operation", ["lwa", "getOrder"])
def test_stop_ends_slow_requests_with_503(
    operation: str, caplog: pytest.LogCaptureFixture, running_before: set[threading.Thread]
) -> None:
    log = io.StringIO()
    logs.configure_logging("json", "info", stream=log)
    server = SandboxServer(SandboxConfig(orders_per_marketplace=1)).start()
    server.state.add_fault({"kind": "slow", "operation": operation, "delay": 30})
    send = _slow_lwa_request if operation == "lwa" else _slow_get_order
    responses: list[httpx.Response] = []
    client = threading.Thread(target=lambda: responses.append(send(server)))
    client.start()
    _wait_until(lambda: server.state.faults()[0]["matched"] == 1)

    stopping = time.perf_counter()
    server.stop()
    stop_time = time.perf_counter() - stopping
    client.join(timeout=10)

    [response] = responses
    assert response.status_code == 503
    assert response.headers["connection"] == "close"
    assert "The sandbox is shutting down." in response.text
    assert stop_time < 1.0
    assert '"event": "sandbox_slow_request_cancelled"' in log.getvalue()
    assert [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR] == []
    assert _sandbox_threads() == running_before


def _slow_lwa_request(server: SandboxServer) -> httpx.Response:
    env = server.settings_env()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "Atzr|slow",
        "client_id": env["SYNCD_LWA_CLIENT_ID"],
        "client_secret": env["SYNCD_LWA_CLIENT_SECRET"],
    }
    return httpx.post(server.lwa_token_url, data=form, timeout=10)


def _slow_get_order(server: SandboxServer) -> httpx.Response:
    token = server.state.issue_access_token("Atzr|slow")
    url = server.base_urls["eu"] + "/orders/2026-01-01/orders/028-0000000-0000000"
    return httpx.get(url, headers={"x-amz-access-token": token}, timeout=10)


def _wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


@pytest.mark.parametrize("stop_signal", [signal.SIGINT, signal.SIGTERM], ids=["INT", "TERM"])
def test_cli_stops_quietly_during_slow_request(stop_signal: signal.Signals) -> None:
    fault = json.dumps({"kind": "slow", "operation": "lwa", "delay": 30})
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "serve", "--port", "0", "--fault", fault],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "LANGUAGE": "en", "SYNCD_LOG_FORMAT": "json"},
    )
    try:
        settings = _read_settings(process)
        control = settings["SYNCD_SPAPI_ENDPOINT_NA"] + "/_sandbox/faults"
        form = {
            "grant_type": "refresh_token",
            "refresh_token": "Atzr|slow",
            "client_id": settings["SYNCD_LWA_CLIENT_ID"],
            "client_secret": settings["SYNCD_LWA_CLIENT_SECRET"],
        }
        responses: list[httpx.Response] = []
        client = threading.Thread(
            target=lambda: responses.append(
                httpx.post(settings["SYNCD_LWA_TOKEN_URL"], data=form, timeout=10)
            )
        )
        client.start()
        _wait_until(lambda: httpx.get(control).json()["faults"][0]["matched"] == 1)
        process.send_signal(stop_signal)
        exit_code = process.wait(timeout=10)
        client.join(timeout=10)
        _out, errors = process.communicate()
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()

    assert exit_code == 0
    assert responses[0].status_code == 503
    assert "sandbox_slow_request_cancelled" in errors
    assert "Traceback" not in errors
    assert "Exception in ASGI application" not in errors
    assert "timeout graceful shutdown exceeded" not in errors


def _read_settings(process: subprocess.Popen[str]) -> dict[str, str]:
    assert process.stdout is not None
    settings: dict[str, str] = {}
    # Standard output carries only the settings lines (an env file); the prose goes to
    # standard error.
    for line in process.stdout:
        key, _, value = line.rstrip("\n").partition("=")
        settings[key] = value
        if set(settings) >= SETTING_KEYS:
            return settings
    raise AssertionError("the sandbox exited before printing its settings")
