"""Database outages: which errors pause the daemon, the backoff, and the probe that resumes."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import psycopg
import pymysql
import pytest
from sqlalchemy import Engine, create_engine
from sqlalchemy.exc import IntegrityError, OperationalError
from structlog.testing import capture_logs

from syncd import errors, systemd
from syncd.daemon import wait_for_database
from syncd.db.outage import DatabaseOutage, is_connection_error
from tests.unit.fakes import FakeTime


def _wrapped(orig: Exception, *, invalidated: bool = False) -> OperationalError:
    return OperationalError("SELECT 1", {}, orig, connection_invalidated=invalidated)


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (_wrapped(psycopg.OperationalError("connection failed: Connection refused")), True),
        (_wrapped(psycopg.errors.AdminShutdown("terminating connection")), True),
        (_wrapped(psycopg.errors.DeadlockDetected("deadlock detected")), False),
        (_wrapped(psycopg.errors.QueryCanceled("canceling statement")), False),
        (_wrapped(pymysql.err.OperationalError(2003, "Can't connect to MySQL server")), True),
        (_wrapped(pymysql.err.OperationalError(2013, "Lost connection during query")), True),
        (_wrapped(pymysql.err.InterfaceError(0, "")), True),
        (_wrapped(pymysql.err.OperationalError(1213, "Deadlock found")), False),
        (_wrapped(pymysql.err.OperationalError(1205, "Lock wait timeout exceeded")), False),
        (_wrapped(sqlite3.OperationalError("database is locked")), False),
        (_wrapped(sqlite3.OperationalError("closed"), invalidated=True), True),
        (IntegrityError("INSERT", {}, sqlite3.IntegrityError("UNIQUE")), False),
        (ValueError("not a database error"), False),
    ],
    ids=[
        "pg-refused",
        "pg-admin-shutdown",
        "pg-deadlock",
        "pg-query-canceled",
        "mysql-cannot-connect",
        "mysql-lost",
        "mysql-closed",
        "mysql-deadlock",
        "mysql-lock-wait",
        "sqlite-locked",
        "invalidated",
        "integrity",
        "other",
    ],
)
def test_connection_errors_are_told_apart(error: Exception, expected: bool) -> None:
    assert is_connection_error(error) is expected


def test_wrapped_store_error_counts() -> None:
    store = errors.StoreError("postgresql://syncd@db/syncd", "could not connect", "fix")
    store.__cause__ = _wrapped(psycopg.OperationalError("server closed the connection"))

    assert is_connection_error(store)


class _Database:
    """An in-memory SQLite engine whose connections fail while ``down`` is set."""

    def __init__(self) -> None:
        self.down = True
        self.engine: Engine = create_engine("sqlite://", creator=self._connect)

    def _connect(self) -> sqlite3.Connection:
        if self.down:
            raise sqlite3.OperationalError("unable to open database file")
        return sqlite3.connect(":memory:")


@pytest.fixture
def database() -> _Database:
    return _Database()


def _refusing_server() -> Engine:
    """A PostgreSQL engine with a password in its URL whose server refuses every connection."""

    def refuse() -> Any:
        raise psycopg.OperationalError("connection failed: Connection refused")

    return create_engine(
        "postgresql+psycopg://syncd:Secret-Pw@db.example:5432/syncd", creator=refuse
    )


def _lost() -> OperationalError:
    return _wrapped(psycopg.OperationalError("server closed the connection unexpectedly"))


def test_outage_backs_off_to_the_cap() -> None:
    clock = FakeTime()
    outage = DatabaseOutage(_refusing_server(), 10.0, clock=clock.monotonic, jitter=lambda: 1.0)

    with capture_logs() as logs:
        assert outage.report(_lost())
        delays = []
        for _ in range(6):
            state = outage.state()
            assert state is not None
            delays.append(state.retry_in)
            clock.advance(state.retry_in)
            assert outage.is_paused()  # the probe fails: the database is still down

    assert delays == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    unreachable = [entry for entry in logs if entry["event"] == "database_unreachable"]
    assert [entry["attempt"] for entry in unreachable] == [1, 2, 3, 4, 5, 6, 7]
    assert unreachable[0]["error"] == "OperationalError"
    assert unreachable[0]["database"] == "postgresql+psycopg://syncd:***@db.example:5432/syncd"
    assert all("Secret-Pw" not in str(entry) for entry in logs)


def test_jitter_shortens_delay_at_most_half(database: _Database) -> None:
    clock = FakeTime()
    outage = DatabaseOutage(database.engine, 300.0, clock=clock.monotonic, jitter=lambda: 0.0)

    outage.report(_lost())
    outage.report(_lost())  # while the pause waits, a second report counts once

    state = outage.state()
    assert state is not None
    assert state.attempts == 1
    assert state.retry_in == 0.5


def test_paused_until_retry_time(database: _Database) -> None:
    clock = FakeTime()
    outage = DatabaseOutage(database.engine, 60.0, clock=clock.monotonic, jitter=lambda: 1.0)
    outage.report(_lost())
    database.down = False

    clock.advance(0.5)
    assert outage.is_paused()  # the try is not due yet, so the database is not probed
    clock.advance(0.5)
    with capture_logs() as logs:
        assert not outage.is_paused()

    assert outage.state() is None
    assert [entry["event"] for entry in logs] == ["database_reachable_again"]
    assert logs[0]["attempts"] == 1
    assert logs[0]["paused_seconds"] == 1.0


def test_other_errors_do_not_pause(database: _Database) -> None:
    outage = DatabaseOutage(database.engine, 60.0)

    deadlock = _wrapped(pymysql.err.OperationalError(1213, "Deadlock found"))

    assert not outage.report(deadlock)
    assert not outage.is_paused()
    assert outage.state() is None


def test_outage_restarts_backoff_after_recovery(database: _Database) -> None:
    clock = FakeTime()
    outage = DatabaseOutage(database.engine, 60.0, clock=clock.monotonic, jitter=lambda: 1.0)
    outage.report(_lost())
    clock.advance(1.0)
    outage.is_paused()
    clock.advance(2.0)
    database.down = False
    assert not outage.is_paused()

    outage.report(_lost())

    state = outage.state()
    assert state is not None
    assert state.attempts == 1
    assert state.retry_in == 1.0


def _unreachable_store_error() -> errors.StoreError:
    store = errors.StoreError("postgresql://syncd@db/syncd", "could not connect", "fix")
    store.__cause__ = _lost()
    return store


def test_start_waits_for_database() -> None:
    failures = [_unreachable_store_error(), _unreachable_store_error()]

    def check() -> None:
        if failures:
            raise failures.pop()

    with capture_logs() as logs:
        reached = wait_for_database(check, threading.Event(), 1.0, systemd.Notifier(None))

    assert reached
    events = [entry["event"] for entry in logs]
    assert events == ["database_unreachable", "database_unreachable", "database_reachable_again"]
    assert logs[1]["attempt"] == 2
    assert logs[2]["attempts"] == 2
    assert logs[2]["paused_seconds"] >= 1.0
    assert logs[0]["database"] == "postgresql://syncd@db/syncd"


def test_start_wait_ends_on_stop(tmp_path: Path) -> None:
    stop = threading.Event()
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    listener.bind(str(tmp_path / "notify"))
    listener.settimeout(2)

    def check() -> None:
        stop.set()  # SIGTERM arrives while the database is away
        raise _unreachable_store_error()

    try:
        notifier = systemd.Notifier(str(tmp_path / "notify"))
        reached = wait_for_database(check, stop, 60.0, notifier)
        received = [listener.recv(4096) for _ in range(3)]
    finally:
        listener.close()

    assert not reached
    assert received[0].startswith(b"STATUS=waiting for the database")
    assert received[1].startswith(b"EXTEND_TIMEOUT_USEC=")
    assert received[-1] == b"STOPPING=1"


def test_start_wait_raises_other_store_errors() -> None:
    def check() -> None:
        raise errors.StoreError("sqlite:///x.db", "the database has no syncd tables yet", "fix")

    with pytest.raises(errors.StoreError, match="no syncd tables"):
        wait_for_database(check, threading.Event(), 60.0, systemd.Notifier(None))


def test_one_caller_probes_at_a_time() -> None:
    entered = threading.Event()
    release = threading.Event()

    def slow_connect() -> sqlite3.Connection:
        entered.set()
        release.wait(5)
        raise sqlite3.OperationalError("unable to open database file")

    clock = FakeTime()
    engine = create_engine("sqlite://", creator=slow_connect)
    outage = DatabaseOutage(engine, 60.0, clock=clock.monotonic, jitter=lambda: 1.0)
    outage.report(_lost())
    clock.advance(1.0)
    results: list[bool] = []
    prober = threading.Thread(target=lambda: results.append(outage.is_paused()))
    prober.start()
    assert entered.wait(5)

    started = time.monotonic()
    others = [outage.is_paused(), outage.report(_lost())]
    waited = time.monotonic() - started
    release.set()
    prober.join(5)

    assert others == [True, True]
    assert waited < 1.0
    assert results == [True]
    state = outage.state()
    assert state is not None
    assert state.attempts == 2  # the report during the probe did not count again
