"""Database checks of ``syncd doctor``: connection, server, character set, strict mode, time zone.

The same checks run on syncd's database and on the ERP database, whose results carry an
"ERP" prefix. :func:`check_migrations` compares syncd's schema with the newest migration.
"""

from __future__ import annotations

import os
from pathlib import Path

from alembic.script import ScriptDirectory
from sqlalchemy import Connection, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from syncd.db import migrate
from syncd.db.engine import (
    create_db_engine,
    database_error_reason,
    missing_sqlite_folder,
    safe_url,
    sqlite_file,
    store_error,
)
from syncd.doctor import CheckResult, Status
from syncd.i18n import gettext as _

# The oldest servers syncd supports. Claiming outbox rows needs SELECT … FOR UPDATE SKIP
# LOCKED, which MariaDB has since 10.6 and MySQL since 8.0.
_MINIMUM_VERSIONS: dict[str, tuple[int, ...]] = {
    "MariaDB": (10, 6),
    "MySQL": (8, 0),
    "PostgreSQL": (12,),
}
_STRICT_MODES = frozenset({"STRICT_TRANS_TABLES", "STRICT_ALL_TABLES"})
_UTF8MB4 = "utf8mb4"


def check_database(url: str, *, erp: bool = False, upgrade: str = "") -> list[CheckResult]:
    """Connect to a database and check its server's version and settings.

    Args:
        url: the database's SQLAlchemy URL; messages show it with the password hidden.
        erp: True for the ERP database (``SYNCD_ERP_DATABASE_URL``), False for syncd's own.
        upgrade: the fix that creates syncd's SQLite file; unused for the ERP database.

    Returns:
        The connection's result first. When it passed, the server's results follow.
    """
    name = _label(_("database"), erp)
    path = sqlite_file(url)
    if path is not None:
        problem = _sqlite_file_problem(url, path, erp=erp, upgrade=upgrade)
        if problem is not None:
            return [CheckResult(name, Status.FAIL, *problem)]

    options = {}
    if make_url(url).get_backend_name() == "postgresql":
        # In a SQL_ASCII database psycopg returns bytes, on which SQLAlchemy's first connect
        # fails with a TypeError. UTF8 on the client side gets far enough to report it.
        options["connect_args"] = {"client_encoding": "utf8"}
    engine = create_db_engine(url, **options)
    try:
        with engine.connect() as connection:
            server = _server_results(connection, erp)
    except SQLAlchemyError as exc:
        error = store_error(url, exc)
        return [CheckResult(name, Status.FAIL, error.reason, _erp_fix() if erp else error.fix)]
    finally:
        engine.dispose()
    detail = _("connected to {database}").format(database=safe_url(url))
    return [CheckResult(name, Status.PASS, detail), *server]


def _label(check: str, erp: bool) -> str:
    return _("ERP {check}").format(check=check) if erp else check


def _erp_fix() -> str:
    return _(
        "Check that the server is running and that the host, port, database, user and "
        "password in SYNCD_ERP_DATABASE_URL are right."
    )


def _sqlite_file_problem(
    url: str, path: Path, *, erp: bool, upgrade: str
) -> tuple[str, str] | None:
    """Return the problem and fix when the SQLite file or its folder is missing or read-only.

    Connecting would create a missing file, which a later run would take for an empty
    installation, so these are checked before any connection.
    """
    erp_fix = _("Correct the path in SYNCD_ERP_DATABASE_URL.")
    folder_missing = missing_sqlite_folder(url)
    if folder_missing is not None:
        return folder_missing.reason, erp_fix if erp else folder_missing.fix
    if not path.exists():
        reason = _("the SQLite file {path} does not exist").format(path=path.absolute())
        return reason, erp_fix if erp else upgrade
    access_fix = _(
        "Give the user that runs syncd read and write access to the file and its folder."
    )
    if not os.access(path, os.R_OK | os.W_OK):
        reason = _("this user cannot read and write the SQLite file {path}").format(
            path=path.absolute()
        )
        return reason, access_fix
    folder = path.absolute().parent
    if not os.access(folder, os.W_OK | os.X_OK):
        # In WAL mode SQLite creates its -wal and -shm files next to the database.
        reason = _("this user cannot create files in the folder {folder}").format(folder=folder)
        return reason, access_fix
    return None


