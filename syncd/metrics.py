"""Prometheus metrics: counters the process keeps and figures read from the database per scrape.

The counters live in syncd's own :data:`REGISTRY`, not in prometheus_client's global one, and
are incremented at one place each: the SP-API client after every attempt, the token provider
after a failed refresh, the orders job after each committed page. They cost a dictionary
lookup and a locked addition, so they count whether or not the endpoint is on.

The database figures come from :mod:`syncd.status`, the functions behind ``syncd status``,
so the endpoint and the status screen read each figure with the same query. A scrape reads
them in one short transaction that is rolled back. When the database does not respond, the
scrape still succeeds and reports ``syncd_database_up 0``.

The endpoint is off unless ``SYNCD_METRICS_PORT`` is set and listens on 127.0.0.1 unless
``SYNCD_METRICS_HOST`` names another address.
"""

from __future__ import annotations

import errno
import ipaddress
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime, timedelta
from typing import TYPE_CHECKING
from wsgiref.simple_server import WSGIServer

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Info,
    PlatformCollector,
    ProcessCollector,
    start_http_server,
)
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd import __version__, errors
from syncd.i18n import gettext as _
from syncd.logs import get_logger

if TYPE_CHECKING:
    from syncd.jobs.context import JobContext
    from syncd.status import AccountStatus, ShipmentFigures, StoredOrders

log = get_logger(__name__)

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # process_cpu_seconds_total, process_resident_memory_bytes …
PlatformCollector(registry=REGISTRY)  # python_info
Info("syncd_build", "The running syncd.", registry=REGISTRY).info({"version": __version__})

ORDERS_SYNCED = Counter(
    "syncd_orders_synced",
    "Orders the orders job stored new or changed.",
    ["account"],
    registry=REGISTRY,
)
API_CALLS = Counter(
    "syncd_api_calls",
    'SP-API attempts by operation and HTTP status code; "error" when no response arrived.',
    ["operation", "status"],
    registry=REGISTRY,
)
API_THROTTLED = Counter(
    "syncd_api_throttled",
    "SP-API attempts that Amazon rejected with 429 (throttled).",
    ["operation"],
    registry=REGISTRY,
)
TOKEN_REFRESH_FAILURES = Counter(
    "syncd_token_refresh_failures",
    'Failed LWA token refreshes by account and LWA error code; "unavailable" when LWA '
    "could not be reached after the retries.",
    ["account", "error"],
    registry=REGISTRY,
)

# Counting the stored orders reads every order row: about 2 s for a million small rows on
# SQLite and MariaDB, 0.5 s on PostgreSQL (measured on a 2-core VM). So a scrape counts them
# again only when the last count is older than this. It reads the other figures every time.
ORDER_COUNT_MAX_AGE = 300.0  # seconds

TRANSPORT_FAILURE = "error"  # the status label of an attempt that got no HTTP response
LWA_UNAVAILABLE = "unavailable"
# The error codes of OAuth 2.0 (RFC 6749, section 5.2). A token service may send any other
# code, which is counted as "other" so that a vendor's service cannot grow the labels.
_LWA_ERROR_CODES = frozenset(
    {
        "invalid_request",
        "invalid_client",
        "invalid_grant",
        "unauthorized_client",
        "unsupported_grant_type",
        "invalid_scope",
        "access_denied",
        "server_error",
        "temporarily_unavailable",
    }
)


def count_api_call(operation: str, status_code: int | None) -> None:
    """Count one SP-API attempt and, for a 429, one throttled attempt."""
    status = TRANSPORT_FAILURE if status_code is None else str(status_code)
    API_CALLS.labels(operation, status).inc()
    if status_code == 429:
        API_THROTTLED.labels(operation).inc()


def count_orders_synced(account: str, count: int) -> None:
    """Count the orders of one committed page that were new or changed."""
    if count:
        ORDERS_SYNCED.labels(account).inc(count)


def count_token_refresh_failure(account: str, lwa_error: str | None) -> None:
    """Count a failed token refresh; ``lwa_error`` is None when LWA could not be reached."""
    if lwa_error is None:
        label = LWA_UNAVAILABLE
    elif lwa_error in _LWA_ERROR_CODES:
        label = lwa_error
    else:
        label = "other"
    TOKEN_REFRESH_FAILURES.labels(account, label).inc()


