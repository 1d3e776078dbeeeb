"""LWA client secret rotation against the sandbox, and the secret's age in the database."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from pydantic import SecretStr
from sqlalchemy import select
from structlog.testing import capture_logs

from syncd import cli, config, doctor
from syncd.amazon.auth import fingerprint
from syncd.crypto import Vault, generate_key
from syncd.db import accounts, lwa_secrets, runs
from syncd.db.engine import create_db_engine
from syncd.db.models import LwaSecret, table_of
from syncd.jobs.context import JobContext, SecretLedger, build_context
from syncd.jobs.orders import run_orders
from syncd.sandbox.server import SandboxServer
from tests.integration.orders_support import US

OLD, NEW = "old-client-secret", "new-client-secret"
SECRETS = table_of(LwaSecret)

ContextFactory = Callable[..., JobContext]


@pytest.fixture
def rotation(
    migrated_database_url: str, sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[SandboxServer, ContextFactory]]:
    """A sandbox that accepts only the new secret, and job contexts built with given secrets."""
    server = sandbox_factory(speed=1000, client_secret=NEW)
    built: list[JobContext] = []
    key = generate_key()

    def build(current: str = OLD, next_secret: str | None = NEW) -> JobContext:
        env = {
            **server.settings_env(),
            "SYNCD_DATABASE_URL": migrated_database_url,
            "SYNCD_ENCRYPTION_KEY": key,
            "SYNCD_LWA_CLIENT_SECRET": current,
            "SYNCD_RETRY_BASE_DELAY": "0.01",
            "SYNCD_RETRY_MAX_DELAY": "0.05",
        }
        for name, value in env.items():
            monkeypatch.setenv(name, value)
        if next_secret is None:
            monkeypatch.delenv("SYNCD_LWA_CLIENT_SECRET_NEXT", raising=False)
        else:
            monkeypatch.setenv("SYNCD_LWA_CLIENT_SECRET_NEXT", next_secret)
        ctx = build_context(config.load_settings())
        built.append(ctx)
        return ctx

    yield server, build
    for ctx in built:
        ctx.close()


def _add(ctx: JobContext, name: str) -> accounts.AccountRecord:
    with ctx.engine.begin() as connection:
        return accounts.save_account(
            connection,
            ctx.vault,
            name=name,
            region="na",
            marketplace_ids=(US,),
            included_data=("FULFILLMENT",),
            refresh_token=SecretStr(f"Atzr|{name}"),
            now=ctx.now(),
        )


def _stored(ctx: JobContext) -> dict[str, Any]:
    with ctx.engine.begin() as connection:
        return {row.fingerprint: row for row in connection.execute(select(SECRETS))}


def _lwa_calls(server: SandboxServer, status: int) -> int:
    return server.state.call_count(operation="lwa", status=status)


def test_sandbox_plays_secret_rotation(sandbox: SandboxServer) -> None:
    env = sandbox.settings_env()
    form = {
        "grant_type": "refresh_token",
        "refresh_token": "Atzr|acme",
        "client_id": env["SYNCD_LWA_CLIENT_ID"],
    }
    old = env["SYNCD_LWA_CLIENT_SECRET"]

    def status(secret: str) -> int:
        return httpx.post(sandbox.lwa_token_url, data={**form, "client_secret": secret}).status_code

    sandbox.state.update_settings(client_secret=NEW, retiring_client_secrets=[old])
    assert (status(old), status(NEW)) == (200, 200)
    sandbox.state.update_settings(retiring_client_secrets=[])
    assert (status(old), status(NEW)) == (401, 200)


def test_refused_secret_switches_to_next(
    rotation: tuple[SandboxServer, ContextFactory],
) -> None:
    server, build = rotation
    ctx = build()
    first, second = _add(ctx, "acme-na"), _add(ctx, "bravo-na")

    with capture_logs() as logs:
        run_orders(ctx, first)
        run_orders(ctx, second)

    assert _lwa_calls(server, 401) == 1  # the old secret, once for the whole process
    assert _lwa_calls(server, 200) == 2
    events = {entry["event"]: entry for entry in logs}
    assert events["lwa_client_secret_refused"]["fingerprint"] == fingerprint(SecretStr(OLD))[:8]
    assert events["lwa_client_secret_next_in_use"]["fingerprint"] == fingerprint(SecretStr(NEW))[:8]
    assert "lwa_client_invalid" not in events
    with ctx.engine.begin() as connection:
        results = runs.last_runs(connection, "orders")
    assert {results[first.id].result, results[second.id].result} == {runs.SUCCEEDED}
    stored = _stored(ctx)
    assert stored[fingerprint(SecretStr(OLD))].refused_at is not None
    assert stored[fingerprint(SecretStr(NEW))].last_used_at is not None
    assert stored[fingerprint(SecretStr(NEW))].refused_at is None


def test_restart_skips_refused_secret(
    rotation: tuple[SandboxServer, ContextFactory],
) -> None:
    server, build = rotation
    ctx = build()
    run_orders(ctx, _add(ctx, "acme-na"))
    ctx.close()
    server.state.clear_calls()

    restarted = build()
    run_orders(restarted, _add(restarted, "bravo-na"))

    assert _lwa_calls(server, 401) == 0


def test_no_next_secret_refuses_application(
    rotation: tuple[SandboxServer, ContextFactory], capsys: pytest.CaptureFixture[str]
) -> None:
    server, build = rotation
    ctx = build(next_secret=None)
    records = [_add(ctx, name) for name in ("acme-na", "bravo-na", "charlie-na")]

    with capture_logs() as logs:
        for _ in range(2):
            for record in records:
                run_orders(ctx, record)

    assert _lwa_calls(server, 401) == 1
    assert [entry["event"] for entry in logs].count("lwa_client_invalid") == 1
    assert ctx.client.credentials.is_refused
    checks = doctor.check_lwa_secret(ctx.settings, ctx.engine)
    assert [check.status for check in checks] == [doctor.Status.FAIL]
    assert "invalid_client" in checks[0].detail
    capsys.readouterr()
    assert cli.run(["status"]) == 0
    assert "LWA client secret: LWA refused the client secret" in capsys.readouterr().out


def test_reload_with_new_secret_recovers(
    rotation: tuple[SandboxServer, ContextFactory],
) -> None:
    server, build = rotation
    ctx = build(next_secret=None)
    record = _add(ctx, "acme-na")
    run_orders(ctx, record)
    assert ctx.client.credentials.is_refused

    fixed = ctx.settings.model_copy(update={"lwa_client_secret": SecretStr(NEW)})
    changed = ctx.reload(fixed)
    run_orders(ctx, record)

    assert changed == ["lwa_client_secret"]
    assert not ctx.client.credentials.is_refused
    with ctx.engine.begin() as connection:
        assert runs.last_runs(connection, "orders")[record.id].result == runs.SUCCEEDED
    assert _lwa_calls(server, 401) == 1


def test_start_records_both_fingerprints(
    rotation: tuple[SandboxServer, ContextFactory],
) -> None:
    _, build = rotation
    ctx = build()

    stored = _stored(ctx)

    assert set(stored) == {fingerprint(SecretStr(OLD)), fingerprint(SecretStr(NEW))}
    assert all(row.first_seen_at is not None for row in stored.values())
    assert OLD not in repr(stored)
    assert NEW not in repr(stored)


# -- age -------------------------------------------------------------------------------------


TODAY = date(2026, 12, 5)


def _amazon_settings(url: str, **values: Any) -> config.Settings:
    """Settings that point at Amazon's LWA; nothing in these tests sends a request there."""
    return config.Settings(
        database_url=url,
        lwa_client_id="amzn1.application-oa2-client.test",
        lwa_client_secret=SecretStr(OLD),
        **values,
    )


