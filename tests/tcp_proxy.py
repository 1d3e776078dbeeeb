"""A TCP forwarder on 127.0.0.1 that a test can cut and restore, to play a database outage.

Tests point syncd at the proxy's port instead of the database server's. ``cut()`` closes
every live connection with a reset and makes the proxy reset new ones at once, as a server
that went away would. ``restore()`` forwards again. The shared database servers themselves
are never stopped.
"""

from __future__ import annotations

import socket
import struct
import threading
from types import TracebackType
from typing import Self

_CHUNK = 65536  # bytes read at once


class TcpProxy:
    """Forwards connections from 127.0.0.1:``port`` to ``target_host``:``target_port``."""

    def __init__(self, target_host: str, target_port: int) -> None:
        if target_host not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError(f"this test proxy forwards to this machine only, not {target_host}")
        self.target = (target_host, target_port)
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._live: set[socket.socket] = set()
        self._is_cut = False
        self._closed = False
        self.accepted = 0  # connections forwarded so far
        self._thread = threading.Thread(target=self._accept_loop, name="tcp-proxy", daemon=True)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    def cut(self) -> None:
        """Reset every live connection and every new one until :meth:`restore`."""
        with self._lock:
            self._is_cut = True
            live, self._live = self._live, set()
        for sock in live:
            _reset(sock)

    def restore(self) -> None:
        """Forward new connections again."""
        with self._lock:
            self._is_cut = False

    def close(self) -> None:
        """Stop listening and reset every live connection."""
        self._closed = True
        self.cut()
        self._listener.close()

    def _accept_loop(self) -> None:
        while not self._closed:
            try:
                client, _address = self._listener.accept()
            except OSError:
                return  # the listener was closed
            with self._lock:
                refuse = self._is_cut
            if refuse:
                _reset(client)
                continue
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                _reset(client)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._live.update((client, upstream))
                self.accepted += 1
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(
                    target=self._pump, args=(source, sink), name="tcp-proxy-pump", daemon=True
                ).start()

    def _pump(self, source: socket.socket, sink: socket.socket) -> None:
        """Copy bytes one way until either side closes, then close both."""
        try:
            while data := source.recv(_CHUNK):
                sink.sendall(data)
        except OSError:
            pass
        with self._lock:
            self._live.discard(source)
            self._live.discard(sink)
        for sock in (source, sink):
            _reset(sock)


def _reset(sock: socket.socket) -> None:
    """Close ``sock`` with a TCP reset, as a crashed server or a cut route would."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
