"""Pytest fixtures that run the local SP-API sandbox over real HTTP on 127.0.0.1.

Load them from ``tests/conftest.py`` with ``pytest_plugins = ["tests.sandbox_fixtures"]``.

- ``sandbox_server``: one sandbox for the whole session (seed :data:`SANDBOX_SEED`).
- ``sandbox``: that sandbox, reset to a fresh world with the session's configuration before
  the test: no calls, faults, tokens or revocations, the clock offset back to zero, orders
  generated anew up to now. A test's own reset with other settings does not leak.
- ``sandbox_factory``: starts extra sandboxes with their own configuration and stops them
  after the test, e.g. ``sandbox_factory(pii_roles="omitted", quotas=False)``.
- ``sandbox_env``: sets the ``SYNCD_*`` settings that point syncd at ``sandbox`` for the
  test (through ``monkeypatch``) and returns them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from syncd.sandbox.server import SandboxServer
from syncd.sandbox.state import SandboxConfig

SANDBOX_SEED = 7

SandboxFactory = Callable[..., SandboxServer]


SESSION_CONFIG = SandboxConfig(seed=SANDBOX_SEED)


@pytest.fixture(scope="session")
def sandbox_server() -> Iterator[SandboxServer]:
    """A sandbox shared by the session; use ``sandbox`` to get it in a fresh state."""
    with SandboxServer(SESSION_CONFIG) as server:
        yield server


@pytest.fixture
def sandbox(sandbox_server: SandboxServer) -> SandboxServer:
    """The session's sandbox, reset to a fresh world for this test."""
    # The session's configuration is passed explicitly because a reset with settings
    # (POST /_sandbox/reset with a body) makes them the default of later resets.
    sandbox_server.state.reset(SESSION_CONFIG)
    return sandbox_server


@pytest.fixture
def sandbox_factory() -> Iterator[SandboxFactory]:
    """Start sandboxes with a custom configuration; each is stopped after the test."""
    started: list[SandboxServer] = []

    def start(config: SandboxConfig | None = None, **options: Any) -> SandboxServer:
        chosen = config or SandboxConfig(**{"seed": SANDBOX_SEED, **options})
        server = SandboxServer(chosen).start()
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()


@pytest.fixture
def sandbox_env(sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    """Point syncd's settings at the sandbox for this test and return them."""
    env = sandbox.settings_env()
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env
