"""Reloading the settings while jobs run: JobContext.reload directly, and SIGHUP to `syncd run`."""

from __future__ import annotations

import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select, update
from structlog.testing import capture_logs

from syncd import errors
from syncd.amazon.auth import fingerprint
from syncd.crypto import generate_key
from syncd.db import accounts, migrate, runs
from syncd.db.engine import create_db_engine
from syncd.db.models import Account, LwaSecret, table_of
from syncd.jobs import bridge as bridge_job
from syncd.jobs.orders import run_orders
from syncd.sandbox.server import SandboxServer
from tests.crash_support import read_events
from tests.integration.daemon_support import (
    add_account,
    daemon_environment,
    start_daemon,
    stop_daemon,
    wait_until,
)
from tests.integration.orders_support import US, JobWorld

ACCOUNTS = table_of(Account)


def _reload(world: JobWorld, **changes: Any) -> tuple[list[str], list[dict[str, Any]]]:
    with capture_logs() as logs:
        changed = world.ctx.reload(world.ctx.settings.model_copy(update=changes))
    return changed, logs


def _event(logs: list[dict[str, Any]], name: str) -> dict[str, Any]:
    found = [entry for entry in logs if entry["event"] == name]
    assert len(found) == 1, [entry["event"] for entry in logs]
    return found[0]


def test_reload_logs_names_never_values(world: JobWorld) -> None:
    secret = "a-new-secret-value"

    changed, logs = _reload(world, lwa_client_secret_next=SecretStr(secret), orders_interval=600.0)

    assert sorted(changed) == ["lwa_client_secret_next", "orders_interval"]
    assert sorted(_event(logs, "settings_reloaded")["settings"]) == sorted(changed)
    assert secret not in repr(logs)
    assert "settings_need_restart" not in [entry["event"] for entry in logs]
    assert world.ctx.settings.orders_interval == 600.0


def test_restart_settings_are_kept_and_named(world: JobWorld) -> None:
    before = world.ctx.settings

    changed, logs = _reload(world, max_workers=9, http_read_timeout=9.0, orders_lookback=60.0)

    assert changed == ["orders_lookback"]
    assert _event(logs, "settings_need_restart")["settings"] == ["max_workers", "http_read_timeout"]
    assert world.ctx.settings.max_workers == before.max_workers
    assert world.ctx.settings.http_read_timeout == before.http_read_timeout
    assert world.ctx.settings.orders_lookback == 60.0


