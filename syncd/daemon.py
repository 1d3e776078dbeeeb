"""The daemon's life under systemd: ready, watchdog, status line, reload and stop.

``syncd run`` checks the settings, waits for the database to respond (:func:`wait_for_database`)
and checks its schema, builds the job context and then hands it to :class:`Daemon`:

1. ``start`` starts the dispatcher (the APScheduler that runs the jobs) and only then sends
   ``READY=1`` with a first status line.
2. A watchdog thread sends ``WATCHDOG=1`` at half of systemd's ``WatchdogSec=``, but only
   while the scheduler's heartbeat job keeps running: a stuck scheduler stops the pings, and
   systemd restarts the service.
3. A scheduler job refreshes ``STATUS=`` from the database every :data:`STATUS_INTERVAL`
   seconds, and at once when a database outage begins or ends.
4. SIGHUP (``systemctl reload``) sends ``RELOADING=1``, reads the settings again and hands
   them to the job context, then sends ``READY=1``. Invalid settings are logged and the old
   ones stay in force.
5. SIGTERM or SIGINT sends ``STOPPING=1``. The dispatcher lets the pages and confirmations
   in flight commit and gives the leases back, then the process exits with status 0.

Signal handlers only set events; the main thread does the work.
"""

from __future__ import annotations

import random
import signal
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from types import FrameType

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import SQLAlchemyError

from syncd import errors, metrics, status, systemd
from syncd.config import Settings
from syncd.db import outbox
from syncd.db.models import Account, Lease, Run, table_of
from syncd.db.outage import OutageState, is_connection_error, retry_delay
from syncd.i18n import gettext as _
from syncd.jobs.context import JobContext
from syncd.logs import get_logger
from syncd.scheduler import HEARTBEAT_INTERVAL, Dispatcher

log = get_logger(__name__)

STATUS_INTERVAL = 30.0  # seconds between two refreshes of the STATUS= line
OUTAGE_CHECK_INTERVAL = 1.0  # seconds between two looks at a database outage
# Start-up time asked of systemd beyond the next try to reach the database (seconds).
START_TIMEOUT_MARGIN = 60.0
# A heartbeat older than this means the scheduler stopped running jobs (seconds).
HEARTBEAT_MAX_AGE = 6 * HEARTBEAT_INTERVAL

_ACCOUNTS = table_of(Account)
_LEASES = table_of(Lease)
_RUNS = table_of(Run)


@dataclass
class Signals:
    """Events set by the signal handlers, and the last stop signal received."""

    stop: threading.Event
    reload: threading.Event
    received: signal.Signals | None = None


@contextmanager
def handle_signals(stop: threading.Event) -> Iterator[Signals]:
    """Set ``stop`` on SIGTERM and SIGINT, and the reload event on SIGHUP, inside the block.

    Installed before the settings are read, so a SIGHUP during start-up cannot end the
    process with the signal's default action.
    """
    events = Signals(stop, threading.Event())

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        events.received = signal.Signals(signum)
        stop.set()

    def request_reload(_signum: int, _frame: FrameType | None) -> None:
        events.reload.set()

    previous = {
        signal.SIGTERM: signal.signal(signal.SIGTERM, request_stop),
        signal.SIGINT: signal.signal(signal.SIGINT, request_stop),
        signal.SIGHUP: signal.signal(signal.SIGHUP, request_reload),
    }
    try:
        yield events
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def wait_for_database(
    check: Callable[[], None],
    stop: threading.Event,
    max_delay: float,
    notifier: systemd.Notifier,
) -> bool:
    """Run ``check`` until it passes; return False when ``stop`` is set first.

    A database that is still starting (after a power cut both machines boot again) must not
    send syncd into systemd's restart loop and its start limit. While it waits, syncd
    requests more start-up time from systemd and keeps the watchdog fed.

    Raises:
        errors.StoreError: the database responded but is unusable (a schema to upgrade, a
            refused login): waiting would not help.
    """
    attempt = 0
    started = time.monotonic()
    while True:
        try:
            check()
        except errors.StoreError as exc:
            if not is_connection_error(exc):
                raise
            attempt += 1
            delay = retry_delay(attempt, max_delay, random.random())  # noqa: S311 - jitter
            log.warning(
                "database_unreachable",
                attempt=attempt,
                retry_in_seconds=round(delay, 1),
                error=type(exc.__cause__ or exc).__name__,
                reason=exc.reason,
                database=exc.database,
            )
            notifier.status(
                _("waiting for the database: {attempts} tries, next in {seconds} s").format(
                    attempts=attempt, seconds=round(delay)
                )
            )
            if _sleep_alive(delay, stop, notifier):
                notifier.stopping()
                return False
            continue
        if attempt:
            paused = round(time.monotonic() - started, 1)
            log.info("database_reachable_again", attempts=attempt, paused_seconds=paused)
        return True


