"""Database engines set up the same way on SQLite, PostgreSQL and MariaDB/MySQL.

Every connection works in UTC: MariaDB/MySQL sessions get ``time_zone = '+00:00'`` (the
server's own zone, often Beijing time, must never shift stored times) and ``utf8mb4``;
PostgreSQL sessions get ``TimeZone = 'UTC'``; SQLite enforces foreign keys and waits for
locks instead of failing at once.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url

SQLITE_BUSY_TIMEOUT = 30  # seconds


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with syncd's per-connection settings."""
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    options: dict[str, Any] = {"pool_pre_ping": True}
    if backend in {"mysql", "mariadb"}:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        options["pool_recycle"] = 3600
    elif backend == "sqlite":
        options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    event.listen(engine, "connect", _session_setup(backend))
    return engine


def _session_setup(backend: str) -> Any:
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        cursor = dbapi_connection.cursor()
        try:
            if backend in ("mysql", "mariadb"):
                cursor.execute("SET time_zone = '+00:00'")
                cursor.execute("SET NAMES utf8mb4 COLLATE utf8mb4_unicode_ci")
            elif backend == "postgresql":
                cursor.execute("SET TIME ZONE 'UTC'")
            elif backend == "sqlite":
                cursor.execute("PRAGMA foreign_keys = ON")
        finally:
            cursor.close()

    return on_connect
