"""Checking a mapping against the real ERP and WMS tables, before anything is written.

SQLAlchemy reflects every table the mapping names. Each mapped column must exist and take
the values syncd will write: text long enough, ids never numeric, amounts with enough digits,
time zones for columns without one, and ``utf8mb4`` text on MariaDB/MySQL. No required
column may be left unfilled. The reflected :class:`~sqlalchemy.Table` objects are what the
projection and the feeder write through, so every identifier they use was confirmed here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    Engine,
    Enum,
    Float,
    Integer,
    MetaData,
    Numeric,
    SmallInteger,
    String,
    Table,
    inspect,
    text,
)
from sqlalchemy.dialects import mysql
from sqlalchemy.exc import NoSuchTableError, SQLAlchemyError

from syncd.bridge import fields
from syncd.bridge.fields import FieldSpec
from syncd.bridge.mapping import (
    AccountMatch,
    ColumnSpec,
    LoadedMapping,
    MappingError,
    Problem,
    Scalar,
    spec_warnings,
)
from syncd.db.engine import database_error_reason
from syncd.i18n import gettext as _

_UTF8MB4 = "utf8mb4"
ID_OVERLAP = 1_000  # ids the WMS feeder re-reads below an id position
_BACKEND = "syncd_backend"  # Column.info key for the dialect the column was reflected from


@dataclass
class ErpTables:
    """The reflected tables of a mapping, and what reflection found about their columns."""

    orders: Table | None = None
    lines: Table | None = None
    skus: Table | None = None
    shipments: Table | None = None
    items: Table | None = None
    # (table, column) of date-time columns that store no time zone.
    naive: set[tuple[str, str]] = field(default_factory=set)

    def is_naive(self, table: Table, column: str) -> bool:
        """Return whether ``column`` of ``table`` stores wall-clock times without a zone."""
        return (table.name, column) in self.naive


def prepare_tables(mapping: LoadedMapping, engine: Engine) -> ErpTables:
    """Reflect and check the mapping's tables, and return them when nothing is wrong.

    Raises:
        MappingError: listing every problem that would make a write fail or go wrong.
    """
    problems, tables = check_tables(mapping, engine)
    failures = [problem for problem in problems if not problem.warning]
    if failures:
        raise MappingError(mapping.path, failures)
    return tables


def check_tables(mapping: LoadedMapping, engine: Engine) -> tuple[list[Problem], ErpTables]:
    """Return every problem (warnings included) and the tables that could be reflected."""
    checker = _TableChecker(mapping, engine)
    checker.run()
    return [*spec_warnings(mapping), *checker.problems], checker.tables


def inspect_bridge(settings: Any) -> list[Problem]:
    """Load the settings' mapping file and check it against the ERP database, for doctor.

    Returns the problems found, warnings included. An empty list means the mapping fits.
    """
    from syncd.bridge.mapping import load_mapping  # noqa: PLC0415 - a cycle with mapping
    from syncd.db.engine import create_db_engine, safe_url  # noqa: PLC0415

    if settings.mapping_file is None:
        return []
    try:
        mapping = load_mapping(settings.mapping_file)
    except MappingError as exc:
        return list(exc.problems)
    engine = create_db_engine(settings.erp_url)
    try:
        return check_tables(mapping, engine)[0]
    except SQLAlchemyError as exc:
        return [
            Problem(
                safe_url(settings.erp_url),
                _("cannot read the ERP tables ({error}).").format(error=database_error_reason(exc)),
                _("check SYNCD_ERP_DATABASE_URL (or SYNCD_DATABASE_URL) and the user's rights."),
            )
        ]
    finally:
        engine.dispose()


class _TableChecker:
    """Checker that reflects the mapping's tables and compares each column with its source."""

    def __init__(self, mapping: LoadedMapping, engine: Engine) -> None:
        self.mapping = mapping
        self.spec = mapping.spec
        self.engine = engine
        self.backend = engine.dialect.name
        self.metadata = MetaData()
        self.tables = ErpTables()
        self.problems: list[Problem] = []
        self._charsets: dict[str, dict[str, str | None]] = {}

    def add(self, where: str, problem: str, fix: str, *, warning: bool = False) -> None:
        self.problems.append(Problem(where, problem, fix, warning))

    def run(self) -> None:
        spec = self.spec
        if spec.orders is not None:
            self.tables.orders = self._reflect(spec.orders.table)
            if spec.orders.lines is not None:
                self.tables.lines = self._reflect(spec.orders.lines.table)
        if spec.skus is not None:
            self.tables.skus = self._reflect(spec.skus.table)
        if spec.shipments is not None:
            self.tables.shipments = self._reflect(spec.shipments.table)
            if spec.shipments.items is not None:
                self.tables.items = self._reflect(spec.shipments.items.table)
        self._check_orders()
        self._check_skus()
        self._check_shipments()

    # -- reflection ------------------------------------------------------------------------

    def _reflect(self, name: str) -> Table | None:
        schema, _dot, table_name = name.rpartition(".")
        try:
            table = Table(
                table_name, self.metadata, schema=schema or None, autoload_with=self.engine
            )
        except NoSuchTableError:
            self.add(
                _("table {table}").format(table=name),
                _("the table does not exist in the ERP database."),
                _("create it, correct the name, or set SYNCD_ERP_DATABASE_URL to its database."),
            )
            return None
        for column in table.columns:
            column.info[_BACKEND] = self.backend
            if is_wall_clock(column, self.backend):
                self.tables.naive.add((table.name, column.name))
        return table

    def _column(self, table: Table | None, name: str, where: str) -> Column[Any] | None:
        if table is None:
            return None
        if name in table.c:
            return table.c[name]
        self.add(
            _("table {table}, column {column}").format(table=table.name, column=name),
            _("the column does not exist ({where}).").format(where=where),
            _("add the column to the table or correct the name in the mapping."),
        )
        return None

    def _charset(self, table: Table, column: str) -> str | None:
        """Return the column's character set on MariaDB/MySQL, or None elsewhere."""
        if self.backend not in ("mysql", "mariadb"):
            return None
        if table.name not in self._charsets:
            rows = self._query(
                "SELECT COLUMN_NAME, CHARACTER_SET_NAME FROM information_schema.COLUMNS "
                "WHERE TABLE_SCHEMA = COALESCE(:schema, DATABASE()) AND TABLE_NAME = :table",
                schema=table.schema,
                table=table.name,
            )
            self._charsets[table.name] = {str(row[0]): row[1] for row in rows}
        return self._charsets[table.name].get(column)

    def _query(self, sql: str, **params: Any) -> list[Any]:
        with self.engine.connect() as connection:
            return list(connection.execute(text(sql), params))

    # -- orders ----------------------------------------------------------------------------

    def _check_orders(self) -> None:
        orders = self.spec.orders
        if orders is None:
            return
        table = self.tables.orders
        self._check_columns(table, orders.columns, line=False)
        self._check_key(table, orders.key, "orders.key")
        self._check_required(table, orders.columns)
        lines = orders.lines
        if lines is None:
            return
        self._check_columns(self.tables.lines, lines.columns, line=True)
        self._check_key(self.tables.lines, lines.key, "orders.lines.key")
        self._check_required(self.tables.lines, lines.columns)

    def _check_columns(
        self, table: Table | None, columns: Mapping[str, ColumnSpec], *, line: bool
    ) -> None:
        for name, spec in columns.items():
            column = self._column(table, name, _("named in the mapping"))
            if column is None or table is None:
                continue
            where = _("table {table}, column {column}").format(table=table.name, column=name)
            self._check_column(where, table, column, spec, line=line)

    def _check_column(
        self, where: str, table: Table, column: Column[Any], spec: ColumnSpec, *, line: bool
    ) -> None:
        source = spec.source
        if source == "field":
            assert spec.field is not None
            field_spec = fields.find_field(spec.field, line=line)
            if field_spec is None:
                return
            if spec.map is not None:
                self._check_outputs(where, table, column, self._map_outputs(spec))
            else:
                self._check_field(where, table, column, spec, field_spec)
        elif source == "value":
            self._check_outputs(
                where, table, column, [spec.value] if spec.value is not None else []
            )
        elif source == "account":
            assert spec.account is not None
            values = [c.get(spec.account) for c in self.spec.accounts.values()]
            self._check_outputs(where, table, column, [v for v in values if v is not None])
        elif source == "parent":
            self._check_parent(where, spec)
        if spec.default is not None and spec.map is None:
            self._check_outputs(where, table, column, [spec.default])

    def _map_outputs(self, spec: ColumnSpec) -> list[Scalar]:
        value_map = self.spec.maps.get(spec.map or "")
        if value_map is None:
            return []
        outputs = list(value_map.values.values())
        if value_map.default is not None:
            outputs.append(value_map.default)
        if spec.default is not None:
            outputs.append(spec.default)
        return outputs

    def _check_parent(self, where: str, spec: ColumnSpec) -> None:
        if self.tables.orders is not None and (spec.parent or "") not in self.tables.orders.c:
            self.add(
                where,
                _("parent names {column}, which the order table does not have.").format(
                    column=spec.parent
                ),
                _("name a column of table {table}, such as its id.").format(
                    table=self.tables.orders.name
                ),
            )

    def _check_field(
        self, where: str, table: Table, column: Column[Any], spec: ColumnSpec, field_spec: FieldSpec
    ) -> None:
        kind = field_spec.kind
        column_type = column.type
        if kind == "text" or spec.translate == "sku":
            self._check_text(where, table, column, spec, field_spec)
        elif kind == "integer":
            if not isinstance(column_type, Integer | Numeric | String):
                self._wrong_type(where, column, _("a whole number"))
        elif kind == "amount":
            self._check_amount(where, column)
        elif kind == "time":
            self._check_time(where, table, column, spec)
        elif kind == "flag" and not isinstance(column_type, Boolean | Integer | String):
            self._wrong_type(where, column, _("a flag (BOOLEAN or an integer)"))

    def _check_text(
        self, where: str, table: Table, column: Column[Any], spec: ColumnSpec, field_spec: FieldSpec
    ) -> None:
        column_type = column.type
        if not isinstance(column_type, String):
            if field_spec.is_id:
                self.add(
                    where,
                    _(
                        "{field} is one of Amazon's ids, which are text (such as 026-1520163-"
                        "6049104, with leading zeros), but the column is {type}."
                    ).format(field=field_spec.name, type=column_type),
                    _("make it VARCHAR({length}).").format(length=fields.ID_RECOMMENDED_LENGTH),
                )
            else:
                self._wrong_type(where, column, _("text (VARCHAR or TEXT)"))
            return
        length = column_type.length
        if field_spec.is_id and length is not None:
            if length < fields.ID_MIN_LENGTH:
                self.add(
                    where,
                    _("VARCHAR({length}) is too short for Amazon's {field}.").format(
                        length=length, field=field_spec.name
                    ),
                    _("make it VARCHAR({recommended}).").format(
                        recommended=fields.ID_RECOMMENDED_LENGTH
                    ),
                )
            elif length < fields.ID_RECOMMENDED_LENGTH:
                self.add(
                    where,
                    _(
                        "VARCHAR({length}) holds today's {field} values, but Amazon's ids have no "
                        "documented maximum."
                    ).format(length=length, field=field_spec.name),
                    _("make it VARCHAR({recommended}).").format(
                        recommended=fields.ID_RECOMMENDED_LENGTH
                    ),
                    warning=True,
                )
        elif length is not None and not spec.truncate:
            # A translated SKU is the ERP's own, so syncd cannot know its length. A field with
            # a closed set of values needs room for the longest of them only.
            limit = None if spec.translate == "sku" else field_spec.max_length
            if field_spec.values is not None and spec.translate is None:
                limit = max(len(str(value)) for value in field_spec.values)
            fix = _("widen the column, or add truncate = true to cut long values.")
            if limit is None:
                self.add(
                    where,
                    _(
                        "VARCHAR({length}) may be too short for {field}; a longer value puts its "
                        "order in quarantine."
                    ).format(length=length, field=field_spec.name),
                    fix,
                    warning=True,
                )
            elif length < limit:
                self.add(
                    where,
                    _(
                        "VARCHAR({length}) is shorter than the {limit} characters Amazon allows "
                        "for {field}; a longer value puts its order in quarantine."
                    ).format(length=length, limit=limit, field=field_spec.name),
                    fix,
                )
        self._check_charset(where, table, column)

    def _check_charset(self, where: str, table: Table, column: Column[Any]) -> None:
        charset = self._charset(table, column.name)
        if charset is not None and charset.lower() != _UTF8MB4:
            self.add(
                where,
                _(
                    "the column's character set is {charset}, which cannot hold all of Amazon's "
                    "text (emoji, many scripts)."
                ).format(charset=charset),
                _(
                    "ALTER TABLE {table} MODIFY {column} {type} CHARACTER SET utf8mb4 COLLATE "
                    "utf8mb4_unicode_ci;"
                ).format(table=table.name, column=column.name, type=_plain_type(column)),
            )

    def _check_amount(self, where: str, column: Column[Any]) -> None:
        column_type = column.type
        if isinstance(column_type, Float) or not isinstance(column_type, Numeric):
            if isinstance(column_type, Float):
                self.add(
                    where,
                    _("a floating-point column does not keep amounts exact."),
                    _("make it DECIMAL(18, 4)."),
                    warning=True,
                )
            else:
                self._wrong_type(where, column, _("an amount (DECIMAL)"))
            return
        precision, scale = column_type.precision, column_type.scale
        if precision is None:
            return  # NUMERIC without limits takes any amount
        scale = scale or 0
        if scale < fields.AMOUNT_SCALE or precision - scale < fields.AMOUNT_INTEGER_DIGITS:
            self.add(
                where,
                _(
                    "DECIMAL({precision}, {scale}) is too small for Amazon's amounts, which need "
                    "{digits} digits before the point and {scale_needed} after."
                ).format(
                    precision=precision,
                    scale=scale,
                    digits=fields.AMOUNT_INTEGER_DIGITS,
                    scale_needed=fields.AMOUNT_SCALE,
                ),
                _("make it DECIMAL(18, 4)."),
            )

    def _check_time(self, where: str, table: Table, column: Column[Any], spec: ColumnSpec) -> None:
        if isinstance(column.type, String):
            self.add(
                where,
                _("times are written into a text column as ISO 8601 text."),
                _("prefer a DATETIME or TIMESTAMP column."),
                warning=True,
            )
            return
        if not isinstance(column.type, DateTime | Date):
            self._wrong_type(where, column, _("a date and time (DATETIME or TIMESTAMP)"))
            return
        if self.tables.is_naive(table, column.name) and spec.zone is None:
            self.add(
                where,
                _("the column stores times without a time zone, and the mapping names none."),
                _(
                    'add zone = "Asia/Shanghai" (or the zone the ERP uses) to the column, or '
                    'zone = "UTC".'
                ),
            )

    def _check_outputs(
        self, where: str, table: Table, column: Column[Any], values: Iterable[Scalar | None]
    ) -> None:
        for value in values:
            if value is None:
                continue
            problem = _value_problem(column, value)
            if problem is not None:
                self.add(where, problem, _("change the value in the mapping or the column type."))
                return
            if isinstance(value, str):
                self._check_charset(where, table, column)

    def _wrong_type(self, where: str, column: Column[Any], expected: str) -> None:
        self.add(
            where,
            _("the column is {type}, but it receives {expected}.").format(
                type=column.type, expected=expected
            ),
            _("change the column type or map another field to it."),
        )

    def _check_key(self, table: Table | None, key: list[str], where: str) -> None:
        if table is None or any(name not in table.c for name in key):
            return
        wanted = set(key)
        inspector = inspect(self.engine)
        unique_sets = [
            set(c["column_names"])
            for c in inspector.get_unique_constraints(table.name, table.schema)
        ]
        unique_sets += [
            {name for name in i["column_names"] if name is not None}
            for i in inspector.get_indexes(table.name, table.schema)
            if i.get("unique")
        ]
        primary = inspector.get_pk_constraint(table.name, table.schema).get("constrained_columns")
        if primary:
            unique_sets.append(set(primary))
        # A unique index on part of the key makes the whole key unique as well.
        if any(found and found <= wanted for found in unique_sets):
            return
        self.add(
            where,
            _(
                "no unique index covers the key ({columns}) of table {table}; syncd finds rows "
                "by it and writes one at a time, but the ERP could still insert a duplicate."
            ).format(columns=", ".join(key), table=table.name),
            _("CREATE UNIQUE INDEX uq_{table}_syncd ON {table} ({columns});").format(
                table=table.name, columns=", ".join(key)
            ),
            warning=True,
        )

    def _check_required(self, table: Table | None, columns: Mapping[str, ColumnSpec]) -> None:
        if table is None:
            return
        for column in table.columns:
            if column.name in columns or column.nullable or column.server_default is not None:
                continue
            if column.autoincrement is True or (
                column.primary_key
                and isinstance(column.type, Integer)
                and len(table.primary_key.columns) == 1
            ):
                continue
            self.add(
                _("table {table}, column {column}").format(table=table.name, column=column.name),
                _("the column is NOT NULL without a default, and the mapping does not fill it."),
                _("map a value to it in the mapping, or give the column a default."),
            )

    # -- SKU map ---------------------------------------------------------------------------

    def _check_skus(self) -> None:
        skus = self.spec.skus
        table = self.tables.skus
        if skus is None or table is None:
            return
        for name in (skus.amazon_sku, skus.erp_sku, *skus.where):
            self._column(table, name, "skus")
        self._check_match_column(table, skus.account, "skus.account")

    def _check_match_column(self, table: Table, match: AccountMatch | None, where: str) -> None:
        if match is not None and match.column is not None:
            self._column(table, match.column, where)

    # -- shipments -------------------------------------------------------------------------

    def _check_shipments(self) -> None:
        shipments = self.spec.shipments
        table = self.tables.shipments
        if shipments is None or table is None:
            return
        for role in (
            "key",
            "order_id",
            "carrier",
            "tracking_number",
            "shipped_at",
            "changes",
            "carrier_name",
            "shipping_method",
        ):
            name = getattr(shipments, role)
            if name is not None:
                self._column(table, name, f"shipments.{role}")
        for name in shipments.where:
            self._column(table, name, "shipments.where")
        self._check_match_column(table, shipments.account, "shipments.account")
        self._check_wms_time(
            table,
            shipments.shipped_at,
            shipments.shipped_at_zone,
            "shipped_at",
            "shipped_at_zone",
            "shipments",
        )
        self._check_changes(table)
        self._check_wms_ids(table)
        self._check_write_back(table)
        items = shipments.items
        if items is not None and self.tables.items is not None:
            for name in (items.link, items.quantity, items.sku, items.order_item_id):
                if name is not None:
                    self._column(self.tables.items, name, "shipments.items")

    def _check_wms_ids(self, table: Table) -> None:
        shipments = self.spec.shipments
        assert shipments is not None
        if shipments.order_id in table.c:
            column = table.c[shipments.order_id]
            where = _("table {table}, column {column}").format(table=table.name, column=column.name)
            if not isinstance(column.type, String):
                self.add(
                    where,
                    _("Amazon's order ids are text, but the column is {type}.").format(
                        type=column.type
                    ),
                    _("make it VARCHAR({length}).").format(length=fields.ID_RECOMMENDED_LENGTH),
                )

    def _check_wms_time(  # noqa: PLR0917 - the column and where its zone goes
        self, table: Table, name: str, zone: str | None, role: str, zone_key: str, section: str
    ) -> None:
        if name not in table.c:
            return
        column = table.c[name]
        if isinstance(column.type, DateTime | Date | String):
            # Text needs a zone too, because the check cannot tell whether every value
            # carries its offset.
            wall_clock = isinstance(column.type, String) or self.tables.is_naive(table, name)
            if wall_clock and zone is None:
                self.add(
                    f"shipments.{role}",
                    _(
                        "column {column} stores times without a time zone, and the mapping names "
                        "none."
                    ).format(column=name),
                    _('add {key} = "Asia/Shanghai" (or the WMS\'s zone) to [{section}].').format(
                        key=zone_key, section=section
                    ),
                )
        else:
            self._wrong_type(f"shipments.{role}", column, _("a date and time"))

    def _check_changes(self, table: Table) -> None:
        shipments = self.spec.shipments
        assert shipments is not None
        if shipments.changes not in table.c:
            return
        column = table.c[shipments.changes]
        if isinstance(column.type, Integer):
            if shipments.where:
                self.add(
                    "shipments.changes",
                    _(
                        "followed by an id, a row that matches [shipments] where only after "
                        "{count} newer rows exist is never read."
                    ).format(count=ID_OVERLAP),
                    _("follow the table's update-time column instead, if it has one."),
                    warning=True,
                )
            return
        if isinstance(column.type, DateTime):
            if self.tables.is_naive(table, column.name) and shipments.changes_zone is None:
                self.add(
                    "shipments.changes_zone",
                    _("column {column} stores times without a time zone.").format(
                        column=column.name
                    ),
                    _('add changes_zone = "Asia/Shanghai" (or the WMS\'s zone).'),
                )
            return
        self.add(
            "shipments.changes",
            _(
                "column {column} is {type}; syncd follows an increasing integer id or an update "
                "time."
            ).format(column=column.name, type=column.type),
            _("name an auto-increment id or a last-updated DATETIME column."),
        )

    def _check_write_back(self, table: Table) -> None:
        shipments = self.spec.shipments
        assert shipments is not None
        write_back = shipments.write_back
        if write_back is None:
            return
        if write_back.status is not None:
            column = self._column(table, write_back.status, "shipments.write_back.status")
            if column is not None:
                from syncd.bridge.mapping import WRITE_BACK_STATES  # noqa: PLC0415

                values = [write_back.values.get(state, state) for state in WRITE_BACK_STATES]
                where = "shipments.write_back.status"
                if isinstance(column.type, Integer | Numeric) and not isinstance(
                    column.type, Float
                ):
                    missing = [s for s in WRITE_BACK_STATES if s not in write_back.values]
                    if missing:
                        self.add(
                            where,
                            _(
                                "the column is numeric, so each state needs a number; missing: "
                                "{states}."
                            ).format(states=", ".join(missing)),
                            _("list them in [shipments.write_back.values]."),
                        )
                        values = list(write_back.values.values())
                self._check_outputs(where, table, column, values)
        if write_back.message is not None:
            column = self._column(table, write_back.message, "shipments.write_back.message")
            if column is not None:
                if not isinstance(column.type, String):
                    self._wrong_type("shipments.write_back.message", column, _("text"))
                else:
                    self._check_charset("shipments.write_back.message", table, column)
        if write_back.time is not None:
            column = self._column(table, write_back.time, "shipments.write_back.time")
            if column is not None:
                self._check_wms_time(
                    table,
                    write_back.time,
                    write_back.zone,
                    "write_back.time",
                    "zone",
                    "shipments.write_back",
                )


