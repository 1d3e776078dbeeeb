"""``syncd doctor`` against the local sandbox and real databases: each check, each verdict."""

from __future__ import annotations

import io
import json
import os
import re
import socket
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest
from alembic.script import Script, ScriptDirectory
from sqlalchemy import text, update
from sqlalchemy.engine import make_url

from syncd import cli, doctor, doctor_database, i18n
from syncd.crypto import generate_key
from syncd.db import accounts, migrate
from syncd.db.engine import create_db_engine
from syncd.db.models import Account, table_of
from syncd.doctor import CheckResult, Probe, Status
from syncd.sandbox.server import SandboxServer
from tests.conftest import MARIADB_URL_VARIABLE, POSTGRESQL_URL_VARIABLE, reset_database
from tests.integration.proxy import RecordingProxy

REFRESH_TOKEN = "Atzr|IwEBI-doctor-seller"
OTHER_TOKEN = "Atzr|IwEBI-doctor-other-seller"


def _configure(
    monkeypatch: pytest.MonkeyPatch, server: SandboxServer, database_url: str
) -> dict[str, str]:
    env = {
        **server.settings_env(),
        "SYNCD_DATABASE_URL": database_url,
        "SYNCD_ENCRYPTION_KEY": generate_key(),
        "SYNCD_RETRY_BASE_DELAY": "0.01",
        "SYNCD_HTTP_READ_TIMEOUT": "5",
        "COLUMNS": "250",  # long details stay on one line, so assertions can find them
    }
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    return env


def _add_account(
    monkeypatch: pytest.MonkeyPatch,
    name: str,
    region: str,
    marketplace: str,
    token: str = REFRESH_TOKEN,
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO(token + "\n"))
    args = ["account", "add", name, "--region", region, "--marketplace", marketplace]
    assert cli.run([*args, "--refresh-token-file", "-"]) == 0