def _sleep_alive(seconds: float, stop: threading.Event, notifier: systemd.Notifier) -> bool:
    """Wait ``seconds`` while telling systemd that start-up goes on; True when stopped."""
    timeout = systemd.watchdog_timeout()
    step = seconds if timeout is None else min(seconds, timeout / 2)
    deadline = time.monotonic() + seconds
    while (left := deadline - time.monotonic()) > 0:
        notifier.extend_timeout(left + START_TIMEOUT_MARGIN)
        if timeout is not None:
            notifier.watchdog()
        if stop.wait(min(step, left)):
            return True
    return False


class Watchdog:
    """Sends ``WATCHDOG=1`` every ``interval`` seconds while the heartbeat is fresh."""

    def __init__(
        self,
        notifier: systemd.Notifier,
        interval: float,
        heartbeat_age: Callable[[], float],
        max_age: float = HEARTBEAT_MAX_AGE,
    ) -> None:
        self.notifier = notifier
        self.interval = interval
        self.heartbeat_age = heartbeat_age
        self.max_age = max_age
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._run, name="syncd-watchdog", daemon=True)

    def start(self) -> None:
        """Send the first ping now and the next ones from a thread of its own."""
        self._thread.start()

    def stop(self) -> None:
        """Stop pinging; systemd stops expecting pings once STOPPING=1 arrived."""
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _run(self) -> None:
        withheld = False
        while True:
            age = self.heartbeat_age()
            if age <= self.max_age:
                if withheld:
                    log.info("watchdog_pings_resumed", heartbeat_age_seconds=round(age, 1))
                withheld = False
                self.notifier.watchdog()
            elif not withheld:
                # systemd restarts the service when WatchdogSec passes without a ping.
                log.error(
                    "watchdog_pings_withheld",
                    heartbeat_age_seconds=round(age, 1),
                    max_age_seconds=self.max_age,
                )
                withheld = True
            if self._done.wait(self.interval):
                return


@dataclass(frozen=True)
class DaemonFigures:
    """Figures of the status line, read from the database."""

    accounts: int
    held: int  # accounts whose lease this process holds
    orders_last_hour: int  # orders new or updated by runs that finished in the last hour
    outbox_pending: int  # rows waiting to be sent, including those being sent
    outbox_dead: int
    quarantined: int  # open quarantine entries


def read_figures(connection: Connection, owner: str, now: datetime) -> DaemonFigures:
    """Count the status line's figures, with the queries ``syncd status`` and the metrics use."""
    accounts = connection.execute(select(func.count()).select_from(_ACCOUNTS)).scalar_one()
    held = connection.execute(
        select(func.count()).select_from(_LEASES).where(_LEASES.c.owner == owner)
    ).scalar_one()
    orders = connection.execute(
        select(func.sum(_RUNS.c.orders_new + _RUNS.c.orders_updated)).where(
            _RUNS.c.finished_at >= now - timedelta(hours=1)
        )
    ).scalar_one()
    # The deadline window does not matter to these two figures.
    summaries = outbox.summarize(connection, now, timedelta(0)).values()
    quarantined = status.count_open_quarantine(connection).values()
    return DaemonFigures(
        accounts=int(accounts),
        held=int(held),
        orders_last_hour=int(orders or 0),
        outbox_pending=sum(summary.depth for summary in summaries),
        outbox_dead=sum(summary.by_state.get(outbox.DEAD, 0) for summary in summaries),
        quarantined=sum(sum(streams.values()) for streams in quarantined),
    )


def format_status(figures: DaemonFigures | None, outage: OutageState | None) -> str:
    """Return the one-line status for ``systemctl status``."""
    parts = []
    if outage is not None:
        parts.append(
            _(
                "paused: database unreachable since {since}, {attempts} tries, next in {seconds} s"
            ).format(
                since=outage.since.strftime("%H:%M:%S UTC"),
                attempts=outage.attempts,
                seconds=round(outage.retry_in),
            )
        )
    if figures is not None:
        # "label value" pairs read right in both languages for any count, without plurals.
        parts.append(
            _(
                "accounts held {held} of {accounts}; orders synced in the last hour {orders}; "
                "outbox pending {pending}, dead {dead}; quarantined {quarantined}"
            ).format(
                held=figures.held,
                accounts=figures.accounts,
                orders=figures.orders_last_hour,
                pending=figures.outbox_pending,
                dead=figures.outbox_dead,
                quarantined=figures.quarantined,
            )
        )
    return "; ".join(parts) if parts else _("running")


