"""Computing the value of each mapped ERP column, and checking that it fits the column.

A value that does not fit (text too long, an amount with too many digits, a status the map
does not list) raises :class:`ValueFitError`, which puts the order in quarantine. Written
anyway, it would fail on a strict database and be cut silently on a lax one (MariaDB
without ``STRICT_TRANS_TABLES``).
"""

from __future__ import annotations

import traceback
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Boolean, Column, Date, DateTime, Integer, Numeric, String, Table

from syncd.bridge.check import integer_range
from syncd.bridge.fields import CanonicalLine, CanonicalOrder
from syncd.bridge.mapping import ColumnSpec, LoadedMapping, map_value
from syncd.i18n import gettext as _


class ValueFitError(Exception):
    """Error for a value that cannot be written into its column, naming the column and why."""


class SkuMap:
    """Map of Amazon SKU → ERP SKU for one account, read from the seller's SKU map table."""

    def __init__(self, entries: Mapping[str, str], missing: str) -> None:
        self.entries = entries
        self.missing = missing

    def translate(self, sku: str | None) -> str | None:
        """Return the ERP's SKU, or Amazon's own when it is unmapped and the mapping keeps it.

        Raises:
            ValueFitError: the SKU is not in the map and the mapping quarantines such orders.
        """
        if sku is None:
            return None
        found = self.entries.get(sku)
        if found is not None:
            return found
        if self.missing == "quarantine":
            raise ValueFitError(_("SKU {sku} is not in the SKU map.").format(sku=sku))
        return sku


