"""syncd's own records of the bridge: pass positions and leases, projected orders, write-backs.

These rows live in syncd's database and the ERP's rows in the ERP's, which may be another
database, so no transaction spans the two. Every step is therefore safe to repeat.
The ERP row is written first and syncd's record after it, so a crash in between leads to
the same write again, which finds the row by its natural key and changes nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, bindparam, delete, func, insert, or_, select, update

from syncd.db import retention
from syncd.db.models import (
    BridgePosition,
    ErpOrder,
    Order,
    ShipmentRequest,
    WmsWriteBack,
    table_of,
)

_POSITIONS = table_of(BridgePosition)
_ERP_ORDERS = table_of(ErpOrder)
_ORDERS = table_of(Order)
_REQUESTS = table_of(ShipmentRequest)
_WRITE_BACKS = table_of(WmsWriteBack)

PROJECTED = "projected"
SKIPPED = "skipped"
QUARANTINED = "quarantined"


# -- positions and the bridge lease ------------------------------------------------------------


def take_lease(
    connection: Connection, name: str, owner: str, now: datetime, seconds: float
) -> bool:
    """Take or renew the lease called ``name``, and return False when another owner has it."""
    expires = now + timedelta(seconds=seconds)
    _ensure(connection, name, now)
    result = connection.execute(
        update(_POSITIONS)
        .where(
            _POSITIONS.c.name == name,
            or_(
                _POSITIONS.c.owner.is_(None),
                _POSITIONS.c.owner == owner,
                _POSITIONS.c.lease_expires_at < now,
            ),
        )
        .values(owner=owner, lease_expires_at=expires, updated_at=now)
    )
    return bool(result.rowcount)


def give_back_lease(connection: Connection, name: str, owner: str, now: datetime) -> None:
    """Release the lease if ``owner`` still holds it."""
    connection.execute(
        update(_POSITIONS)
        .where(_POSITIONS.c.name == name, _POSITIONS.c.owner == owner)
        .values(owner=None, lease_expires_at=None, updated_at=now)
    )


def is_lease_held(connection: Connection, name: str, owner: str, now: datetime) -> bool:
    """Return whether ``owner`` has the unexpired lease, locking the row until commit."""
    row = connection.execute(
        select(_POSITIONS.c.owner, _POSITIONS.c.lease_expires_at)
        .where(_POSITIONS.c.name == name)
        .with_for_update()
    ).first()
    return row is not None and row.owner == owner and row.lease_expires_at >= now


def load_position(connection: Connection, name: str) -> dict[str, Any]:
    """Return the stored position of a pass, or an empty dict."""
    value = connection.execute(
        select(_POSITIONS.c.position).where(_POSITIONS.c.name == name)
    ).scalar()
    return dict(json.loads(value)) if value else {}


def save_position(
    connection: Connection, name: str, position: dict[str, Any], now: datetime
) -> None:
    """Store the position of a pass."""
    _ensure(connection, name, now)
    connection.execute(
        update(_POSITIONS)
        .where(_POSITIONS.c.name == name)
        .values(position=json.dumps(position, sort_keys=True), updated_at=now)
    )


def list_positions(connection: Connection) -> dict[str, tuple[dict[str, Any], datetime]]:
    """Return every stored position with the time it was last written."""
    rows = connection.execute(
        select(_POSITIONS.c.name, _POSITIONS.c.position, _POSITIONS.c.updated_at)
    )
    return {
        row.name: (json.loads(row.position) if row.position else {}, row.updated_at) for row in rows
    }


def _ensure(connection: Connection, name: str, now: datetime) -> None:
    exists = connection.execute(select(_POSITIONS.c.name).where(_POSITIONS.c.name == name)).first()
    if exists is None:
        connection.execute(insert(_POSITIONS).values(name=name, updated_at=now))


# -- projected orders --------------------------------------------------------------------------


def orders_to_project(
    connection: Connection, since: datetime | None, limit: int, *, account_ids: Sequence[int]
) -> list[Any]:
    """Return canonical orders whose current version is not in the ERP yet, oldest first.

    An order counts as done once its content hash is recorded, whatever the outcome
    (projected, skipped or quarantined), so a quarantined order waits for a change or for
    ``syncd quarantine retry`` instead of failing on every pass.
    """
    query = (
        select(_ORDERS)
        .outerjoin(_ERP_ORDERS, _ERP_ORDERS.c.order_pk == _ORDERS.c.id)
        .where(
            or_(
                _ERP_ORDERS.c.order_pk.is_(None),
                _ERP_ORDERS.c.content_hash.is_(None),
                _ERP_ORDERS.c.content_hash != _ORDERS.c.content_hash,
            )
        )
        .where(_ORDERS.c.account_id.in_(list(account_ids)))
        .order_by(_ORDERS.c.synced_at, _ORDERS.c.id)
        .limit(limit)
    )
    if since is not None:
        # An order made to project again (a re-drive) counts whenever it was stored.
        query = query.where(or_(_ORDERS.c.synced_at >= since, _ERP_ORDERS.c.content_hash.is_(None)))
    return list(connection.execute(query))


def count_to_project(
    connection: Connection, since: datetime | None, account_ids: Sequence[int] | None = None
) -> tuple[int, datetime | None]:
    """Return how many orders wait for the ERP, and the oldest one's sync time."""
    query = (
        select(func.count(), func.min(_ORDERS.c.synced_at))
        .select_from(_ORDERS.outerjoin(_ERP_ORDERS, _ERP_ORDERS.c.order_pk == _ORDERS.c.id))
        .where(
            or_(
                _ERP_ORDERS.c.order_pk.is_(None),
                _ERP_ORDERS.c.content_hash.is_(None),
                _ERP_ORDERS.c.content_hash != _ORDERS.c.content_hash,
            )
        )
    )
    if since is not None:
        query = query.where(or_(_ORDERS.c.synced_at >= since, _ERP_ORDERS.c.content_hash.is_(None)))
    if account_ids is not None:
        query = query.where(_ORDERS.c.account_id.in_(list(account_ids)))
    count, oldest = connection.execute(query).one()
    return int(count), oldest


