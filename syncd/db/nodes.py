"""The node registry: one row per running ``syncd run`` process that shares this database.

A node inserts its row when it starts, writes its heartbeat on the database server's clock
every ``SYNCD_NODE_HEARTBEAT`` seconds, and deletes the row on a clean stop. A node whose
heartbeat is older than :data:`LIVE_HEARTBEATS` intervals counts as gone. The row of a node
that died without stopping stays until it is :data:`DEAD_ROW_AGE` old, so ``status`` can
still show it for a while, and then the next heartbeat of any node deletes it.

Every node is expected to run with the same ``SYNCD_NODE_HEARTBEAT``: the liveness of a row
is judged with the reader's interval.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Connection, delete, insert, select, update

from syncd import errors
from syncd.db.leases import database_now
from syncd.db.models import Node, table_of
from syncd.i18n import gettext as _

_TABLE = table_of(Node)

# A node counts as live while its last heartbeat is younger than this many intervals, so one
# late heartbeat (a slow database, a long pause of the process) does not remove it.
LIVE_HEARTBEATS = 3
# Rows of nodes that stopped beating are deleted once their heartbeat is this old.
DEAD_ROW_AGE = timedelta(hours=1)


@dataclass(frozen=True)
class NodeRecord:
    """A node's row: who it is, where it runs and when it last wrote its heartbeat."""

    owner: str
    hostname: str
    pid: int
    version: str
    started_at: datetime
    heartbeat_at: datetime
    accounts_held: int
    status: str | None


class NodeConflictError(errors.ConfigError):
    """Another node's heartbeat is live on a database that serves only one node (SQLite)."""

    def __init__(self, other: NodeRecord, age_seconds: float) -> None:
        self.other_owner = other.owner
        self.hostname = other.hostname
        self.pid = other.pid
        super().__init__(
            _(
                "Another syncd daemon (host {hostname}, process {pid}) is running on this "
                "SQLite database; its last heartbeat was {age} s ago. An SQLite database "
                "serves one daemon: stop the other one first, or move the database to "
                "PostgreSQL or MariaDB to run several daemons."
            ).format(hostname=other.hostname, pid=other.pid, age=round(age_seconds))
        )


def _record(row: object) -> NodeRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return NodeRecord(**{name: mapping[name] for name in NodeRecord.__dataclass_fields__})


def register_node(
    connection: Connection, owner: str, *, hostname: str, pid: int, version: str
) -> NodeRecord:
    """Insert this node's row with its first heartbeat; return the row."""
    now = database_now(connection)
    connection.execute(
        insert(_TABLE).values(
            owner=owner,
            hostname=hostname[:255],
            pid=pid,
            version=version[:32],
            started_at=now,
            heartbeat_at=now,
            accounts_held=0,
            status=None,
        )
    )
    return NodeRecord(owner, hostname[:255], pid, version[:32], now, now, 0, None)


def record_heartbeat(
    connection: Connection, owner: str, *, accounts_held: int, status: str | None
) -> bool:
    """Write the node's heartbeat; False when its row is gone (deleted as dead)."""
    result = connection.execute(
        update(_TABLE)
        .where(_TABLE.c.owner == owner)
        .values(heartbeat_at=database_now(connection), accounts_held=accounts_held, status=status)
    )
    return result.rowcount == 1


def deregister_node(connection: Connection, owner: str) -> None:
    """Delete the node's row on a clean stop."""
    connection.execute(delete(_TABLE).where(_TABLE.c.owner == owner))


def list_nodes(connection: Connection) -> list[NodeRecord]:
    """Return every node row, live or not, oldest start first."""
    query = select(_TABLE).order_by(_TABLE.c.started_at, _TABLE.c.owner)
    return [_record(row) for row in connection.execute(query)]


def is_live(node: NodeRecord, now: datetime, heartbeat: timedelta) -> bool:
    """Return True while the node's heartbeat is younger than the live limit."""
    return now - node.heartbeat_at < heartbeat * LIVE_HEARTBEATS


def live_nodes(connection: Connection, heartbeat: timedelta) -> list[NodeRecord]:
    """Return the nodes whose heartbeat is live on the database's clock."""
    now = database_now(connection)
    return [node for node in list_nodes(connection) if is_live(node, now, heartbeat)]


def remove_dead_nodes(connection: Connection) -> list[NodeRecord]:
    """Delete the rows of nodes whose heartbeat is older than :data:`DEAD_ROW_AGE`."""
    cutoff = database_now(connection) - DEAD_ROW_AGE
    dead = [
        _record(row)
        for row in connection.execute(select(_TABLE).where(_TABLE.c.heartbeat_at < cutoff))
    ]
    if dead:
        connection.execute(delete(_TABLE).where(_TABLE.c.owner.in_([node.owner for node in dead])))
    return dead
