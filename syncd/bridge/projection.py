"""Projecting canonical orders into the ERP's order and line tables.

A pass reads the orders whose current version the ERP has not seen (a different content
hash than the one recorded in ``syncd_erp_orders``), a batch at a time. Each order's row is
found by its natural key and updated, or inserted, and then its lines are written the same
way. A batch is first written in one ERP transaction without savepoints. When an order fails
(a constraint, a trigger, a value that does not fit), the batch is rolled back. It is then
written again with a savepoint per order, so only the failing order is quarantined.
syncd records the outcomes only after the ERP's commit, so a crash in between repeats the
batch, and the natural keys make the repeat harmless.

Changes are found by ``synced_at``, which every store of an order sets. A pass re-reads from
an hour before the previous pass started, which covers transactions that were still open
then, and the content hash makes the overlap cost one join.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Engine, Table, and_, insert, select, update
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from syncd.bridge import canonical
from syncd.bridge.check import ErpTables
from syncd.bridge.fields import CanonicalOrder
from syncd.bridge.mapping import ColumnSpec, LoadedMapping
from syncd.bridge.values import RowBuilder, SkuMap, ValueFitError, empty_value
from syncd.crypto import Vault
from syncd.db import accounts, bridge_state, quarantine, retention
from syncd.db.engine import database_error_reason
from syncd.i18n import gettext as _
from syncd.logs import get_logger

log = get_logger(__name__)

POSITION = "projection"
STREAM = "erp_orders"  # the quarantine stream of orders the ERP rejected
# Re-read window before the previous pass's start: longer than any order transaction.
OVERLAP = timedelta(hours=1)
PII_PURGE_BATCH = 500  # orders


@dataclass
class ProjectionSummary:
    """Counts of one projection pass."""

    projected: int = 0
    skipped: int = 0
    quarantined: int = 0
    pii_purged: int = 0
    unmapped_accounts: list[str] = field(default_factory=list)


@dataclass
class _Batch:
    """Outcomes of writing one batch into the ERP, recorded in syncd's database afterwards."""

    outcomes: list[bridge_state.Outcome] = field(default_factory=list)
    quarantined: list[tuple[Any, str]] = field(default_factory=list)
    projected: list[tuple[int, str]] = field(default_factory=list)
    skipped: int = 0

    def add(self, row: Any, outcome: bridge_state.Outcome) -> None:
        self.outcomes.append(outcome)
        self.projected.append((row.account_id, row.order_id))


