"""Database engines set up the same way on SQLite, PostgreSQL and MariaDB/MySQL.

Every connection works in UTC: MariaDB/MySQL sessions get ``time_zone = '+00:00'`` (the
server's own zone, often Beijing time, must never shift stored times) and ``utf8mb4``;
PostgreSQL sessions get ``TimeZone = 'UTC'``.

SQLite enforces foreign keys, runs in WAL mode (readers such as ``syncd status`` do not block
the daemon) and starts every transaction with ``BEGIN IMMEDIATE``: two workers that both read
and then write would otherwise deadlock on the lock upgrade instead of waiting their turn.
Python's sqlite3 module would also swallow SAVEPOINTs, so it is told to leave transactions to
SQLAlchemy.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import NoSuchModuleError, OperationalError, SQLAlchemyError

from syncd import errors
from syncd.i18n import gettext as _

SQLITE_BUSY_TIMEOUT = 30  # seconds
CONNECT_TIMEOUT = 10  # seconds to open a connection to PostgreSQL or MariaDB/MySQL
KEEPALIVE_IDLE = 30  # seconds of silence before PostgreSQL's TCP keepalive probes start
KEEPALIVE_INTERVAL = 10  # seconds between two keepalive probes


# The drivers syncd installs, used when a URL names no driver ("postgresql://...").
_DEFAULT_DRIVERS = {"postgresql": "psycopg", "mysql": "pymysql", "mariadb": "pymysql"}


def with_default_driver(url: str | URL) -> URL:
    """Return ``url`` with syncd's driver filled in when the URL names none."""
    parsed = make_url(url)
    if "+" not in parsed.drivername and parsed.drivername in _DEFAULT_DRIVERS:
        parsed = parsed.set(drivername=f"{parsed.drivername}+{_DEFAULT_DRIVERS[parsed.drivername]}")
    return parsed


_SUPPORTED_BACKENDS = frozenset({"sqlite", "postgresql", "mysql", "mariadb"})


def check_database_url(url: str) -> None:
    """Check that syncd can use the database a URL names: a supported kind, an installed driver.

    Raises:
        ValueError: with a message that names the problem and the fix.
    """
    parsed = with_default_driver(url)
    backend = parsed.get_backend_name()
    if backend == "postgres":
        raise ValueError(_("PostgreSQL URLs start with postgresql://, not postgres://"))
    if backend not in _SUPPORTED_BACKENDS:
        raise ValueError(
            _("syncd works with SQLite, PostgreSQL and MariaDB/MySQL, not {backend}").format(
                backend=backend
            )
        )
    try:
        parsed.get_dialect().import_dbapi()
    except ImportError:
        raise ValueError(
            _("the driver {driver} is not installed; leave the driver out or use {default}").format(
                driver=parsed.get_driver_name(),
                default=f"{backend}+{_DEFAULT_DRIVERS.get(backend, 'pymysql')}",
            )
        ) from None


def safe_url(url: str | URL) -> str:
    """Return the URL for messages and logs, with the password hidden."""
    return make_url(url).render_as_string(hide_password=True)


def sqlite_file(url: str | URL) -> Path | None:
    """Return the file of a SQLite URL; None for other databases, memory and SQLite URIs."""
    parsed = make_url(url)
    database = parsed.database
    if parsed.get_backend_name() != "sqlite" or not database or database == ":memory:":
        return None
    if database.startswith("file:") or parsed.query.get("uri"):
        return None  # a SQLite URI names its file in its own syntax
    return Path(database)


def sqlite_slashes_hint() -> str:
    """Explain how a SQLite URL names a relative and an absolute path."""
    return _(
        "sqlite:/// followed by a path is relative to the current folder (sqlite:///syncd.db); "
        "sqlite://// followed by a path is absolute (sqlite:////var/lib/syncd/syncd.db)."
    )


def missing_sqlite_folder(url: str | URL) -> errors.StoreError | None:
    """Return the error for a SQLite file whose folder does not exist, else None."""
    path = sqlite_file(url)
    if path is None or path.parent.is_dir():
        return None
    return errors.StoreError(
        safe_url(url),
        _("the folder {folder} of the SQLite file does not exist").format(
            folder=path.parent.absolute()
        ),
        _("Create the folder, or correct the path in SYNCD_DATABASE_URL: {slashes}").format(
            slashes=sqlite_slashes_hint()
        ),
    )


