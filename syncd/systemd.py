"""The systemd side of the daemon: the notify protocol and the variables systemd sets.

A ``Type=notify`` service tells systemd about its state by sending datagrams of
``KEY=VALUE`` lines to the Unix socket named by ``NOTIFY_SOCKET`` (see ``man sd_notify``):
``READY=1`` once it serves, ``STATUS=`` a line for ``systemctl status``, ``WATCHDOG=1`` as a
keep-alive, ``RELOADING=1`` and ``STOPPING=1``. The socket is a path, or an abstract name
when it starts with ``@``.

This module is the only place that reads ``NOTIFY_SOCKET``, ``WATCHDOG_USEC``,
``WATCHDOG_PID`` and ``CREDENTIALS_DIRECTORY``. Everything here is a no-op outside systemd,
and a failed send is logged, never raised: systemd's bookkeeping must not stop the work.
"""

from __future__ import annotations

import os
import socket
import threading
import time
from pathlib import Path

from syncd.logs import get_logger

log = get_logger(__name__)


def credentials_directory() -> Path | None:
    """Return the folder where systemd placed the service's ``LoadCredential=`` files."""
    value = os.environ.get("CREDENTIALS_DIRECTORY")
    if not value:
        return None
    path = Path(value)
    return path if path.is_dir() else None


def watchdog_timeout() -> float | None:
    """Return the seconds systemd waits for a ``WATCHDOG=1`` before it restarts the service.

    None when the watchdog is off (no ``WatchdogSec=``), or when ``WATCHDOG_PID`` names
    another process: a child that inherited the variables must not ping for its parent.
    """
    usec = os.environ.get("WATCHDOG_USEC", "")
    if not usec.isdigit() or int(usec) == 0:
        return None
    pid = os.environ.get("WATCHDOG_PID")
    if pid and pid != str(os.getpid()):
        return None
    return int(usec) / 1_000_000


def _socket_address(value: str) -> str | None:
    """Return the address to send to, or None for an address form this module does not support.

    systemd 254 and later may also name an AF_VSOCK address, which syncd does not support.
    """
    if value.startswith("@"):
        return "\0" + value[1:]
    if value.startswith("/"):
        return value
    return None


class Notifier:
    """Sends sd_notify messages to systemd; every method does nothing outside systemd."""

    def __init__(self, notify_socket: str | None) -> None:
        self._address = _socket_address(notify_socket) if notify_socket else None
        if notify_socket and self._address is None:
            log.warning("systemd_notify_socket_unsupported", notify_socket=notify_socket)
        self._socket: socket.socket | None = None
        self._lock = threading.Lock()

    @classmethod
    def from_environment(cls) -> Notifier:
        """Return a notifier for the socket named by ``NOTIFY_SOCKET``, if any."""
        return cls(os.environ.get("NOTIFY_SOCKET"))

    @property
    def is_enabled(self) -> bool:
        """True when systemd listens for this process's notifications."""
        return self._address is not None

    def notify(self, *fields: str) -> bool:
        """Send ``KEY=VALUE`` fields as one datagram; return whether it was sent."""
        if self._address is None:
            return False
        message = "\n".join(fields).encode("utf-8")
        with self._lock:
            try:
                if self._socket is None:
                    self._socket = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                self._socket.sendto(message, self._address)
            except OSError as exc:
                log.warning(
                    "systemd_notify_failed",
                    fields=[field.split("=", 1)[0] for field in fields],
                    error=str(exc),
                )
                return False
        return True

    def ready(self, status: str | None = None) -> bool:
        """Tell systemd that start-up or a reload has finished."""
        return self.notify("READY=1", *_status_field(status))

    def reloading(self) -> bool:
        """Tell systemd that a reload has begun; ``ready`` ends it.

        ``MONOTONIC_USEC`` is what ``Type=notify-reload`` (systemd 253 and later) expects
        with it. Plain ``Type=notify`` ignores it.
        """
        usec = time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1_000
        return self.notify("RELOADING=1", f"MONOTONIC_USEC={usec}")

    def stopping(self, status: str | None = None) -> bool:
        """Tell systemd that the service is stopping."""
        return self.notify("STOPPING=1", *_status_field(status))

    def watchdog(self) -> bool:
        """Tell systemd's watchdog that the service is alive."""
        return self.notify("WATCHDOG=1")

    def extend_timeout(self, seconds: float) -> bool:
        """Ask systemd to wait ``seconds`` more for READY=1 or for the stop to finish."""
        return self.notify(f"EXTEND_TIMEOUT_USEC={int(seconds * 1_000_000)}")

    def status(self, text: str) -> bool:
        """Set the one-line status that ``systemctl status`` shows."""
        return self.notify(*_status_field(text))

    def close(self) -> None:
        """Close the socket; a later message opens a new one."""
        with self._lock:
            if self._socket is not None:
                self._socket.close()
                self._socket = None


def _status_field(text: str | None) -> list[str]:
    if text is None:
        return []
    # One datagram line per field: a line break inside STATUS= would start a new field.
    return ["STATUS=" + " ".join(text.split())]