class DatabaseCollector(Collector):
    """Collector of the ``syncd status`` figures, read from the database on every scrape.

    The order count is the exception: it is read again only after ORDER_COUNT_MAX_AGE.
    Scrapes take turns, so several scrapers at once still use one connection at a time.
    ``warning`` returns the deadline warning window at each scrape, so that a reloaded
    ``SYNCD_SHIPMENT_DEADLINE_WARNING`` applies to the next one, as it does to ``syncd status``.
    """

    def __init__(
        self,
        engine: Engine,
        warning: Callable[[], timedelta],
        now: Callable[[], datetime],
        monotonic_clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._engine = engine
        self._warning = warning
        self._now = now
        self._monotonic = monotonic_clock
        self._lock = threading.Lock()
        self._was_up = True
        self._stored_orders: StoredOrders | None = None
        self._counted_at = 0.0  # monotonic time of the last order count

    def collect(self) -> Iterator[Metric]:
        """Yield the database figures, or only ``syncd_database_up 0`` when the read fails."""
        up = "1 when this scrape could read the database, else 0."
        with self._lock:
            started = time.monotonic()
            try:
                statuses, shipments = self._read()
            except SQLAlchemyError as exc:
                self._report_down(exc)
                yield _gauge("syncd_database_up", up, 0)
                return
            self._report_up()
            duration = time.monotonic() - started
        yield _gauge("syncd_database_up", up, 1)
        yield _gauge(
            "syncd_database_read_seconds", "Time this scrape spent reading the database.", duration
        )
        yield from _account_metrics(statuses)
        yield from _outbox_metrics(statuses, shipments)

    def _read(self) -> tuple[list[AccountStatus], ShipmentFigures]:
        # syncd.status imports the database modules, which import the SP-API client, which
        # imports this module. Importing syncd.status at the top would close that circle.
        from syncd.status import (  # noqa: PLC0415
            count_stored_orders,
            gather_shipments,
            gather_status,
        )

        now = self._now()
        # Leaving the block without a commit rolls the transaction back, so a scrape writes
        # nothing. NOTE: on SQLite syncd begins every transaction IMMEDIATE, so a scrape holds
        # the write lock while it reads, as `syncd status` does. Writers wait up to the busy
        # timeout.
        with self._engine.connect() as connection:
            age = self._monotonic() - self._counted_at
            if self._stored_orders is None or age >= ORDER_COUNT_MAX_AGE:
                self._stored_orders = count_stored_orders(connection)
                self._counted_at = self._monotonic()
            statuses = gather_status(connection, now, self._stored_orders)
            shipments = gather_shipments(connection, now, self._warning())
        return statuses, shipments

    def _report_down(self, exc: SQLAlchemyError) -> None:
        # Logged once per outage, not once per scrape.
        if self._was_up:
            log.warning("metrics_database_unavailable", error=str(exc).splitlines()[0])
        self._was_up = False

    def _report_up(self) -> None:
        if not self._was_up:
            log.info("metrics_database_available")
        self._was_up = True


def _gauge(name: str, documentation: str, value: float) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, value=value)


def _account_metrics(statuses: list[AccountStatus]) -> Iterator[Metric]:
    from syncd.db import accounts  # noqa: PLC0415 - see DatabaseCollector._read

    by_status = dict.fromkeys(accounts.STATUSES, 0)
    status_info = GaugeMetricFamily(
        "syncd_account_status_info",
        "1 for each account, labelled with its status.",
        labels=["account", "status"],
    )
    stored = GaugeMetricFamily(
        "syncd_orders_stored",
        "Orders stored per account and marketplace, counted at most every 5 minutes.",
        labels=["account", "marketplace"],
    )
    lag = GaugeMetricFamily(
        "syncd_watermark_lag_seconds",
        "Seconds since the account's orders watermark, per marketplace; absent before the "
        "first complete window.",
        labels=["account", "marketplace"],
    )
    quarantined = GaugeMetricFamily(
        "syncd_quarantined_records",
        "Open quarantine entries per account and stream.",
        labels=["account", "stream"],
    )
    for status in statuses:
        name = status.account.name
        by_status[status.account.status] = by_status.get(status.account.status, 0) + 1
        status_info.add_metric([name, status.account.status], 1)
        for marketplace in status.marketplaces:
            stored.add_metric([name, marketplace.marketplace_id], marketplace.orders)
            if status.lag is not None:
                lag.add_metric([name, marketplace.marketplace_id], status.lag.total_seconds())
        for stream, count in sorted(status.quarantined_by_stream.items()):
            quarantined.add_metric([name, stream], count)

    accounts_family = GaugeMetricFamily("syncd_accounts", "Accounts per status.", labels=["status"])
    for value, count in sorted(by_status.items()):
        accounts_family.add_metric([value], count)
    yield accounts_family
    yield status_info
    yield stored
    yield lag
    yield quarantined


