"""Helpers shared by the command modules: settings, the database, operator-facing formats."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta

import click
from babel.dates import format_timedelta
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd import config, errors, i18n, logs
from syncd.amazon import marketplaces
from syncd.db import migrate
from syncd.db.engine import create_db_engine, safe_url, store_error
from syncd.i18n import gettext as _


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
    engine = create_db_engine(settings.database_url)
    try:
        try:
            current = migrate.current_revision(engine)
        except SQLAlchemyError as exc:
            raise store_error(settings.database_url, exc) from exc
        head = migrate.head_revision(settings.database_url)
        if current != head:
            raise errors.StoreError(
                safe_url(settings.database_url),
                _("the schema is at revision {current}, not {head}").format(
                    current=current or _("(empty)"), head=head
                ),
                _("Run 'syncd db upgrade' first."),
            )
        yield engine
    finally:
        engine.dispose()


def marketplace_label(marketplace_id: str) -> str:
    """Return ``DE`` for Germany's id, or the id itself when it is unknown."""
    try:
        return marketplaces.get_marketplace(marketplace_id).country_code
    except errors.MarketplaceError:
        return marketplace_id


def format_duration(value: timedelta | None) -> str:
    """Format a duration in the operator's language, such as "3 minutes" or "3分钟"."""
    if value is None:
        return "-"
    return str(format_timedelta(value, locale=i18n.active_language(), threshold=2))


def format_time(value: datetime | None, *, short: bool = False) -> str:
    """Format a UTC time to the minute; ``short`` leaves out the year and the zone."""
    if value is None:
        return "-"
    return value.strftime("%m-%d %H:%M" if short else "%Y-%m-%d %H:%M UTC")
