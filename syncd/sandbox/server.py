"""Run the sandbox: three uvicorn servers (NA with LWA, EU, FE) on one background thread.

``SandboxServer`` is what tests use in-process::

    with SandboxServer(SandboxConfig(seed=7), port=0) as sandbox:
        sandbox.base_urls        # {"na": "http://127.0.0.1:...", "eu": ..., "fe": ...}
        sandbox.lwa_token_url    # the NA URL + /auth/o2/token
        sandbox.settings_env()   # the SYNCD_* settings that point syncd at this sandbox
        sandbox.state            # the live SandboxState

``port=0`` picks three free ports; ``port=P`` binds P (NA and LWA), P+1 (EU) and P+2 (FE).
:func:`serve_forever` is the blocking form behind ``syncd sandbox serve``. Stopping ends
the waits of ``slow`` faults first, so requests in flight get 503 rather than being
cancelled.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import threading
import time
from collections.abc import Callable, Iterator
from types import FrameType, TracebackType
from typing import Self

import uvicorn
from starlette.applications import Starlette

from syncd import logs
from syncd.sandbox import app, marketplaces
from syncd.sandbox.state import SandboxConfig, SandboxState

logger = logs.get_logger(__name__)

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8400
STARTUP_TIMEOUT = 10.0  # seconds
_POLL_INTERVAL = 0.005  # seconds


class SandboxStartError(RuntimeError):
    """The sandbox's servers did not start (port taken, bad host, ...).

    When binding failed, ``host`` and ``port`` name the address and ``cause`` is the
    operating system's error; otherwise all three are None.
    """

    def __init__(
        self,
        message: str,
        *,
        host: str | None = None,
        port: int | None = None,
        cause: OSError | None = None,
    ) -> None:
        super().__init__(message)
        self.host = host
        self.port = port
        self.cause = cause


class SandboxServer:
    """The sandbox's three regional servers, running on a daemon thread until stopped."""

    def __init__(
        self,
        config: SandboxConfig | None = None,
        *,
        host: str = DEFAULT_HOST,
        port: int = 0,
        state: SandboxState | None = None,
    ) -> None:
        self.state = state or SandboxState(config)
        self.host = host
        self.requested_port = port
        self.ports: dict[str, int] = {}
        self._servers: list[uvicorn.Server] = []
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopping = asyncio.Event()

    # -- addresses -----------------------------------------------------------------------------

    @property
    def base_urls(self) -> dict[str, str]:
        """Base URL of each region's SP-API host, keyed ``na``, ``eu``, ``fe``."""
        return {
            region: f"http://{_url_host(self.host)}:{port}" for region, port in self.ports.items()
        }

    @property
    def lwa_token_url(self) -> str:
        """URL of the LWA token endpoint (on the NA port)."""
        return self.base_urls["na"] + app.LWA_PATH

    def settings_env(self) -> dict[str, str]:
        """Return the syncd settings that point a client at this sandbox.

        The values include the sandbox's LWA client secret, which is a public test value.
        """
        config = self.state.config
        urls = self.base_urls
        return {
            "SYNCD_ENVIRONMENT": "sandbox",
            "SYNCD_LWA_TOKEN_URL": self.lwa_token_url,
            "SYNCD_SPAPI_ENDPOINT_NA": urls["na"],
            "SYNCD_SPAPI_ENDPOINT_EU": urls["eu"],
            "SYNCD_SPAPI_ENDPOINT_FE": urls["fe"],
            "SYNCD_LWA_CLIENT_ID": config.client_id,
            "SYNCD_LWA_CLIENT_SECRET": config.client_secret,
        }

    # -- lifecycle -----------------------------------------------------------------------------

    def start(self) -> Self:
        """Bind the ports, start the servers and return once all three accept connections.

        Raises:
            SandboxStartError: a port could not be bound or a server failed to start.
        """
        sockets = _bind_sockets(self.host, self.requested_port)
        self.ports = {
            region: sock.getsockname()[1]
            for region, sock in zip(marketplaces.REGIONS, sockets, strict=True)
        }
        self._stopping = asyncio.Event()
        self._servers = [
            uvicorn.Server(
                _uvicorn_config(
                    app.build_app(
                        self.state, region, serve_lwa=region == "na", stopping=self._stopping
                    )
                )
            )
            for region in marketplaces.REGIONS
        ]
        self._thread = threading.Thread(
            target=self._run, args=(sockets,), name="syncd-sandbox", daemon=True
        )
        self._thread.start()
        self._wait_until_started()
        logger.info(
            "sandbox_started", host=self.host, **{f"port_{r}": p for r, p in self.ports.items()}
        )
        return self

    def stop(self) -> None:
        """Stop the servers and wait for their thread to end.

        Requests that wait on a ``slow`` fault get 503 at once, so no request is left for
        uvicorn to cancel at the end of its graceful shutdown.
        """
        loop = self._loop
        if loop is not None:
            # The loop runs on the servers' thread; RuntimeError means it has already ended.
            with contextlib.suppress(RuntimeError):
                loop.call_soon_threadsafe(self._stopping.set)
        for server in self._servers:
            server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=STARTUP_TIMEOUT)
            self._thread = None
            logger.info("sandbox_stopped", host=self.host)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    def _run(self, sockets: list[socket.socket]) -> None:
        try:
            asyncio.run(self._serve_all(sockets))
        except BaseException as exc:  # noqa: BLE001 - reported to the starting thread
            self._error = exc
        finally:
            for sock in sockets:
                sock.close()

    async def _serve_all(self, sockets: list[socket.socket]) -> None:
        self._loop = asyncio.get_running_loop()
        await asyncio.gather(
            *(
                server.serve(sockets=[sock])
                for server, sock in zip(self._servers, sockets, strict=True)
            )
        )

    def _wait_until_started(self) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while not all(server.started for server in self._servers):
            thread_ended = self._thread is None or not self._thread.is_alive()
            if thread_ended or time.monotonic() > deadline:
                self.stop()
                raise SandboxStartError(
                    f"the sandbox servers did not start: {self._error!r}"
                ) from self._error
            time.sleep(_POLL_INTERVAL)


