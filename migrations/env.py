"""Alembic environment: migrates the database named by the configuration's sqlalchemy.url."""

from __future__ import annotations

from alembic import context

from syncd.db import migrate
from syncd.db.engine import create_db_engine
from syncd.db.models import Base

config = context.config
target_metadata = Base.metadata
# Named like syncd's tables, so it cannot clash with an ERP's own alembic_version.
VERSION_TABLE = migrate.VERSION_TABLE


def _include_name(name: str | None, type_: str, _parent_names: object) -> bool:
    # The database may be shared with the seller's ERP: only syncd's own tables are compared.
    if type_ == "table":
        return bool(name and name.startswith("syncd_") and name != VERSION_TABLE)
    return True


def run_migrations_offline() -> None:
    """Emit the SQL of the migrations without a connection (``--sql``)."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        include_name=_include_name,
        version_table=VERSION_TABLE,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations over a connection set up like syncd's own (UTC, utf8mb4)."""
    url = config.get_main_option("sqlalchemy.url")
    assert url is not None
    engine = create_db_engine(url)
    try:
        with engine.connect() as connection:
            context.configure(
                connection=connection,
                target_metadata=target_metadata,
                include_name=_include_name,
                version_table=VERSION_TABLE,
                compare_type=True,
                render_as_batch=connection.dialect.name == "sqlite",
            )
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