@pytest.fixture
def shop(
    migrated_database_url: str,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> SandboxServer:
    """A migrated database with one NA account, and settings that point at the sandbox."""
    _configure(monkeypatch, sandbox, migrated_database_url)
    _add_account(monkeypatch, "acme-us", "na", "US")
    capsys.readouterr()
    sandbox.state.clear_calls()
    return sandbox


def _results(**options: str) -> dict[str, list[CheckResult]]:
    """Run every check and group the results by check name."""
    grouped: dict[str, list[CheckResult]] = {}
    for result in doctor.run_checks(**options):  # type: ignore[arg-type]
        grouped.setdefault(result.name, []).append(result)
    return grouped


def _one(results: dict[str, list[CheckResult]], name: str) -> CheckResult:
    [result] = results[name]
    return result


def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# -- everything fine -------------------------------------------------------------------------------


def test_all_checks_pass_on_sandbox(
    shop: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 0, out
    assert "FAIL" not in out
    assert "failed 0" in out
    assert "No check failed." in out
    assert REFRESH_TOKEN not in out
    assert shop.state.config.client_secret not in out
    for line in ("settings", "database", "migrations", "account acme-us", "LWA token acme-us"):
        assert f"PASS {line} " in out
    assert "PASS SP-API NA " in out
    assert "PASS clock (SP-API NA) " in out
    assert shop.state.call_count("lwa") == 1


def test_results_of_a_healthy_setup(shop: SandboxServer, migrated_database_url: str) -> None:
    results = _results()

    failures = [r for group in results.values() for r in group if r.status is Status.FAIL]
    assert failures == []
    assert (
        _one(results, "migrations").detail
        == f"at revision {migrate.head_revision(migrated_database_url)}"
    )
    assert "US" in _one(results, "account acme-us").detail
    assert "active" in _one(results, "account acme-us").detail
    assert "access token" in _one(results, "LWA token acme-us").detail
    assert "HTTP 404" in _one(results, "SP-API NA").detail
    assert _one(results, "LWA endpoint").status is Status.PASS
    # The sandbox's LWA is not Amazon's host, so its clock is not judged.
    assert "clock (LWA endpoint)" not in results
    assert _one(results, "clock (SP-API NA)").status is Status.PASS
    assert "SP-API EU" not in results


def test_server_database_details(shop: SandboxServer, migrated_database_url: str) -> None:
    results = _results()

    backend = make_url(migrated_database_url).get_backend_name()
    server = _one(results, "database server")
    if backend == "sqlite":
        assert server.detail.startswith("SQLite ")
        assert "database time zone" not in results
        return
    zone = _one(results, "database time zone")
    assert zone.status is Status.PASS
    assert "stored times are UTC" in zone.detail
    assert _one(results, "database character set").status is Status.PASS
    if backend == "postgresql":
        assert server.detail.startswith("PostgreSQL ")
        assert "encoding UTF8" in _one(results, "database character set").detail
        assert "syncd's sessions use UTC" in zone.detail
    else:
        assert server.detail.startswith(("MariaDB ", "MySQL "))
        assert "syncd's sessions use +00:00" in zone.detail
        assert "utf8mb4" in _one(results, "database character set").detail
        assert _one(results, "database strict mode").status is Status.PASS


def test_account_option_limits_checks(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    _add_account(monkeypatch, "acme-eu", "eu", "DE", OTHER_TOKEN)
    capsys.readouterr()

    results = _results(account="acme-eu")
    assert cli.run(["doctor", "--account", "nobody"]) == 1
    out = capsys.readouterr().out

    assert "account acme-eu" in results
    assert "account acme-us" not in results
    assert _one(results, "SP-API EU").status is Status.PASS
    assert "SP-API NA" not in results
    assert "nobody" in out
    assert "no such account" in out


def test_json_output(shop: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli.run(["doctor", "--json"]) == 0

    parsed = json.loads(capsys.readouterr().out)
    assert {"name": "account acme-us", "status": "pass"} in [
        {"name": entry["name"], "status": entry["status"]} for entry in parsed
    ]
    assert set(parsed[0]) == {"name", "status", "detail", "fix"}
    assert all(entry["status"] in {"pass", "warn", "skip"} for entry in parsed)


def test_requests_go_through_the_proxy(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    with RecordingProxy() as proxy:
        monkeypatch.setenv("SYNCD_HTTPS_PROXY", proxy.url)
        results = _results()

    assert _one(results, "LWA token acme-us").status is Status.PASS
    methods = sorted(method for method, _url in proxy.requests)
    assert methods == ["GET", "GET", "POST"]
    assert {url.split("/")[2] for _method, url in proxy.requests} == {
        shop.base_urls["na"].split("/")[2]
    }


# -- settings --------------------------------------------------------------------------------------


def test_invalid_settings_skip_the_rest(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("SYNCD_ORDERS_INTERVAL", "5")
    monkeypatch.setenv("SYNCD_DATBASE_URL", "sqlite:///x.db")
    monkeypatch.setenv("SYNCD_LWA_TOKEN_URL", sandbox.lwa_token_url)
    monkeypatch.setenv("COLUMNS", "250")

    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL settings" in out
    assert "SYNCD_ORDERS_INTERVAL = 5 is invalid" in out
    assert "Expected seconds, a number from 60 to 86400." in out
    assert "did you mean SYNCD_DATABASE_URL?" in out
    assert "SKIP other checks" in out
    assert sandbox.state.call_count() == 0


def test_missing_job_settings_keep_checking(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path}/syncd.db")
    monkeypatch.setenv("SYNCD_LWA_TOKEN_URL", sandbox.lwa_token_url)
    migrate.upgrade(f"sqlite:///{tmp_path}/syncd.db")

    results = _results()

    details = [result.detail for result in results["settings"]]
    assert details == [
        "SYNCD_LWA_CLIENT_ID is not set",
        "SYNCD_LWA_CLIENT_SECRET is not set",
        "SYNCD_ENCRYPTION_KEY is not set",
    ]
    assert _one(results, "migrations").status is Status.PASS
    assert _one(results, "accounts").status is Status.WARN
    assert _one(results, "LWA endpoint").status is Status.PASS


def test_invalid_encryption_key_is_hidden(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _configure(monkeypatch, sandbox, f"sqlite:///{tmp_path}/syncd.db")
    monkeypatch.setenv("SYNCD_ENCRYPTION_KEY", "not-a-fernet-key")

    results = _results()

    [problem] = results["settings"]
    assert problem.status is Status.FAIL
    assert "SYNCD_ENCRYPTION_KEY" in problem.detail
    assert "not-a-fernet-key" not in problem.detail + problem.fix


# -- database and migrations -----------------------------------------------------------------------


def test_unmigrated_database_needs_upgrade(
    database_url: str,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    reset_database(database_url)
    path = make_url(database_url).database
    if make_url(database_url).get_backend_name() == "sqlite":
        assert path is not None
        Path(path).touch()  # an empty file, as a failed 'db upgrade' would leave
    _configure(monkeypatch, sandbox, database_url)

    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 1
    assert "PASS database " in out
    assert "FAIL migrations " in out
    assert "the database has no syncd tables yet" in out
    assert "Fix: Run 'syncd db upgrade'." in out
    assert "SKIP accounts " in out


def test_old_schema_names_both_revisions(
    database_url: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    reset_database(database_url)
    scripts = [revision.revision for revision in _scripts(database_url)]
    older = scripts[1]
    migrate.upgrade(database_url, older)
    _configure(monkeypatch, sandbox, database_url)

    result = _one(_results(), "migrations")

    head = migrate.head_revision(database_url)
    assert result.status is Status.FAIL
    assert result.detail == f"the schema is at revision {older}, not {head}"
    assert result.fix == "Run 'syncd db upgrade'."


def _scripts(url: str) -> list[Script]:
    return list(ScriptDirectory.from_config(migrate.alembic_config(url)).walk_revisions())


def test_unknown_revision_needs_newer_syncd(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    url = f"sqlite:///{tmp_path}/syncd.db"
    migrate.upgrade(url)
    engine = create_db_engine(url)
    with engine.begin() as connection:
        connection.execute(text("UPDATE syncd_alembic_version SET version_num = '9999'"))
    engine.dispose()

    result = doctor_database.check_migrations(url, "Run 'syncd db upgrade'.")

    assert result.status is Status.FAIL
    assert "revision 9999, which this syncd version does not know" in result.detail
    assert "syncd version that upgraded the database" in result.fix


def test_upgrade_fix_names_the_env_file(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    env_file = tmp_path / "syncd env"
    lines = [f"{key}={value}" for key, value in sandbox.settings_env().items()]
    lines += [f"SYNCD_DATABASE_URL=sqlite:///{tmp_path}/missing.db"]
    lines += [f"SYNCD_ENCRYPTION_KEY={generate_key()}"]
    env_file.write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = _one(_results(env_file=env_file), "database")  # type: ignore[arg-type]

    assert result.status is Status.FAIL
    assert f"the SQLite file {tmp_path}/missing.db does not exist" == result.detail
    assert result.fix == f"Run: syncd --env-file '{env_file}' db upgrade"
    assert not (tmp_path / "missing.db").exists()


def test_sqlite_folder_missing(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    _configure(monkeypatch, sandbox, f"sqlite:///{tmp_path}/gone/syncd.db")

    results = _results()

    database = _one(results, "database")
    assert database.status is Status.FAIL
    assert f"the folder {tmp_path}/gone of the SQLite file does not exist" == database.detail
    assert _one(results, "migrations").status is Status.SKIP


@pytest.mark.skipif(os.geteuid() == 0, reason="root may write any file, so nothing is refused")
def test_sqlite_file_read_only(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/syncd.db"
    migrate.upgrade(url)
    (tmp_path / "syncd.db").chmod(0o444)

    [result] = doctor_database.check_database(url, upgrade="")

    assert result.status is Status.FAIL
    assert "cannot read and write the SQLite file" in result.detail


def test_unreachable_database_hides_password(
    sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = f"postgresql://syncd:Secret-Pw@127.0.0.1:{_closed_port()}/syncd"
    _configure(monkeypatch, sandbox, url)

    results = _results()

    database = _one(results, "database")
    assert database.status is Status.FAIL
    assert "could not connect" in database.detail
    assert "Secret-Pw" not in database.detail + database.fix
    assert _one(results, "migrations").status is Status.SKIP
    assert _one(results, "accounts").status is Status.SKIP


def test_erp_database_has_its_label(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("SYNCD_ERP_DATABASE_URL", f"sqlite:///{tmp_path}/erp.db")

    results = _results()

    erp = _one(results, "ERP database")
    assert erp.status is Status.FAIL
    assert "erp.db does not exist" in erp.detail
    assert "SYNCD_ERP_DATABASE_URL" in erp.fix
    assert _one(results, "database").status is Status.PASS


@pytest.fixture
def mariadb_latin1(database_url: str) -> Iterator[str]:
    """A throwaway MariaDB database whose default character set is latin1."""
    url = database_url
    if make_url(url).get_backend_name() != "mysql":
        pytest.skip(f"a MariaDB check: runs with {MARIADB_URL_VARIABLE} only")
    parsed = make_url(url)
    name = f"{parsed.database or 'test'}_latin1"
    engine = create_db_engine(url)
    try:
        with engine.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            connection.execute(text(f"CREATE DATABASE {name} CHARACTER SET latin1"))
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.begin() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
        engine.dispose()


def test_mariadb_latin1_database_warns(mariadb_latin1: str) -> None:
    results = {r.name: r for r in doctor_database.check_database(mariadb_latin1, erp=True)}

    charset = results["ERP database character set"]
    assert charset.status is Status.WARN
    assert "database default latin1" in charset.detail
    assert "ALTER DATABASE" in charset.fix
    assert "utf8mb4" in charset.fix
    assert results["ERP database"].status is Status.PASS


def test_mariadb_without_strict_mode_warns(mariadb_latin1: str) -> None:
    # init_command runs on each new connection only, so the server's own mode is untouched.
    url = make_url(mariadb_latin1).update_query_dict({"init_command": "SET sql_mode = ''"})

    results = {r.name: r for r in doctor_database.check_database(url.render_as_string(False))}

    strict = results["database strict mode"]
    assert strict.status is Status.WARN
    assert "no strict mode" in strict.detail
    assert "STRICT_TRANS_TABLES" in strict.fix


@pytest.fixture
def postgresql_ascii(database_url: str) -> Iterator[str]:
    """A throwaway PostgreSQL database in SQL_ASCII, which does not check its text."""
    url = database_url
    if make_url(url).get_backend_name() != "postgresql":
        pytest.skip(f"a PostgreSQL check: runs with {POSTGRESQL_URL_VARIABLE} only")
    parsed = make_url(url)
    name = f"{parsed.database or 'test'}_ascii"
    engine = create_db_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name}"))
            connection.execute(
                text(f"CREATE DATABASE {name} ENCODING 'SQL_ASCII' TEMPLATE template0")
            )
        yield parsed.set(database=name).render_as_string(hide_password=False)
    finally:
        with engine.connect() as connection:
            connection.execute(text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
        engine.dispose()


def test_postgresql_non_utf8_encoding_fails(postgresql_ascii: str) -> None:
    results = {r.name: r for r in doctor_database.check_database(postgresql_ascii)}

    encoding = results["database character set"]
    assert encoding.status is Status.FAIL
    assert "SQL_ASCII" in encoding.detail
    assert "pg_dump" in encoding.fix


# -- accounts and LWA ------------------------------------------------------------------------------


def test_revoked_token_fails_with_invalid_grant(
    shop: SandboxServer, capsys: pytest.CaptureFixture[str]
) -> None:
    shop.state.revoke(REFRESH_TOKEN)

    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL LWA token acme-us " in out
    assert "invalid_grant" in out
    assert "'syncd account set-token acme-us --refresh-token-file FILE'" in out
    assert REFRESH_TOKEN not in out


def test_rejected_client_skips_other_accounts(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _add_account(monkeypatch, "acme-ca", "na", "CA", OTHER_TOKEN)
    monkeypatch.setenv("SYNCD_LWA_CLIENT_SECRET", "an-old-secret")
    shop.state.clear_calls()

    results = _results()

    first, second = _one(results, "LWA token acme-ca"), _one(results, "LWA token acme-us")
    assert first.status is Status.FAIL
    assert "invalid_client" in first.detail
    assert "180 days" in first.fix
    assert "an-old-secret" not in first.detail + first.fix
    assert second.status is Status.SKIP
    assert shop.state.call_count("lwa") == 1


def test_lwa_server_error_is_a_failure(shop: SandboxServer) -> None:
    shop.state.add_fault({"kind": "server_error", "operation": "lwa", "status": 503})

    result = _one(_results(), "LWA token acme-us")

    assert result.status is Status.FAIL
    assert "no access token from LWA (HTTP 503)" in result.detail
    assert "again later" in result.fix
    assert shop.state.call_count("lwa") == 2  # one retry, then the verdict


def test_account_needing_reauthorization_fails(
    shop: SandboxServer, migrated_database_url: str
) -> None:
    engine = create_db_engine(migrated_database_url)
    with engine.begin() as connection:
        record = accounts.get_account(connection, "acme-us")
        accounts.set_status(
            connection,
            record.id,
            accounts.REAUTH_REQUIRED,
            "LWA said invalid_grant",
            datetime.now(UTC),
        )
    engine.dispose()

    result = _one(_results(), "account acme-us")

    assert result.status is Status.FAIL
    assert "needs re-authorization" in result.detail
    assert "LWA said invalid_grant" in result.detail
    assert "syncd account set-token" in result.fix


def test_access_denied_account_warns(shop: SandboxServer, migrated_database_url: str) -> None:
    engine = create_db_engine(migrated_database_url)
    with engine.begin() as connection:
        connection.execute(update(table_of(Account)).values(status=accounts.ACCESS_DENIED))
    engine.dispose()

    results = _results()

    assert _one(results, "account acme-us").status is Status.WARN
    assert _one(results, "LWA token acme-us").status is Status.PASS


def test_wrong_encryption_key_fails_account(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_ENCRYPTION_KEY", generate_key())

    results = _results()

    account = _one(results, "account acme-us")
    assert account.status is Status.FAIL
    assert "SYNCD_ENCRYPTION_KEY does not decrypt the refresh token" in account.detail
    assert "old key after the new one" in account.fix
    assert "LWA token acme-us" not in results
    assert shop.state.call_count("lwa") == 0


def test_no_accounts_is_a_warning(
    migrated_database_url: str, sandbox: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    _configure(monkeypatch, sandbox, migrated_database_url)

    results = _results()

    assert _one(results, "accounts").status is Status.WARN
    assert "syncd account add" in _one(results, "accounts").fix
    assert _one(results, "SP-API endpoints").status is Status.SKIP
    assert not any(r.status is Status.FAIL for group in results.values() for r in group)


# -- endpoints and clock ---------------------------------------------------------------------------


def test_unreachable_endpoint_fails(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    port = _closed_port()
    monkeypatch.setenv("SYNCD_SPAPI_ENDPOINT_NA", f"http://127.0.0.1:{port}")

    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 1
    assert "FAIL SP-API NA " in out
    assert f"http://127.0.0.1:{port} is unreachable" in out
    assert "ConnectError" in out
    assert "SYNCD_HTTPS_PROXY" in out
    assert "clock (SP-API NA)" not in out
    assert "PASS LWA token acme-us " in out


def test_unreachable_lwa_fails_exchange(
    shop: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SYNCD_LWA_TOKEN_URL", f"http://127.0.0.1:{_closed_port()}/auth/o2/token")

    results = _results()

    assert _one(results, "LWA endpoint").status is Status.FAIL
    exchange = _one(results, "LWA token acme-us")
    assert exchange.status is Status.FAIL
    assert "no access token from LWA: ConnectError" in exchange.detail
    assert "SYNCD_HTTPS_PROXY" in exchange.fix
    assert _one(results, "SP-API NA").status is Status.PASS


@pytest.mark.parametrize(
    ("offset", "expected"),
    [
        pytest.param(0, Status.PASS, id="in-step"),
        pytest.param(-20, Status.WARN, id="behind-within-margin"),
        pytest.param(150, Status.FAIL, id="ahead-beyond-margin"),
    ],
)
def test_clock_skew_of_the_sandbox(shop: SandboxServer, offset: float, expected: Status) -> None:
    shop.state.set_clock_offset(offset)

    result = _one(_results(), "clock (SP-API NA)")

    assert result.status is expected
    shown = re.search(r"minus this server's: ([-+][0-9.]+) s", result.detail)
    assert shown is not None, result.detail
    assert float(shown.group(1)) == pytest.approx(offset, abs=1.0)
    if expected is not Status.PASS:
        assert "NTP" in result.fix
    if expected is Status.FAIL:
        assert "SYNCD_CLOCK_SKEW_MARGIN (60 s)" in result.detail


def _probe_with_date(remote: datetime, sent: datetime, round_trip: float) -> Probe:
    header = format_datetime(remote, usegmt=True)
    return Probe(200, "", header, sent, sent + timedelta(seconds=round_trip))


def test_clock_skew_from_date_header() -> None:
    sent = datetime(2026, 3, 1, 8, 0, 0, 250_000, tzinfo=UTC)
    received = sent + timedelta(seconds=0.5)
    header = format_datetime(datetime(2026, 3, 1, 8, 1, 30, tzinfo=UTC), usegmt=True)

    skew = doctor.clock_skew(header, sent, received)

    # Remote 08:01:30.5 (truncated second plus half) against the midpoint 08:00:00.5.
    assert skew == pytest.approx(90.0)
    assert doctor.clock_skew(None, sent, received) is None
    assert doctor.clock_skew("yesterday", sent, received) is None


@pytest.mark.parametrize(
    ("skew", "round_trip", "expected"),
    [
        pytest.param(0, 0.1, Status.PASS, id="none"),
        pytest.param(4.5, 0.1, Status.PASS, id="below-warning"),
        pytest.param(-8, 0.1, Status.WARN, id="several-seconds"),
        pytest.param(61, 4.0, Status.WARN, id="slow-response-covers-margin"),
        pytest.param(-62, 0.1, Status.FAIL, id="beyond-margin"),
    ],
)
def test_judge_clock_skew(skew: float, round_trip: float, expected: Status) -> None:
    sent = datetime(2026, 3, 1, 8, 0, 0, tzinfo=UTC)
    midpoint = sent + timedelta(seconds=round_trip / 2)
    # The header keeps whole seconds, so the measured skew is within half a second of skew.
    found = _probe_with_date(midpoint + timedelta(seconds=skew), sent, round_trip)
    measured = doctor.clock_skew(found.date_header, found.sent_at, found.received_at)
    assert measured == pytest.approx(skew, abs=0.5)

    result = doctor.judge_clock_skew("clock", found, margin=60.0)

    assert result.status is expected, (measured, result)


def test_missing_date_header_is_a_warning() -> None:
    now = datetime(2026, 3, 1, tzinfo=UTC)

    result = doctor.judge_clock_skew("clock", Probe(404, "", None, now, now), margin=60.0)

    assert result.status is Status.WARN
    assert "Date" in result.detail


# -- language --------------------------------------------------------------------------------------


def test_report_in_chinese(shop: SandboxServer, capsys: pytest.CaptureFixture[str]) -> None:
    shop.state.revoke(REFRESH_TOKEN)
    i18n.activate("zh_CN")

    code = cli.run(["doctor"])

    out = capsys.readouterr().out
    assert code == 1
    assert "通过" in out
    assert "失败" in out
    assert "配置" in out
    assert "重新授权" in out
    assert "PASS" not in out
    assert "No check failed" not in out
