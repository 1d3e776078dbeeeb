"""A daemon restarted on the same host after it was killed, on a database that serves one node."""

from __future__ import annotations

import os
import socket

import pytest
import structlog

from syncd.db import nodes
from syncd.jobs.leasing import NodeLeases
from tests.integration.orders_support import JobWorld


def test_own_pid_left_behind_is_dead(world: JobWorld) -> None:
    if world.ctx.engine.dialect.name != "sqlite":
        pytest.skip("only SQLite refuses a second node")
    # A container's daemon often gets the same process id at every start, so the row of the
    # instance killed before this start names this very process.
    with world.ctx.engine.begin() as connection:
        nodes.register_node(
            connection,
            "killed-before-restart",
            hostname=socket.gethostname(),
            pid=os.getpid(),
            version="test",
        )
    node = NodeLeases(world.ctx)

    with structlog.testing.capture_logs() as logs:
        node.join()

    removed = [entry for entry in logs if entry["event"] == "node_removed_dead"]
    assert [entry["node"] for entry in removed] == ["killed-before-restart"]
    with world.ctx.engine.begin() as connection:
        assert [row.owner for row in nodes.list_nodes(connection)] == [world.ctx.owner]
