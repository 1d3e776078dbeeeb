"""The alembic migrations and the SQLAlchemy models agree, on every database under test."""

from __future__ import annotations

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, text

from syncd.db import migrate
from syncd.db.engine import create_db_engine
from syncd.db.models import TABLE_PREFIX, Base
from tests.conftest import reset_database


def _syncd_tables(url: str) -> list[str]:
    engine = create_db_engine(url)
    try:
        names = inspect(engine).get_table_names()
        return [n for n in names if n.startswith(TABLE_PREFIX) and n != migrate.VERSION_TABLE]
    finally:
        engine.dispose()


def test_upgrade_to_head_matches_the_models(database_url: str) -> None:
    reset_database(database_url)
    migrate.upgrade(database_url)
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            context = MigrationContext.configure(
                connection,
                opts={
                    "include_name": lambda name, type_, _parents: (
                        type_ != "table"
                        or bool(
                            name and name.startswith(TABLE_PREFIX) and name != migrate.VERSION_TABLE
                        )
                    )
                },
            )
            differences = compare_metadata(context, Base.metadata)
        assert differences == []
        assert migrate.current_revision(engine) == migrate.head_revision(database_url)
    finally:
        engine.dispose()
        migrate.downgrade(database_url, "base")
    assert _syncd_tables(database_url) == []


def test_sessions_run_in_utc(database_url: str) -> None:
    engine = create_db_engine(database_url)
    try:
        with engine.connect() as connection:
            backend = connection.dialect.name
            if backend == "postgresql":
                zone = connection.execute(text("SHOW TIME ZONE")).scalar_one()
                assert zone == "UTC"
            elif backend in ("mysql", "mariadb"):
                zone = connection.execute(text("SELECT @@session.time_zone")).scalar_one()
                assert zone == "+00:00"
                charset = connection.execute(text("SELECT @@character_set_connection")).scalar_one()
                assert charset == "utf8mb4"
            else:
                assert connection.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
    finally:
        engine.dispose()
