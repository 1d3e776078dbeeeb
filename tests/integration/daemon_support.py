"""Helpers for ``syncd run`` tests: a NOTIFY_SOCKET listener, the daemon's environment, accounts."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import IO, Any, Self

from pydantic import SecretStr

from syncd.amazon.clock import utc_now
from syncd.crypto import Vault
from syncd.db import accounts
from syncd.db.engine import create_db_engine
from syncd.sandbox.server import SandboxServer


@dataclass(frozen=True)
class Notification:
    """One datagram systemd would have received, split into its ``KEY=VALUE`` fields."""

    at: float  # monotonic time of arrival
    fields: dict[str, str]


class NotifyListener:
    """A Unix datagram socket that plays systemd's side of NOTIFY_SOCKET.

    ``address`` is a path, or an abstract name starting with ``@`` as systemd writes it.
    """

    def __init__(self, address: str) -> None:
        self.address = address
        self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self._socket.bind("\0" + address[1:] if address.startswith("@") else address)
        self._socket.settimeout(0.2)
        self.messages: list[Notification] = []
        self._lock = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._receive, daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        self._thread.join()
        self._socket.close()

    def _receive(self) -> None:
        while not self._done.is_set():
            try:
                data = self._socket.recv(65536)
            except TimeoutError:
                continue
            fields = dict(line.split("=", 1) for line in data.decode("utf-8").split("\n") if line)
            with self._lock:
                self.messages.append(Notification(time.monotonic(), fields))

    def received(self) -> list[Notification]:
        """Return a copy of every message so far, oldest first."""
        with self._lock:
            return list(self.messages)

    def wait_for(
        self, matches: Callable[[Notification], bool], timeout: float, after: int = 0
    ) -> int:
        """Wait for a message that ``matches`` at index ``after`` or later; return its index.

        Raises:
            AssertionError: none arrived within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for index, message in enumerate(self.received()[after:], start=after):
                if matches(message):
                    return index
            time.sleep(0.05)
        raise AssertionError(
            f"no matching notification in {timeout} s; got {[m.fields for m in self.received()]}"
        )


def has(key: str, value: str = "1") -> Callable[[Notification], bool]:
    """Match a message whose field ``key`` is ``value``."""
    return lambda message: message.fields.get(key) == value


def daemon_environment(
    database_url: str, sandbox: SandboxServer, key: str, **settings: str
) -> dict[str, str]:
    """Return the environment of a ``syncd run`` child: the sandbox, JSON logs, no proxies."""
    env = {
        name: value
        for name, value in os.environ.items()
        if not name.upper().startswith(("SYNCD_", "NOTIFY_SOCKET", "WATCHDOG_"))
        and name.upper() not in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY")
    }
    env.update(sandbox.settings_env())
    env.update(
        {
            "SYNCD_DATABASE_URL": database_url,
            "SYNCD_ENCRYPTION_KEY": key,
            "SYNCD_LOG_FORMAT": "json",
            "SYNCD_LOG_LEVEL": "debug",
            "SYNCD_LANGUAGE": "en",
            "SYNCD_RETRY_BASE_DELAY": "0.05",
            "SYNCD_RETRY_MAX_DELAY": "0.5",
            "SYNCD_DISPATCH_INTERVAL": "1",
            "SYNCD_SHIPMENTS_INTERVAL": "1",
            "LANG": "C.UTF-8",
        }
    )
    env.update(settings)
    return env


def start_daemon(env: Mapping[str, str], log: IO[str], *args: str) -> subprocess.Popen[str]:
    """Start ``syncd [ARGS…] run`` with its standard error (the JSON log) going to ``log``."""
    return subprocess.Popen(
        [sys.executable, "-m", "syncd", *args, "run"],
        env=dict(env),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=log,
        text=True,
    )


def add_account(
    database_url: str, key: str, name: str, region: str, *marketplace_ids: str
) -> accounts.AccountRecord:
    """Store an account whose sandbox seller is ``Atzr|NAME``."""
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            return accounts.save_account(
                connection,
                Vault(SecretStr(key)),
                name=name,
                region=region,  # type: ignore[arg-type]
                marketplace_ids=marketplace_ids,
                included_data=("FULFILLMENT", "PACKAGES"),
                refresh_token=SecretStr(f"Atzr|{name}"),
                now=utc_now(),
            )
    finally:
        engine.dispose()


def wait_until(condition: Callable[[], Any], timeout: float, description: str) -> Any:
    """Poll ``condition`` every 0.2 s until it returns something true; return that.

    Raises:
        AssertionError: naming ``description`` when ``timeout`` seconds pass first.
    """
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"timed out after {timeout} s waiting for {description}")


def stop_daemon(process: subprocess.Popen[str], timeout: float = 60) -> int:
    """Send SIGTERM if still running and return the exit status."""
    if process.poll() is None:
        process.terminate()
    return process.wait(timeout=timeout)