@pytest.fixture
def engine(migrated_database_url: str) -> Iterator[Any]:
    built = create_db_engine(migrated_database_url)
    yield built
    built.dispose()


def _first_seen(engine: Any, secret: str, days_ago: int) -> None:
    seen = datetime(2026, 12, 5, 8, tzinfo=UTC) - timedelta(days=days_ago)
    with engine.begin() as connection:
        lwa_secrets.record_secrets(connection, [fingerprint(SecretStr(secret))], seen)


@pytest.mark.parametrize(
    ("days_old", "state", "verdict"),
    [
        (10, lwa_secrets.SecretState.OK, doctor.Status.PASS),
        (149, lwa_secrets.SecretState.OK, doctor.Status.PASS),
        (150, lwa_secrets.SecretState.EXPIRING, doctor.Status.WARN),
        (179, lwa_secrets.SecretState.EXPIRING, doctor.Status.WARN),
        (180, lwa_secrets.SecretState.EXPIRED, doctor.Status.FAIL),
    ],
    ids=["young", "day-before-warning", "warning-starts", "last-day", "expired"],
)
def test_age_from_first_use(
    engine: Any,
    migrated_database_url: str,
    days_old: int,
    state: lwa_secrets.SecretState,
    verdict: doctor.Status,
) -> None:
    settings = _amazon_settings(migrated_database_url)
    _first_seen(engine, OLD, days_old)

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    assert age.state is state
    assert age.age_days == days_old
    assert age.days_left == 180 - days_old
    assert not age.from_setting
    assert _doctor_verdict(settings, engine) is verdict


