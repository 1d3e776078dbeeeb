"""Fixtures of the sandbox tests; the sandbox fixtures come from ``tests.sandbox_fixtures``."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from syncd.sandbox.server import SandboxServer
from tests.sandbox.helpers import SpApi


@pytest.fixture
def api(sandbox: SandboxServer) -> Iterator[SpApi]:
    """An SP-API client of seller A against the fresh session sandbox."""
    client = SpApi(sandbox)
    yield client
    client.close()