def _server_results(connection: Connection, erp: bool) -> list[CheckResult]:
    backend = connection.dialect.name
    if backend in ("mysql", "mariadb"):
        return [
            _version_result(connection, erp),
            _mysql_charset(connection, erp),
            _mysql_strict_mode(connection, erp),
            _mysql_time_zone(connection, erp),
        ]
    if backend == "postgresql":
        return [
            _version_result(connection, erp),
            _postgresql_encoding(connection, erp),
            _postgresql_time_zone(connection, erp),
        ]
    version = connection.execute(text("SELECT sqlite_version()")).scalar_one()
    return [CheckResult(_label(_("database server"), erp), Status.PASS, f"SQLite {version}")]


def _version_result(connection: Connection, erp: bool) -> CheckResult:
    dialect = connection.dialect
    if dialect.name == "postgresql":
        product = "PostgreSQL"
    else:
        product = "MariaDB" if getattr(dialect, "is_mariadb", False) else "MySQL"
    version = tuple(part for part in dialect.server_version_info or () if isinstance(part, int))
    server = f"{product} {'.'.join(str(part) for part in version)}"
    minimum = _MINIMUM_VERSIONS[product]
    name = _label(_("database server"), erp)
    if version >= minimum:
        return CheckResult(name, Status.PASS, server)
    detail = _("{server}, older than {product} {minimum}").format(
        server=server, product=product, minimum=".".join(str(part) for part in minimum)
    )
    fix = _(
        "Upgrade the server to {product} {minimum} or newer, the oldest that syncd supports."
    ).format(product=product, minimum=".".join(str(part) for part in minimum))
    return CheckResult(name, Status.WARN, detail, fix)


def _mysql_charset(connection: Connection, erp: bool) -> CheckResult:
    server, database, schema = connection.execute(
        text("SELECT @@character_set_server, @@character_set_database, DATABASE()")
    ).one()
    detail = _("server default {server}, database default {database}").format(
        server=server, database=database
    )
    name = _label(_("database character set"), erp)
    if server == _UTF8MB4 and database == _UTF8MB4:
        return CheckResult(name, Status.PASS, detail)
    detail = _("{detail}; not utf8mb4").format(detail=detail)
    fix = _(
        "Tables created without a character set take the database's default, and text "
        "outside it (Chinese in latin1, emoji in utf8) is lost or rejected. syncd's own "
        "tables are utf8mb4 in any case. Run ALTER DATABASE {schema} CHARACTER SET utf8mb4 "
        "COLLATE utf8mb4_unicode_ci, set character-set-server = utf8mb4 in the server's "
        "configuration, and convert ERP tables with ALTER TABLE … CONVERT TO CHARACTER SET "
        "utf8mb4."
    ).format(schema=schema or "…")
    return CheckResult(name, Status.WARN, detail, fix)


def _mysql_strict_mode(connection: Connection, erp: bool) -> CheckResult:
    sql_mode = str(connection.execute(text("SELECT @@SESSION.sql_mode")).scalar_one() or "")
    modes = {mode.strip().upper() for mode in sql_mode.split(",") if mode.strip()}
    name = _label(_("database strict mode"), erp)
    strict = sorted(modes & _STRICT_MODES)
    if strict:
        return CheckResult(name, Status.PASS, _("sql_mode has {mode}").format(mode=strict[0]))
    detail = _(
        "sql_mode ({mode}) has no strict mode, so the server silently cuts text that is too "
        "long and clips numbers out of range"
    ).format(mode=sql_mode or "''")
    fix = _(
        "Add STRICT_TRANS_TABLES to sql_mode under [mysqld] in the server's configuration and "
        "restart the server."
    )
    return CheckResult(name, Status.WARN, detail, fix)


