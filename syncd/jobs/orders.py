"""The orders job: every order of an account from Amazon into syncd's tables.

One run of one account, step by step:

1. Resume the open window from its stored page token while the token is fresh. Otherwise
   read that window again from page one, or plan the next window. Windows run from the
   watermark minus the look-back (on the first run, from the backfill start) to Amazon's
   two-minute bound. They are at most ``SYNCD_ORDERS_WINDOW_DAYS`` long, so an interrupted
   backfill resumes where it stopped.
2. For each page, in one transaction: upsert the orders and their items, quarantine the
   orders that do not parse or store, and save the next page's token.
3. After the last page, move the watermark to the window's bound (never backwards).
4. Repeat until the windows reach the bound, then record the run and schedule the next.

Every searchOrders call asks for all of the account's marketplaces at once, with the
account's includedData, so items arrive with their orders and no per-order call is needed.
"""

from __future__ import annotations

import json
import time
import uuid
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from syncd import errors, metrics
from syncd.amazon.client import CallRecord
from syncd.amazon.models.orders import Order
from syncd.amazon.orders import (
    InvalidOrder,
    OrdersClient,
    OrdersPage,
    SearchOrdersQuery,
    is_invalid_input,
)
from syncd.amazon.query import Query
from syncd.db import accounts, cursors, quarantine, runs
from syncd.db.accounts import AccountRecord
from syncd.db.engine import database_error_reason, store_error
from syncd.db.order_rows import OrderRows, build_rows, strip_pii
from syncd.db.orders import StoreResult, store_orders
from syncd.jobs.context import JobContext
from syncd.jobs.leasing import fenced
from syncd.logs import get_logger

log = get_logger(__name__)

STREAM = "orders"
# A page token lives 24 hours; one older than this is not trusted to survive the next call.
TOKEN_MAX_AGE = timedelta(hours=23)
# How long an account whose orders Amazon refuses (403) waits before the next try.
ACCESS_DENIED_RETRY = timedelta(hours=1)
# How long an account waits after Amazon rejected one of its includedData sets, or returned
# InvalidInput that no set explains, before the search is sent again.
DATASET_PROBE_INTERVAL = timedelta(minutes=30)
# Amazon keeps about two years of orders.
MAX_BACKFILL = timedelta(days=730)
# A daemon's run gives its worker back between two pages when the next searchOrders call
# would wait longer than this for quota, and the account is due again when the token is.
# It also does so after RUN_SECONDS, and the account is then due at once, behind the
# accounts due longer. So one account's long backfill does not keep the workers busy.
QUOTA_WAIT_YIELD_SECONDS = 30.0
RUN_SECONDS = 120.0


class _RunYielded(Exception):  # noqa: N818 - a signal inside this module, not an error
    """The run ends early to free its worker; the account is due again after ``wait``."""

    def __init__(self, wait: float, reason: str) -> None:
        super().__init__(reason)
        self.wait = wait
        self.reason = reason


class _CallCounter:
    """Counter of the SP-API calls and 429 responses of one account during one run."""

    def __init__(self, account: str, region: str) -> None:
        self.account = account
        self.region = region
        self.calls = 0
        self.throttled = 0

    def __call__(self, record: CallRecord) -> None:
        if record.account == self.account and record.region == self.region:
            self.calls += 1
            self.throttled += int(record.throttled)


@dataclass
class _Window:
    after: datetime
    before: datetime
    is_last: bool  # the window reaches the two-minute bound: nothing more to read now


def run_orders(ctx: JobContext, account: AccountRecord) -> runs.RunSummary:
    """Run the orders job once for ``account``; the caller holds the account's lease.

    Never raises for a failure of the run itself. The summary's result records what
    happened, and the account's next run is scheduled.
    """
    return _OrdersRun(ctx, account).run()


def run_orders_for_worker(ctx: JobContext, account: AccountRecord) -> runs.RunSummary:
    """Run the orders job once for a daemon worker, which it gives back between two pages.

    Unlike :func:`run_orders`, the run ends early when its next call would wait more than
    QUOTA_WAIT_YIELD_SECONDS for quota or after RUN_SECONDS, so one account's long backfill
    does not keep a worker from the other accounts. The next run resumes from the page
    token stored with the last page.
    """
    return _OrdersRun(ctx, account, yield_worker=True).run()


