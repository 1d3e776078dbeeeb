"""Column types that behave the same on SQLite, PostgreSQL and MariaDB/MySQL.

- :class:`UtcDateTime` stores UTC with microseconds and no zone (``DATETIME(6)`` on
  MariaDB/MySQL, whose sessions syncd sets to ``+00:00``; ``TIMESTAMP`` on PostgreSQL; one
  fixed text format on SQLite) and returns aware UTC datetimes. A naive datetime is refused,
  because its instant is unknown.
- :data:`LongText` holds documents such as an order's raw JSON, which can exceed the 64 KiB
  of MySQL's ``TEXT``.
- :data:`Money` keeps amounts exact: 18 digits with 4 after the point cover every currency
  Amazon uses.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Numeric, Text
from sqlalchemy.dialects import mysql
from sqlalchemy.engine import Dialect
from sqlalchemy.types import TypeDecorator, TypeEngine

LongText = Text().with_variant(mysql.LONGTEXT(), "mysql", "mariadb")
Money = Numeric(18, 4)


class UtcDateTime(TypeDecorator[datetime]):
    """An aware UTC datetime, stored without zone and with microseconds."""

    impl = DateTime
    cache_ok = True

    def load_dialect_impl(self, dialect: Dialect) -> TypeEngine[Any]:
        if dialect.name in ("mysql", "mariadb"):
            return dialect.type_descriptor(mysql.DATETIME(fsp=6))
        return dialect.type_descriptor(DateTime(timezone=False))

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
