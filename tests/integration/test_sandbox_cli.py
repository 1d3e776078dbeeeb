"""``syncd sandbox serve`` in its own process: an env file on stdout, valid orders over HTTP."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest

from syncd import config
from syncd.amazon.client import SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.operations import SEARCH_ORDERS
from syncd.amazon.orders import SearchOrdersQuery
from syncd.sandbox.external import ExternalSandbox
from tests import spec
from tests.integration.conftest import DE, JP, US, make_account

DATASETS = ("FULFILLMENT", "PROCEEDS", "BUYER", "RECIPIENT", "PACKAGES", "PROMOTION", "TAX")
# What an env file may hold: settings and comments.
SETTINGS_LINE = re.compile(r"^(SYNCD_[A-Z_]+=.*|#.*)$")


@pytest.fixture
def served(monkeypatch: pytest.MonkeyPatch) -> Iterator[dict[str, str]]:
    """Run ``syncd sandbox serve --port 0`` and point the settings at the ports it prints."""
    sandbox = ExternalSandbox("--speed", "100")
    with sandbox:
        for key, value in sandbox.settings.items():
            monkeypatch.setenv(key, value)
        yield sandbox.settings
    assert sandbox.returncode == 0


@pytest.mark.parametrize(
    ("region", "marketplace_id"), [("na", US), ("eu", DE), ("fe", JP)], ids=["US", "DE", "JP"]
)
def test_served_orders_validate_against_the_model(
    served: dict[str, str], region: str, marketplace_id: str
) -> None:
    query = SearchOrdersQuery(
        (marketplace_id,), last_updated_after=utc_now() - timedelta(days=30), included_data=DATASETS
    )
    query = query.with_before(utc_now() - timedelta(minutes=5))

    with SpApiClient(config.load_settings()) as client:
        response = client.call(
            make_account(region, marketplace_id),
            SEARCH_ORDERS,
            query=query.to_query(),  # type: ignore[arg-type]
        )

    assert served["SYNCD_ENVIRONMENT"] == "sandbox"
    spec.validate_response("searchOrders", 200, response.body)
    orders = response.body["orders"]
    assert orders
    assert {order["salesChannel"]["marketplaceId"] for order in orders} == {marketplace_id}


def test_serve_writes_only_settings_to_stdout(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "LC_", "LANGUAGE"))}
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "sandbox", "serve", "--port", "0"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**env, "LANG": "zh_CN.UTF-8"},
    )
    assert process.stdout is not None
    lines = []
    for line in process.stdout:
        lines.append(line)
        if line.startswith("SYNCD_LWA_CLIENT_SECRET="):
            break
    process.send_signal(signal.SIGTERM)
    rest, err = process.communicate(timeout=10)
    out = "".join(lines) + rest

    assert process.returncode == 0
    assert [line for line in out.splitlines() if not SETTINGS_LINE.match(line)] == []
    assert "按 Ctrl+C 停止。" in err
    assert "SP-API 沙箱已启动" in err
    env_file = tmp_path / "sandbox.env"
    env_file.write_text(out, encoding="utf-8")
    settings = config.load_settings(env_file)
    assert settings.environment == "sandbox"
    assert settings.endpoint_override("eu") is not None