class _OrdersRun:
    """One run of the orders job for one account."""

    def __init__(
        self, ctx: JobContext, account: AccountRecord, *, yield_worker: bool = False
    ) -> None:
        self.ctx = ctx
        self.account = account
        self.yield_worker = yield_worker
        self.summary = runs.RunSummary(account.id, STREAM, ctx.now())
        self.log = log.bind(account=account.name, job=STREAM, run_id=uuid.uuid4().hex[:12])
        self.probed = False  # whether this run probed includedData sets after InvalidInput
        self.pages_read = 0  # pages stored since the count was last reset
        self.started = time.monotonic()

    def run(self) -> runs.RunSummary:
        ctx, summary = self.ctx, self.summary
        counter = _CallCounter(self.account.name, self.account.region)
        ctx.client.add_listener(counter)
        started = time.monotonic()
        next_run = ctx.now() + timedelta(seconds=ctx.settings.orders_interval)

        try:
            with self._fenced(take=True) as connection:
                seller = accounts.seller_account(connection, ctx.vault, self.account)
                cursor = cursors.load_cursor(connection, self.account.id, STREAM, ctx.now())
            summary.watermark_before = summary.watermark_after = cursor.watermark
            self.orders = OrdersClient(ctx.client, seller)
            self._read_windows()
        except _RunYielded as exc:
            next_run = ctx.now() + timedelta(seconds=exc.wait)
            self.log.info(
                "orders_run_yielded",
                reason=exc.reason,
                pages=summary.pages,
                next_run_in_seconds=round(exc.wait, 1),
            )
        except errors.StoppedError:
            summary.result = runs.STOPPED
        except errors.InvalidGrantError as exc:
            self._fail(exc, status=accounts.REAUTH_REQUIRED)
        except errors.AccessDeniedError as exc:
            self._fail(exc, status=accounts.ACCESS_DENIED)
            next_run = ctx.now() + ACCESS_DENIED_RETRY
        except errors.DatasetUnavailableError as exc:
            self.log.error(
                "orders_dataset_unavailable",
                region=exc.region,
                dataset=exc.dataset,
                request_id=exc.request_id,
                watermark=_iso(summary.watermark_before),
            )
            self._fail(exc, status=accounts.DATASET_UNAVAILABLE)
        except (errors.SyncdError, SQLAlchemyError) as exc:
            self._fail(exc)
        except Exception as exc:
            # A bug, not a failure of Amazon or the database: record the run all the same, so
            # the account is scheduled again instead of being retried at every dispatch.
            self.log.exception("orders_run_crashed")
            self._fail(exc)
        finally:
            ctx.client.remove_listener(counter)

        if self.probed:
            # The probes spent searchOrders quota, so the search waits before it is sent again.
            next_run = max(next_run, ctx.now() + DATASET_PROBE_INTERVAL)

        summary.api_calls, summary.throttled = counter.calls, counter.throttled
        summary.finished_at = ctx.now()
        clock = ctx.client.clock
        summary.clock_skew_seconds = round(clock.skew_seconds, 3) if clock.has_measurement else None
        self._record(next_run, time.monotonic() - started)
        return summary

    def _fail(self, exc: Exception, status: str | None = None) -> None:
        self.summary.result = runs.FAILED
        if isinstance(exc, SQLAlchemyError):
            exc = store_error(self.ctx.settings.database_url, exc)
        self.summary.error = str(exc) if isinstance(exc, errors.SyncdError) else repr(exc)
        reason: str | None = str(exc)
        if status is None and self.account.status == accounts.DATASET_UNAVAILABLE:
            # Amazon took the full search this time and something else failed: the old
            # reason no longer holds, and 'status' shows this run's error instead.
            status, reason = accounts.ACTIVE, None
        if status is not None:
            with self.ctx.engine.begin() as connection:
                accounts.set_status(connection, self.account.id, status, reason, self.ctx.now())

    def _record(self, next_run: datetime, seconds: float) -> None:
        summary = self.summary
        with self.ctx.engine.begin() as connection:
            # A refusal of shipment confirmations is the shipments job's to clear.
            keep = (accounts.ACTIVE, accounts.SHIPMENTS_DENIED)
            if summary.result == runs.SUCCEEDED and self.account.status not in keep:
                accounts.set_status(
                    connection, self.account.id, accounts.ACTIVE, None, self.ctx.now()
                )
            runs.record_run(connection, summary)
            accounts.schedule_next(connection, self.account.id, next_run)
        event = self.log.error if summary.result == runs.FAILED else self.log.info
        event(
            "orders_run_finished",
            result=summary.result,
            orders_new=summary.orders_new,
            orders_updated=summary.orders_updated,
            orders_quarantined=summary.orders_quarantined,
            pages=summary.pages,
            api_calls=summary.api_calls,
            throttled=summary.throttled,
            watermark_before=_iso(summary.watermark_before),
            watermark_after=_iso(summary.watermark_after),
            duration_ms=round(seconds * 1000),
            error=summary.error,
        )

    def _fenced(self, *, take: bool = False) -> AbstractContextManager[Connection]:
        """Begin a transaction that writes only while this process holds the lease."""
        return fenced(self.ctx, self.account, take=take)

    # -- windows ---------------------------------------------------------------------------------

    def _read_windows(self) -> None:
        while True:
            if self.ctx.stop.is_set():
                raise errors.StoppedError("searchOrders")
            if self.summary.pages:
                self._yield_if_over_budget()
            with self.ctx.engine.begin() as connection:
                cursor = cursors.load_cursor(connection, self.account.id, STREAM, self.ctx.now())
            if self._read_one_window(cursor):
                return

    def _read_one_window(self, cursor: cursors.Cursor) -> bool:
        """Read one window to its end; return True when it reached the two-minute bound."""
        resume = _fresh_resume(cursor, self.ctx.now()) if cursor.has_open_window else None
        if cursor.has_open_window:
            assert cursor.window_after is not None
            assert cursor.window_before is not None
            window = _Window(cursor.window_after, cursor.window_before, is_last=False)
            if resume is None:
                # A crash left this window open and its token is gone or stale: read it again.
                self.log.info(
                    "orders_window_restarted", after=_iso(window.after), before=_iso(window.before)
                )
        else:
            planned = self._plan_window(cursor)
            if planned is None:
                return True
            window = planned
            with self._fenced() as connection:
                cursor = cursors.start_window(
                    connection, cursor, window.after, window.before, self.ctx.now()
                )

        query = SearchOrdersQuery(
            self.account.marketplace_ids,
            last_updated_after=window.after,
            last_updated_before=window.before,
            included_data=self.account.included_data,
        )
        try:
            cursor, pages = self._read_recovering(query, cursor, resume)
        except errors.PaginationError as exc:
            self.log.error("orders_page_token_repeated", page=exc.page_number, reason=exc.reason)
            with self._fenced() as connection:
                cursors.abandon_window(connection, cursor, self.ctx.now())
            raise

        if pages == 0:
            # Amazon's clock moved back and the window clamped to nothing: nothing was read,
            # so the watermark stays.
            with self._fenced() as connection:
                cursors.abandon_window(connection, cursor, self.ctx.now())
            return True
        watermark_before = cursor.watermark
        with self._fenced() as connection:
            cursor = cursors.finish_window(connection, cursor, self.ctx.now())
        self.summary.watermark_after = cursor.watermark
        if cursor.watermark == watermark_before and not window.is_last:
            # The window ended where it started (Amazon covered less than asked): another
            # window now would ask the same again, so the next run tries later.
            self.log.warning("orders_window_made_no_progress", watermark=_iso(cursor.watermark))
            return True
        self.log.info("cursor_advanced", watermark=_iso(cursor.watermark))
        return window.is_last or self._reaches_bound(cursor)

    def _plan_window(self, cursor: cursors.Cursor) -> _Window | None:
        settings = self.ctx.settings
        bound = self.orders.latest_before_bound()
        size = timedelta(days=settings.orders_window_days)
        if cursor.watermark is None:
            after = bound - min(timedelta(days=settings.orders_backfill_days), MAX_BACKFILL)
            before = min(bound, after + size)
        else:
            after = cursor.watermark - timedelta(seconds=settings.orders_lookback)
            before = min(bound, after + size)
            if before <= cursor.watermark:
                # A window no longer than the look-back would never pass the watermark: let
                # the look-back come on top of it.
                before = min(bound, cursor.watermark + size)
        if before <= after:
            return None
        return _Window(after, before, is_last=before >= bound)

    def _reaches_bound(self, cursor: cursors.Cursor) -> bool:
        bound = self.orders.latest_before_bound()
        return cursor.watermark is not None and cursor.watermark >= bound

    # -- pages -----------------------------------------------------------------------------------

    def _read_recovering(
        self, query: SearchOrdersQuery, cursor: cursors.Cursor, resume: tuple[Query, str] | None
    ) -> tuple[cursors.Cursor, int]:
        """Read the window's pages, recovering from a rejected token and from InvalidInput."""
        try:
            return self._read_pages(query, cursor, resume)
        except errors.PaginationTokenError:
            if resume is None:
                raise
            # Amazon no longer takes the stored token (expired, or parameters changed): read
            # the window again from page one, once.
            self.log.warning("orders_page_token_rejected", after=_iso(query.after))
            return self._read_recovering(query, cursor, None)
        except errors.FatalApiError as exc:
            if not (is_invalid_input(exc) and query.included_data and cursor.watermark):
                raise
            # The account's search worked before (it has a watermark), so a generic 400 may
            # be Amazon refusing one includedData set, as the FE endpoint refused FULFILLMENT
            # in August 2026. The window stays open and the watermark where it is; the next
            # run reads the window again.
            # NOTE: nothing is fetched without the refused set in the meantime, so the
            # account's new orders wait too; they are not stored as "seen, status unknown".
            return self._after_invalid_input(query, cursor, exc)

    def _after_invalid_input(
        self, query: SearchOrdersQuery, cursor: cursors.Cursor, error: errors.FatalApiError
    ) -> tuple[cursors.Cursor, int]:
        """Send the search once more; if Amazon refuses page one again, find the refused set.

        A set rejected for the whole region is rejected on page one. When page one is accepted
        and a later page is rejected, no set is to blame, and the error is raised unchanged.

        Raises:
            errors.DatasetUnavailableError: the search works without one includedData set.
            errors.FatalApiError: the repeat failed and no single set explains it.
        """
        self.log.warning(
            "orders_invalid_input_repeated",
            request_id=error.request_id,
            included_data=",".join(query.included_data),
        )
        self.pages_read = 0
        try:
            return self._read_pages(query, cursor, None)
        except errors.FatalApiError as again:
            if not is_invalid_input(again) or self.pages_read > 0:
                raise
            self.probed = True
            for dataset in query.included_data:
                without = tuple(name for name in query.included_data if name != dataset)
                if self.orders.accepts(replace(query, included_data=without)):
                    raise errors.DatasetUnavailableError(
                        self.account.name, self.account.region, dataset, again.request_id
                    ) from again
            raise

    def _read_pages(
        self, query: SearchOrdersQuery, cursor: cursors.Cursor, resume: tuple[Query, str] | None
    ) -> tuple[cursors.Cursor, int]:
        """Read and store the window's pages; return the cursor and how many pages came."""
        stale = self.ctx.settings.orders_max_stale_pages
        if resume is None:
            pages = self.orders.search_orders(query, max_stale_pages=stale)
        else:
            pages = self.orders.search_orders(
                query, resume_query=resume[0], resume_token=resume[1], max_stale_pages=stale
            )
        count = 0
        for page in pages:
            cursor = self._store_page(page, cursor)
            count += 1
            self.pages_read += 1
            if page.next_token is not None:
                # The next page's token is stored with this page, so the next run resumes.
                self._yield_if_over_budget()
        return cursor, count

    def _yield_if_over_budget(self) -> None:
        """Raise _RunYielded when the next call waits long for quota or the run is long."""
        if not self.yield_worker:
            return
        buckets = self.ctx.client.buckets
        wait = buckets.pacer(self.account.name, self.account.region, "searchOrders").wait_seconds()
        if wait > QUOTA_WAIT_YIELD_SECONDS:
            raise _RunYielded(wait, "quota_wait")
        if time.monotonic() - self.started > RUN_SECONDS:
            raise _RunYielded(0.0, "run_time")

    def _store_page(self, page: OrdersPage, cursor: cursors.Cursor) -> cursors.Cursor:
        """Commit one page's orders together with the token of the next page."""
        now = self.ctx.now()
        rows, failed = _build_rows(self.ctx, page)
        try:
            with self._fenced() as connection:
                result = store_orders(connection, self.account.id, rows, now)
                cursor = self._commit_page(connection, page, cursor, failed, result)
        except SQLAlchemyError:
            # One bad row fails the whole batch: store the orders one by one instead, each in
            # its own savepoint, so only the bad ones are quarantined.
            with self._fenced() as connection:
                result, more_failed = _store_one_by_one(connection, self.account.id, rows, now)
                failed = failed + more_failed
                cursor = self._commit_page(connection, page, cursor, failed, result)
        summary = self.summary
        summary.pages += 1
        summary.orders_new += result.new
        summary.orders_updated += result.updated
        summary.orders_quarantined += len(failed)
        metrics.count_orders_synced(self.account.name, result.new + result.updated)
        self.log.debug(
            "orders_page_stored",
            page=page.number,
            orders=len(page.orders),
            new=result.new,
            updated=result.updated,
            older_skipped=result.older_skipped,
            quarantined=len(failed),
        )
        return cursor

    def _commit_page(
        self,
        connection: Connection,
        page: OrdersPage,
        cursor: cursors.Cursor,
        failed: list[InvalidOrder],
        result: StoreResult,
    ) -> cursors.Cursor:
        now = self.ctx.now()
        for bad in failed:
            quarantine.quarantine_record(
                connection,
                account_id=self.account.id,
                stream=STREAM,
                record_id=bad.order_id,
                reason=bad.reason,
                payload=_payload(bad.raw),
                now=now,
            )
            self.log.warning("order_quarantined", amazon_order_id=bad.order_id, reason=bad.reason)
        quarantine.resolve_records(connection, self.account.id, STREAM, result.stored_ids, now)
        sent = page.query.without("paginationToken")
        bound = self._covered_bound(page, sent)
        if bound is not None and cursor.window_before is not None and bound < cursor.window_before:
            if cursor.window_after is not None and bound < cursor.window_after:
                # Amazon covered none of the window: shrink it to nothing, so the watermark
                # stays where it is.
                self.log.warning(
                    "orders_bound_before_window", bound=_iso(bound), after=_iso(cursor.window_after)
                )
                bound = cursor.window_after
            cursor = cursors.narrow_window(connection, cursor, bound, now)
        return cursors.save_page(
            connection,
            cursor,
            page_query=sent.encode(),
            next_token=page.next_token,
            fetched_at=page.fetched_at,
            now=now,
        )

    @staticmethod
    def _covered_bound(page: OrdersPage, sent: Query) -> datetime | None:
        """Return the end of the time this page's window covers, or None when unknown.

        The client may have clamped page one's ``lastUpdatedBefore`` further (the two-minute
        rule), and Amazon echoes the bound it applied, which may be earlier still. The
        watermark must pass neither.
        """
        bounds = []
        text = sent.get("lastUpdatedBefore")
        if page.number == 1 and text is not None:
            bounds.append(datetime.fromisoformat(text.replace("Z", "+00:00")))
        if page.window_before is not None:
            bounds.append(page.window_before)
        return min(bounds, default=None)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _fresh_resume(cursor: cursors.Cursor, now: datetime) -> tuple[Query, str] | None:
    if cursor.page_query is None or cursor.page_token is None or cursor.page_token_at is None:
        return None
    if now - cursor.page_token_at > TOKEN_MAX_AGE:
        return None
    return Query.decode(cursor.page_query), cursor.page_token