def serve_forever(
    config: SandboxConfig,
    host: str = DEFAULT_HOST,
    port: int = DEFAULT_PORT,
    on_ready: Callable[[SandboxServer], None] | None = None,
) -> None:
    """Run the sandbox until SIGINT or SIGTERM; call ``on_ready`` once it accepts requests."""
    stop_requested = threading.Event()
    with _stop_on_signals(stop_requested), SandboxServer(config, host=host, port=port) as sandbox:
        if on_ready is not None:
            on_ready(sandbox)
        while not stop_requested.wait(timeout=0.5):
            pass


@contextlib.contextmanager
def _stop_on_signals(event: threading.Event) -> Iterator[None]:
    def request_stop(_signum: int, _frame: FrameType | None) -> None:
        event.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _uvicorn_config(asgi_app: Starlette) -> uvicorn.Config:
    return uvicorn.Config(
        asgi_app,
        http="h11",
        ws="none",
        lifespan="off",
        log_config=None,
        access_log=False,
        server_header=False,  # no uvicorn Server header: the headers imitate Amazon's
        date_header=False,  # Date comes from the sandbox clock instead
        proxy_headers=False,
        timeout_graceful_shutdown=1,
    )


def _bind_sockets(host: str, port: int) -> list[socket.socket]:
    sockets: list[socket.socket] = []
    try:
        family = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)[0][0]
        for offset in range(len(marketplaces.REGIONS)):
            # proto must be IPPROTO_TCP because asyncio disables Nagle's algorithm only on such
            # sockets. With Nagle, each response written in two parts waits 40 ms for an ACK.
            sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            sockets.append(sock)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            sock.bind((host, port + offset if port else 0))
    except OSError as exc:
        for sock in sockets:
            sock.close()
        failed = port + max(len(sockets) - 1, 0) if port else 0
        raise SandboxStartError(
            f"cannot bind {host} port {failed}: {exc}", host=host, port=failed, cause=exc
        ) from exc
    return sockets


def _url_host(host: str) -> str:
    # A wildcard address cannot be connected to everywhere; point clients at loopback.
    if host in ("0.0.0.0", ""):  # noqa: S104 - compared, not bound
        return "127.0.0.1"
    if host == "::":
        return "[::1]"
    return f"[{host}]" if ":" in host else host