def _mysql_time_zone(connection: Connection, erp: bool) -> CheckResult:
    system, global_zone, session = connection.execute(
        text("SELECT @@system_time_zone, @@GLOBAL.time_zone, @@SESSION.time_zone")
    ).one()
    server = _("{system} (time_zone {global_zone})").format(system=system, global_zone=global_zone)
    return _time_zone_result(_label(_("database time zone"), erp), server, session, "+00:00")


def _postgresql_encoding(connection: Connection, erp: bool) -> CheckResult:
    encoding = connection.execute(text("SHOW server_encoding")).scalar_one()
    name = _label(_("database character set"), erp)
    if str(encoding).upper() == "UTF8":
        return CheckResult(name, Status.PASS, _("encoding {encoding}").format(encoding=encoding))
    detail = _("encoding {encoding}, not UTF8").format(encoding=encoding)
    fix = _(
        "Chinese text needs UTF8, and a database's encoding cannot be changed: create a new "
        "one with CREATE DATABASE … ENCODING 'UTF8' TEMPLATE template0 and move the data "
        "with pg_dump and pg_restore."
    )
    return CheckResult(name, Status.FAIL, detail, fix)


def _postgresql_time_zone(connection: Connection, erp: bool) -> CheckResult:
    # reset_val is the zone a new session starts with, before syncd's sessions set UTC.
    server, session = connection.execute(
        text(
            "SELECT (SELECT reset_val FROM pg_settings WHERE name = 'TimeZone'), "
            "current_setting('TimeZone')"
        )
    ).one()
    return _time_zone_result(_label(_("database time zone"), erp), server, session, "UTC")


def _time_zone_result(name: str, server: str, session: str, expected: str) -> CheckResult:
    """Show the server's own zone and check that syncd's session runs in UTC.

    The server's zone (often Beijing time) is information only: syncd's sessions set their
    own zone, so stored times are UTC whatever the server uses.
    """
    if session == expected:
        detail = _(
            "server {server}; syncd's sessions use {session}, so stored times are UTC"
        ).format(server=server, session=session)
        return CheckResult(name, Status.PASS, detail)
    detail = _("server {server}; syncd's session uses {session}, not {expected}").format(
        server=server, session=session, expected=expected
    )
    fix = _(
        "syncd sets the session time zone on every connection; something between syncd and "
        "the server, such as a connection pooler, changes it. Connect to the server directly."
    )
    return CheckResult(name, Status.FAIL, detail, fix)


def check_migrations(url: str, upgrade: str) -> CheckResult:
    """Compare the revision of syncd's schema with the newest migration.

    Args:
        url: syncd's database.
        upgrade: the fix that upgrades the schema (``syncd db upgrade``).
    """
    name = _("migrations")
    engine = create_db_engine(url)
    try:
        current = migrate.current_revision(engine)
    except SQLAlchemyError as exc:
        detail = _("cannot read the schema revision ({error})").format(
            error=database_error_reason(exc)
        )
        return CheckResult(name, Status.FAIL, detail, store_error(url, exc).fix)
    finally:
        engine.dispose()

    head = migrate.head_revision(url)
    if current == head:
        return CheckResult(name, Status.PASS, _("at revision {revision}").format(revision=head))
    if current is None:
        return CheckResult(name, Status.FAIL, _("the database has no syncd tables yet"), upgrade)
    scripts = ScriptDirectory.from_config(migrate.alembic_config(url))
    if current not in {script.revision for script in scripts.walk_revisions()}:
        detail = _(
            "the schema is at revision {current}, which this syncd version does not know: "
            "a newer syncd upgraded it"
        ).format(current=current)
        fix = _("Run the syncd version that upgraded the database, or a newer one.")
        return CheckResult(name, Status.FAIL, detail, fix)
    detail = _("the schema is at revision {current}, not {head}").format(current=current, head=head)
    return CheckResult(name, Status.FAIL, detail, upgrade)
