"""The account, once, status, quarantine and run commands, end to end."""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DataError

from syncd import cli, cli_accounts, cli_orders
from syncd.amazon.clock import utc_now
from syncd.crypto import generate_key
from syncd.db import accounts, leases, nodes, quarantine
from syncd.db.engine import create_db_engine
from syncd.db.models import Account, Order, Run, table_of
from syncd.sandbox.server import SandboxServer
from tests.integration.orders_support import DE, JP, US

REFRESH_TOKEN = "Atzr|IwEBI-cli-seller-token"


@pytest.fixture
def cli_env(
    migrated_database_url: str, sandbox_factory: object, monkeypatch: pytest.MonkeyPatch
) -> tuple[SandboxServer, dict[str, str]]:
    """Settings for the CLI: a fresh database, a key and a fast sandbox."""
    server: SandboxServer = sandbox_factory(speed=1000)  # type: ignore[operator]
    env = {
        **server.settings_env(),
        "SYNCD_DATABASE_URL": migrated_database_url,
        "SYNCD_ENCRYPTION_KEY": generate_key(),
        "SYNCD_RETRY_BASE_DELAY": "0.01",
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return server, env


def _add(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    region: str,
    *marketplaces: str,
    extra: tuple[str, ...] = (),
) -> int:
    monkeypatch.setattr(sys, "stdin", io.StringIO(REFRESH_TOKEN + "\n"))
    args = ["account", "add", name, "--region", region, "--refresh-token-file", "-"]
    for marketplace in marketplaces:
        args += ["--marketplace", marketplace]
    return cli.run([*args, *extra])


def test_account_add_list_and_remove(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _add(monkeypatch, "acme-eu", "eu", "DE", "fr", "APJ6JRA9NG5V4") == 0
    assert "DE, FR, IT" in capsys.readouterr().out

    assert cli.run(["account", "list"]) == 0
    listed = capsys.readouterr().out
    assert "acme-eu" in listed
    assert REFRESH_TOKEN not in listed
    engine = create_db_engine(cli_env[1]["SYNCD_DATABASE_URL"])
    with engine.begin() as connection:
        stored = connection.execute(
            select(table_of(Account).c.refresh_token_encrypted)
        ).scalar_one()
    engine.dispose()
    assert REFRESH_TOKEN not in stored

    assert cli.run(["account", "remove", "acme-eu", "--yes"]) == 0
    assert "removed" in capsys.readouterr().out
    assert cli.run(["account", "list"]) == 0
    assert "No accounts yet" in capsys.readouterr().out


def test_account_add_refuses_bad_input_and_changes_nothing(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _add(monkeypatch, "acme", "eu", "JP") == 2
    assert "JP (A1VC38T7YXB528) belongs to region FE, not EU" in capsys.readouterr().err
    assert _add(monkeypatch, "acme", "eu", "XX9999") == 2
    err = capsys.readouterr().err
    assert "'XX9999' is neither a marketplace id nor a country code of Amazon" in err
    monkeypatch.setattr(sys, "stdin", io.StringIO("\n"))
    code = cli.run(
        [
            "account",
            "add",
            "acme",
            "--region",
            "na",
            "--marketplace",
            US,
            "--refresh-token-file",
            "-",
        ]
    )
    assert code == 2
    assert "empty" in capsys.readouterr().err
    assert _add(monkeypatch, "acme", "na", US) == 0
    assert _add(monkeypatch, "acme", "na", US) == 2
    assert "--replace" in capsys.readouterr().err

    assert cli.run(["account", "list"]) == 0
    assert capsys.readouterr().out.count("acme") == 1


def test_account_replace_says_when_backfill_restarts(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert _add(monkeypatch, "acme-eu", "eu", "DE") == 0
    capsys.readouterr()

    assert _add(monkeypatch, "ACME-EU", "eu", "DE", extra=("--replace",)) == 0
    same_scope = capsys.readouterr().out
    assert _add(monkeypatch, "acme-eu", "eu", "DE", "FR", extra=("--replace",)) == 0
    new_marketplace = capsys.readouterr().out

    assert "acme-eu" in same_scope
    assert "30 days again" not in same_scope
    assert "30 days again" in new_marketplace


def test_account_add_needs_the_encryption_key(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.delenv("SYNCD_ENCRYPTION_KEY")

    assert _add(monkeypatch, "acme", "na", US) == 2
    assert "syncd key generate" in capsys.readouterr().err


def test_once_orders_and_status(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _add(monkeypatch, "acme-na", "na", US)
    _add(monkeypatch, "acme-fe", "fe", JP)
    capsys.readouterr()

    assert cli.run(["once", "orders"]) == 0
    out = capsys.readouterr().out
    assert "acme-na:" in out
    assert "acme-fe:" in out

    assert cli.run(["status"]) == 0
    status = capsys.readouterr().out
    assert "acme-na" in status
    assert "US" in status
    assert "JP" in status


def test_once_orders_fails_with_exit_code_1(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, env = cli_env
    _add(monkeypatch, "acme-na", "na", US)
    server.state.revoke(REFRESH_TOKEN)

    assert cli.run(["once", "orders", "--account", "acme-na"]) == 1
    assert "failed" in capsys.readouterr().err
    engine = create_db_engine(env["SYNCD_DATABASE_URL"])
    with engine.begin() as connection:
        status = connection.execute(select(table_of(Account).c.status)).scalar_one()
    engine.dispose()
    assert status == "reauth_required"


def test_commands_need_a_migrated_database(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path}/empty.db")

    (tmp_path / "empty.db").touch()

    assert cli.run(["status"]) == 1
    err = capsys.readouterr().err
    assert "has no syncd tables yet" in err
    assert "Run 'syncd db upgrade' first." in err


def test_missing_sqlite_file_not_created(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # A mistyped path must not leave an empty database behind that later looks like a new
    # installation; only 'db upgrade' creates the file.
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path}/typo.db")

    assert cli.run(["account", "list"]) == 1
    err = capsys.readouterr().err
    assert f"the SQLite file {tmp_path}/typo.db does not exist" in err
    assert "syncd db upgrade" in err
    assert not (tmp_path / "typo.db").exists()


def test_upgrade_hint_names_env_file(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    env_file = tmp_path / "my settings.env"
    env_file.write_text(f"SYNCD_DATABASE_URL=sqlite:///{tmp_path}/empty.db\n")
    (tmp_path / "empty.db").touch()
    monkeypatch.delenv("SYNCD_DATABASE_URL", raising=False)

    assert cli.run(["--env-file", str(env_file), "status"]) == 1
    err = capsys.readouterr().err
    assert f"Run this first: syncd --env-file '{env_file}' db upgrade" in err


def test_quarantine_retry_stores_the_fixed_order(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, env = cli_env
    _add(monkeypatch, "acme-eu", "eu", DE)
    documents = server.state.orders(REFRESH_TOKEN, marketplace_ids=[DE])
    document = next(d for d in documents if d["fulfillment"]["fulfillmentStatus"] == "SHIPPED")
    moment = (server.state.now() - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    server.state.patch_order(
        REFRESH_TOKEN,
        document["orderId"],
        changes={
            "orderItems": [{"orderItemId": 7, "quantityOrdered": 1}],
            "lastUpdatedTime": moment,
        },
    )
    assert cli.run(["once", "orders"]) == 0
    once = capsys.readouterr()
    assert "1 order could not be stored" in once.err
    assert cli.run(["quarantine", "list"]) == 0
    listed = capsys.readouterr().out
    assert document["orderId"] in listed

    assert cli.run(["quarantine", "retry", "--all"]) == 1  # still broken at Amazon
    server.state.patch_order(
        REFRESH_TOKEN, document["orderId"], changes={"orderItems": document["orderItems"]}
    )
    assert cli.run(["quarantine", "retry", "--all"]) == 0
    assert cli.run(["quarantine", "list"]) == 0
    assert "Nothing is quarantined" in capsys.readouterr().out
    engine = create_db_engine(env["SYNCD_DATABASE_URL"])
    with engine.begin() as connection:
        ids = set(connection.execute(select(table_of(Order).c.order_id)).scalars())
    engine.dispose()
    assert document["orderId"] in ids


def test_quarantine_retry_hides_database_details(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _env = cli_env
    _add(monkeypatch, "acme-eu", "eu", DE)
    document = server.state.orders(REFRESH_TOKEN, marketplace_ids=[DE])[0]
    engine = create_db_engine(_env["SYNCD_DATABASE_URL"])
    with engine.begin() as connection:
        account_id = connection.execute(select(table_of(Account).c.id)).scalar_one()
        entry_id = quarantine.quarantine_record(
            connection,
            account_id=account_id,
            stream="orders",
            record_id=document["orderId"],
            reason="first failure",
            payload="{}",
            now=server.state.now(),
        )

    def rejected(*args: object, **kwargs: object) -> None:
        raise DataError("INSERT INTO syncd_order_items (raw_json) VALUES (?)", {}, Exception("bad"))

    monkeypatch.setattr(cli_orders, "store_fetched_order", rejected)

    assert cli.run(["quarantine", "retry", str(entry_id)]) == 1
    err = capsys.readouterr().err
    with engine.begin() as connection:
        entry = quarantine.get_entry(connection, entry_id)
    engine.dispose()
    assert "still failing: bad" in err
    assert "INSERT" not in err
    assert entry is not None
    assert entry.attempts == 2


def test_quarantine_retry_names_a_missing_entry(
    cli_env: tuple[SandboxServer, dict[str, str]], capsys: pytest.CaptureFixture[str]
) -> None:
    assert cli.run(["quarantine", "retry", "--all"]) == 0
    assert "Nothing is quarantined" in capsys.readouterr().out
    assert cli.run(["quarantine", "retry", "5"]) == 2
    err = capsys.readouterr().err
    assert "no quarantine entry 5" in err
    assert "syncd quarantine list" in err


def test_once_orders_checks_settings_first(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _add(monkeypatch, "acme-na", "na", US)
    _add(monkeypatch, "acme-fe", "fe", JP)
    capsys.readouterr()
    monkeypatch.delenv("SYNCD_LWA_CLIENT_SECRET")

    assert cli.run(["once", "orders"]) == 2
    err = capsys.readouterr().err
    engine = create_db_engine(cli_env[1]["SYNCD_DATABASE_URL"])
    with engine.begin() as connection:
        recorded = connection.execute(select(table_of(Run).c.id)).all()
    engine.dispose()
    assert err.count("SYNCD_LWA_CLIENT_SECRET") == 1
    assert recorded == []


def test_daemon_syncs_and_stops_on_sigterm(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    _server, env = cli_env
    _add(monkeypatch, "acme-na", "na", US)
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("SYNCD_")}
    child_env.update(env)
    child_env.update({"SYNCD_DISPATCH_INTERVAL": "1", "SYNCD_LOG_FORMAT": "json", "LANGUAGE": "en"})
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run"],
        env=child_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    engine = create_db_engine(env["SYNCD_DATABASE_URL"])
    try:
        deadline = time.monotonic() + 30
        count = 0
        while time.monotonic() < deadline and count == 0:
            time.sleep(0.5)
            with engine.begin() as connection:
                count = len(connection.execute(select(table_of(Order).c.id)).all())
        assert count > 0
    finally:
        process.send_signal(signal.SIGTERM)
        _out, err = process.communicate(timeout=30)
        engine.dispose()
    assert process.returncode == 0, err
    assert '"event": "orders_run_finished"' in err
    assert '"event": "dispatcher_stopped"' in err


def test_region_in_capitals_is_accepted(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # syncd prints regions as EU and NA, so an operator types them back that way.
    assert _add(monkeypatch, "acme", "EU", DE) == 0
    assert cli.run(["account", "list"]) == 0
    assert "EU" in capsys.readouterr().out


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_terminal_token_prompt_is_hidden(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    prompts: list[dict[str, object]] = []

    def prompt(text: str, **options: object) -> str:
        prompts.append({"text": text, **options})
        return REFRESH_TOKEN

    monkeypatch.setattr(sys, "stdin", _Terminal(""))
    monkeypatch.setattr(cli_accounts.click, "prompt", prompt)
    args = ["account", "add", "acme", "--region", "na", "--marketplace", US]

    assert cli.run([*args, "--refresh-token-file", "-"]) == 0
    assert len(prompts) == 1
    assert prompts[0]["hide_input"] is True
    assert "Paste the refresh token" in str(prompts[0]["text"])
    assert REFRESH_TOKEN not in capsys.readouterr().out


def test_env_file_after_command_explained(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert cli.run(["status", "--env-file", str(tmp_path / "x.env")]) == 2
    assert "--env-file goes before the command" in capsys.readouterr().err


def test_run_says_when_the_first_account_is_due(capsys: pytest.CaptureFixture[str]) -> None:
    due = utc_now() + timedelta(minutes=4, seconds=30)
    records = [
        accounts.AccountRecord(
            1, "acme", "na", (US,), ("FULFILLMENT",), accounts.ACTIVE, None, due, utc_now()
        )
    ]

    cli_orders._say_when_next_due(records)
    cli_orders._say_when_next_due([replace(records[0], next_run_at=None)])

    err = capsys.readouterr().err
    assert "1 account, not due yet: the next run starts at" in err
    assert "(in 4 minutes)" in err
    assert err.count("not due yet") == 1


def test_status_names_why_the_last_run_failed(
    cli_env: tuple[SandboxServer, dict[str, str]],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    server, _env = cli_env
    monkeypatch.setenv("SYNCD_RETRY_MAX_ATTEMPTS", "1")
    _add(monkeypatch, "acme-na", "na", US)
    server.state.add_fault({"kind": "server_error", "operation": "searchOrders"})
    assert cli.run(["once", "orders"]) == 1
    capsys.readouterr()

    assert cli.run(["status"]) == 0
    out = capsys.readouterr().out
    assert "acme-na: the last run failed: searchOrders failed: HTTP 503" in out


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(None, "-"), (-0.01, "0.0 s"), (0.04, "0.0 s"), (1.26, "+1.3 s"), (-2.0, "-2.0 s")],
)
def test_clock_skew_is_shown_without_a_negative_zero(seconds: float | None, shown: str) -> None:
    assert cli_orders._format_skew(seconds) == shown


def test_status_lists_the_daemons(
    cli_env: tuple[SandboxServer, dict[str, str]],
    migrated_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("COLUMNS", "200")
    _add(monkeypatch, "acme-na", "na", US)
    engine = create_db_engine(migrated_database_url)
    try:
        with engine.begin() as connection:
            nodes.register_node(
                connection, "erp-node-7:4242:ab", hostname="erp-node-7", pid=4242, version="0.1.0"
            )
            nodes.record_heartbeat(connection, "erp-node-7:4242:ab", accounts_held=3, status=None)
    finally:
        engine.dispose()

    assert cli.run(["status"]) == 0

    out = capsys.readouterr().out
    [line] = [line for line in out.splitlines() if "erp-node-7" in line]
    assert "4242" in line
    assert "running" in line
    assert line.rstrip(" │").endswith("3")


def test_once_skips_daemon_held_account(
    cli_env: tuple[SandboxServer, dict[str, str]],
    migrated_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    _add(monkeypatch, "acme-na", "na", US)
    capsys.readouterr()
    engine = create_db_engine(migrated_database_url)
    try:
        with engine.begin() as connection:
            account = accounts.get_account(connection, "acme-na")
            assert leases.acquire_lease(
                connection, account.id, "erp-node-7:4242:ab", timedelta(minutes=5)
            )
    finally:
        engine.dispose()

    assert cli.run(["once", "orders"]) == 1

    err = capsys.readouterr().err
    assert "acme-na: skipped, the syncd process erp-node-7:4242:ab holds it." in err
    assert "'syncd run'" in err