def _outbox_metrics(statuses: list[AccountStatus], figures: ShipmentFigures) -> Iterator[Metric]:
    from syncd.db import outbox  # noqa: PLC0415 - see DatabaseCollector._read

    rows = GaugeMetricFamily(
        "syncd_outbox_rows", "Outbox rows per account and state.", labels=["account", "state"]
    )
    depth = GaugeMetricFamily(
        "syncd_outbox_depth",
        "Outbox rows waiting to be sent (pending or sending) per account.",
        labels=["account"],
    )
    oldest = GaugeMetricFamily(
        "syncd_outbox_oldest_pending_age_seconds",
        "Age of the oldest row waiting to be sent per account; 0 when none waits.",
        labels=["account"],
    )
    near = GaugeMetricFamily(
        "syncd_outbox_near_deadline",
        "Shipments not confirmed to Amazon whose ship-by deadline is within "
        "SYNCD_SHIPMENT_DEADLINE_WARNING hours or past.",
        labels=["account"],
    )
    unverified = GaugeMetricFamily(
        "syncd_outbox_unverified",
        "Delivered shipments still missing from the order's packages after every check.",
        labels=["account"],
    )
    for status in statuses:
        name = status.account.name
        entry = figures.outbox.get(status.account.id, outbox.OutboxSummary())
        for state in outbox.STATES:
            rows.add_metric([name, state], entry.by_state.get(state, 0))
        depth.add_metric([name], entry.depth)
        age = None if entry.oldest_pending is None else figures.now - entry.oldest_pending
        oldest.add_metric([name], 0.0 if age is None else age.total_seconds())
        near.add_metric([name], entry.near_deadline)
        unverified.add_metric([name], entry.unverified)
    yield rows
    yield depth
    yield oldest
    yield near
    yield unverified

    # Requests are keyed by the account name the WMS wrote, which may name no account: such
    # names are summed under one label, so a WMS cannot create a series per typing error.
    known = {status.account.name.lower(): status.account.name for status in statuses}
    new = GaugeMetricFamily(
        "syncd_shipment_requests_new",
        "Shipment requests in the intake not yet taken into the outbox, per account name.",
        labels=["account"],
    )
    for name, count in sorted(_by_known_account(figures.new_requests, known).items()):
        new.add_metric([name], count)
    rejected = GaugeMetricFamily(
        "syncd_shipment_requests_rejected",
        "Shipment requests rejected in the last 7 days, per account name.",
        labels=["account"],
    )
    for name, count in sorted(_by_known_account(figures.rejected, known).items()):
        rejected.add_metric([name], count)
    yield new
    yield rejected


class MetricsEndpoint:
    """The running metrics endpoint, or a stand-in that does nothing when metrics are off."""

    def __init__(
        self,
        server: WSGIServer | None = None,
        thread: threading.Thread | None = None,
        collector: DatabaseCollector | None = None,
    ) -> None:
        self._server = server
        self._thread = thread
        self._collector = collector

    @property
    def address(self) -> tuple[str, int] | None:
        """The host and port the endpoint listens on; None when metrics are off."""
        if self._server is None:
            return None
        host, port = self._server.server_address[:2]
        return str(host), int(port)

    def stop(self) -> None:
        """Close the listening socket and stop reading the database; safe to call twice."""
        if self._server is None:
            return
        address = self.address
        self._server.shutdown()
        self._server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
        if self._collector is not None:
            REGISTRY.unregister(self._collector)
        self._server = self._thread = self._collector = None
        log.info(
            "metrics_stopped",
            host=None if address is None else address[0],
            port=None if address is None else address[1],
        )


def start_metrics(ctx: JobContext) -> MetricsEndpoint:
    """Start the metrics endpoint when ``SYNCD_METRICS_PORT`` is set.

    Call it before the daemon reports ready: a port that cannot be used stops the start.

    Raises:
        errors.ConfigError: the endpoint could not listen on the configured host and port.
    """
    settings = ctx.settings
    port = settings.metrics_port
    if port is None:
        return MetricsEndpoint()
    host = settings.metrics_host
    if not is_loopback(host):
        log.warning("metrics_listening_beyond_loopback", host=host, port=port)

    def warning() -> timedelta:
        return timedelta(hours=ctx.settings.shipment_deadline_warning)

    collector = DatabaseCollector(ctx.engine, warning, ctx.now)
    REGISTRY.register(collector)
    try:
        server, thread = start_http_server(port, addr=host, registry=REGISTRY)
    except OSError as exc:
        REGISTRY.unregister(collector)
        raise errors.ConfigError(_listen_error(host, port, exc)) from exc
    log.info("metrics_started", host=host, port=port)
    return MetricsEndpoint(server, thread, collector)


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and for a loopback IP address such as 127.0.0.1 or ::1."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # a host name other than localhost may resolve to anything


def _listen_error(host: str, port: int, exc: OSError) -> str:
    if exc.errno == errno.EADDRINUSE:
        return _(
            "The metrics endpoint cannot listen on {host}:{port} because another program uses "
            "that port. Set SYNCD_METRICS_PORT to a free port, or leave it unset to turn "
            "metrics off."
        ).format(host=host, port=port)
    return _(
        "The metrics endpoint cannot listen on {host}:{port}: {error}. Set SYNCD_METRICS_HOST "
        "to an address of this server (127.0.0.1 by default) and SYNCD_METRICS_PORT to a free "
        "port, or leave SYNCD_METRICS_PORT unset to turn metrics off."
    ).format(host=host, port=port, error=exc.strerror or exc)


UNKNOWN_ACCOUNT = "(unknown)"


def _by_known_account(counts: dict[str, int], known: dict[str, str]) -> dict[str, int]:
    """Return the counts by account name, those of names that are no account summed."""
    found: dict[str, int] = {}
    for name, count in counts.items():
        label = known.get(name.lower(), UNKNOWN_ACCOUNT)
        found[label] = found.get(label, 0) + count
    return found
