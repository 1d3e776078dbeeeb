"""SQLAlchemy metadata of the tables syncd owns; every table name starts with ``syncd_``.

Alembic's migrations under ``migrations/`` create these tables; a test checks that the
migrations and this metadata agree on every database syncd supports.
"""

from __future__ import annotations

from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase

TABLE_PREFIX = "syncd_"

# Deterministic constraint names, so migrations can alter them on every database.
NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    """Declarative base of syncd's tables."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)
