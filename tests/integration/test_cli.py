"""The command line: clear one-line errors in both languages, settings honoured, exit codes."""

from __future__ import annotations

import io
import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from syncd import cli, i18n
from syncd.crypto import generate_key
from syncd.db import migrate
from syncd.db.engine import create_db_engine
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
    assert f"the folder {tmp_path}/missing/dir of the SQLite file does not exist" in err
    assert "sqlite:////" in err
    assert "password" not in err
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
    monkeypatch.chdir(tmp_path)
    with RecordingProxy() as proxy:
        env_file = tmp_path / "syncd.env"
        env_file.write_text(f"SYNCD_HTTPS_PROXY={proxy.url}\n", encoding="utf-8")

        code = cli.run(["--env-file", str(env_file), "demo"])

    out = capsys.readouterr().out
    assert code == 0
    assert proxy.requests == []
    assert "demo-eu" in out
    assert "DE" in out
    assert out.count("shipments confirmed to Amazon 3, rejected 0") == 3
    assert "confirmShipment 9" in out


def test_demo_writes_orders_into_example_erp(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SYNCD_ERP_DATABASE_URL", "sqlite:///elsewhere.sqlite3")

    code = cli.run(["demo"])

    out = _unwrapped(capsys.readouterr().out)
    assert code == 0
    engine = create_db_engine(f"sqlite:///{tmp_path / 'syncd-demo.sqlite3'}")
    try:
        with engine.connect() as connection:
            orders = connection.execute(text("SELECT COUNT(*) FROM oms_order")).scalar_one()
            lines = connection.execute(text("SELECT COUNT(*) FROM oms_order_item")).scalar_one()
            shops = connection.execute(text("SELECT DISTINCT shop_code FROM oms_order"))
            shop_codes = sorted(shops.scalars())
    finally:
        engine.dispose()
    assert orders > 0
    assert lines >= orders
    assert shop_codes == ["EU01", "FE01", "NA01"]
    assert f"oms_order: {orders} orders, oms_order_item: {lines} lines" in out
    assert "Amazon's status UNSHIPPED is the code 20" in out
    assert "in Beijing time" in out
    assert (tmp_path / "syncd-demo-mapping.toml").is_file()
    assert not (tmp_path / "elsewhere.sqlite3").exists()
    assert "SYNCD_MAPPING_FILE=syncd-demo-mapping.toml" in out


def _unwrapped(text_out: str) -> str:
    """Join the lines that the console wrapped at its width."""
    return " ".join(text_out.split())


def test_missing_env_file_is_named(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    assert cli.run(["--env-file", str(tmp_path / "nope.env"), "marketplaces"]) == 2
    err = capsys.readouterr().err
    assert "nope.env" in err
    assert "not found" in err


@pytest.fixture
def chinese() -> Iterator[None]:
    """Switch the operator language to Chinese for messages built while the test runs.

    Help texts are translated when the command modules load, so only runtime messages,
    click's errors included, follow this switch. Subprocess tests in tests/unit cover help.
    """
    i18n.activate("zh_CN")
    yield
    i18n.activate("en")


def _add_account(monkeypatch: pytest.MonkeyPatch, stdin: str, source: str = "-") -> int:
    """Run ``syncd account add acme`` with the token read from ``source`` (``-``: ``stdin``)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    return cli.run(
        [
            "account",
            "add",
            "acme",
            "--region",
            "eu",
            "--marketplace",
            "DE",
            "--refresh-token-file",
            source,
        ]
    )


@pytest.fixture
def account_env(migrated_database_url: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Settings for account commands: a migrated database and an encryption key."""
    monkeypatch.setenv("SYNCD_DATABASE_URL", migrated_database_url)
    monkeypatch.setenv("SYNCD_ENCRYPTION_KEY", generate_key())
    return migrated_database_url


MISSING_MARKETPLACE = ["account", "add", "acme", "--region", "eu", "--refresh-token-file", "-"]


def test_missing_option_ends_with_english_period(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(MISSING_MARKETPLACE) == 2

    err = capsys.readouterr().err
    assert "Try 'syncd account add --help' for help." in err
    assert err.endswith("Error: Missing option '--marketplace'.\n")


def test_missing_option_ends_with_chinese_full_stop(
    chinese: None, capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(MISSING_MARKETPLACE) == 2

    err = capsys.readouterr().err
    assert "运行 'syncd account add --help' 查看帮助。" in err
    assert err.endswith("错误：缺少选项 '--marketplace'。\n")


def test_missing_choice_lists_the_choices(
    chinese: None, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.run(["account", "add", "acme", "--marketplace", "DE", "--refresh-token-file", "-"])

    assert code == 2
    assert "错误：缺少选项 '--region'。可选值：" in capsys.readouterr().err


def test_group_without_command_prints_its_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["account"]) == 2

    err = capsys.readouterr().err
    assert err.startswith("Usage: syncd account [OPTIONS] COMMAND [ARGS]...")
    assert "Error:" not in err
    assert "List the accounts; tokens are never shown." in err


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "Error: No such command 'acount'. Did you mean 'account'?"),
        ("zh_CN", "错误：没有命令 'acount'。（您是否想输入 'account'？）"),
    ],
)
def test_unknown_command_suggests_the_closest(
    language: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    i18n.activate(language)

    assert cli.run(["acount"]) == 2
    assert expected in capsys.readouterr().err.splitlines()


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", "No such option '--regoin'. Did you mean '--region'?"),
        ("zh_CN", "没有选项 '--regoin'。（您是否想输入 '--region'？）"),
    ],
)
def test_unknown_option_suggests_the_closest(
    language: str, expected: str, capsys: pytest.CaptureFixture[str]
) -> None:
    i18n.activate(language)

    assert cli.run(["account", "add", "acme", "--regoin", "eu"]) == 2
    assert expected in capsys.readouterr().err


