"""A revoked account: the others keep syncing, status and doctor report it, set-token repairs it."""

from __future__ import annotations

import io
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from syncd import cli, config, doctor
from syncd.db import accounts, runs
from syncd.db.models import Account, table_of
from syncd.scheduler import Dispatcher
from tests.integration.orders_support import US, JobWorld

NEW_TOKEN = "Atzr|acme-na-authorized-again"


def _lwa_calls(world: JobWorld, status: int) -> int:
    return world.sandbox.state.call_count(operation="lwa", status=status)


def _dispatch(dispatcher: Dispatcher) -> int:
    """Start the due accounts and wait until their runs end."""
    started = dispatcher.dispatch()
    deadline = time.monotonic() + 60
    while dispatcher.running and time.monotonic() < deadline:
        time.sleep(0.02)
    assert dispatcher.running == {}
    return started


def _make_due(world: JobWorld, name: str) -> None:
    account_id = world.account(name).id
    with world.ctx.engine.begin() as connection:
        accounts.schedule_next(connection, account_id, world.ctx.now())


def _last_result(world: JobWorld, name: str) -> str:
    account_id = world.account(name).id
    with world.ctx.engine.begin() as connection:
        last = runs.last_runs(connection, "orders")[account_id]
    return str(last.result)


@pytest.fixture
def revoked(world: JobWorld) -> JobWorld:
    """Two accounts, one of them revoked, after one dispatch of both."""
    world.add_account("acme-na", "na", US)
    world.add_account("bravo-na", "na", US)
    world.sandbox.state.revoke("Atzr|acme-na")
    return world


def test_revoked_account_stops_others_continue(revoked: JobWorld) -> None:
    world = revoked
    dispatcher = Dispatcher(world.ctx)
    try:
        assert _dispatch(dispatcher) == 2
        for _ in range(3):
            _make_due(world, "bravo-na")
            assert _dispatch(dispatcher) == 1  # acme-na is no longer due
            assert _last_result(world, "bravo-na") == runs.SUCCEEDED
    finally:
        dispatcher.pool.shutdown(wait=True)

    assert world.account("acme-na").status == accounts.REAUTH_REQUIRED
    assert world.account("bravo-na").status == accounts.ACTIVE
    assert _lwa_calls(world, 400) == 1  # one invalid_grant, never retried


def test_revoked_token_asked_once_per_recheck(revoked: JobWorld) -> None:
    # A run started by hand ('syncd once orders') must not ask LWA again either.
    from syncd.jobs.orders import run_orders  # noqa: PLC0415

    world = revoked
    for _ in range(3):
        run_orders(world.ctx, world.account("acme-na"))

    assert _lwa_calls(world, 400) == 1


