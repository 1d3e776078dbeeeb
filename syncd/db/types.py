"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL.

- :class:`UtcDateTime` stores UTC with microseconds and no zone, and returns aware UTC
  datetimes. It is ``DATETIME(6)`` on MariaDB/MySQL, whose sessions syncd sets to
  ``+00:00``, ``TIMESTAMP`` on PostgreSQL and one fixed text format on SQLite. A naive
  datetime is rejected, because its instant is unknown.
- :data:`LongText` holds documents such as an order's raw JSON, which can exceed the 64 KiB
  of MySQL's ``TEXT``.
- :class:`Money` keeps amounts exact: ``DECIMAL(18, 4)`` covers every currency Amazon uses.
  SQLite has no decimal type and would store a float, so there the amount is kept as
  decimal text.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from sqlalchemy import DateTime, Numeric, String, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")


_MONEY_PRECISION = 18
_MONEY_SCALE = 4
_MONEY_QUANTUM = Decimal(1).scaleb(-_MONEY_SCALE)
# The smallest amount DECIMAL(18, 4) cannot hold: 14 digits before the point.
MONEY_LIMIT = Decimal(10) ** (_MONEY_PRECISION - _MONEY_SCALE)


class Money(TypeDecorator[Decimal]):
    """An exact amount: DECIMAL(18, 4), or decimal text on SQLite."""

    impl = Numeric(_MONEY_PRECISION, _MONEY_SCALE)
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name == "sqlite":
            return dialect.type_descriptor(String(32))
        return dialect.type_descriptor(Numeric(_MONEY_PRECISION, _MONEY_SCALE))

    def process_bind_param(self, value: Decimal | None, dialect: Dialect) -> Any:
        if value is None or dialect.name != "sqlite":
            return value
        amount = Decimal(value)
        if amount.as_tuple().exponent < -_MONEY_SCALE:  # type: ignore[operator]
            # Round as DECIMAL(18, 4) does on the other databases: half away from zero.
            amount = amount.quantize(_MONEY_QUANTUM, rounding=ROUND_HALF_UP)
        return str(amount)

    def process_result_value(self, value: Any, dialect: Dialect) -> Decimal | None:
        if value is None:
            return None
        return value if isinstance(value, Decimal) else Decimal(str(value))


def _datetime_impl(dialect: Dialect) -> TypeEngine[Any]:
    """DATETIME(6) on MariaDB/MySQL (microseconds kept), a zone-less DateTime elsewhere."""
    if dialect.name in ("mysql", "mariadb"):
        return dialect.type_descriptor(mysql.DATETIME(fsp=6))
    return dialect.type_descriptor(DateTime(timezone=False))


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime, stored without zone and with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _datetime_impl(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None or value.utcoffset() is None:
            raise ValueError(f"naive datetime {value!r}: syncd stores aware UTC times only")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class LocalDateTime(TypeDecorator[datetime]):
    """A wall-clock time without zone, as an ERP writes it; the zone is kept in another column.

    Values pass through unchanged: naive in, naive out. ``DATETIME(6)`` on MariaDB/MySQL.
    """

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        return _datetime_impl(dialect)

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is not None and value.tzinfo is not None:
            raise ValueError(f"aware datetime {value!r}: this column holds wall-clock times")
        return value
