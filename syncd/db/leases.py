"""Leases: each account is worked on by one process at a time, even with a single process.

A lease row exists for every account. A worker takes it when it is free or expired, renews
it while it works, and gives it back when done. Every step is one conditional UPDATE, which
is atomic on SQLite, PostgreSQL and MariaDB/MySQL alike. The caller holds the lease when the
UPDATE matched its row.

Expiry times are written and compared on the database server's clock, so two nodes whose
clocks disagree still agree on when a lease has expired. SQLite is a local file, so its
clock is the one host's clock.

A daemon node claims many leases at once with :func:`claim_leases`. On PostgreSQL, MariaDB
10.6 and later and MySQL 8 it locks the free rows it picked with ``SELECT … FOR UPDATE SKIP
LOCKED``, so a node does not wait for another node's claim: rows that another node is
claiming are skipped and left to it. Elsewhere (SQLite, older MariaDB) the same conditional UPDATE
decides, and the claim then reads back which of the rows it really got.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Mapping
from dataclasses import asdict
from datetime import UTC, datetime, timedelta

from sqlalchemy import ColumnElement, Connection, and_, func, insert, or_, select, update
from sqlalchemy.engine import Dialect

from syncd.amazon.throttle import BucketLevel
from syncd.db.models import Account, Lease, table_of
from syncd.logs import get_logger

_TABLE = table_of(Lease)
_ACCOUNTS = table_of(Account)
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


def supports_skip_locked(dialect: Dialect) -> bool:
    """Return True when the server takes ``FOR UPDATE SKIP LOCKED``.

    PostgreSQL has it since 9.5, MariaDB since 10.6 and MySQL since 8.0.1; SQLite has no
    row locks at all.
    """
    if dialect.name == "postgresql":
        return True
    if dialect.name not in ("mysql", "mariadb"):
        return False
    version = tuple(dialect.server_version_info or ())
    if getattr(dialect, "is_mariadb", False):
        return version >= (10, 6)
    return version >= (8, 0, 1)


def _claimable(now: datetime) -> ColumnElement[bool]:
    return or_(
        _TABLE.c.owner.is_(None),
        and_(_TABLE.c.expires_at.is_not(None), _TABLE.c.expires_at < now),
    )


def claim_leases(
    connection: Connection,
    owner: str,
    ttl: timedelta,
    limit: int,
    account_ids: Collection[int] | None = None,
) -> list[int]:
    """Take up to ``limit`` free or expired leases; return the ids of the accounts taken.

    Accounts whose next run has been due longest come first, and accounts never run before
    them. ``account_ids`` restricts the claim to those accounts.
    """
    if limit <= 0 or (account_ids is not None and not account_ids):
        return []
    now = database_now(connection)
    next_run = (
        select(_ACCOUNTS.c.next_run_at)
        .where(_ACCOUNTS.c.id == _TABLE.c.account_id)
        .scalar_subquery()
    )
    query = select(_TABLE.c.account_id).where(_claimable(now))
    if account_ids is not None:
        query = query.where(_TABLE.c.account_id.in_(sorted(account_ids)))
    query = query.order_by(next_run.is_not(None), next_run, _TABLE.c.account_id).limit(limit)
    candidates = list(connection.execute(query).scalars())
    if candidates and supports_skip_locked(connection.dialect):
        # Lock apart from the ordered read: InnoDB locks every row a locking read examines,
        # and sorting by the due time examines them all.
        locked = (
            select(_TABLE.c.account_id)
            .where(_TABLE.c.account_id.in_(candidates), _claimable(now))
            .with_for_update(skip_locked=True)
        )
        candidates = list(connection.execute(locked).scalars())
    if not candidates:
        return []

    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.account_id.in_(candidates), _claimable(now))
        .values(owner=owner, expires_at=now + ttl, renewed_at=now)
    )
    # Without row locks another node may have taken a candidate between the two statements.
    taken = select(_TABLE.c.account_id).where(
        _TABLE.c.account_id.in_(candidates), _TABLE.c.owner == owner
    )
    return sorted(int(value) for value in connection.execute(taken).scalars())


def renew_leases(connection: Connection, owner: str, ttl: timedelta) -> set[int]:
    """Extend every lease ``owner`` holds; return the ids of those accounts."""
    now = database_now(connection)
    connection.execute(
        update(_TABLE).where(_TABLE.c.owner == owner).values(expires_at=now + ttl, renewed_at=now)
    )
    held = select(_TABLE.c.account_id).where(_TABLE.c.owner == owner)
    return {int(value) for value in connection.execute(held).scalars()}


def release_leases(connection: Connection, owner: str, account_ids: Collection[int]) -> None:
    """Give back the leases of ``account_ids`` that ``owner`` still holds."""
    if not account_ids:
        return
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.account_id.in_(sorted(account_ids)), _TABLE.c.owner == owner)
        .values(owner=None, expires_at=None)
    )


def release_owner_leases(connection: Connection, owner: str) -> int:
    """Give back every lease of ``owner``, a process known to have ended; return how many."""
    result = connection.execute(
        update(_TABLE).where(_TABLE.c.owner == owner).values(owner=None, expires_at=None)
    )
    return int(result.rowcount)


def existing_leases(connection: Connection, account_ids: Collection[int]) -> set[int]:
    """Return which of ``account_ids`` still have a lease row (their account exists)."""
    if not account_ids:
        return set()
    query = select(_TABLE.c.account_id).where(_TABLE.c.account_id.in_(sorted(account_ids)))
    return {int(value) for value in connection.execute(query).scalars()}


def count_leases(connection: Connection) -> int:
    """Return how many accounts have a lease row, which is every account."""
    return int(connection.execute(select(func.count()).select_from(_TABLE)).scalar_one())


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
