"""Crash safety of the shipments job on every database under test.

A few SIGKILLs per database keep CI short; ``bench/crash_shipments.py`` runs the same harness
with hundreds of kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import reset_database
from tests.shipments_crash_harness import ShipmentCrashConfig, run_shipments_crash_harness

KILLS = 10
SEED = 7
ORDERS = 40
# Quotas at twice Amazon's rates, so the backlog the final runs deliver takes half as long.
SPEED = 2.0


@pytest.mark.slow
def test_killed_shipments_make_one_package(database_url: str, tmp_path: Path) -> None:
    reset_database(database_url)
    config = ShipmentCrashConfig(
        database_url,
        tmp_path / "rounds",
        kills=KILLS,
        seed=SEED,
        orders=ORDERS,
        waves=KILLS,
        speed=SPEED,
    )

    result = run_shipments_crash_harness(config)

    assert result.kills == KILLS
    assert result.failed_runs == []
    assert result.orders == ORDERS
    # Split orders have two requests, so there are more shipments than orders.
    assert result.requests > ORDERS
    assert result.shipments == result.requests
    assert result.packages == result.shipments
    assert result.confirm_calls >= result.shipments