def store_error(url: str | URL, exc: Exception) -> errors.StoreError:
    """Translate a driver or SQLAlchemy failure into one clear :class:`errors.StoreError`."""
    shown = safe_url(url)
    path = sqlite_file(url)
    if isinstance(exc, OperationalError) and path is not None:
        folder_missing = missing_sqlite_folder(url)
        if folder_missing is not None:
            return folder_missing
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        return errors.StoreError(
            shown,
            _("could not open the SQLite file {path} ({error})").format(
                path=path.absolute(), error=cause
            ),
            _(
                "Check that the user running syncd may read and write the file and its "
                "folder, and the path in SYNCD_DATABASE_URL: {slashes}"
            ).format(slashes=sqlite_slashes_hint()),
        )
    if isinstance(exc, NoSuchModuleError | ModuleNotFoundError):
        return errors.StoreError(
            shown,
            _("the database driver is not installed ({error})").format(error=exc),
            _(
                "Use a URL such as postgresql+psycopg://… or mysql+pymysql://…, whose drivers "
                "syncd installs."
            ),
        )
    if isinstance(exc, OperationalError):
        cause = str(exc.orig).strip().splitlines()[0] if exc.orig is not None else str(exc)
        return errors.StoreError(
            shown,
            _("could not connect ({error})").format(error=cause),
            _(
                "Check that the server is running and that the host, port, database, user and "
                "password in SYNCD_DATABASE_URL are right."
            ),
        )
    first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return errors.StoreError(
        shown,
        _("the operation failed ({error})").format(error=first_line),
        _("Check the database server's log for details."),
    )


def database_error_reason(exc: SQLAlchemyError) -> str:
    """Return the first line of the database's own message, without SQL or parameters."""
    cause = getattr(exc, "orig", None)
    text = str(cause if cause is not None else exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def create_db_engine(url: str, **kwargs: Any) -> Engine:
    """Create an engine for ``url`` with syncd's per-connection settings."""
    parsed = with_default_driver(url)
    backend = parsed.get_backend_name()
    # A pooled connection that died while idle (a server restart, a network cut) is
    # replaced at checkout instead of failing the job that drew it.
    # Bound parameters stay out of error messages and tracebacks: they may be buyer data.
    options: dict[str, Any] = {"pool_pre_ping": True, "hide_parameters": True}
    if backend in {"mysql", "mariadb"}:
        parsed = parsed.update_query_dict({"charset": "utf8mb4"})
        options["pool_recycle"] = 3600
        # NOTE: pymysql turns on TCP keepalive with the kernel's timings and has no read
        # timeout here, so a query to a server that vanished without a reset waits for the
        # kernel's retransmission timeout (about 15 minutes with Linux defaults).
        options["connect_args"] = {"connect_timeout": CONNECT_TIMEOUT}
    elif backend == "postgresql":
        options["connect_args"] = {
            # A database in SQL_ASCII would otherwise hand back bytes, on which SQLAlchemy's
            # first connect fails with a TypeError instead of a database error.
            "client_encoding": "utf8",
            # libpq waits without limit by default; an outage must surface within seconds.
            "connect_timeout": CONNECT_TIMEOUT,
            # TCP keepalives find a server that vanished without closing the connection
            # (a dropped route) in about KEEPALIVE_IDLE + 3 * KEEPALIVE_INTERVAL seconds.
            "keepalives": 1,
            "keepalives_idle": KEEPALIVE_IDLE,
            "keepalives_interval": KEEPALIVE_INTERVAL,
            "keepalives_count": 3,
        }
    elif backend == "sqlite":
        options = {"connect_args": {"timeout": SQLITE_BUSY_TIMEOUT}, "hide_parameters": True}
    options.update(kwargs)
    engine = create_engine(parsed, **options)
    event.listen(engine, "connect", _session_setup(backend))
    if backend == "sqlite":
        event.listen(engine, "begin", _begin_immediate)
    return engine


def _begin_immediate(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


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
                # Leave BEGIN to SQLAlchemy (see _begin_immediate) so savepoints work too.
                dbapi_connection.isolation_level = None
                cursor.execute("PRAGMA foreign_keys = ON")
                cursor.execute("PRAGMA journal_mode = WAL")
        finally:
            cursor.close()

    return on_connect
