"""Daemon nodes sharing one database: registry, sticky leases, fair shares, one SQLite node."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
import structlog
from sqlalchemy import func, select, update

from syncd import config, errors
from syncd.db import accounts, leases, nodes
from syncd.db.accounts import AccountRecord
from syncd.db.models import Lease, Node, Run, table_of
from syncd.jobs.context import JobContext, build_context
from syncd.jobs.leasing import NodeLeases, fenced
from syncd.scheduler import Dispatcher
from tests.integration.orders_support import US, JobWorld

LEASES = table_of(Lease)
NODES = table_of(Node)
RUNS = table_of(Run)


@pytest.fixture
def other_ctx(world: JobWorld) -> Iterator[JobContext]:
    """A second process's context on the same database and sandbox (its own owner id)."""
    ctx = build_context(config.load_settings())
    yield ctx
    ctx.close()


def _add_accounts(world: JobWorld, count: int) -> list[AccountRecord]:
    return [world.add_account(f"shop-{number:02d}", "na", US) for number in range(count)]


def _start(node: NodeLeases) -> None:
    """Join a node; on SQLite, which refuses a second node, register it directly."""
    if node.ctx.engine.dialect.name != "sqlite":
        node.join()
        return
    with node.ctx.engine.begin() as connection:
        nodes.register_node(
            connection, node.ctx.owner, hostname="test", pid=os.getpid(), version="test"
        )
    node.beat()


def _owners(world: JobWorld) -> dict[int, str | None]:
    with world.ctx.engine.begin() as connection:
        rows = connection.execute(select(LEASES.c.account_id, LEASES.c.owner))
        return {row.account_id: row.owner for row in rows}


def _age_node(ctx: JobContext, owner: str, seconds: float) -> None:
    """Move a node's heartbeat and its leases' expiry into the past, as time passing would."""
    with ctx.engine.begin() as connection:
        now = leases.database_now(connection)
        connection.execute(
            update(NODES)
            .where(NODES.c.owner == owner)
            .values(heartbeat_at=now - timedelta(seconds=seconds))
        )
        connection.execute(
            update(LEASES)
            .where(LEASES.c.owner == owner)
            .values(expires_at=now - timedelta(seconds=1))
        )


def test_node_registers_and_leaves(world: JobWorld) -> None:
    created = _add_accounts(world, 3)
    node = NodeLeases(world.ctx)

    with structlog.testing.capture_logs() as logs:
        node.join()
        with world.ctx.engine.begin() as connection:
            registered = nodes.list_nodes(connection)
        node.leave()

    assert [row.owner for row in registered] == [world.ctx.owner]
    assert registered[0].pid == os.getpid()
    assert registered[0].accounts_held == 3
    assert node.held_ids == set()
    assert set(_owners(world).values()) == {None}
    with world.ctx.engine.begin() as connection:
        assert nodes.list_nodes(connection) == []
    events = [entry["event"] for entry in logs]
    assert events[0] == "node_registered"
    assert "leases_claimed" in events
    assert events[-1] == "node_deregistered"
    assert len(created) == 3


def test_new_node_gets_fair_share(world: JobWorld, other_ctx: JobContext) -> None:
    _add_accounts(world, 6)
    first, second = NodeLeases(world.ctx), NodeLeases(other_ctx)
    _start(first)
    _start(second)
    held_before = (len(first.held_ids), len(second.held_ids))

    first.beat()  # two live nodes now: it gives three accounts back
    second.beat()  # takes them

    assert held_before == (6, 0)
    assert len(first.held_ids) == 3
    assert len(second.held_ids) == 3
    assert first.held_ids.isdisjoint(second.held_ids)
    owners = _owners(world)
    assert {owners[i] for i in first.held_ids} == {world.ctx.owner}
    assert {owners[i] for i in second.held_ids} == {other_ctx.owner}


def test_busy_account_is_not_released(world: JobWorld, other_ctx: JobContext) -> None:
    created = _add_accounts(world, 4)
    first, second = NodeLeases(world.ctx), NodeLeases(other_ctx)
    _start(first)
    busy = created[-1]  # the node gives back the highest ids first
    assert first.take(busy)
    _start(second)

    first.beat()

    assert busy.id in first.held_ids
    assert len(first.held_ids) == 2