class Projector:
    """Projector of canonical orders into the ERP's tables for one loaded mapping."""

    def __init__(
        self,
        mapping: LoadedMapping,
        tables: ErpTables,
        *,
        engine: Engine,
        erp_engine: Engine,
        vault: Vault,
        batch_size: int,
        retention_days: int,
        now: Callable[[], datetime],
        stop: threading.Event | None = None,
        heartbeat: Callable[[], None] | None = None,
    ) -> None:
        assert mapping.spec.orders is not None
        assert tables.orders is not None
        self.mapping = mapping
        self.orders = mapping.spec.orders
        self.tables = tables
        self.engine = engine
        self.erp_engine = erp_engine
        self.vault = vault
        self.batch_size = batch_size
        self.retention_days = retention_days
        self.now = now
        self.stop = stop or threading.Event()
        self.heartbeat = heartbeat or (lambda: None)
        self.uses_pii = bool(mapping.pii_columns or mapping.line_pii_columns)

    def run(self) -> ProjectionSummary:
        """Project every order that changed since the last pass, then purge expired PII."""
        summary = ProjectionSummary()
        started = self.now()
        with self.engine.begin() as connection:
            position = bridge_state.load_position(connection, POSITION)
            account_names = {a.id: a.name for a in accounts.list_accounts(connection)}
        since = datetime.fromisoformat(position["since"]) if position.get("since") else None
        mapped = self._mapped_accounts(account_names, summary)
        if set(mapped) - set(position.get("accounts", [])):
            # An account new to the mapping has a backlog older than the position.
            since = None
        sku_maps: dict[int, SkuMap | None] = {}
        while not self.stop.is_set():
            self.heartbeat()
            with self.engine.begin() as connection:
                rows = bridge_state.orders_to_project(
                    connection, since, self.batch_size, account_ids=list(mapped)
                )
                items = canonical.load_items(connection, [row.id for row in rows])
            self._project_batch(rows, items, mapped, sku_maps, summary)
            if len(rows) < self.batch_size:
                break
        else:
            return summary
        with self.engine.begin() as connection:
            position = {"since": (started - OVERLAP).isoformat(), "accounts": sorted(mapped)}
            bridge_state.save_position(connection, POSITION, position, self.now())
        if self.mapping.spec.pii.purge and self.uses_pii:
            summary.pii_purged = self.purge_pii()
        return summary

    def _mapped_accounts(
        self, account_names: Mapping[int, str], summary: ProjectionSummary
    ) -> dict[int, str]:
        """Return the accounts whose orders can be projected (see :func:`unlisted_accounts`)."""
        summary.unmapped_accounts = unlisted_accounts(self.mapping, account_names.values())
        left_out = set(summary.unmapped_accounts)
        return {pk: name for pk, name in account_names.items() if name not in left_out}

    # -- one batch -------------------------------------------------------------------------

    def _project_batch(
        self,
        rows: Sequence[Any],
        items: Mapping[int, list[Any]],
        mapped: Mapping[int, str],
        sku_maps: dict[int, SkuMap | None],
        summary: ProjectionSummary,
    ) -> None:
        """Write one batch into the ERP, then record the outcomes in syncd's database.

        The batch is first tried in one transaction without savepoints, which costs two
        statements less per order. When an order fails, the batch is rolled back and done
        again with a savepoint per order, so that only that order is quarantined.
        """
        now = self.now()
        try:
            with self.erp_engine.begin() as erp:
                batch = self._write_batch(erp, rows, items, mapped, sku_maps, now, isolate=False)
        except (ValueFitError, SQLAlchemyError) as exc:
            if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                raise
            with self.erp_engine.begin() as erp:
                batch = self._write_batch(erp, rows, items, mapped, sku_maps, now, isolate=True)
        summary.projected += len(batch.projected)
        summary.skipped += batch.skipped
        summary.quarantined += len(batch.quarantined)
        self._record(batch.outcomes, batch.quarantined, batch.projected, now)

    def _write_batch(  # noqa: PLR0917 - the batch's parts, passed on as they are
        self,
        erp: Connection,
        rows: Sequence[Any],
        items: Mapping[int, list[Any]],
        mapped: Mapping[int, str],
        sku_maps: dict[int, SkuMap | None],
        now: datetime,
        *,
        isolate: bool,
    ) -> _Batch:
        batch = _Batch()
        for row in rows:
            if row.is_multichannel and self.orders.multichannel == "skip":
                batch.outcomes.append(_outcome(row, bridge_state.SKIPPED))
                batch.skipped += 1
                continue
            account = mapped[row.account_id]
            if row.account_id not in sku_maps:
                sku_maps[row.account_id] = self._load_skus(erp, account)
            skus = sku_maps[row.account_id]
            if not isolate:
                batch.add(row, self._project_order(erp, row, items[row.id], account, skus, now))
                continue
            try:
                with erp.begin_nested():
                    outcome = self._project_order(erp, row, items[row.id], account, skus, now)
            except (ValueFitError, SQLAlchemyError) as exc:
                if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                    raise
                reason = str(exc) if isinstance(exc, ValueFitError) else database_error_reason(exc)
                batch.outcomes.append(_outcome(row, bridge_state.QUARANTINED, error=reason))
                batch.quarantined.append((row, reason))
                log.warning(
                    "erp_order_quarantined",
                    account=account,
                    amazon_order_id=row.order_id,
                    reason=reason,
                )
                continue
            batch.add(row, outcome)
        return batch

    def _record(
        self,
        outcomes: Sequence[bridge_state.Outcome],
        quarantined: Sequence[tuple[Any, str]],
        projected: Sequence[tuple[int, str]],
        now: datetime,
    ) -> None:
        with self.engine.begin() as connection:
            bridge_state.record_outcomes(connection, outcomes, now)
            for row, reason in quarantined:
                quarantine.quarantine_record(
                    connection,
                    account_id=row.account_id,
                    stream=STREAM,
                    record_id=row.order_id,
                    reason=reason,
                    payload=row.raw_json,
                    now=now,
                )
            done: dict[int, list[str]] = {}
            for account_id, order_id in projected:
                done.setdefault(account_id, []).append(order_id)
            for account_id, order_ids in done.items():
                quarantine.resolve_records(connection, account_id, STREAM, order_ids, now)

    def _project_order(  # noqa: PLR0917 - one order and what it needs
        self,
        erp: Connection,
        row: Any,
        items: Sequence[Any],
        account: str,
        skus: SkuMap | None,
        now: datetime,
    ) -> bridge_state.Outcome:
        expired = retention.is_pii_expired(row, now, self.retention_days)
        vault = self.vault if self.uses_pii and not expired else None
        order = canonical.build_order(row, items, account, vault=vault)
        builder = RowBuilder(
            self.mapping,
            self.tables.naive,
            constants=self.mapping.spec.accounts.get(account.lower(), {}),
            skus=skus,
            without_pii=vault is None,
            now=now,
        )
        keep_pii = expired and not self.mapping.spec.pii.purge
        orders_table = self.tables.orders
        assert orders_table is not None
        columns = _without(self.orders.columns, self.mapping.pii_columns if keep_pii else ())
        values = builder.row(orders_table, columns, order)
        lines = self.orders.lines
        wanted = self._parent_columns()
        parent, inserted = upsert_row(
            erp,
            orders_table,
            self.orders.key,
            values,
            _insert_only(columns),
            wanted=wanted,
            touch=_touched(columns),
        )
        keys: dict[str, Any] = {"order": {k: values[k] for k in self.orders.key}, "lines": []}
        has_pii = any(values.get(c) is not None for c in self.mapping.pii_columns)
        if lines is not None:
            lines_table = self.tables.lines
            assert lines_table is not None
            line_columns = _without(
                lines.columns, self.mapping.line_pii_columns if keep_pii else ()
            )
            # Lines keyed by a column the new order row got from the database (its id) cannot
            # exist yet, so they are inserted without looking for them first.
            lines_are_new = inserted and bool(wanted - set(values))
            for line in order.lines:
                line_values = builder.row(lines_table, line_columns, order, line, parent)
                upsert_row(
                    erp,
                    lines_table,
                    lines.key,
                    line_values,
                    _insert_only(line_columns),
                    is_new=lines_are_new,
                    touch=_touched(line_columns),
                )
                keys["lines"].append({k: line_values[k] for k in lines.key})
                has_pii = has_pii or any(
                    line_values.get(c) is not None for c in self.mapping.line_pii_columns
                )
        return _outcome(
            row,
            bridge_state.PROJECTED,
            erp_keys=keys,
            has_pii=has_pii,
            pii_purged=expired and self.uses_pii and not keep_pii,
        )

    def _touch_values(
        self, table: Table, columns: Mapping[str, ColumnSpec], now: datetime
    ) -> dict[str, Any]:
        """Build the ``now`` columns of a row (its update time) that every update must set."""
        specs = {
            name: spec
            for name, spec in columns.items()
            if spec.field == "now" and spec.on != "insert"
        }
        if not specs:
            return {}
        builder = RowBuilder(
            self.mapping, self.tables.naive, constants={}, skus=None, without_pii=True, now=now
        )
        return builder.row(table, specs, CanonicalOrder(values={}))

    def _parent_columns(self) -> frozenset[str]:
        """Return the columns of the order row that its lines copy (``parent = …``)."""
        lines = self.orders.lines
        if lines is None:
            return frozenset()
        return frozenset(spec.parent for spec in lines.columns.values() if spec.parent)

    def _load_skus(self, erp: Connection, account: str) -> SkuMap | None:
        skus = self.mapping.spec.skus
        table = self.tables.skus
        if skus is None or table is None:
            return None
        query = select(table.c[skus.amazon_sku], table.c[skus.erp_sku]).where(
            *(table.c[name] == value for name, value in skus.where.items())
        )
        match = skus.account
        if match is not None and match.name is not None and match.name.lower() != account.lower():
            return SkuMap({}, skus.missing)
        if match is not None and match.column is not None:
            constant = self.mapping.spec.accounts.get(account.lower(), {}).get(match.constant or "")
            query = query.where(table.c[match.column] == constant)
        entries = {str(a): str(e) for a, e in erp.execute(query) if a is not None and e is not None}
        return SkuMap(entries, skus.missing)

    # -- PII purge -------------------------------------------------------------------------

    def purge_pii(self) -> int:
        """Clear the mapped PII columns of ERP rows whose retention period has passed.

        Each order is cleared in its own savepoint, so a row the ERP rejects is logged and
        tried again at the next pass. The pass pages past such rows, so however many fail,
        the orders after them are still cleared.
        """
        now = self.now()
        cutoff = now - timedelta(days=self.retention_days)
        total = 0
        after: tuple[datetime, int] | None = None
        while not self.stop.is_set():
            with self.engine.begin() as connection:
                rows = bridge_state.orders_with_pii(connection, cutoff, PII_PURGE_BATCH, after)
            if not rows:
                break
            after = (rows[-1].last_updated_time, rows[-1].order_pk)
            purged = self._purge_page(rows, now)
            with self.engine.begin() as connection:
                bridge_state.mark_pii_purged(connection, purged, now)
            total += len(purged)
            if len(rows) < PII_PURGE_BATCH:
                break
        if total:
            log.info("erp_pii_purged", orders=total)
        return total

    def _purge_page(self, rows: Sequence[Any], now: datetime) -> list[int]:
        """Clear the PII of one page of orders in the ERP; return the orders cleared."""
        orders_table, lines_table = self.tables.orders, self.tables.lines
        assert orders_table is not None
        purged = []
        with self.erp_engine.begin() as erp:
            for row in rows:
                keys = json.loads(row.erp_keys or "{}")
                try:
                    with erp.begin_nested():
                        if self.mapping.pii_columns and keys.get("order"):
                            _clear(
                                erp,
                                orders_table,
                                keys["order"],
                                self.mapping.pii_columns,
                                self._touch_values(orders_table, self.orders.columns, now),
                            )
                        if lines_table is not None and self.mapping.line_pii_columns:
                            assert self.orders.lines is not None
                            touched = self._touch_values(
                                lines_table, self.orders.lines.columns, now
                            )
                            for line_key in keys.get("lines", []):
                                _clear(
                                    erp,
                                    lines_table,
                                    line_key,
                                    self.mapping.line_pii_columns,
                                    touched,
                                )
                except SQLAlchemyError as exc:
                    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
                        raise
                    log.warning(
                        "erp_pii_purge_failed",
                        amazon_order_id=row.order_id,
                        reason=database_error_reason(exc),
                    )
                    continue
                purged.append(row.order_pk)
        return purged


