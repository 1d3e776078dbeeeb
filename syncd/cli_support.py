"""Helpers shared by the command modules: settings, the database, operator-facing formats."""

from __future__ import annotations

import os
import re
import shlex
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from babel.dates import format_timedelta
from rich.console import Console
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd import config, errors, i18n, logs
from syncd.amazon import marketplaces
from syncd.db import migrate
from syncd.db.engine import (
    create_db_engine,
    missing_sqlite_folder,
    safe_url,
    sqlite_file,
    sqlite_slashes_hint,
    store_error,
)
from syncd.i18n import gettext as _

# Width of tables written to a pipe or a file, where rich would otherwise assume 80 columns
# and cut the headers. $COLUMNS, when set, wins.
PIPE_WIDTH = 160  # columns
# A number directly followed by its unit, as CLDR writes Chinese durations ("3分钟").
_NUMBER_BEFORE_UNIT = re.compile(r"(?<=\d)(?=[^\s\d.,])")


def load_settings(ctx: click.Context) -> config.Settings:
    """Return the command's validated settings and configure logging from them.

    Every command that reads settings calls this first, so an invalid setting stops it before
    it does anything. The sandbox reads none of syncd's settings and does not call it.
    """
    obj = ctx.find_root().obj or {}
    settings = obj.get("settings")
    if settings is None:
        settings = config.load_settings(obj.get("env_file"))
        logs.configure_logging(settings.log_format, settings.log_level)
        obj["settings"] = settings
    assert isinstance(settings, config.Settings)
    return settings


@contextmanager
def open_database(settings: config.Settings) -> Iterator[Engine]:
    """Yield an engine on a database whose schema is current, and dispose of it afterwards.

    Raises:
        errors.StoreError: the database is unreachable or needs ``syncd db upgrade``.
    """
    folder_missing = missing_sqlite_folder(settings.database_url)
    if folder_missing is not None:
        raise folder_missing
    missing = sqlite_file(settings.database_url)
    if missing is not None and not missing.exists():
        # Connecting would create an empty file, which a later run would take for a new
        # installation; only 'db upgrade' creates the database.
        raise errors.StoreError(
            safe_url(settings.database_url),
            _("the SQLite file {path} does not exist").format(path=missing),
            _("{upgrade} Otherwise correct the path in SYNCD_DATABASE_URL: {slashes}").format(
                upgrade=_upgrade_hint(), slashes=sqlite_slashes_hint()
            ),
        )
    engine = create_db_engine(settings.database_url)
    try:
        try:
            current = migrate.current_revision(engine)
        except SQLAlchemyError as exc:
            raise store_error(settings.database_url, exc) from exc
        head = migrate.head_revision(settings.database_url)
        if current != head:
            problem = (
                _("the database has no syncd tables yet")
                if current is None
                else _("the schema is at revision {current}, not {head}").format(
                    current=current, head=head
                )
            )
            raise errors.StoreError(safe_url(settings.database_url), problem, _upgrade_hint())
        yield engine
    finally:
        engine.dispose()


def _upgrade_hint() -> str:
    """Tell the operator to run 'syncd db upgrade', with the env file this command read."""
    ctx = click.get_current_context(silent=True)
    env_file = (ctx.find_root().obj or {}).get("env_file") if ctx is not None else None
    if env_file is None:
        return _("Run 'syncd db upgrade' first.")
    command = f"syncd --env-file {shlex.quote(str(env_file))} db upgrade"
    return _("Run this first: {command}").format(command=command)


def marketplace_label(marketplace_id: str) -> str:
    """Return ``DE`` for Germany's id, or the id itself when it is unknown."""
    try:
        return marketplaces.get_marketplace(marketplace_id).country_code
    except errors.MarketplaceError:
        return marketplace_id


def create_console() -> Console:
    """Return a rich console for tables on standard output.

    On a terminal rich fits the output to the terminal's width. Written to a pipe or a file,
    the output is :data:`PIPE_WIDTH` columns wide, or ``$COLUMNS`` when that is set, so that
    headers such as "Quarantined" are not cut.
    """
    console = Console()
    if console.is_terminal:
        return console
    columns = os.environ.get("COLUMNS", "")
    return Console(width=int(columns) if columns.isdigit() and int(columns) > 0 else PIPE_WIDTH)


def format_duration(value: timedelta | None) -> str:
    """Format a duration in the operator's language, such as "3 minutes" or "3 分钟"."""
    if value is None:
        return "-"
    language = i18n.active_language()
    # CLDR's long Chinese form writes seconds as 秒钟, but syncd's other text writes 秒. The
    # short form differs from the long one only there, and English keeps the long form.
    text = str(
        format_timedelta(
            value, locale=language, threshold=2, format="short" if language == "zh_CN" else "long"
        )
    )
    return _NUMBER_BEFORE_UNIT.sub(" ", text)


def format_time(value: datetime | None, *, short: bool = False) -> str:
    """Format a UTC time to the minute; ``short`` leaves out the year and the zone."""
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M UTC")
