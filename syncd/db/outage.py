"""Database outages: pause the daemon's work while its database does not respond.

When a job finds the connection gone (the server restarted, a network cut, a failover), the
daemon stops starting new work and tries the database again after a delay that doubles with
each failed try, with jitter, up to ``SYNCD_DATABASE_RETRY_MAX_DELAY``. The first successful
``SELECT 1`` ends the pause. Work that was in flight rolls back with its transaction and is
done again by the next run, which the jobs' upserts, page tokens and package references make
safe. The process never exits because of an outage, so systemd does not restart it in a loop.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy import Engine, text
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from syncd.db.engine import database_error_reason, safe_url
from syncd.logs import get_logger

log = get_logger(__name__)

FIRST_RETRY_DELAY = 1.0  # seconds; doubled after each failed try
# MySQL and MariaDB client and server error codes of a connection that is gone or cannot be
# made: server shutdown (1053), connection killed (1927), can't connect (2002, 2003), server
# gone away (2006), lost connection (2013, 2055), closed for inactivity (4031).
_MYSQL_CONNECTION_CODES = frozenset({1053, 1927, 2002, 2003, 2006, 2013, 2055, 4031})
# PostgreSQL SQLSTATEs of the same: class 08 (connection exception) and the operator or
# crash shutdowns 57P01, 57P02 and 57P03.
_POSTGRESQL_SHUTDOWN_STATES = frozenset({"57P01", "57P02", "57P03"})


def is_connection_error(exc: BaseException) -> bool:
    """Return True when ``exc``, or an exception it was raised from, is a lost connection.

    Errors of one statement (a deadlock, a lock wait timeout, a constraint) are not: they
    concern that transaction only, and SQLite has no connection to lose.
    """
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, DBAPIError) and _is_lost_connection(seen):
            return True
        seen = seen.__cause__
    return False


def _is_lost_connection(exc: DBAPIError) -> bool:
    if exc.connection_invalidated:
        return True
    orig = exc.orig
    module = type(orig).__module__
    name = type(orig).__name__
    if module.startswith("psycopg"):
        state = getattr(orig, "sqlstate", None)
        if state is None:
            # A client-side failure (refused, closed, lost) carries no SQLSTATE at all.
            return name in ("OperationalError", "InterfaceError")
        return str(state).startswith("08") or state in _POSTGRESQL_SHUTDOWN_STATES
    if module.startswith("pymysql"):
        args = getattr(orig, "args", ())
        code = args[0] if args and isinstance(args[0], int) else None
        # pymysql reports a connection it has already closed as (0, '').
        return code in _MYSQL_CONNECTION_CODES or (code == 0 and name == "InterfaceError")
    return False


def retry_delay(attempt: int, max_delay: float, jitter: float) -> float:
    """Return the seconds to wait after failed try number ``attempt`` (from 1).

    The delay doubles from :data:`FIRST_RETRY_DELAY` up to ``max_delay``. Half of it is
    fixed and half scaled by ``jitter`` (from 0 to 1), so nodes that lost the same server do
    not return in step.
    """
    delay = min(max_delay, FIRST_RETRY_DELAY * 2.0 ** min(attempt - 1, 30))
    return delay / 2 + delay / 2 * jitter


@dataclass(frozen=True)
class OutageState:
    """State of an outage, for the status line."""

    since: datetime  # UTC, when the first failure was seen
    attempts: int  # failed tries so far
    retry_in: float  # seconds until the next try


class DatabaseOutage:
    """Whether the database responds, and when to try it again while it does not.

    Thread-safe: the scheduler's jobs and the workers report failures from their own
    threads, and one of them at a time runs the probe that ends the pause.
    """

    def __init__(
        self,
        engine: Engine,
        max_delay: float,
        *,
        clock: Callable[[], float] = time.monotonic,
        jitter: Callable[[], float] = random.random,
    ) -> None:
        self.engine = engine
        self.max_delay = max_delay
        self._clock = clock
        self._jitter = jitter
        self._lock = threading.Lock()
        self._since: datetime | None = None
        self._started: float = 0.0
        self._attempts = 0
        self._retry_at = 0.0
        self._probing = False  # a thread is running the probe

    def report(self, exc: BaseException) -> bool:
        """Start or extend the pause when ``exc`` is a lost connection; return whether it was.

        Failures reported while a pause waits for its next try, or while a probe runs, count
        once: many workers failing together do not lengthen the backoff.
        """
        if not is_connection_error(exc):
            return False
        with self._lock:
            if self._since is not None and (self._probing or self._clock() < self._retry_at):
                return True
            self._fail(exc)
        return True

    def is_paused(self) -> bool:
        """Return True while work must wait; when a try is due, probe the database first.

        One caller at a time runs the probe, outside the lock: the others return True at
        once instead of waiting up to the connect timeout.
        """
        with self._lock:
            if self._since is None:
                return False
            if self._probing or self._clock() < self._retry_at:
                return True
            self._probing = True
        try:
            with self.engine.connect() as connection:
                connection.execute(text("SELECT 1"))
        except SQLAlchemyError as exc:
            with self._lock:
                self._probing = False
                self._fail(exc)
            return True
        with self._lock:
            self._probing = False
            log.info(
                "database_reachable_again",
                attempts=self._attempts,
                paused_seconds=round(self._clock() - self._started, 1),
            )
            self._since = None
            self._attempts = 0
        return False

    def state(self) -> OutageState | None:
        """Return the current outage, or None while the database responds."""
        with self._lock:
            if self._since is None:
                return None
            retry_in = max(0.0, self._retry_at - self._clock())
            return OutageState(self._since, self._attempts, retry_in)

    def _fail(self, exc: BaseException) -> None:
        """Count one failed try and choose the next; the caller holds the lock."""
        now = self._clock()
        if self._since is None:
            self._since = datetime.now(UTC)
            self._started = now
        self._attempts += 1
        delay = retry_delay(self._attempts, self.max_delay, self._jitter())
        self._retry_at = now + delay
        reason = database_error_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        log.warning(
            "database_unreachable",
            attempt=self._attempts,
            retry_in_seconds=round(delay, 1),
            error=type(getattr(exc, "orig", None) or exc).__name__,
            reason=reason,
            database=safe_url(self.engine.url),
        )
