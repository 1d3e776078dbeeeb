"""Running alembic migrations from code (``syncd db upgrade``) and checking they are current."""

from __future__ import annotations

from importlib.resources import files

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.db.engine import create_db_engine, store_error

MIGRATIONS_DIR = str(files("syncd.migrations"))
# Alembic's table of the current revision; migrations/env.py uses the same name.
VERSION_TABLE = "syncd_alembic_version"


def alembic_config(url: str) -> Config:
    """Return an alembic configuration for ``url`` that needs no alembic.ini."""
    cfg = Config()
    cfg.set_main_option("script_location", MIGRATIONS_DIR)
    # ConfigParser interpolation would eat "%" in passwords.
    cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def upgrade(url: str, revision: str = "head") -> tuple[str | None, str | None]:
    """Migrate the database at ``url`` to ``revision``.

    Returns:
        The revision before and after the upgrade (None for an empty database).

    Raises:
        errors.StoreError: the database is unreachable, lacks a driver or the upgrade failed.
    """
    try:
        engine = create_db_engine(url)
        try:
            before = current_revision(engine)
        finally:
            engine.dispose()
        command.upgrade(alembic_config(url), revision)
        engine = create_db_engine(url)
        try:
            return before, current_revision(engine)
        finally:
            engine.dispose()
    except (SQLAlchemyError, ModuleNotFoundError) as exc:
        raise store_error(url, exc) from exc


def current_revision(engine: Engine) -> str | None:
    """Return the revision the database is at, or None for an empty database."""
    with engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"version_table": VERSION_TABLE})
        return context.get_current_revision()


def head_revision(url: str) -> str | None:
    """Return the newest revision of the migration scripts."""
    return ScriptDirectory.from_config(alembic_config(url)).get_current_head()


def downgrade(url: str, revision: str) -> None:
    """Migrate the database at ``url`` back to ``revision`` (``base`` removes every table)."""
    command.downgrade(alembic_config(url), revision)