def test_unchanged_reload_changes_nothing(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    provider = world.ctx.client._providers[("acme-na", "na")]

    changed, logs = _reload(world)

    assert changed == []
    assert _event(logs, "settings_reloaded")["settings"] == []
    assert world.ctx.client._providers[("acme-na", "na")] is provider


def test_new_secret_used_by_cached_providers(world: JobWorld) -> None:
    # The provider keeps its access token across the reload and sends the new secret with
    # its next token request.
    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    provider = world.ctx.client._providers[("acme-na", "na")]
    world.sandbox.state.update_settings(client_secret="rotated-secret")

    _reload(world, lwa_client_secret=SecretStr("rotated-secret"))
    token = provider.get()
    provider.invalidate(token)
    provider.get()

    assert world.ctx.client._providers[("acme-na", "na")] is provider
    assert world.ctx.client.credentials.secret_in_use.get_secret_value() == "rotated-secret"
    assert world.sandbox.state.call_count(operation="lwa", status=401) == 0


def test_reload_during_run_drops_nothing(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    world.sandbox.state.add_fault(
        {"kind": "slow", "operation": "searchOrders", "delay": 1.5, "count": 1}
    )
    summaries: list[Any] = []
    worker = threading.Thread(target=lambda: summaries.append(run_orders(world.ctx, account)))
    worker.start()
    wait_until(
        lambda: world.sandbox.state.call_count(operation="lwa", status=200) == 1,
        30,
        "the run's access token",
    )
    time.sleep(0.3)  # the first search is now waiting in the sandbox

    # Amazon takes only the new secret from now on, and the providers are built anew.
    world.sandbox.state.update_settings(client_secret="rotated-secret")
    changed, _ = _reload(
        world, lwa_client_secret=SecretStr("rotated-secret"), token_refresh_margin=120.0
    )
    worker.join(timeout=60)

    assert sorted(changed) == ["lwa_client_secret", "token_refresh_margin"]
    assert summaries[0].result == runs.SUCCEEDED
    assert world.watermark(account) is not None
    assert world.sandbox.state.call_count(operation="lwa", status=401) == 0


def test_new_token_url_takes_effect(world: JobWorld, sandbox_factory: Any) -> None:
    other = sandbox_factory(speed=1000)
    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    before = other.state.call_count(operation="lwa")

    _reload(world, lwa_token_url=other.lwa_token_url)
    provider = world.ctx.client._providers[("acme-na", "na")]
    provider.invalidate(provider.get())
    provider.get()

    assert other.state.call_count(operation="lwa") == before + 1


def test_removed_account_provider_dropped(world: JobWorld) -> None:
    first = world.add_account("acme-na", "na", US)
    second = world.add_account("bravo-na", "na", US)
    run_orders(world.ctx, first)
    run_orders(world.ctx, second)
    with world.ctx.engine.begin() as connection:
        accounts.remove_account(connection, "bravo-na")

    _, logs = _reload(world)

    assert set(world.ctx.client._providers) == {("acme-na", "na")}
    assert _event(logs, "token_providers_dropped")["count"] == 1


def test_encryption_key_rotation(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    old_key = world.ctx.settings.encryption_key
    assert old_key is not None
    new_key = generate_key()

    changed, logs = _reload(
        world, encryption_key=SecretStr(f"{new_key},{old_key.get_secret_value()}")
    )
    run_orders(world.ctx, account)  # decrypts the token stored with the old key
    world.add_account("bravo-na", "na", US)  # encrypted with the new key

    assert changed == ["encryption_key"]
    assert new_key not in repr(logs)
    assert world.account("acme-na").status == accounts.ACTIVE
    only_new = SecretStr(new_key)
    _reload(world, encryption_key=only_new)
    record = world.account("bravo-na")
    with world.ctx.engine.begin() as connection:
        token = accounts.seller_account(connection, world.ctx.vault, record)
    assert token.refresh_token.get_secret_value() == "Atzr|bravo-na"


def test_invalid_key_changes_nothing(world: JobWorld) -> None:
    before = world.ctx.settings
    vault = world.ctx.vault

    with pytest.raises(errors.SettingsError):
        world.ctx.reload(before.model_copy(update={"encryption_key": SecretStr("not-a-key")}))

    assert world.ctx.settings is before
    assert world.ctx.vault is vault
    assert world.ctx.reloads == 0


def test_reload_rereads_mapping(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    mapping_file = tmp_path / "mapping.toml"
    mapping_file.write_text("# a mapping\n", encoding="utf-8")
    world.ctx.settings = world.ctx.settings.model_copy(update={"mapping_file": mapping_file})
    loads: list[Path] = []

    def load(path: Path) -> Any:
        loads.append(path)
        return object()

    monkeypatch.setattr(bridge_job, "load_mapping", load)
    monkeypatch.setattr(bridge_job, "prepare_tables", lambda loaded, engine: object())
    bridge = bridge_job.Bridge(world.ctx)

    bridge.prepare()
    bridge.prepare()
    _reload(world)
    bridge.prepare()

    assert loads == [mapping_file, mapping_file]


def test_new_secret_recorded_on_reload(world: JobWorld) -> None:
    _reload(world, lwa_client_secret_next=SecretStr("next-secret"))

    with world.ctx.engine.begin() as connection:
        stored = set(connection.execute(select(table_of(LwaSecret).c.fingerprint)).scalars())
    assert fingerprint(SecretStr("next-secret")) in stored


# -- a real SIGHUP ---------------------------------------------------------------------------


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'syncd.sqlite3'}"
    migrate.upgrade(url)
    return url


def _make_due(database_url: str, account_id: int) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                update(ACCOUNTS).where(ACCOUNTS.c.id == account_id).values(next_run_at=None)
            )
    finally:
        engine.dispose()


def test_sighup_adds_next_secret(sqlite_url: str, sandbox_factory: Any, tmp_path: Path) -> None:
    shop: SandboxServer = sandbox_factory(speed=1000, orders_per_marketplace=20, token_lifetime=2)
    key = generate_key()
    account = add_account(sqlite_url, key, "acme-na", "na", US)
    env_file = tmp_path / "syncd.env"
    env_file.write_text("SYNCD_ORDERS_INTERVAL=300\n", encoding="utf-8")
    env = daemon_environment(sqlite_url, shop, key, SYNCD_ENV_FILE=str(env_file))
    log = tmp_path / "daemon.log"

    def names() -> list[str]:
        return [event["event"] for event in read_events(log)]

    def finished_runs() -> list[dict[str, Any]]:
        return [event for event in read_events(log) if event["event"] == "orders_run_finished"]

    with log.open("w", encoding="utf-8") as stream:
        process = start_daemon(env, stream)
        try:
            wait_until(lambda: len(finished_runs()) == 1, 60, "the first orders run")
            # Amazon retires the secret the daemon started with.
            shop.state.update_settings(client_secret="the-new-secret")
            env_file.write_text(
                "SYNCD_ORDERS_INTERVAL=300\nSYNCD_LWA_CLIENT_SECRET_NEXT=the-new-secret\n",
                encoding="utf-8",
            )
            process.send_signal(signal.SIGHUP)
            wait_until(lambda: "settings_reloaded" in names(), 30, "settings_reloaded")
            time.sleep(2.5)  # the access token of the first run expires
            _make_due(sqlite_url, account.id)
            wait_until(lambda: len(finished_runs()) == 2, 60, "the run after the reload")
            pid_after = process.pid
            alive = process.poll() is None
        finally:
            code = stop_daemon(process)

    events = read_events(log)
    reloaded = next(event for event in events if event["event"] == "settings_reloaded")
    assert reloaded["settings"] == ["lwa_client_secret_next"]
    assert "the-new-secret" not in log.read_text(encoding="utf-8")
    assert alive
    assert pid_after == process.pid
    assert finished_runs()[1]["result"] == "succeeded"
    order = names()
    assert order.index("lwa_client_secret_refused") > order.index("settings_reloaded")
    assert "lwa_client_secret_next_in_use" in order
    assert "lwa_client_invalid" not in order
    assert code == 0
