"""Crash safety of ``syncd once orders`` on every database under test.

A few SIGKILLs per database keep CI short; ``bench/crash_orders.py`` runs the same harness
with hundreds of kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import reset_database
from tests.crash_harness import CrashConfig, run_crash_harness

KILLS = 10
SEED = 7


@pytest.mark.slow
def test_killed_runs_lose_no_order(database_url: str, tmp_path: Path) -> None:
    reset_database(database_url)
    config = CrashConfig(database_url, tmp_path / "rounds", kills=KILLS, seed=SEED)

    result = run_crash_harness(config)

    generated = config.orders_per_marketplace * len(config.marketplace_ids)
    assert result.kills == KILLS
    assert result.rounds[-1].returncode == 0
    assert result.failed_runs == []
    # The backfill covers the sandbox's 30 days of orders but for the last few minutes.
    assert result.orders_compared >= generated * 0.9
    assert result.orders_stored >= result.orders_compared
    assert result.items_stored >= result.orders_stored
    assert result.final_watermark is not None