def test_dead_node_accounts_move_after_expiry(world: JobWorld, other_ctx: JobContext) -> None:
    created = _add_accounts(world, 6)
    first, second = NodeLeases(world.ctx), NodeLeases(other_ctx)
    _start(first)
    _start(second)
    first.beat()
    second.beat()
    lost = next(account for account in created if account.id in first.held_ids)

    # The first node stops beating; its heartbeat and leases age past their limits.
    _age_node(world.ctx, world.ctx.owner, nodes.LIVE_HEARTBEATS * 15 + 1)
    second.beat()
    taken_over = set(second.held_ids)
    with structlog.testing.capture_logs() as logs:
        first.beat()  # it wakes up: every lease is gone

    assert taken_over == {account.id for account in created}
    assert first.held_ids == set()
    assert "lease_lost" in [entry["event"] for entry in logs]
    with pytest.raises(errors.LeaseLostError), fenced(world.ctx, lost):
        pytest.fail("a node that lost the lease must not get a transaction")


def test_removed_account_is_no_lost_lease(world: JobWorld) -> None:
    created = _add_accounts(world, 2)
    node = NodeLeases(world.ctx)
    _start(node)
    with world.ctx.engine.begin() as connection:
        accounts.remove_account(connection, created[0].name)

    with structlog.testing.capture_logs() as logs:
        node.beat()

    events = [entry["event"] for entry in logs]
    assert "held_account_removed" in events
    assert "lease_lost" not in events
    assert node.held_ids == {created[1].id}


def test_take_claims_only_before_join(world: JobWorld, other_ctx: JobContext) -> None:
    created = _add_accounts(world, 3)
    before_join = NodeLeases(world.ctx)
    joined = NodeLeases(other_ctx)
    joined.fair_share = 3  # as after its first heartbeat

    taken = [before_join.take(created[0]), joined.take(created[1])]

    assert taken == [True, False]
    assert before_join.held_ids == {created[0].id}
    assert _owners(world)[created[1].id] is None


def test_freed_worker_takes_next_account(world: JobWorld) -> None:
    world.ctx.settings = world.ctx.settings.model_copy(update={"max_workers": 1})
    created = _add_accounts(world, 3)
    dispatcher = Dispatcher(world.ctx)
    try:
        started = dispatcher.dispatch()  # once: no scheduler runs the later looks
        deadline = time.monotonic() + 60
        while _finished_runs(world) < len(created) and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        dispatcher.pool.shutdown(wait=True)

    assert started == 1
    assert _finished_runs(world) == len(created)


def _finished_runs(world: JobWorld) -> int:
    with world.ctx.engine.begin() as connection:
        return int(connection.execute(select(func.count()).select_from(RUNS)).scalar_one())


def test_stale_node_rows_are_removed(world: JobWorld, other_ctx: JobContext) -> None:
    node = NodeLeases(world.ctx)
    _start(node)
    with world.ctx.engine.begin() as connection:
        nodes.register_node(connection, "gone:1:x", hostname="gone", pid=1, version="0")
    _age_node(world.ctx, "gone:1:x", (nodes.DEAD_ROW_AGE + timedelta(minutes=1)).total_seconds())

    node.beat()

    with world.ctx.engine.begin() as connection:
        owners = [row.owner for row in nodes.list_nodes(connection)]
    assert owners == [world.ctx.owner]