def _build_rows(ctx: JobContext, page: OrdersPage) -> tuple[list[OrderRows], list[InvalidOrder]]:
    rows: list[OrderRows] = []
    failed = list(page.invalid)
    for order, raw in zip(page.orders, page.raw_orders, strict=True):
        try:
            rows.append(build_rows(order, raw, ctx.vault))
        except (errors.SyncdError, ValueError) as exc:
            failed.append(InvalidOrder(order.order_id, raw, str(exc)))
    return rows, failed


def _store_one_by_one(
    connection: Connection, account_id: int, rows: list[OrderRows], now: datetime
) -> tuple[StoreResult, list[InvalidOrder]]:
    total = StoreResult()
    failed: list[InvalidOrder] = []
    stored: list[str] = []
    for one in rows:
        savepoint = connection.begin_nested()
        try:
            result = store_orders(connection, account_id, [one], now)
            savepoint.commit()
        except SQLAlchemyError as exc:
            savepoint.rollback()
            reason = database_error_reason(exc)
            failed.append(InvalidOrder(one.order_id, json.loads(one.order["raw_json"]), reason))
            continue
        total.new += result.new
        total.updated += result.updated
        total.unchanged += result.unchanged
        total.older_skipped += result.older_skipped
        stored.extend(result.stored_ids)
    total.stored_ids = tuple(stored)
    return total, failed


def _payload(raw: Any) -> str:
    # An element of `orders` that is not even an object has no PII fields to remove.
    clean = strip_pii(raw)[0] if isinstance(raw, dict) else raw
    return json.dumps(clean, ensure_ascii=False, sort_keys=True)


def store_fetched_order(
    ctx: JobContext, account: AccountRecord, order: Order, raw: dict[str, Any], entry_id: int
) -> StoreResult:
    """Store one order fetched with getOrder for a quarantine entry, and resolve the entry.

    The entry is resolved also when the stored version is already this new or newer: the
    record that failed has then been superseded.
    """
    now = ctx.now()
    rows = build_rows(order, raw, ctx.vault)
    with ctx.engine.begin() as connection:
        result = store_orders(connection, account.id, [rows], now)
        quarantine.resolve_records(connection, account.id, STREAM, result.stored_ids, now)
        quarantine.resolve_entry(connection, entry_id, now)
    return result