class Daemon:
    """One ``syncd run`` process: the dispatcher plus systemd's notifications."""

    def __init__(
        self,
        ctx: JobContext,
        signals: Signals,
        reload_settings: Callable[[], Settings],
        notifier: systemd.Notifier | None = None,
    ) -> None:
        self.ctx = ctx
        self.signals = signals
        self.reload_settings = reload_settings
        self.notifier = notifier or systemd.Notifier.from_environment()
        self.dispatcher = Dispatcher(ctx)
        self.watchdog: Watchdog | None = None
        self.metrics = metrics.MetricsEndpoint()  # off until start
        self._figures: DaemonFigures | None = None
        self._outage_seen: tuple[bool, int] = (False, 0)  # paused, failed tries
        self._status_lock = threading.Lock()

    def start(self) -> None:
        """Start the metrics endpoint and the scheduler, then tell systemd the service is ready.

        Raises:
            errors.ConfigError: the metrics endpoint cannot listen on its host and port.
        """
        # First, so that a metrics port already in use stops the start before any job runs.
        self.metrics = metrics.start_metrics(self.ctx)
        self.dispatcher.start()
        try:
            self._announce()
        except BaseException:
            # The scheduler's worker threads would keep the process alive after the error.
            self.dispatcher.stop()
            raise

    def _announce(self) -> None:
        scheduler = self.dispatcher.scheduler
        scheduler.add_job(
            self.refresh_status, "interval", seconds=STATUS_INTERVAL, id="systemd_status"
        )
        # A probe may take up to the connect timeout. A second instance then returns at once,
        # which keeps APScheduler from warning that the job was skipped.
        scheduler.add_job(
            self._check_outage,
            "interval",
            seconds=OUTAGE_CHECK_INTERVAL,
            id="database_outage",
            max_instances=2,
        )

        status = self.refresh_status(send=False)
        self.notifier.ready(status)
        timeout = systemd.watchdog_timeout()
        if timeout is not None and self.notifier.is_enabled:
            self.watchdog = Watchdog(self.notifier, timeout / 2, self.dispatcher.heartbeat_age)
            self.watchdog.start()
        log.info(
            "daemon_ready",
            owner=self.ctx.owner,
            notify=self.notifier.is_enabled,
            watchdog_seconds=timeout,
        )

    def serve(self) -> None:
        """Run until SIGTERM or SIGINT, reloading on SIGHUP, then stop cleanly."""
        try:
            while not self.signals.stop.wait(1.0):
                if self.signals.reload.is_set():
                    self.signals.reload.clear()
                    self.reload()
        finally:
            self.shutdown()

    def shutdown(self) -> None:
        """Tell systemd the service is stopping, then let in-flight work commit."""
        received = self.signals.received
        log.info("stop_requested", signal=received.name if received is not None else None)
        self.notifier.stopping(_("stopping: letting the work in flight finish"))
        if self.watchdog is not None:
            self.watchdog.stop()
        self.dispatcher.stop()
        self.metrics.stop()
        self.notifier.close()

    def reload(self) -> None:
        """Read the settings again and hand them to the job context; keep the old on error."""
        self.notifier.reloading()
        log.info("settings_reload_requested")
        try:
            settings = self.reload_settings()
            settings.require_job_settings()
        except errors.SettingsError as exc:
            log.error("settings_reload_failed", problems=_problem_lines(exc))
        else:
            self._apply(settings)
        self.notifier.ready(self.refresh_status(send=False))

    def _apply(self, settings: Settings) -> None:
        try:
            self.ctx.reload(settings)  # logs settings_reloaded with the names that changed
        except errors.SettingsError as exc:
            log.error("settings_reload_failed", problems=_problem_lines(exc))
        except (errors.SyncdError, SQLAlchemyError, OSError) as exc:
            log.error("settings_reload_failed", error=str(exc).splitlines()[0])

    def refresh_status(self, *, send: bool = True) -> str:
        """Read the figures (unless the database is away), send STATUS= and return it."""
        with self._status_lock:
            outage = self.dispatcher.outage
            if not outage.is_paused():
                try:
                    with self.ctx.engine.connect() as connection:
                        self._figures = read_figures(connection, self.ctx.owner, self.ctx.now())
                except SQLAlchemyError as exc:
                    if not outage.report(exc):
                        log.warning("status_read_failed", error=str(exc).splitlines()[0])
            state = outage.state()
            self._outage_seen = (state is not None, 0 if state is None else state.attempts)
            text = format_status(self._figures, state)
            if send:
                self.notifier.status(text)
            return text

    def _check_outage(self) -> None:
        """Probe the database when a try is due; refresh the status when the outage changes."""
        outage = self.dispatcher.outage
        outage.is_paused()
        state = outage.state()
        if (state is not None, 0 if state is None else state.attempts) != self._outage_seen:
            self.refresh_status()


def _problem_lines(exc: errors.SettingsError) -> list[str]:
    """Return each invalid setting with what it expects, leaving its value out.

    An unknown name's value may be a misspelt secret.
    """
    return [f"{problem.variable}: {problem.expected}" for problem in exc.problems]
