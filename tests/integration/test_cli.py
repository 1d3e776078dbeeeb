"""The command line: clear one-line errors, settings honoured, exit codes."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli
from syncd.db import migrate
from tests.integration.proxy import RecordingProxy


def test_unreachable_database_is_one_clear_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", "postgresql://syncd:Secret-Pw@127.0.0.1:1/syncd")

    code = cli.run(["db", "upgrade"])

    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert "could not connect" in err
    assert "Secret-Pw" not in err
    assert "postgresql://syncd:***@127.0.0.1:1/syncd" in err


def test_sqlite_in_missing_folder_is_named(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path}/missing/dir/syncd.db")

    assert cli.run(["db", "upgrade"]) == 1
    err = capsys.readouterr().err
    assert "missing/dir" in err
    assert "Traceback" not in err


def test_db_upgrade_reports_what_it_did(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path}/syncd.db")

    assert cli.run(["db", "upgrade"]) == 0
    first = capsys.readouterr().out
    assert cli.run(["db", "upgrade"]) == 0
    second = capsys.readouterr().out

    head = migrate.head_revision(f"sqlite:///{tmp_path}/syncd.db")
    assert f"set up at revision {head}" in first
    assert f"already at revision {head}" in second


def test_settings_typo_stops_every_command(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNCD_HTTP_READ_TIMOUT", "5")

    assert cli.run(["marketplaces"]) == 2
    assert "SYNCD_HTTP_READ_TIMEOUT" in capsys.readouterr().err


def test_demo_ignores_a_proxy_meant_for_amazon(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    with RecordingProxy() as proxy:
        env_file = tmp_path / "syncd.env"
        env_file.write_text(f"SYNCD_HTTPS_PROXY={proxy.url}\n", encoding="utf-8")

        code = cli.run(["--env-file", str(env_file), "demo"])

    out = capsys.readouterr().out
    assert code == 0
    assert proxy.requests == []
    assert "demo-eu" in out
    assert "DE" in out


def test_missing_env_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.run(["--env-file", str(tmp_path / "nope.env"), "marketplaces"]) == 2
    err = capsys.readouterr().err
    assert "nope.env" in err
    assert "not found" in err