def _doctor_verdict(settings: config.Settings, engine: Any) -> doctor.Status:
    """Doctor's verdict on the secret, with the check's clock pinned to TODAY."""
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(doctor, "utc_now", lambda: datetime(2026, 12, 5, 12, tzinfo=UTC))
        (result,) = doctor.check_lwa_secret(settings, engine)
    return result.status


def test_created_setting_wins(engine: Any, migrated_database_url: str) -> None:
    settings = _amazon_settings(
        migrated_database_url, lwa_client_secret_created=TODAY - timedelta(days=170)
    )
    _first_seen(engine, OLD, 3)

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    assert age.days_left == 10
    assert age.from_setting
    detail, fix = lwa_secrets.describe_secret_age(age)
    assert "expires in 10 days" in detail
    assert "SYNCD_LWA_CLIENT_SECRET_CREATED" in detail
    assert "SYNCD_LWA_CLIENT_SECRET_NEXT" in fix


def test_next_secret_is_mentioned(engine: Any, migrated_database_url: str) -> None:
    settings = _amazon_settings(migrated_database_url, lwa_client_secret_next=SecretStr(NEW))
    _first_seen(engine, OLD, 160)

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    _, fix = lwa_secrets.describe_secret_age(age)
    assert "switches to it when Amazon retires the old one" in fix


def test_refused_with_next_warns(engine: Any, migrated_database_url: str) -> None:
    settings = _amazon_settings(migrated_database_url, lwa_client_secret_next=SecretStr(NEW))
    _first_seen(engine, OLD, 20)
    with engine.begin() as connection:
        lwa_secrets.mark_refused(connection, fingerprint(SecretStr(OLD)), datetime.now(UTC))

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    assert age.state is lwa_secrets.SecretState.SWITCHED
    assert _doctor_verdict(settings, engine) is doctor.Status.WARN


def test_unknown_age_without_record(engine: Any, migrated_database_url: str) -> None:
    settings = _amazon_settings(migrated_database_url)

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    assert age.state is lwa_secrets.SecretState.UNKNOWN
    assert _doctor_verdict(settings, engine) is doctor.Status.PASS


def test_vendor_token_service_not_tracked(engine: Any, migrated_database_url: str) -> None:
    settings = _amazon_settings(
        migrated_database_url, lwa_token_url="https://token.vendor.example/lwa"
    )
    _first_seen(engine, OLD, 400)

    with engine.begin() as connection:
        age = lwa_secrets.read_secret_age(connection, settings, TODAY)

    assert age is not None
    assert age.state is lwa_secrets.SecretState.NOT_TRACKED
    detail, _ = lwa_secrets.describe_secret_age(age)
    assert "token.vendor.example" in detail
    assert _doctor_verdict(settings, engine) is doctor.Status.PASS


