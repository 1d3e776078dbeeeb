"""Races between a node's heartbeat and its dispatcher, forced at the points where they meet."""

from __future__ import annotations

import os
from collections.abc import Collection, Iterator

import pytest
from sqlalchemy import select

from syncd import config
from syncd.db import nodes
from syncd.db.accounts import AccountRecord
from syncd.db.models import Lease, table_of
from syncd.jobs.context import JobContext, build_context
from syncd.jobs.leasing import NodeLeases
from tests.integration.orders_support import US, JobWorld

LEASES = table_of(Lease)


@pytest.fixture
def other_ctx(world: JobWorld) -> Iterator[JobContext]:
    """A second process's context on the same database and sandbox (its own owner id)."""
    ctx = build_context(config.load_settings())
    yield ctx
    ctx.close()


class _DispatchDuringRelease(NodeLeases):
    """A node whose dispatcher starts a job the moment the heartbeat picked idle accounts."""

    def __init__(self, ctx: JobContext, account: AccountRecord) -> None:
        super().__init__(ctx)
        self.account = account
        self.started: bool | None = None

    def _release(self, account_ids: Collection[int], reason: str, **options: bool) -> None:
        if self.started is None and self.account.id in account_ids:
            self.started = self.take(self.account)
        super()._release(account_ids, reason, **options)


def test_job_started_during_rebalance_keeps_lease(world: JobWorld, other_ctx: JobContext) -> None:
    created = [world.add_account(f"shop-{number:02d}", "na", US) for number in range(4)]
    busy = created[-1]  # the node gives back the highest ids first
    first = _DispatchDuringRelease(world.ctx, busy)
    second = NodeLeases(other_ctx)
    _start(first)
    _start(second)

    first.beat()  # two live nodes: it gives two idle accounts back, and busy starts meanwhile

    assert first.started is True
    assert busy.id in first.held_ids
    with world.ctx.engine.begin() as connection:
        owner = connection.execute(
            select(LEASES.c.owner).where(LEASES.c.account_id == busy.id)
        ).scalar_one()
    assert owner == world.ctx.owner


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
