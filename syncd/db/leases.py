"""Leases: each account is worked on by one process at a time, even with a single process.

A lease row exists for every account. A worker takes it when it is free or expired, renews
it while it works, and gives it back when done. Every step is one conditional UPDATE, which
is atomic on SQLite, PostgreSQL and MariaDB/MySQL alike. The caller holds the lease when the
UPDATE matched its row.

Expiry times are written and compared on the database server's clock, so two nodes whose
clocks disagree still agree on when a lease has expired. SQLite is a local file, so its
clock is the one host's clock.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, and_, func, insert, or_, select, update

from syncd.amazon.throttle import BucketLevel
from syncd.db.models import Lease, table_of
from syncd.logs import get_logger

_TABLE = table_of(Lease)
log = get_logger(__name__)
# Errors that damaged quota levels raise while they are read: invalid JSON or time text, a
# wrong shape, a number too large for a float, JSON nested too deep.
_UNREADABLE = (ValueError, TypeError, KeyError, AttributeError, OverflowError, RecursionError)


def database_now(connection: Connection) -> datetime:
    """Return the database server's current time in UTC.

    PostgreSQL's ``clock_timestamp()`` is the wall clock, unlike ``now()``, which stays at
    the start of the transaction.
    """
    dialect = connection.dialect.name
    if dialect == "postgresql":
        value: datetime = connection.execute(select(func.clock_timestamp())).scalar_one()
    elif dialect in ("mysql", "mariadb"):
        value = connection.execute(select(func.utc_timestamp(6))).scalar_one()
    else:
        return datetime.now(UTC)
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def ensure_lease(connection: Connection, account_id: int) -> None:
    """Create the account's lease row if it does not exist yet."""
    found = connection.execute(
        select(_TABLE.c.account_id).where(_TABLE.c.account_id == account_id)
    ).first()
    if found is None:
        connection.execute(insert(_TABLE).values(account_id=account_id))


def acquire_lease(connection: Connection, account_id: int, owner: str, ttl: timedelta) -> bool:
    """Take the lease when it is free, expired or already ours; return True on success."""
    now = database_now(connection)
    result = connection.execute(
        update(_TABLE)
        .where(
            _TABLE.c.account_id == account_id,
            or_(
                _TABLE.c.owner.is_(None),
                _TABLE.c.owner == owner,
                and_(_TABLE.c.expires_at.is_not(None), _TABLE.c.expires_at < now),
            ),
        )
        .values(owner=owner, expires_at=now + ttl, renewed_at=now)
    )
    return result.rowcount == 1


def renew_lease(connection: Connection, account_id: int, owner: str, ttl: timedelta) -> bool:
    """Extend our lease; False means another process took it after it expired.

    Run inside a transaction that writes the account's data, the renewal also fences that
    data: on PostgreSQL and MariaDB the updated lease row stays locked until the commit, so
    no other process can take the lease in between.
    """
    now = database_now(connection)
    result = connection.execute(
        update(_TABLE)
        .where(_TABLE.c.account_id == account_id, _TABLE.c.owner == owner)
        .values(expires_at=now + ttl, renewed_at=now)
    )
    return result.rowcount == 1


def release_lease(connection: Connection, account_id: int, owner: str) -> None:
    """Give the lease back, if it is still ours."""
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.account_id == account_id, _TABLE.c.owner == owner)
        .values(owner=None, expires_at=None)
    )


def lease_owner(connection: Connection, account_id: int) -> str | None:
    """Return who holds the account's lease now, or None when it is free or expired."""
    row = connection.execute(
        select(_TABLE.c.owner, _TABLE.c.expires_at).where(_TABLE.c.account_id == account_id)
    ).first()
    if row is None or row.owner is None or row.expires_at is None:
        return None
    if row.expires_at < database_now(connection):
        return None
    return str(row.owner)


def save_quota_levels(
    connection: Connection, account_id: int, owner: str, levels: Mapping[str, BucketLevel]
) -> None:
    """Keep the account's quota levels on its lease row, if the lease is still ours."""
    if not levels:
        return
    text = json.dumps({operation: asdict(level) for operation, level in sorted(levels.items())})
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.account_id == account_id, _TABLE.c.owner == owner)
        .values(quota_levels=text, quota_saved_at=database_now(connection))
    )


def load_quota_levels(
    connection: Connection, account_id: int
) -> tuple[dict[str, BucketLevel], float] | None:
    """Return the saved quota levels and their age in seconds, or None when there are none.

    Levels that cannot be read are logged and ignored: the buckets then start from Amazon's
    default plans, as they would without saved levels.
    """
    try:
        # On SQLite a damaged time fails while the row is read, so the read is inside too.
        row = connection.execute(
            select(_TABLE.c.quota_levels, _TABLE.c.quota_saved_at).where(
                _TABLE.c.account_id == account_id
            )
        ).first()
        if row is None or row.quota_levels is None or row.quota_saved_at is None:
            return None
        saved_at: datetime = row.quota_saved_at
        levels = {
            str(operation): BucketLevel(float(saved["tokens"]), float(saved["rate"]))
            for operation, saved in json.loads(row.quota_levels).items()
        }
    except _UNREADABLE as exc:
        log.warning("quota_levels_unreadable", account_id=account_id, error=repr(exc)[:200])
        return None
    age = (database_now(connection) - saved_at).total_seconds()
    return levels, age