@dataclass(frozen=True)
class Outcome:
    """Outcome of projecting one order, as recorded in ``syncd_erp_orders``."""

    order_pk: int
    account_id: int
    content_hash: str
    state: str
    erp_keys: dict[str, Any] | None = None
    has_pii: bool = False
    pii_purged: bool = False
    error: str | None = None


def record_outcomes(connection: Connection, outcomes: Sequence[Outcome], now: datetime) -> None:
    """Record the outcome of each order of a batch, after the ERP's commit.

    One SELECT finds the orders recorded before. Their updates and the new rows are then
    written with one executemany per group of rows that set the same columns.
    """
    if not outcomes:
        return
    pks = [outcome.order_pk for outcome in outcomes]
    existing = set(
        connection.execute(
            select(_ERP_ORDERS.c.order_pk).where(_ERP_ORDERS.c.order_pk.in_(pks))
        ).scalars()
    )
    updates: list[dict[str, Any]] = []
    inserts: list[dict[str, Any]] = []
    for outcome in outcomes:
        values = _outcome_values(outcome, now)
        if outcome.order_pk in existing:
            updates.append({"pk": outcome.order_pk, **values})
        else:
            inserts.append({"order_pk": outcome.order_pk, **values})
    # Rows differ in which columns they set (only a projection sets keys and PII), so each
    # group of rows with the same columns is one executemany.
    for group in _by_columns(updates):
        columns = [name for name in group[0] if name != "pk"]
        connection.execute(
            update(_ERP_ORDERS)
            .where(_ERP_ORDERS.c.order_pk == bindparam("pk"))
            .values({name: bindparam(name) for name in columns}),
            group,
        )
    for group in _by_columns(inserts):
        connection.execute(insert(_ERP_ORDERS), group)


def _outcome_values(outcome: Outcome, now: datetime) -> dict[str, Any]:
    values: dict[str, Any] = {
        "account_id": outcome.account_id,
        "content_hash": outcome.content_hash,
        "state": outcome.state,
        "error": outcome.error,
        "projected_at": now,
    }
    if outcome.state == PROJECTED:
        values["erp_keys"] = json.dumps(outcome.erp_keys, sort_keys=True, default=str)
        values["has_pii"] = outcome.has_pii
        values["pii_purged_at"] = now if outcome.pii_purged else None
    return values


def _by_columns(rows: Sequence[dict[str, Any]]) -> list[list[dict[str, Any]]]:
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for row in rows:
        groups.setdefault(tuple(sorted(row)), []).append(row)
    return list(groups.values())


def forget_outcome(connection: Connection, order_pks: Sequence[int]) -> int:
    """Make orders project again on the next pass (a re-drive after a fix)."""
    if not order_pks:
        return 0
    result = connection.execute(
        update(_ERP_ORDERS)
        .where(_ERP_ORDERS.c.order_pk.in_(list(order_pks)))
        .values(content_hash=None)
    )
    return int(result.rowcount)


def orders_with_pii(
    connection: Connection,
    cutoff: datetime,
    limit: int,
    after: tuple[datetime, int] | None = None,
) -> list[Any]:
    """Return projected orders whose ERP rows contain PII past its retention, oldest first.

    ``cutoff`` is now minus the retention period. The rule is
    :func:`syncd.db.retention.expired_clause`, applied in SQL so that orders still inside
    their period never hold back expired ones.
    """
    expired = retention.expired_clause(_ORDERS, cutoff)
    query = (
        select(
            _ERP_ORDERS.c.order_pk,
            _ERP_ORDERS.c.account_id,
            _ERP_ORDERS.c.erp_keys,
            _ORDERS.c.order_id,
            _ORDERS.c.status,
            _ORDERS.c.deliver_by_latest,
            _ORDERS.c.last_updated_time,
        )
        .join(_ORDERS, _ORDERS.c.id == _ERP_ORDERS.c.order_pk)
        .where(_ERP_ORDERS.c.has_pii.is_(True), _ERP_ORDERS.c.pii_purged_at.is_(None), expired)
        .order_by(_ORDERS.c.last_updated_time, _ERP_ORDERS.c.order_pk)
        .limit(limit)
    )
    if after is not None:
        # The page after (last update, order) of the previous one, past rows that failed.
        query = query.where(
            or_(
                _ORDERS.c.last_updated_time > after[0],
                and_(_ORDERS.c.last_updated_time == after[0], _ERP_ORDERS.c.order_pk > after[1]),
            )
        )
    return list(connection.execute(query))


