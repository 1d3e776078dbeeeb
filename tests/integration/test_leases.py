"""Leases on every database: who may work on an account, on whose clock, and for how long."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import structlog
from pydantic import SecretStr
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import OperationalError

from syncd import config
from syncd.crypto import Vault, generate_key
from syncd.db import accounts, leases
from syncd.db.engine import create_db_engine
from syncd.db.models import Lease, table_of
from syncd.jobs.context import build_context
from syncd.jobs.leasing import LeaseKeeper
from syncd.jobs.orders import run_orders
from syncd.scheduler import Dispatcher
from tests.integration.orders_support import US, JobWorld

LEASES = table_of(Lease)
TTL = timedelta(seconds=60)


@pytest.fixture
def lease_db(migrated_database_url: str) -> Iterator[tuple[Engine, int]]:
    """An engine on a migrated database and the id of an account with its lease row."""
    engine = create_db_engine(migrated_database_url)
    with engine.begin() as connection:
        account = accounts.save_account(
            connection,
            Vault(SecretStr(generate_key())),
            name="acme-na",
            region="na",
            marketplace_ids=(US,),
            included_data=("FULFILLMENT",),
            refresh_token=SecretStr("Atzr|x"),
            now=datetime.now(UTC),
        )
    yield engine, account.id
    engine.dispose()


def _acquire(engine: Engine, account_id: int, owner: str) -> bool:
    with engine.begin() as connection:
        return leases.acquire_lease(connection, account_id, owner, TTL)


def _lease_row(engine: Engine, account_id: int) -> Any:
    with engine.begin() as connection:
        return connection.execute(select(LEASES).where(LEASES.c.account_id == account_id)).one()


def test_lease_has_one_owner_at_a_time(lease_db: tuple[Engine, int]) -> None:
    engine, account_id = lease_db

    assert _acquire(engine, account_id, "node-a")
    assert _acquire(engine, account_id, "node-a")  # taking it again is renewing it
    assert not _acquire(engine, account_id, "node-b")
    with engine.begin() as connection:
        assert leases.lease_owner(connection, account_id) == "node-a"
        leases.release_lease(connection, account_id, "node-b")  # not B's to give back
        assert leases.lease_owner(connection, account_id) == "node-a"
        leases.release_lease(connection, account_id, "node-a")
        assert leases.lease_owner(connection, account_id) is None
    assert _acquire(engine, account_id, "node-b")


def test_expired_lease_passes_to_another_owner(lease_db: tuple[Engine, int]) -> None:
    engine, account_id = lease_db
    assert _acquire(engine, account_id, "node-a")
    with engine.begin() as connection:
        connection.execute(
            update(LEASES)
            .where(LEASES.c.account_id == account_id)
            .values(expires_at=leases.database_now(connection) - timedelta(seconds=1))
        )

    assert _acquire(engine, account_id, "node-b")
    with engine.begin() as connection:
        assert not leases.renew_lease(connection, account_id, "node-a", TTL)
        assert leases.renew_lease(connection, account_id, "node-b", TTL)


def test_lease_times_follow_the_database_clock(
    lease_db: tuple[Engine, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    engine, account_id = lease_db
    if engine.dialect.name == "sqlite":
        pytest.skip("SQLite is a local file: its only clock is this host's")
    assert _acquire(engine, account_id, "node-a")

    class FastClock(datetime):
        """This host's clock, ten minutes ahead of the database server's."""

        @classmethod
        def now(cls, tz: Any = None) -> Any:
            return datetime.now(tz) + timedelta(minutes=10)

    monkeypatch.setattr(leases, "datetime", FastClock)

    assert not _acquire(engine, account_id, "node-b")
    row = _lease_row(engine, account_id)
    assert abs(row.expires_at - (datetime.now(UTC) + TTL)) < timedelta(seconds=30)


def test_keeper_renews_until_released(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"lease_seconds": 0.6})
    account = world.add_account("acme-na", "na", US)
    keeper = LeaseKeeper(world.ctx, account)
    assert keeper.acquire()
    first = _lease_row(world.ctx.engine, account.id).renewed_at

    with keeper:
        time.sleep(0.9)
        renewed = _lease_row(world.ctx.engine, account.id)

    released = _lease_row(world.ctx.engine, account.id)
    assert renewed.renewed_at > first
    assert renewed.owner == world.ctx.owner
    assert released.owner is None


def test_failed_release_is_logged_and_lease_expires(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)
    keeper = LeaseKeeper(world.ctx, account)
    assert keeper.acquire()

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("UPDATE syncd_leases", {}, Exception("server closed"))

    monkeypatch.setattr(leases, "release_lease", fail)
    with structlog.testing.capture_logs() as logs:
        keeper.release()

    assert [entry["event"] for entry in logs] == ["lease_release_failed"]
    assert _lease_row(world.ctx.engine, account.id).owner == world.ctx.owner


def test_dispatcher_frees_slot_when_release_fails(
    world: JobWorld, monkeypatch: pytest.MonkeyPatch
) -> None:
    account = world.add_account("acme-na", "na", US)

    def fail(*args: Any, **kwargs: Any) -> None:
        raise OperationalError("UPDATE syncd_leases", {}, Exception("server closed"))

    monkeypatch.setattr(leases, "release_lease", fail)
    dispatcher = Dispatcher(world.ctx)
    try:
        assert dispatcher.dispatch() == 1
        future = dispatcher.running[account.id]
        future.result(timeout=60)
        deadline = time.monotonic() + 10
        while dispatcher.running and time.monotonic() < deadline:
            time.sleep(0.01)
        assert dispatcher.running == {}
    finally:
        dispatcher.pool.shutdown(wait=True)


def test_quota_levels_follow_lease(world: JobWorld) -> None:
    # Amazon's bucket belongs to the seller, not to the process: one that takes the account
    # over must not start from a full burst that the previous one has spent.
    account = world.add_account("acme-na", "na", US)
    first = LeaseKeeper(world.ctx, account)
    assert first.acquire()
    with first:
        bucket = world.ctx.client.buckets.bucket(account.name, "na", "searchOrders")
        for _ in range(20):
            bucket.reserve()
        world.ctx.client.buckets.bucket(account.name, "na", "getOrder").update_rate(0.25)

    second_ctx = build_context(config.load_settings())
    try:
        second = LeaseKeeper(second_ctx, account)
        assert second.acquire()
        second.release()
        levels = second_ctx.client.buckets.levels(account.name, "na")
    finally:
        second_ctx.close()

    assert second_ctx.owner != world.ctx.owner
    assert levels["searchOrders"].tokens < 1.0
    assert levels["getOrder"].rate == 0.25


def test_unreadable_saved_levels_are_ignored(world: JobWorld) -> None:
    account = world.add_account("acme-na", "na", US)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(LEASES)
            .where(LEASES.c.account_id == account.id)
            .values(quota_levels="{not json", quota_saved_at=datetime.now(UTC))
        )
    keeper = LeaseKeeper(world.ctx, account)

    with structlog.testing.capture_logs() as logs:
        assert keeper.acquire()
    keeper.release()

    assert world.ctx.client.buckets.levels(account.name, "na") == {}
    assert [entry["event"] for entry in logs] == ["quota_levels_unreadable"]


def test_every_page_saves_the_quota_levels(world: JobWorld) -> None:
    # A process killed between heartbeats must not leave levels older than its last page.
    account = world.add_account("acme-na", "na", US)

    run_orders(world.ctx, account)  # holds the lease and is never released here

    row = _lease_row(world.ctx.engine, account.id)
    assert row.owner == world.ctx.owner
    saved = json.loads(row.quota_levels)
    level = world.ctx.client.buckets.levels(account.name, "na")["searchOrders"]
    assert saved["searchOrders"]["tokens"] == pytest.approx(level.tokens, abs=0.5)


@pytest.mark.parametrize(
    "text",
    [
        '{"searchOrders": {"tokens": 1' + "0" * 400 + ', "rate": 0.0056}}',
        "[" * 30_000 + "]" * 30_000,  # within MySQL's 64 KiB TEXT
        '{"searchOrders": [1, 2]}',
        "42",
    ],
    ids=["overflow", "deep", "shape", "not-an-object"],
)
def test_damaged_saved_levels_never_block_the_lease(world: JobWorld, text: str) -> None:
    account = world.add_account("acme-na", "na", US)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(LEASES)
            .where(LEASES.c.account_id == account.id)
            .values(quota_levels=text, quota_saved_at=datetime.now(UTC))
        )
    keeper = LeaseKeeper(world.ctx, account)

    with structlog.testing.capture_logs() as logs:
        assert keeper.acquire()
    keeper.release()

    assert [entry["event"] for entry in logs] == ["quota_levels_unreadable"]


def test_dispatcher_skips_failing_lease(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    broken = world.add_account("aaa-broken", "na", US)
    healthy = world.add_account("zzz-healthy", "na", US)
    load = leases.load_quota_levels

    def load_or_fail(connection: Any, account_id: int) -> Any:
        if account_id == broken.id:
            raise RuntimeError("a bug in one account's lease")
        return load(connection, account_id)

    monkeypatch.setattr(leases, "load_quota_levels", load_or_fail)
    dispatcher = Dispatcher(world.ctx)
    try:
        with structlog.testing.capture_logs() as logs:
            assert dispatcher.dispatch() == 1
        assert set(dispatcher.running) == {healthy.id}
        dispatcher.running[healthy.id].result(timeout=60)
    finally:
        dispatcher.pool.shutdown(wait=True)  # the scheduler itself was never started
    assert "lease_acquire_failed" in [entry["event"] for entry in logs]


def _accounts(engine: Engine, count: int) -> list[int]:
    """Add ``count`` more accounts; return their ids in order."""
    vault = Vault(SecretStr(generate_key()))
    ids = []
    with engine.begin() as connection:
        for number in range(count):
            account = accounts.save_account(
                connection,
                vault,
                name=f"shop-{number:03d}",
                region="na",
                marketplace_ids=(US,),
                included_data=("FULFILLMENT",),
                refresh_token=SecretStr("Atzr|x"),
                now=datetime.now(UTC),
            )
            ids.append(account.id)
    return ids


def _claim(engine: Engine, owner: str, limit: int) -> list[int]:
    with engine.begin() as connection:
        return leases.claim_leases(connection, owner, TTL, limit)


def test_claim_takes_only_free_leases(lease_db: tuple[Engine, int]) -> None:
    engine, first = lease_db
    more = _accounts(engine, 3)

    taken_by_a = _claim(engine, "node-a", 2)
    taken_by_b = _claim(engine, "node-b", 10)
    nothing_left = _claim(engine, "node-c", 10)

    assert len(taken_by_a) == 2
    assert sorted(taken_by_a + taken_by_b) == sorted([first, *more])
    assert nothing_left == []


def test_claim_takes_expired_leases(lease_db: tuple[Engine, int]) -> None:
    engine, account_id = lease_db
    assert _claim(engine, "node-a", 1) == [account_id]
    with engine.begin() as connection:
        connection.execute(
            update(LEASES).values(expires_at=leases.database_now(connection) - timedelta(seconds=1))
        )

    assert _claim(engine, "node-b", 1) == [account_id]
    with engine.begin() as connection:
        assert leases.renew_leases(connection, "node-a", TTL) == set()
        assert leases.renew_leases(connection, "node-b", TTL) == {account_id}


def test_claim_prefers_longest_due(lease_db: tuple[Engine, int]) -> None:
    engine, never_run = lease_db
    later, earlier = _accounts(engine, 2)
    now = datetime.now(UTC)
    with engine.begin() as connection:
        accounts.schedule_next(connection, later, now - timedelta(minutes=1))
        accounts.schedule_next(connection, earlier, now - timedelta(minutes=30))

    order = [_claim(engine, f"node-{n}", 1) for n in range(3)]

    assert order == [[never_run], [earlier], [later]]


def test_claim_skips_locked_rows(lease_db: tuple[Engine, int]) -> None:
    engine, first = lease_db
    if not leases.supports_skip_locked(engine.dialect):
        pytest.skip(f"{engine.dialect.name} has no SKIP LOCKED; the conditional UPDATE decides")
    more = _accounts(engine, 3)

    # Node A's claim stays open, its two rows locked, while node B claims.
    with engine.begin() as connection_a:
        taken_by_a = leases.claim_leases(connection_a, "node-a", TTL, 2)
        started = time.monotonic()
        taken_by_b = _claim(engine, "node-b", 10)
        waited = time.monotonic() - started

    assert len(taken_by_a) == 2
    assert sorted(taken_by_a + taken_by_b) == sorted([first, *more])
    assert waited < 5.0  # B never waited for A's row locks


@pytest.mark.parametrize(
    ("name", "mariadb", "version", "expected"),
    [
        ("postgresql", False, (15, 2), True),
        ("mysql", True, (10, 5, 22), False),
        ("mysql", True, (10, 6, 0), True),
        ("mysql", False, (5, 7, 44), False),
        ("mysql", False, (8, 0, 36), True),
        ("sqlite", False, (3, 45, 0), False),
    ],
    ids=["postgresql", "mariadb-10.5", "mariadb-10.6", "mysql-5.7", "mysql-8", "sqlite"],
)
def test_skip_locked_by_server_version(
    name: str, mariadb: bool, version: tuple[int, ...], expected: bool
) -> None:
    class Dialect:
        pass

    dialect = Dialect()
    dialect.name = name  # type: ignore[attr-defined]
    dialect.is_mariadb = mariadb  # type: ignore[attr-defined]
    dialect.server_version_info = version  # type: ignore[attr-defined]

    assert leases.supports_skip_locked(dialect) is expected  # type: ignore[arg-type]
