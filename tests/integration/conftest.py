"""Fixtures for client tests over real HTTP against the local sandbox."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from pydantic import SecretStr

from syncd import config
from syncd.amazon.client import SellerAccount, SpApiClient
from syncd.amazon.marketplaces import Region
from syncd.sandbox.server import SandboxServer
from tests.integration.orders_support import world  # noqa: F401 - a fixture for this folder

REFRESH_TOKEN = "Atzr|IwEBIseller-one-refresh-token"
US = "ATVPDKIKX0DER"
DE, FR, IT = "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4"
JP = "A1VC38T7YXB528"

ClientFactory = Callable[..., SpApiClient]


def make_account(
    region: Region, *marketplace_ids: str, refresh_token: str = REFRESH_TOKEN
) -> SellerAccount:
    """An account of the sandbox seller behind ``refresh_token``."""
    return SellerAccount(
        name=f"acme-{region}",
        region=region,
        refresh_token=SecretStr(refresh_token),
        marketplace_ids=marketplace_ids,
    )


FAST_RETRIES = {
    "SYNCD_RETRY_BASE_DELAY": "0.01",
    "SYNCD_RETRY_MAX_DELAY": "0.05",
    "SYNCD_RETRY_MAX_ATTEMPTS": "5",
    "SYNCD_HTTP_READ_TIMEOUT": "2",
}


@pytest.fixture
def client_factory(monkeypatch: pytest.MonkeyPatch) -> Iterator[ClientFactory]:
    """Build clients pointed at a sandbox, with short retry waits; all are closed afterwards."""
    built: list[SpApiClient] = []

    def build(server: SandboxServer, **settings: str) -> SpApiClient:
        for key, value in {**server.settings_env(), **FAST_RETRIES, **settings}.items():
            monkeypatch.setenv(key, value)
        client = SpApiClient(config.load_settings())
        built.append(client)
        return client

    yield build
    for client in built:
        client.close()


@pytest.fixture
def client(sandbox: SandboxServer, client_factory: ClientFactory) -> SpApiClient:
    """A client pointed at the session's sandbox."""
    return client_factory(sandbox)
