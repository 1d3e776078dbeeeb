"""The daemon's dispatcher: APScheduler looks for due accounts and hands them to workers.

Every ``SYNCD_DISPATCH_INTERVAL`` seconds the dispatcher reads which accounts are due (their
next run time lives in the database) and runs the orders job of those whose lease this node
holds on a worker thread, at most ``SYNCD_MAX_WORKERS`` at a time. Every
``SYNCD_SHIPMENTS_INTERVAL`` seconds it looks for accounts with shipment requests or outbox
rows to send and runs their shipments job on a pool of its own (``SYNCD_SHIPMENT_WORKERS``),
so a long orders backfill never delays a tracking number. With a mapping file, every
``SYNCD_BRIDGE_INTERVAL`` seconds the bridge writes changed orders into the ERP and reads the
WMS's shipments. The node keeps the leases it holds between runs and renews them on its
heartbeat (``SYNCD_NODE_HEARTBEAT``, see :class:`syncd.jobs.leasing.NodeLeases`), and both
jobs of one account may run at once under the node's lease. Stopping sets the context's stop
event: quota waits and retries end at once, the page or confirmation in flight commits or
rolls back, and the leases are released.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import UTC
from functools import partial

from apscheduler.events import EVENT_JOB_ERROR, EVENT_JOB_MISSED, JobExecutionEvent
from apscheduler.schedulers.background import BackgroundScheduler

from syncd.db import accounts
from syncd.db.outage import DatabaseOutage
from syncd.jobs.bridge import Bridge
from syncd.jobs.context import JobContext
from syncd.jobs.leasing import NodeLeases
from syncd.jobs.orders import run_orders_for_worker
from syncd.jobs.pii_purge import run_pii_purge
from syncd.jobs.shipments import accounts_with_shipments, run_shipments, warn_near_deadlines
from syncd.logs import get_logger

log = get_logger(__name__)

HEARTBEAT_INTERVAL = 5.0  # seconds between two beats of the scheduler's own heartbeat job
SECRET_AGE_INTERVAL = 3_600.0  # seconds between two looks at the LWA client secret's age


class Dispatcher:
    """Runs due accounts' jobs on a bounded pool, one worker per account at a time."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        settings = ctx.settings
        self.pool = ThreadPoolExecutor(
            max_workers=settings.max_workers, thread_name_prefix="syncd-worker"
        )
        self.ship_pool = ThreadPoolExecutor(
            max_workers=settings.shipment_workers, thread_name_prefix="syncd-shipper"
        )
        self.running: dict[int, Future[None]] = {}
        self.shipping: dict[int, Future[None]] = {}
        self.shipping_started: dict[int, float] = {}  # account id -> monotonic start time
        self.leases = NodeLeases(ctx)
        self.bridge = Bridge(ctx)
        self._lock = threading.Lock()
        self._dispatch_lock = threading.Lock()
        self._shipments_lock = threading.Lock()
        self.scheduler = BackgroundScheduler(
            timezone=UTC,
            job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 30},
        )
        self.scheduler.add_listener(self._on_job_event, EVENT_JOB_ERROR | EVENT_JOB_MISSED)
        self.outage = DatabaseOutage(ctx.engine, settings.database_retry_max_delay)
        self.heartbeat_at = time.monotonic()  # when the scheduler last ran its heartbeat job

    def start(self) -> None:
        """Register the node and claim its accounts, then dispatch every dispatch interval.

        Raises:
            nodes.NodeConflictError: another node is live on this SQLite database.
        """
        settings = self.ctx.settings
        self.leases.join()
        # The node's heartbeat also renews its leases, so it beats at least three times in
        # a lease's lifetime.
        self.scheduler.add_job(
            self._unless_paused(self.leases.beat),
            "interval",
            seconds=min(settings.node_heartbeat, settings.lease_seconds / 3),
            id="node_heartbeat",
        )
        # The watchdog pings systemd only while this beat is fresh, so a scheduler that
        # stopped running jobs gets the service restarted.
        self.scheduler.add_job(self._beat, "interval", seconds=HEARTBEAT_INTERVAL, id="heartbeat")
        self.scheduler.add_job(
            self._unless_paused(self.dispatch),
            "interval",
            seconds=settings.dispatch_interval,
            next_run_time=self.ctx.now(),
            id="dispatch",
        )
        self.scheduler.add_job(
            self._unless_paused(self.dispatch_shipments),
            "interval",
            seconds=settings.shipments_interval,
            next_run_time=self.ctx.now(),
            id="shipments",
        )
        if settings.mapping_file is not None:
            # Its own thread of the scheduler: a slow ERP never delays orders or shipments.
            self.scheduler.add_job(
                self._unless_paused(self.bridge.run),
                "interval",
                seconds=settings.bridge_interval,
                next_run_time=self.ctx.now(),
                id="bridge",
            )
        self.scheduler.add_job(
            self._unless_paused(partial(run_pii_purge, self.ctx)),
            "interval",
            seconds=settings.pii_purge_interval,
            next_run_time=self.ctx.now(),
            id="pii_purge",
        )
        if self.ctx.secrets is not None:
            # Once a day at most it logs; hourly looks catch a daemon whose accounts all wait.
            self.scheduler.add_job(
                self._unless_paused(self.ctx.secrets.check_age),
                "interval",
                seconds=SECRET_AGE_INTERVAL,
                id="lwa_secret_age",
            )
        self.scheduler.start()
        log.info("dispatcher_started", owner=self.ctx.owner, max_workers=settings.max_workers)

    def dispatch(self) -> int:
        """Start the orders job of due accounts that have a free worker and whose lease we hold.

        The scheduler and every worker that finishes call it, one at a time, so an account
        is never started twice.
        """
        if self.ctx.stop.is_set():
            return 0
        with self._dispatch_lock:
            with self.ctx.engine.begin() as connection:
                due = accounts.due_accounts(connection, self.ctx.now())
            limit = self.ctx.settings.max_workers
            return self._start(due, self.running, self.pool, limit, run_orders_for_worker)

    def dispatch_shipments(self, *, warn: bool = True, after: int | None = None) -> int:
        """Start the shipments job of accounts with requests or rows to send.

        The accounts started longest ago go first, so a few busy accounts cannot keep the
        shipment workers from the others. Near deadlines are logged on every scheduled look
        (``warn``). A worker that finishes the account ``after`` looks again without it, so
        an account whose run fails at once is not started again and again.
        """
        if self.ctx.stop.is_set():
            return 0
        if warn:
            warn_near_deadlines(self.ctx)
        with self._shipments_lock:
            candidates = sorted(
                (account for account in accounts_with_shipments(self.ctx) if account.id != after),
                key=lambda account: self.shipping_started.get(account.id, 0.0),
            )
            limit = self.ctx.settings.shipment_workers
            return self._start(candidates, self.shipping, self.ship_pool, limit, run_shipments)

    def _start(
        self,
        candidates: list[accounts.AccountRecord],
        running: dict[int, Future[None]],
        pool: ThreadPoolExecutor,
        limit: int,
        job: Callable[[JobContext, accounts.AccountRecord], object],
    ) -> int:
        started = 0
        for account in candidates:
            with self._lock:
                if account.id in running:
                    continue
                if len(running) >= limit:
                    break
            try:
                acquired = self.leases.take(account)
            except Exception:
                # One account whose lease cannot be taken (a database error, a bug) must not
                # stop the others: it is logged and tried again at the next dispatch.
                log.exception("lease_acquire_failed", account=account.name)
                continue
            if not acquired:
                continue
            with self._lock:
                running[account.id] = pool.submit(self._work, account, running, job)
                if running is self.shipping:
                    self.shipping_started[account.id] = time.monotonic()
            started += 1
        return started

    def _work(
        self,
        account: accounts.AccountRecord,
        running: dict[int, Future[None]],
        job: Callable[[JobContext, accounts.AccountRecord], object],
    ) -> None:
        try:
            job(self.ctx, account)
        except Exception as exc:
            if self.outage.report(exc):
                # The database went away under the job: its transaction rolled back, and the
                # next run after the outage does the work again.
                log.warning("worker_stopped_by_database", account=account.name, job=job.__name__)
            else:
                # The job records its own failures; this is a bug, logged once with its
                # traceback.
                log.exception("worker_failed", account=account.name, job=job.__name__)
        finally:
            # Always free the slot, even when the lease could not be given back.
            self.leases.give_back(account)
            with self._lock:
                running.pop(account.id, None)
        if running is self.running:
            self._dispatch_after_run(self.dispatch, "dispatch")
        else:
            self._dispatch_after_run(
                lambda: self.dispatch_shipments(warn=False, after=account.id), "shipments"
            )

    def _dispatch_after_run(self, dispatch: Callable[[], int], name: str) -> None:
        """Give the freed worker the next account with work now, not at the next interval.

        Waiting for the interval would cap the runs at one per worker and interval, fewer
        than hundreds of accounts need.
        """
        if self.ctx.stop.is_set():
            return
        try:
            self._unless_paused(dispatch)()
        except Exception:
            if self.ctx.stop.is_set():
                return  # the pools shut down while this worker finished: nothing to start
            # The next scheduled look tries again; one failed look must not end the worker.
            log.exception("dispatch_failed", job=name)

    def stop(self) -> None:
        """Stop dispatching, let running pages finish, and give every lease back."""
        self.ctx.stop.set()
        self.scheduler.shutdown(wait=True)
        self.pool.shutdown(wait=True)
        self.ship_pool.shutdown(wait=True)
        self.bridge.close()
        self.leases.leave()
        log.info("dispatcher_stopped", owner=self.ctx.owner)

    def _beat(self) -> None:
        self.heartbeat_at = time.monotonic()

    def heartbeat_age(self) -> float:
        """Return the seconds since the scheduler last ran its heartbeat job."""
        return time.monotonic() - self.heartbeat_at

    def _unless_paused(self, job: Callable[[], object]) -> Callable[[], None]:
        """Wrap a scheduler job: skipped while the database is away, which its failure reports.

        Without this, every dispatch during an outage would fail and log a traceback.
        """

        def run_unless_paused() -> None:
            if self.outage.is_paused():
                return
            try:
                job()
            except Exception as exc:
                if not self.outage.report(exc):
                    raise

        run_unless_paused.__name__ = getattr(job, "__name__", "job")
        return run_unless_paused

    @staticmethod
    def _on_job_event(event: JobExecutionEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning("scheduler_job_missed", job=event.job_id)
        else:
            log.error("scheduler_job_failed", job=event.job_id, error=str(event.exception))