def test_beat_shares_application_budget(world: JobWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_APPLICATION_BUDGET", '{"getOrder": 4}')
    first_ctx = build_context(config.load_settings())
    second_ctx = build_context(config.load_settings())
    try:
        first, second = NodeLeases(first_ctx), NodeLeases(second_ctx)
        _start(first)
        _start(second)
        first.beat()
        bucket = first_ctx.client.buckets.application_bucket("getOrder")
        assert bucket is not None
        shared = bucket.rate
        second.leave()
        first.beat()
    finally:
        first_ctx.close()
        second_ctx.close()

    assert shared == pytest.approx(2.0)
    assert bucket.rate == pytest.approx(4.0)


def test_dispatcher_runs_only_held_accounts(world: JobWorld, other_ctx: JobContext) -> None:
    _add_accounts(world, 4)
    other = NodeLeases(other_ctx)
    _start(other)  # the first node takes every account
    dispatcher = Dispatcher(world.ctx)
    try:
        _start(dispatcher.leases)
        other.beat()  # two nodes now: it gives two accounts back
        started_before_beat = dispatcher.dispatch()
        dispatcher.leases.beat()  # the heartbeat claims them
        started = dispatcher.dispatch()
        running = set(dispatcher.running)
    finally:
        dispatcher.pool.shutdown(wait=True)

    assert started_before_beat == 0
    assert started == 2
    assert running <= dispatcher.leases.held_ids
    assert running.isdisjoint(other.held_ids)


# -- one node on SQLite -------------------------------------------------------------------------


def _sqlite_only(world: JobWorld) -> None:
    if world.ctx.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite limits the database to one node")


def test_second_sqlite_node_is_refused(world: JobWorld) -> None:
    _sqlite_only(world)
    # The first daemon is another live process on this host: one row per process id, and a
    # row naming this very process would be a predecessor that was killed.
    first = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        with world.ctx.engine.begin() as connection:
            nodes.register_node(
                connection,
                "first-daemon",
                hostname=socket.gethostname(),
                pid=first.pid,
                version="test",
            )

        with (
            structlog.testing.capture_logs() as logs,
            pytest.raises(nodes.NodeConflictError) as raised,
        ):
            NodeLeases(world.ctx).join()
    finally:
        first.kill()
        first.wait()

    assert str(first.pid) in str(raised.value)
    assert "SQLite" in str(raised.value)
    refused = [entry for entry in logs if entry["event"] == "node_refused"]
    assert len(refused) == 1
    assert refused[0]["node"] == "first-daemon"
    assert refused[0]["log_level"] == "error"
    with world.ctx.engine.begin() as connection:
        assert [row.owner for row in nodes.list_nodes(connection)] == ["first-daemon"]


def test_dead_sqlite_node_is_replaced(world: JobWorld) -> None:
    _sqlite_only(world)
    account = _add_accounts(world, 1)[0]
    dead_pid = _ended_pid()
    with world.ctx.engine.begin() as connection:
        nodes.register_node(
            connection, "killed:1:x", hostname=socket.gethostname(), pid=dead_pid, version="0"
        )
        assert leases.acquire_lease(connection, account.id, "killed:1:x", timedelta(hours=1))

    node = NodeLeases(world.ctx)
    with structlog.testing.capture_logs() as logs:
        node.join()

    removed = [entry for entry in logs if entry["event"] == "node_removed_dead"]
    assert len(removed) == 1
    assert removed[0]["leases"] == 1
    assert node.held_ids == {account.id}  # free at once, not after the lease's hour
    with world.ctx.engine.begin() as connection:
        assert [row.owner for row in nodes.list_nodes(connection)] == [world.ctx.owner]


def _ended_pid() -> int:
    """Return the id of a child process that has exited and been reaped."""
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


def test_second_sqlite_daemon_exits_with_message(world: JobWorld, tmp_path: Path) -> None:
    _sqlite_only(world)
    _add_accounts(world, 1)
    env = {**os.environ, "SYNCD_LANGUAGE": "en", "SYNCD_LOG_FORMAT": "json"}
    log_path = tmp_path / "first.log"
    with log_path.open("w") as log_file:
        first = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run"], env=env, stdout=log_file, stderr=log_file
        )
    try:
        deadline = time.monotonic() + 30
        while "dispatcher_started" not in log_path.read_text() and time.monotonic() < deadline:
            assert first.poll() is None, log_path.read_text()
            time.sleep(0.2)

        second = subprocess.run(
            [sys.executable, "-m", "syncd", "run"],
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    finally:
        first.terminate()
        first_code = first.wait(timeout=60)

    assert second.returncode == 2, second.stderr
    assert "Another syncd daemon" in second.stderr
    assert f"process {first.pid}" in second.stderr
    assert '"event": "node_refused"' in second.stderr
    assert first_code == 0
    with world.ctx.engine.begin() as connection:
        assert nodes.list_nodes(connection) == []  # the first one deregistered on SIGTERM