def upsert_row(
    connection: Connection,
    table: Table,
    key: Sequence[str],
    values: Mapping[str, Any],
    insert_only: frozenset[str],
    *,
    wanted: frozenset[str] = frozenset(),
    is_new: bool = False,
    touch: frozenset[str] = frozenset(),
) -> tuple[dict[str, Any], bool]:
    """Update the row whose natural key matches, or insert one.

    Columns in ``insert_only`` are written only when the row is new, so the ERP's own value
    stays. Unchanged rows are not written at all, so ERP triggers on update do not fire.
    ``is_new`` skips the lookup for a row that cannot exist yet. Columns in ``touch`` (the
    time of the write) change only together with another column.

    Returns:
        The row's values, including the ``wanted`` columns (such as a generated id), and
        whether it was inserted.

    Raises:
        ValueFitError: a key column is empty, or more than one row has the key.
    """
    empty = [name for name in key if values.get(name) is None]
    if empty:
        raise ValueFitError(
            _("the key column {column} of table {table} would be empty.").format(
                column=empty[0], table=table.name
            )
        )
    where = and_(*(table.c[name] == values[name] for name in key))
    found = [] if is_new else connection.execute(select(table).where(where).limit(2)).all()
    if len(found) > 1:
        raise ValueFitError(
            _("more than one row of table {table} has the key {key}.").format(
                table=table.name, key=", ".join(f"{k}={values[k]}" for k in key)
            )
        )
    if found:
        stored = dict(found[0]._mapping)
        changes = {
            name: value
            for name, value in values.items()
            if name not in insert_only | touch
            and name not in key
            and not _same(stored[name], value)
        }
        if changes:
            changes.update({name: values[name] for name in touch if name not in insert_only})
            connection.execute(update(table).where(where).values(changes))
        return {**stored, **changes}, False
    result = connection.execute(insert(table).values(dict(values)))
    row = dict(values)
    missing = wanted - set(row)
    primary = [column.name for column in table.primary_key.columns]
    generated = result.inserted_primary_key
    if missing and generated is not None and missing <= set(primary):
        row.update(zip(primary, generated, strict=True))
        missing = wanted - set(row)
    if missing:
        row.update(connection.execute(select(table).where(where)).one()._mapping)
    return row, True