@pytest.mark.parametrize(
    ("language", "expected"),
    [
        ("en", ("does not exist", "is a directory", "is not readable")),
        ("zh_CN", ("不存在", "是一个目录", "不可读")),
    ],
)
def test_token_file_errors_are_translated(
    language: str,
    expected: tuple[str, str, str],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    missing, directory, unreadable = expected
    i18n.activate(language)
    token_file = tmp_path / "token.txt"
    token_file.write_text("Atzr|x\n", encoding="utf-8")

    assert _add_account(monkeypatch, "", source=str(tmp_path / "nothere.txt")) == 2
    assert missing in capsys.readouterr().err
    assert _add_account(monkeypatch, "", source=str(tmp_path)) == 2
    assert directory in capsys.readouterr().err
    # The tests may run as root, which may read any file, so the check itself is faked.
    monkeypatch.setattr(os, "access", lambda *_args, **_kwargs: False)
    assert _add_account(monkeypatch, "", source=str(token_file)) == 2
    err = capsys.readouterr().err
    assert unreadable in err
    assert "--refresh-token-file" in err


def test_access_token_is_rejected_without_showing_it(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    access_token = "Atza|IwEBIaccess-token-value"

    assert _add_account(monkeypatch, access_token + "\n") == 2

    err = capsys.readouterr().err
    assert "standard input starts with 'Atza|'" in err
    assert f"{len(access_token)} characters" in err
    assert "Atzr|" in err
    assert access_token not in err
    assert "IwEBI" not in err


def test_client_secret_in_token_file_is_rejected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    secret = "amzn1.oa2-cs.v1.0123456789abcdef"
    token_file = tmp_path / "token.txt"
    token_file.write_text(secret + "\n", encoding="utf-8")

    assert _add_account(monkeypatch, "", source=str(token_file)) == 2

    err = capsys.readouterr().err
    assert f"file '{token_file}' starts with 'amzn1'" in err
    assert "client secret" in err
    assert secret not in err


def test_chinese_token_error_names_the_fix(
    chinese: None, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_account(monkeypatch, "Atza|IwEBIaccess\n") == 2

    err = capsys.readouterr().err
    assert "（来自标准输入）以 'Atza|' 开头" in err
    assert "LWA 客户端密钥" in err


@pytest.mark.parametrize(
    ("stdin", "expected"),
    [
        ("", "standard input is empty"),
        ("\n  \n", "standard input is empty"),
        ("Atzr|one Atzr|two\n", "standard input must hold the refresh token alone"),
        ("\ufeff\n", "standard input is empty"),
    ],
    ids=["empty", "blank", "two-words", "byte-order-mark"],
)
def test_token_on_standard_input_is_checked(
    stdin: str, expected: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_account(monkeypatch, stdin) == 2
    assert expected in capsys.readouterr().err


def test_empty_token_file_is_named_a_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text("\n", encoding="utf-8")

    assert _add_account(monkeypatch, "", source=str(token_file)) == 2
    assert "the refresh token file is empty" in capsys.readouterr().err


def test_token_file_that_is_not_utf8_is_rejected(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_bytes(b"\xff\xfeA\x00t\x00")

    assert _add_account(monkeypatch, "", source=str(token_file)) == 2
    assert "is not UTF-8 text" in capsys.readouterr().err


def test_token_file_byte_order_mark_accepted(
    account_env: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text("\ufeffAtzr|IwEBI-seller\r\n", encoding="utf-8")

    assert _add_account(monkeypatch, "", source=str(token_file)) == 0
    assert "Account acme saved" in capsys.readouterr().out


def test_remove_answered_no_keeps_the_account(
    account_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_account(monkeypatch, "Atzr|IwEBI-seller\n") == 0
    capsys.readouterr()

    monkeypatch.setattr(sys, "stdin", io.StringIO("n\n"))
    code = cli.run(["account", "remove", "acme"])

    captured = capsys.readouterr()
    assert code == 1
    assert "Nothing removed: account acme is kept." in captured.err
    assert "Aborted" not in captured.err
    assert cli.run(["account", "list"]) == 0
    assert "acme" in capsys.readouterr().out


def test_remove_answered_yes_removes(
    account_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    assert _add_account(monkeypatch, "Atzr|IwEBI-seller\n") == 0

    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n"))

    assert cli.run(["account", "remove", "acme"]) == 0
    assert "Account acme removed" in capsys.readouterr().out


def test_piped_table_keeps_whole_cells(
    account_env: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    assert _add_account(monkeypatch, "Atzr|IwEBI-seller\n") == 0
    capsys.readouterr()

    assert cli.run(["account", "list"]) == 0

    out = capsys.readouterr().out
    assert "FULFILLMENT, PROCEEDS, PROMOTION, CANCELLATION, PACKAGES" in out
    assert "…" not in out


ROOT = Path(__file__).resolve().parents[2]
SETTING_LINE = re.compile(r"^#?(SYNCD_[A-Z_]+=.*)$")


def test_chinese_example_env_file_has_the_same_settings() -> None:
    english = (ROOT / "settings.example.env").read_text(encoding="utf-8")
    chinese = (ROOT / "settings.example.zh-CN.env").read_text(encoding="utf-8")

    def settings(text: str) -> list[str]:
        return [line for line in text.splitlines() if SETTING_LINE.match(line)]

    assert settings(chinese) == settings(english)
    assert settings(english)


def test_chinese_example_env_file_loads(capsys: pytest.CaptureFixture[str]) -> None:
    env_file = ROOT / "settings.example.zh-CN.env"

    assert cli.run(["--env-file", str(env_file), "marketplaces"]) == 0
    assert "A1PA6795UKMFR9" in capsys.readouterr().out
