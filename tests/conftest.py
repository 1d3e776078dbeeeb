"""Shared fixtures: a clean environment, the database URLs under test, the local sandbox."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from syncd import i18n, logs

pytest_plugins = ["tests.sandbox_fixtures"]

# Database servers the suite runs against besides SQLite; CI sets both.
POSTGRESQL_URL_VARIABLE = "SYNCD_TEST_POSTGRESQL_URL"
MARIADB_URL_VARIABLE = "SYNCD_TEST_MARIADB_URL"

_DATABASE_URLS = {
    "postgresql": os.environ.get(POSTGRESQL_URL_VARIABLE),
    "mariadb": os.environ.get(MARIADB_URL_VARIABLE),
}


@pytest.fixture(autouse=True)
def _clean_environment(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Remove every SYNCD_ variable and proxy variable, and use English and plain logs."""
    for name in list(os.environ):
        upper = name.upper()
        if upper.startswith("SYNCD_") or upper in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"):
            monkeypatch.delenv(name, raising=False)
    monkeypatch.delenv("CREDENTIALS_DIRECTORY", raising=False)
    i18n.activate("en")
    logs.configure_logging("json", "debug")
    yield
    i18n.activate("en")


def _database_params() -> list[object]:
    params: list[object] = [pytest.param("sqlite", id="sqlite")]
    for name, url in _DATABASE_URLS.items():
        variable = POSTGRESQL_URL_VARIABLE if name == "postgresql" else MARIADB_URL_VARIABLE
        marks = (
            []
            if url
            else [pytest.mark.skip(reason=f"{name}: set {variable} to run against a {name} server")]
        )
        params.append(pytest.param(name, id=name, marks=marks))
    return params


@pytest.fixture(params=_database_params())
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database URL for each backend under test; server backends need their variable set."""
    backend = request.param
    if backend == "sqlite":
        return f"sqlite:///{tmp_path_factory.mktemp('db') / 'syncd.sqlite3'}"
    url = _DATABASE_URLS[backend]
    assert url is not None
    problem = _unreachable(url)
    if problem is not None:
        variable = POSTGRESQL_URL_VARIABLE if backend == "postgresql" else MARIADB_URL_VARIABLE
        pytest.skip(f"{backend} server named by {variable} is unreachable: {problem}")
    return url


_REACHABILITY: dict[str, str | None] = {}


def _unreachable(url: str) -> str | None:
    """Return why the server at ``url`` cannot be used, or None; checked once per session."""
    if url not in _REACHABILITY:
        from sqlalchemy import text  # noqa: PLC0415 - only database tests need SQLAlchemy
        from sqlalchemy.exc import SQLAlchemyError  # noqa: PLC0415

        from syncd.db.engine import create_db_engine  # noqa: PLC0415

        engine = create_db_engine(url)
        try:
            with engine.connect() as connection:
                connection.execute(text("SELECT 1"))
            _REACHABILITY[url] = None
        except SQLAlchemyError as exc:
            _REACHABILITY[url] = str(exc).splitlines()[0]
        finally:
            engine.dispose()
    return _REACHABILITY[url]


def reset_database(url: str) -> None:
    """Drop syncd's tables and alembic's version table, leaving other tables alone."""
    from sqlalchemy import MetaData  # noqa: PLC0415 - only database tests need SQLAlchemy

    from syncd.db.engine import create_db_engine  # noqa: PLC0415
    from syncd.db.models import TABLE_PREFIX  # noqa: PLC0415

    engine = create_db_engine(url)
    try:
        metadata = MetaData()
        metadata.reflect(
            engine,
            only=lambda name, _meta: name.startswith(TABLE_PREFIX),
        )
        metadata.drop_all(engine)
    finally:
        engine.dispose()


@pytest.fixture
def migrated_database_url(database_url: str) -> str:
    """A database of each backend under test, emptied and migrated to the newest revision."""
    from syncd.db import migrate  # noqa: PLC0415

    reset_database(database_url)
    migrate.upgrade(database_url)
    return database_url