class RowBuilder:
    """Builder of the column values of one order's row and its line rows."""

    def __init__(
        self,
        mapping: LoadedMapping,
        naive: set[tuple[str, str]],
        *,
        constants: Mapping[str, Any],
        skus: SkuMap | None,
        without_pii: bool,
        now: datetime | None = None,
    ) -> None:
        self.mapping = mapping
        self.naive = naive
        self.constants = constants
        self.skus = skus
        self.without_pii = without_pii
        self.now = now

    def row(
        self,
        table: Table,
        columns: Mapping[str, ColumnSpec],
        order: CanonicalOrder,
        line: CanonicalLine | None = None,
        parent: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Return {column: value} for every mapped column of ``table``.

        Raises:
            ValueFitError: a value does not fit its column.
        """
        values = {}
        for name, spec in columns.items():
            column = table.c[name]
            raw = self._source(name, spec, order, line, parent)
            value = self._fit(table, column, spec, raw)
            if value is None and not column.nullable:
                if column.server_default is not None and not isinstance(column.type, String):
                    continue  # the ERP's own default is its "no value"
                value = empty_value(column)
            values[name] = value
        return values

    def _source(
        self,
        name: str,
        spec: ColumnSpec,
        order: CanonicalOrder,
        line: CanonicalLine | None,
        parent: Mapping[str, Any] | None,
    ) -> Any:
        source = spec.source
        value: Any
        if source == "value":
            value = spec.value
        elif source == "account":
            value = self.constants.get(spec.account or "")
        elif source == "parent":
            value = (parent or {}).get(spec.parent or "")
        elif source == "code":
            value = self._call_hook(name, spec, order, line)
        else:
            value = self._field_value(spec, order, line)
        if spec.map is not None:
            value_map = self.mapping.spec.maps[spec.map]
            found, mapped = map_value(value_map, value)
            if not found and value is not None and spec.default is None:
                raise ValueFitError(
                    _(
                        "{column}: the value {value} is not in map {map} and it has no default."
                    ).format(column=name, value=value, map=spec.map)
                )
            value = mapped
        if value is None and spec.default is not None:
            value = spec.default
        return value

    def _call_hook(
        self, name: str, spec: ColumnSpec, order: CanonicalOrder, line: CanonicalLine | None
    ) -> Any:
        hook = self.mapping.hooks[spec.code or ""]
        try:
            return hook(order) if line is None else hook(order, line)
        except Exception as exc:
            # A failing hook is the seller's code, so only this order goes to quarantine. Its
            # message may quote the order's buyer data, so the reason names only the exception
            # and the line that raised it.
            raise ValueFitError(
                _("{column}: the function {path} failed ({error} at {place}).").format(
                    column=name, path=spec.code, error=type(exc).__name__, place=_raised_at(exc)
                )
            ) from exc

    def _field_value(
        self, spec: ColumnSpec, order: CanonicalOrder, line: CanonicalLine | None
    ) -> Any:
        field = spec.field or ""
        if field == "now":
            return self.now
        if line is not None and field in line.values:
            value = line.values[field]
        else:
            value = order.values.get(field)
        if spec.translate == "sku" and self.skus is not None:
            value = self.skus.translate(value)
        return value

    def _fit(  # noqa: PLR0911 - one return per kind of column
        self, table: Table, column: Column[Any], spec: ColumnSpec, value: Any
    ) -> Any:
        """Convert ``value`` to what ``column`` takes, or raise ValueFitError."""
        if value is None:
            return None
        column_type = column.type
        if isinstance(value, datetime):
            return self._fit_time(table, column, spec, value)
        if isinstance(column_type, Boolean):
            return bool(value)
        if isinstance(column_type, Integer):
            return _fit_int(column, value)
        if isinstance(column_type, Numeric):
            return _fit_amount(column, value)
        if isinstance(column_type, String):
            text = _as_text(value)
            length = column_type.length
            if length is not None and len(text) > length:
                if not spec.truncate:
                    raise ValueFitError(
                        _("{column}: {length} characters do not fit VARCHAR({limit}).").format(
                            column=column.name, length=len(text), limit=length
                        )
                    )
                text = text[:length]
            return text
        return value

    def _fit_time(
        self, table: Table, column: Column[Any], spec: ColumnSpec, value: datetime
    ) -> Any:
        aware = value if value.tzinfo is not None else value.replace(tzinfo=UTC)
        if isinstance(column.type, String):
            return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")
        if (table.name, column.name) not in self.naive:
            # A column that stores an instant gets it in UTC, as every session of syncd's is.
            return aware.astimezone(UTC)
        local = aware.astimezone(ZoneInfo(spec.zone) if spec.zone is not None else UTC)
        if isinstance(column.type, Date) and not isinstance(column.type, DateTime):
            return local.date()
        return local.replace(tzinfo=None)


def empty_value(column: Column[Any]) -> str | None:
    """Return a column's "no value": NULL, or '' in a NOT NULL text column.

    ERPs on MySQL often declare text NOT NULL DEFAULT '', where an empty string is how they
    write "unknown" (a pending order's address, a purged buyer name).
    """
    if not column.nullable and isinstance(column.type, String):
        return ""
    return None


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, date | datetime):
        return value.isoformat()
    return str(value)


def _fit_int(column: Column[Any], value: Any) -> int:
    number = _as_int(column.name, value)
    bounds = integer_range(column)
    if bounds is not None and not (bounds[0] <= number <= bounds[1]):
        raise ValueFitError(
            _("{column}: {value} does not fit {type} ({low} to {high}).").format(
                column=column.name, value=number, type=column.type, low=bounds[0], high=bounds[1]
            )
        )
    return number


def _as_int(column: str, value: Any) -> int:
    if isinstance(value, bool):
        return int(value)
    try:
        number = Decimal(str(value))
    except InvalidOperation:
        number = None
    if number is None or number != number.to_integral_value():
        raise ValueFitError(
            _("{column}: {value!r} is not a whole number.").format(column=column, value=value)
        )
    return int(number)


def _fit_amount(column: Column[Any], value: Any) -> Decimal:
    try:
        amount = value if isinstance(value, Decimal) else Decimal(str(value))
    except InvalidOperation:
        raise ValueFitError(
            _("{column}: {value!r} is not a number.").format(column=column.name, value=value)
        ) from None
    column_type = column.type
    assert isinstance(column_type, Numeric)
    precision, scale = column_type.precision, column_type.scale or 0
    if precision is None:
        return amount
    if scale < -amount.as_tuple().exponent:  # type: ignore[operator]
        rounded = amount.quantize(Decimal(1).scaleb(-scale))
        if rounded != amount:
            raise ValueFitError(
                _(
                    "{column}: {value} has more decimals than DECIMAL({precision}, {scale}) keeps."
                ).format(column=column.name, value=amount, precision=precision, scale=scale)
            )
        amount = rounded
    if abs(amount) >= Decimal(10) ** (precision - scale):
        raise ValueFitError(
            _("{column}: {value} is too large for DECIMAL({precision}, {scale}).").format(
                column=column.name, value=amount, precision=precision, scale=scale
            )
        )
    return amount


def wall_clock_to_utc(value: datetime, zone: str | None) -> datetime:
    """Return the UTC instant of a WMS time; naive times are in ``zone``.

    A time that occurs twice (clocks go back) is the first of the two, as Python's
    ``fold=0``. The shipment intake rejects a time that does not exist (clocks go forward).

    NOTE: nothing in syncd calls this function. Unlike the intake, it converts a time in a
    DST gap instead of rejecting it.
    """
    if value.tzinfo is not None:
        return value.astimezone(UTC)
    return value.replace(tzinfo=ZoneInfo(zone or "UTC")).astimezone(UTC)


def now_in_column(now: datetime, zone: str | None, naive: bool) -> datetime:
    """Return ``now`` as a column takes it: local wall-clock time for a naive column."""
    local = now.astimezone(ZoneInfo(zone)) if zone else now.astimezone(UTC)
    return local.replace(tzinfo=None) if naive else local


# How far a WMS pass re-reads before an update-time position (an estimate of the longest
# WMS transaction). In a zone with DST, a naive time repeats for an hour when clocks go back.
OVERLAP_NO_DST = timedelta(minutes=10)
OVERLAP_DST = timedelta(minutes=70)


def _raised_at(exc: BaseException) -> str:
    """Return ``file:line`` of the innermost frame that raised ``exc``."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    frame = frames[-1]
    return f"{Path(frame.filename).name}:{frame.lineno}"