def mark_pii_purged(connection: Connection, order_pks: Sequence[int], now: datetime) -> None:
    """Record that the ERP rows of these orders no longer contain PII."""
    if order_pks:
        connection.execute(
            update(_ERP_ORDERS)
            .where(_ERP_ORDERS.c.order_pk.in_(list(order_pks)))
            .values(pii_purged_at=now, has_pii=False)
        )


def count_states(connection: Connection) -> dict[str, int]:
    """Return how many orders are in each projection state."""
    rows = connection.execute(
        select(_ERP_ORDERS.c.state, func.count()).group_by(_ERP_ORDERS.c.state)
    )
    return {str(state): int(count) for state, count in rows}


def projected_pks(connection: Connection, account_id: int, order_ids: Sequence[str]) -> list[int]:
    """Return the syncd order ids (primary keys) of Amazon order ids of an account."""
    if not order_ids:
        return []
    return [
        int(pk)
        for pk in connection.execute(
            select(_ORDERS.c.id).where(
                _ORDERS.c.account_id == account_id, _ORDERS.c.order_id.in_(list(order_ids))
            )
        ).scalars()
    ]


# -- WMS write-backs ---------------------------------------------------------------------------


def write_backs_due(connection: Connection, source: str, after_id: int, limit: int) -> list[Any]:
    """Return requests of a WMS source whose write-back may be out of date, by request id."""
    from syncd.db.models import OutboxEntry  # noqa: PLC0415 - keeps the import list short

    outbox = table_of(OutboxEntry)
    query = (
        select(
            _REQUESTS.c.id,
            _REQUESTS.c.source_key,
            _REQUESTS.c.status,
            _REQUESTS.c.reject_code,
            _REQUESTS.c.reject_reason,
            outbox.c.state.label("outbox_state"),
            outbox.c.attempts,
            outbox.c.last_error_code,
            outbox.c.last_error_message,
            outbox.c.sent_at,
            outbox.c.verified_at,
            _WRITE_BACKS.c.state.label("written_state"),
            _WRITE_BACKS.c.message_hash,
        )
        .outerjoin(outbox, outbox.c.id == _REQUESTS.c.outbox_id)
        .outerjoin(_WRITE_BACKS, _WRITE_BACKS.c.request_id == _REQUESTS.c.id)
        .where(
            _REQUESTS.c.source_system == source,
            _REQUESTS.c.id > after_id,
            or_(_WRITE_BACKS.c.request_id.is_(None), _WRITE_BACKS.c.is_final.is_(False)),
        )
        .order_by(_REQUESTS.c.id)
        .limit(limit)
    )
    return list(connection.execute(query))


def record_write_back(
    connection: Connection,
    request_id: int,
    *,
    state: str,
    message_hash: str | None,
    is_final: bool,
    now: datetime,
) -> None:
    """Record what was written into a WMS row."""
    values = {"state": state, "message_hash": message_hash, "is_final": is_final, "written_at": now}
    result = connection.execute(
        update(_WRITE_BACKS).where(_WRITE_BACKS.c.request_id == request_id).values(values)
    )
    if not result.rowcount:
        connection.execute(insert(_WRITE_BACKS).values(request_id=request_id, **values))


def reopen_write_backs(connection: Connection, request_ids: Sequence[int]) -> None:
    """Make final write-backs due again, after their requests were re-driven."""
    if request_ids:
        connection.execute(
            update(_WRITE_BACKS)
            .where(_WRITE_BACKS.c.request_id.in_(list(request_ids)))
            .values(is_final=False)
        )


def requests_by_key(connection: Connection, source: str, keys: Sequence[str]) -> dict[str, Any]:
    """Return the intake rows of a source by source key."""
    if not keys:
        return {}
    rows = connection.execute(
        select(_REQUESTS).where(
            and_(_REQUESTS.c.source_system == source, _REQUESTS.c.source_key.in_(list(keys)))
        )
    )
    return {row.source_key: row for row in rows}


def delete_positions(connection: Connection, names: Sequence[str]) -> None:
    """Forget stored positions (so a pass starts from the beginning)."""
    connection.execute(delete(_POSITIONS).where(_POSITIONS.c.name.in_(list(names))))