def _plain_type(column: Column[Any]) -> str:
    """Return the column's type for an ALTER statement, without its character set."""
    column_type = column.type
    if isinstance(column_type, Enum):
        return "ENUM({values})".format(values=", ".join(repr(v) for v in column_type.enums))
    if isinstance(column_type, String) and column_type.length is not None:
        kind = "CHAR" if type(column_type).__name__.upper() == "CHAR" else "VARCHAR"
        return f"{kind}({column_type.length})"
    return type(column_type).__name__.upper()


def is_wall_clock(column: Column[Any], backend: str) -> bool:
    """Return whether a date or time column stores wall-clock time without a zone.

    A DATE is a local calendar day. MariaDB's and MySQL's TIMESTAMP stores an instant,
    converted from and to the session's zone, which syncd sets to UTC. Their DATETIME, like
    PostgreSQL's ``timestamp without time zone``, stores what it is given.
    """
    column_type = column.type
    if isinstance(column_type, DateTime):
        if backend in ("mysql", "mariadb") and isinstance(column_type, mysql.TIMESTAMP):
            return False
        return not column_type.timezone
    return isinstance(column_type, Date)


def integer_range(column: Column[Any]) -> tuple[int, int] | None:
    """Return the range of an integer column, or None when it is not an integer column.

    SQLite stores every integer in up to 64 bits, whatever the declared type.
    """
    column_type = column.type
    if not isinstance(column_type, Integer):
        return None
    bits = 64
    if column.info.get(_BACKEND) == "sqlite":
        return -(2**63), 2**63 - 1
    if isinstance(column_type, mysql.TINYINT):
        bits = 8
    elif isinstance(column_type, SmallInteger):
        bits = 16
    elif isinstance(column_type, mysql.MEDIUMINT):
        bits = 24
    elif not isinstance(column_type, BigInteger):
        bits = 32
    if getattr(column_type, "unsigned", False):
        return 0, 2**bits - 1
    return -(2 ** (bits - 1)), 2 ** (bits - 1) - 1


def _value_problem(column: Column[Any], value: Scalar) -> str | None:
    """Return why ``value`` does not fit ``column``, or None."""
    column_type = column.type
    if isinstance(value, bool):
        return None
    is_digits = isinstance(value, str) and value.lstrip("-").isdigit()
    if isinstance(column_type, Integer) and not isinstance(value, int) and not is_digits:
        return _("the column is {type}, but the mapping writes {value!r} into it.").format(
            type=column_type, value=value
        )
    bounds = integer_range(column)
    if bounds is not None and not (bounds[0] <= int(value) <= bounds[1]):
        return _("{value} does not fit the column's {type} ({low} to {high}).").format(
            value=value, type=column_type, low=bounds[0], high=bounds[1]
        )
    length = column_type.length if isinstance(column_type, String) else None
    if length is not None and len(str(value)) > length:
        return _("{value!r} is longer than the column's {length} characters.").format(
            value=value, length=length
        )
    return None