def test_expiry_warning_logged_daily(engine: Any, migrated_database_url: str) -> None:
    now = [datetime(2026, 12, 5, 8, tzinfo=UTC)]
    ledger = SecretLedger(engine, now=lambda: now[0])
    settings = _amazon_settings(
        migrated_database_url, lwa_client_secret_created=TODAY - timedelta(days=160)
    )

    with capture_logs() as logs:
        ledger.configure(settings)
        for _ in range(5):
            ledger.used(fingerprint(SecretStr(OLD)))
        now[0] += timedelta(days=1)
        ledger.used(fingerprint(SecretStr(OLD)))

    warnings = [entry for entry in logs if entry["event"] == "lwa_client_secret_expiring"]
    assert [entry["days_left"] for entry in warnings] == [20, 19]
    assert warnings[0]["fingerprint"] == fingerprint(SecretStr(OLD))[:8]
    assert warnings[0]["log_level"] == "warning"
    assert OLD not in repr(logs)


def test_young_secret_logs_nothing(engine: Any, migrated_database_url: str) -> None:
    ledger = SecretLedger(engine, now=lambda: datetime(2026, 12, 5, 8, tzinfo=UTC))
    settings = _amazon_settings(migrated_database_url)

    with capture_logs() as logs:
        ledger.configure(settings)

    assert "lwa_client_secret_expiring" not in [entry["event"] for entry in logs]


def test_status_shows_expiring_secret(
    engine: Any,
    migrated_database_url: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    # Status reads the age from the database and the settings; it sends nothing to LWA.
    key = generate_key()
    for name, value in {
        "SYNCD_DATABASE_URL": migrated_database_url,
        "SYNCD_ENCRYPTION_KEY": key,
        "SYNCD_LWA_CLIENT_ID": "amzn1.application-oa2-client.test",
        "SYNCD_LWA_CLIENT_SECRET": OLD,
        "SYNCD_LANGUAGE": "en",
    }.items():
        monkeypatch.setenv(name, value)
    with engine.begin() as connection:
        accounts.save_account(
            connection,
            Vault(SecretStr(key)),
            name="acme-na",
            region="na",
            marketplace_ids=(US,),
            included_data=("FULFILLMENT",),
            refresh_token=SecretStr("Atzr|acme-na"),
            now=datetime.now(UTC),
        )
    seen = datetime.now(UTC) - timedelta(days=172)
    with engine.begin() as connection:
        lwa_secrets.record_secrets(connection, [fingerprint(SecretStr(OLD))], seen)

    assert cli.run(["status"]) == 0

    out = capsys.readouterr().out
    assert "LWA client secret: the client secret" in out
    assert "expires in 8 days" in out
    assert "SYNCD_LWA_CLIENT_SECRET_NEXT" in out
    assert OLD not in out


def test_accepted_secret_is_not_refused(
    rotation: tuple[SandboxServer, ContextFactory],
) -> None:
    server, build = rotation
    ctx = build(next_secret=None)
    run_orders(ctx, _add(ctx, "acme-na"))  # LWA refuses the old secret
    assert ctx.client.credentials.is_refused
    ctx.close()
    # The refusal came from LWA's side (a wrong client id, a token service's fault) and ends.
    server.state.update_settings(client_secret=OLD)

    restarted = build(next_secret=None)
    record = _add(restarted, "bravo-na")
    run_orders(restarted, record)

    with restarted.engine.begin() as connection:
        assert runs.last_runs(connection, "orders")[record.id].result == runs.SUCCEEDED
        age = lwa_secrets.read_secret_age(connection, restarted.settings, TODAY)
    assert age is not None
    assert age.state not in (lwa_secrets.SecretState.REFUSED, lwa_secrets.SecretState.SWITCHED)
    assert _stored(restarted)[fingerprint(SecretStr(OLD))].refused_at is None