def _same(stored: Any, value: Any) -> bool:
    if stored == value:
        return True
    if isinstance(stored, datetime) and isinstance(value, datetime):
        # A column without fractional seconds drops them, so compare to the second.
        if (stored.tzinfo is None) != (value.tzinfo is None):
            return False
        return stored.replace(microsecond=0) == value.replace(microsecond=0)
    return False


def _clear(
    connection: Connection,
    table: Table,
    key: Mapping[str, Any],
    columns: Sequence[str],
    touched: Mapping[str, Any],
) -> None:
    where = and_(*(table.c[name] == value for name, value in key.items()))
    empty = {name: empty_value(table.c[name]) for name in columns}
    connection.execute(update(table).where(where).values({**empty, **touched}))


def _touched(columns: Mapping[str, ColumnSpec]) -> frozenset[str]:
    return frozenset(name for name, spec in columns.items() if spec.field == "now")


def _insert_only(columns: Mapping[str, ColumnSpec]) -> frozenset[str]:
    return frozenset(name for name, spec in columns.items() if spec.on == "insert")


def _without(columns: Mapping[str, ColumnSpec], names: Sequence[str]) -> dict[str, ColumnSpec]:
    return {name: spec for name, spec in columns.items() if name not in names}


def unlisted_accounts(mapping: LoadedMapping, names: Iterable[str]) -> list[str]:
    """Return the accounts whose orders the mapping cannot project.

    When the mapping lists accounts or its columns take per-account constants, only the
    accounts in [accounts] are projected: another account's orders would land without
    their shop code, or under another shop's.
    """
    if not _needs_constants(mapping):
        return []
    return sorted(name for name in names if name.lower() not in mapping.spec.accounts)


def _needs_constants(mapping: LoadedMapping) -> bool:
    orders = mapping.spec.orders
    if orders is None:
        return False
    specs = list(orders.columns.values())
    if orders.lines is not None:
        specs += list(orders.lines.columns.values())
    return any(spec.source == "account" for spec in specs) or bool(mapping.spec.accounts)


def _outcome(row: Any, state: str, **extra: Any) -> bridge_state.Outcome:
    return bridge_state.Outcome(
        order_pk=row.id,
        account_id=row.account_id,
        content_hash=row.content_hash,
        state=state,
        **extra,
    )