def test_status_names_the_fix(revoked: JobWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world = revoked
    from syncd.jobs.orders import run_orders  # noqa: PLC0415

    run_orders(world.ctx, world.account("acme-na"))
    capsys.readouterr()

    assert cli.run(["status"]) == 0

    out = capsys.readouterr().out
    assert "needs re-authorization" in out
    assert "syncd account set-token acme-na --refresh-token-file FILE" in out
    assert "bravo-na: needs" not in out


def test_doctor_names_the_fix(revoked: JobWorld) -> None:
    world = revoked
    from syncd.jobs.orders import run_orders  # noqa: PLC0415

    run_orders(world.ctx, world.account("acme-na"))

    results, _ = doctor.check_accounts(world.ctx.settings, world.ctx.engine)

    by_name = {result.name: result for result in results}
    assert by_name["account acme-na"].status is doctor.Status.FAIL
    assert "syncd account set-token acme-na" in by_name["account acme-na"].fix
    assert by_name["account bravo-na"].status is doctor.Status.PASS


def test_set_token_repairs_without_restart(
    revoked: JobWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world = revoked
    dispatcher = Dispatcher(world.ctx)
    try:
        _dispatch(dispatcher)
        old_provider = world.ctx.client._providers[("acme-na", "na")]
        token_file = tmp_path / "token.txt"
        token_file.write_text(NEW_TOKEN + "\n", encoding="utf-8")

        code = cli.run(["account", "set-token", "acme-na", "--refresh-token-file", str(token_file)])

        assert code == 0
        assert "new refresh token stored" in capsys.readouterr().out
        record = world.account("acme-na")
        assert record.status == accounts.ACTIVE
        assert record.status_reason is None
        assert record.next_run_at is None

        assert _dispatch(dispatcher) == 1
    finally:
        dispatcher.pool.shutdown(wait=True)

    assert _last_result(world, "acme-na") == runs.SUCCEEDED
    assert world.account("acme-na").status == accounts.ACTIVE
    assert world.ctx.client._providers[("acme-na", "na")] is not old_provider
    assert _lwa_calls(world, 400) == 1


def test_set_token_reads_standard_input(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    world.add_account("acme-na", "na", US)
    monkeypatch.setattr(sys, "stdin", io.StringIO(NEW_TOKEN + "\n"))

    assert cli.run(["account", "set-token", "ACME-na", "--refresh-token-file", "-"]) == 0

    record = world.account("acme-na")
    with world.ctx.engine.begin() as connection:
        stored = accounts.seller_account(connection, world.ctx.vault, record)
    assert stored.refresh_token.get_secret_value() == NEW_TOKEN


def test_set_token_keeps_scope_and_checkpoints(world: JobWorld, tmp_path: Path) -> None:
    from syncd.jobs.orders import run_orders  # noqa: PLC0415

    account = world.add_account("acme-na", "na", US)
    run_orders(world.ctx, account)
    watermark = world.watermark(account)
    token_file = tmp_path / "token.txt"
    token_file.write_text(NEW_TOKEN, encoding="utf-8")

    assert (
        cli.run(["account", "set-token", "acme-na", "--refresh-token-file", str(token_file)]) == 0
    )

    after = world.account("acme-na")
    assert after.marketplace_ids == account.marketplace_ids
    assert after.included_data == account.included_data
    assert world.watermark(after) == watermark


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("", "the refresh token file is empty"),
        ("Atza|an-access-token", "starts with 'Atza|'"),
        ("Atzr|one Atzr|two", "must hold the token alone"),
    ],
    ids=["empty", "access-token", "two-words"],
)
def test_set_token_rejects_bad_file(
    world: JobWorld,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    content: str,
    message: str,
) -> None:
    world.add_account("acme-na", "na", US)
    world.sandbox.state.revoke("Atzr|acme-na")
    token_file = tmp_path / "token.txt"
    token_file.write_text(content, encoding="utf-8")

    code = cli.run(["account", "set-token", "acme-na", "--refresh-token-file", str(token_file)])

    assert code == 2
    assert message in capsys.readouterr().err
    record = world.account("acme-na")
    with world.ctx.engine.begin() as connection:
        stored = accounts.seller_account(connection, world.ctx.vault, record)
    assert stored.refresh_token.get_secret_value() == "Atzr|acme-na"


def test_set_token_unknown_account(
    world: JobWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    token_file = tmp_path / "token.txt"
    token_file.write_text(NEW_TOKEN, encoding="utf-8")

    code = cli.run(["account", "set-token", "nobody", "--refresh-token-file", str(token_file)])

    assert code == 2
    assert "no such account" in capsys.readouterr().err


def test_token_never_printed(
    world: JobWorld, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    world.add_account("acme-na", "na", US)
    token_file = tmp_path / "token.txt"
    token_file.write_text(NEW_TOKEN, encoding="utf-8")

    cli.run(["account", "set-token", "acme-na", "--refresh-token-file", str(token_file)])

    captured = capsys.readouterr()
    assert NEW_TOKEN not in captured.out + captured.err
    with world.ctx.engine.begin() as connection:
        encrypted = connection.execute(
            select(table_of(Account).c.refresh_token_encrypted)
        ).scalar_one()
    assert NEW_TOKEN not in encrypted
    assert config.load_settings().database_url == world.ctx.settings.database_url
