"""Crash safety of the bridge on every database under test.

A few SIGKILLs per database keep CI short; ``bench/crash_bridge.py`` runs the same harness
with hundreds of kills.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.bridge_crash_harness import KILL_POINTS, BridgeCrashConfig, run_bridge_crash_harness
from tests.conftest import reset_database
from tests.erp_samples import DOMESTIC_TABLES, drop_tables
from tests.integration.bridge_support import separate_database_url

KILLS = 10
SEED = 7


@pytest.mark.slow
def test_killed_bridge_writes_each_row_once(database_url: str, tmp_path: Path) -> None:
    reset_database(database_url)
    erp_url = separate_database_url(database_url, tmp_path)
    config = BridgeCrashConfig(database_url, erp_url, tmp_path / "rounds", kills=KILLS, seed=SEED)

    try:
        result = run_bridge_crash_harness(config)
    finally:
        drop_tables(erp_url, DOMESTIC_TABLES)

    assert result.kills == KILLS
    assert result.failed_runs == []
    assert set(result.points) == set(KILL_POINTS)
    # The kills left ERP rows and write-backs that syncd had not recorded, the case in which
    # a pass that repeats the write could duplicate them.
    assert result.inserted_unrecorded > 0
    assert result.write_backs_unrecorded > 0
    assert result.erp_orders == result.orders
    assert result.erp_lines == result.lines
    assert result.requests == result.wms_rows
    assert result.confirmed + result.rejected == result.requests
    assert result.confirmed > 0
    assert result.rejected > 0
