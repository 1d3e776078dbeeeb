"""The shipments job: intake requests into the outbox, and outbox rows to Amazon.

One run of one account, whose lease this process holds:

1. Rows that an earlier holder of the lease left claimed are made due again.
2. Delivery: due rows are claimed a few at a time, earliest ship-by deadline first, and sent
   with confirmShipment. Each outcome is recorded together with the state it leads to.
   A 204 means delivered. A 429, 5xx or timeout puts the row back to pending after a
   backoff. Any other 4xx makes it dead with Amazon's code and message, and "already
   fulfilled" is settled by the order's packages.
3. Intake: up to INTAKE_BATCH new requests are parsed and checked against Amazon's current
   order (one getOrder per order and run). Each is enqueued with a new
   ``packageReferenceId`` or rejected with a code and a reason, in its own transaction.
4. Delivery again, for the rows intake just made.
5. Verification: delivered rows are looked for in the order's packages (getOrder with
   PACKAGES), using only getOrder quota that is free now, so verification never slows
   delivery. The fetched order is stored too, so syncd's copy shows the shipment.

Deadline warnings come from :func:`warn_near_deadlines`, which the dispatcher calls for all
accounts at once.
"""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy.exc import IntegrityError, SQLAlchemyError

from syncd import errors
from syncd.amazon.models.orders import Order
from syncd.amazon.operations import CONFIRM_SHIPMENT
from syncd.amazon.orders import OrdersClient
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.shipments import (
    SHIP_DATE_TOLERANCE,
    Package,
    ShipmentsClient,
    is_already_fulfilled,
)
from syncd.db import accounts, intake, outbox
from syncd.db.accounts import AccountRecord
from syncd.db.order_rows import build_rows
from syncd.db.orders import store_orders
from syncd.i18n import gettext as _
from syncd.jobs.context import JobContext
from syncd.jobs.leasing import fenced
from syncd.logs import get_logger
from syncd.shipping.carriers import Carrier, CarrierMap
from syncd.shipping.intake import (
    RejectedError,
    allocate_reference,
    check_order,
    check_ship_date,
    choose_items,
    left_to_ship,
    parse_request,
)

log = get_logger(__name__)

JOB = "shipments"
CLAIM_BATCH = 10  # rows claimed at once: five seconds of confirmShipment's sustained rate
MAX_ROWS_PER_RUN = 500  # then the run ends, so other accounts and jobs get their turn
INTAKE_BATCH = 50  # requests checked per run, so a backlog cannot hold up due rows
MAX_DEFERRED_IN_A_ROW = 3  # getOrder failures in a row that end the intake step of a run
# After a 204, the first look for the package; later looks back off (2, 4, 8 … minutes).
VERIFY_FIRST_DELAY = timedelta(seconds=30)
# How long a row waits after Amazon refused the account (403) before it is tried again.
ACCESS_DENIED_DELAY = timedelta(hours=1)
# Datasets that every getOrder of this job requests, beyond the account's own.
ORDER_DATASETS = ("FULFILLMENT", "PACKAGES")
_warned: dict[int, float] = {}  # outbox id -> monotonic time of its last deadline warning
_warned_lock = threading.Lock()
DEADLINE_WARNING_EVERY = 3600.0  # seconds between two warnings about the same row


@dataclass
class ShipmentsSummary:
    """Counts of one run, for its log line and ``syncd once shipments``."""

    account: str
    accepted: int = 0
    rejected: int = 0
    delivered: int = 0
    retried: int = 0
    dead: int = 0
    conflicts: int = 0
    verified: int = 0
    deferred: int = 0  # requests left new because getOrder failed
    api_calls: int = 0
    error: str | None = None

    @property
    def busy(self) -> bool:
        """True when the run changed anything."""
        return any(
            (
                self.accepted,
                self.rejected,
                self.delivered,
                self.retried,
                self.dead,
                self.conflicts,
                self.verified,
                self.deferred,
            )
        )


def run_shipments(ctx: JobContext, account: AccountRecord) -> ShipmentsSummary:
    """Run the shipments job once for ``account``; the caller holds its lease.

    Never raises for a failure of the run itself: the summary's ``error`` names what stopped
    it, and the rows keep their states for the next run.
    """
    return _ShipmentsRun(ctx, account).run()


def carrier_map(ctx: JobContext) -> CarrierMap:
    """Return the carrier map built from syncd's list and the settings."""
    settings = ctx.settings
    return CarrierMap(settings.carrier_map, settings.carrier_codes)


def included_data(account: AccountRecord) -> tuple[str, ...]:
    """Return the datasets of this job's getOrder calls: the account's and packages."""
    return tuple(dict.fromkeys((*account.included_data, *ORDER_DATASETS)))


class _ShipmentsRun:
    def __init__(self, ctx: JobContext, account: AccountRecord) -> None:
        self.ctx = ctx
        self.account = account
        self.summary = ShipmentsSummary(account.name)
        self.log = log.bind(account=account.name, job=JOB, run_id=uuid.uuid4().hex[:12])
        settings = ctx.settings
        self.claim_ttl = timedelta(seconds=settings.shipment_claim_seconds)
        self.backoff = RetryPolicy(
            base_delay=settings.shipment_retry_base_delay,
            max_delay=settings.shipment_retry_max_delay,
        )
        # A confirmation is retried briefly within the call; after that the row waits in the
        # outbox, so one slow account does not hold a worker for the full retry budget.
        self.call_retry = RetryPolicy(
            max_attempts=min(3, settings.retry_max_attempts),
            max_seconds=min(60.0, settings.retry_max_seconds),
            base_delay=settings.retry_base_delay,
            max_delay=settings.retry_max_delay,
        )
        self.carriers = carrier_map(ctx)
        self.sent = 0  # rows sent in this run, both delivery steps together
        self.fetched: dict[str, Order] = {}  # orders fetched by this run's intake

    # -- the run ---------------------------------------------------------------------------------

    def run(self) -> ShipmentsSummary:
        ctx = self.ctx
        started = time.monotonic()
        counter = _Counter(self.account)
        ctx.client.add_listener(counter)
        try:
            with fenced(ctx, self.account, take=True) as connection:
                seller = accounts.seller_account(connection, ctx.vault, self.account)
                released = outbox.release_claims(connection, self.account.id, ctx.now())
            if released:
                self.log.info("outbox_claims_released", rows=released)
            self.orders = OrdersClient(ctx.client, seller, retry=self.call_retry)
            self.shipments = ShipmentsClient(ctx.client, seller, self.call_retry)
            # Rows already due go first: new requests may each need a getOrder, which is slow.
            self._deliver()
            self._take_requests()
            self._deliver()
            self._verify()
        except errors.StoppedError:
            self.summary.error = "stopped"
        except errors.InvalidGrantError as exc:
            self._stop_account(exc, accounts.REAUTH_REQUIRED)
        except errors.AccessDeniedError as exc:
            # Amazon refuses this seller's confirmations (a missing role, a suspended
            # account): every row would get the same 403, so all of them wait.
            self._stop_account(exc, accounts.SHIPMENTS_DENIED, postpone=ACCESS_DENIED_DELAY)
        except (errors.SyncdError, SQLAlchemyError) as exc:
            self.summary.error = str(exc).splitlines()[0]
            self.log.error("shipments_run_failed", error=self.summary.error)
        except Exception as exc:
            self.summary.error = repr(exc)
            self.log.exception("shipments_run_crashed")
        finally:
            ctx.client.remove_listener(counter)
        summary = self.summary
        summary.api_calls = counter.calls
        if summary.error is not None and summary.error != "stopped":
            event = self.log.error
        else:
            event = self.log.info if summary.busy else self.log.debug
        event(
            "shipments_run_finished",
            accepted=summary.accepted,
            rejected=summary.rejected,
            delivered=summary.delivered,
            retried=summary.retried,
            dead=summary.dead,
            conflicts=summary.conflicts,
            verified=summary.verified,
            deferred=summary.deferred,
            api_calls=summary.api_calls,
            duration_ms=round((time.monotonic() - started) * 1000),
            error=summary.error,
        )
        return summary

    def _stop_account(
        self, exc: errors.SyncdError, status: str, postpone: timedelta | None = None
    ) -> None:
        ctx = self.ctx
        self.summary.error = str(exc)
        with ctx.engine.begin() as connection:
            accounts.set_status(connection, self.account.id, status, str(exc), ctx.now())
            if postpone is not None:
                outbox.postpone_account(
                    connection, self.account.id, ctx.now() + postpone, ctx.now()
                )
        self.log.error("shipments_run_failed", status=status, error=str(exc))

    # -- intake ----------------------------------------------------------------------------------

    def _take_requests(self) -> None:
        """Check up to INTAKE_BATCH new requests; the rest wait for the next run."""
        with self.ctx.engine.begin() as connection:
            batch = intake.new_requests(connection, self.account.name, INTAKE_BATCH)
        deferred_in_a_row = 0
        for request in batch:
            if self.ctx.stop.is_set():
                raise errors.StoppedError("confirmShipment")
            try:
                self._take_request(request)
            except (errors.StoppedError, errors.InvalidGrantError, errors.LeaseLostError):
                raise
            except (ValueError, TypeError, OverflowError, RecursionError) as exc:
                # A value no check above foresaw; only this request is rejected.
                self.log.exception("shipment_request_unreadable", intake_id=request.id)
                reason = _("the request could not be read: {error}").format(error=repr(exc)[:300])
                self._reject(request, RejectedError("bad_request", reason))
            except (errors.ApiError, errors.AuthError) as exc:
                # Amazon could not give the order now: the request stays new for the next run.
                # Several failures in a row look like an outage, so the rest wait too.
                deferred_in_a_row += 1
                self.summary.deferred += 1
                with self.ctx.engine.begin() as connection:
                    # To the back of the queue, so a request that keeps failing does not
                    # hold up newer ones.
                    intake.mark_tried(connection, request.id, self.ctx.now())
                self.log.warning(
                    "shipment_request_deferred",
                    intake_id=request.id,
                    amazon_order_id=request.amazon_order_id,
                    error=str(exc),
                )
                if deferred_in_a_row >= MAX_DEFERRED_IN_A_ROW:
                    return
                continue
            deferred_in_a_row = 0

    def _take_request(self, request: intake.RequestRow) -> None:
        now = self.ctx.now()
        if self._already_enqueued(request):
            return
        try:
            parsed = parse_request(request, self.carriers, self.ctx.client.clock.now())
            order = self._order_for(request.amazon_order_id.strip())
            check_order(order)
            check_ship_date(order, parsed.ship_date)
        except RejectedError as rejection:
            self._reject(request, rejection)
            return
        except errors.RecordError as exc:
            reason = _("Amazon's order could not be read: {error}").format(error=exc)
            self._reject(request, RejectedError("order_unreadable", reason))
            return
        except errors.RequestError as exc:
            # syncd would not even send the getOrder (an order id such as "." or a slash).
            self._reject(request, RejectedError("unknown_order", exc.reason))
            return
        for attempt in (1, 2):
            try:
                with fenced(self.ctx, self.account) as connection:
                    if intake.get_request(connection, request.id) != request:
                        return  # processed meanwhile (a second worker, or an operator)
                    rows = outbox.order_rows(connection, self.account.id, order.order_id)
                    items = choose_items(order, parsed.items, left_to_ship(order, rows))
                    shipment = outbox.NewShipment(
                        account_id=self.account.id,
                        marketplace_id=order.marketplace_id or self.account.marketplace_ids[0],
                        order_id=order.order_id,
                        package_reference_id=allocate_reference(order, rows),
                        carrier_code=parsed.carrier.code,
                        carrier_name=parsed.carrier.name,
                        shipping_method=parsed.shipping_method,
                        tracking_number=parsed.tracking_number,
                        ship_date=parsed.ship_date,
                        items=items,
                        deadline=_deadline(order),
                        request_id=request.id,
                    )
                    row_id = outbox.enqueue(connection, shipment, now)
                    intake.accept(connection, request.id, row_id, now)
            except RejectedError as rejection:
                self._reject(request, rejection)
                return
            except IntegrityError:
                if attempt == 2:
                    raise
                continue  # another shipment of the order took the reference: allocate again
            break
        self.summary.accepted += 1
        if parsed.carrier.is_other:
            # Amazon gives Other no valid-tracking credit: the map may need this name.
            self.log.warning("carrier_unmapped", carrier=request.carrier, outbox_id=row_id)
        self.log.info(
            "shipment_enqueued",
            outbox_id=row_id,
            intake_id=request.id,
            amazon_order_id=order.order_id,
            package_reference_id=shipment.package_reference_id,
            carrier_code=shipment.carrier_code,
            deadline=_iso(shipment.deadline),
        )

    def _already_enqueued(self, request: intake.RequestRow) -> bool:
        """Accept again a request that has an outbox row (an ERP set it back to new)."""
        with self.ctx.engine.begin() as connection:
            row_id = outbox.row_of_request(connection, request.id)
        if row_id is None:
            return False
        with fenced(self.ctx, self.account) as connection:
            intake.accept(connection, request.id, row_id, self.ctx.now())
        self.log.warning("shipment_request_reopened", intake_id=request.id, outbox_id=row_id)
        return True

    def _reject(self, request: intake.RequestRow, rejection: RejectedError) -> None:
        with fenced(self.ctx, self.account) as connection:
            intake.reject(connection, request.id, rejection.code, rejection.reason, self.ctx.now())
        self.summary.rejected += 1
        self.log.warning(
            "shipment_request_rejected",
            intake_id=request.id,
            source_system=request.source_system,
            source_key=request.source_key,
            amazon_order_id=request.amazon_order_id,
            code=rejection.code,
            reason=rejection.reason,
        )

    def _order_for(self, order_id: str) -> Order:
        """Return Amazon's current order, fetched once per run for all its requests.

        Always from getOrder, never from syncd's stored copy: the copy may be minutes or hours
        old, and a package confirmed in Seller Central since then would get the same
        reference as the new one, which Amazon takes as an edit that replaces the seller's
        package. The outbox rows of the order, read with the lock when the row is written,
        cover what this run enqueued after the fetch.

        Raises:
            RejectedError: Amazon does not know the order for this seller.
        """
        cached = self.fetched.get(order_id)
        if cached is not None:
            return cached
        try:
            order = _with_packages(self._fetch_order(order_id))
        except errors.FatalApiError as exc:
            # Only a 404 means the order does not exist. A 400 may be Amazon refusing one of
            # the account's includedData sets, so the request is deferred, not rejected.
            if exc.status_code == 404:
                raise RejectedError(
                    "unknown_order",
                    _("Amazon does not know order {order} for this account ({error})").format(
                        order=order_id, error=exc.error_message or exc.error_code
                    ),
                ) from None
            raise
        self.fetched[order_id] = order
        return order

    def _fetch_order(self, order_id: str) -> Order:
        """getOrder with packages; the fetched version is stored like any other."""
        order, raw = self.orders.get_order_with_raw(order_id, included_data(self.account))
        rows = build_rows(order, raw, self.ctx.vault)
        with fenced(self.ctx, self.account) as connection:
            store_orders(connection, self.account.id, [rows], self.ctx.now())
        return order

    # -- delivery --------------------------------------------------------------------------------

    def _deliver(self) -> None:
        while self.sent < MAX_ROWS_PER_RUN:
            if self.ctx.stop.is_set():
                raise errors.StoppedError("confirmShipment")
            with fenced(self.ctx, self.account) as connection:
                batch = outbox.claim_due(
                    connection,
                    self.account.id,
                    owner=self.ctx.owner,
                    now=self.ctx.now(),
                    ttl=self.claim_ttl,
                    limit=CLAIM_BATCH,
                )
            if not batch:
                return
            for index, row in enumerate(batch):
                try:
                    self._send(row)
                except BaseException:
                    # The rest of the batch was never sent: due again at once.
                    self._unclaim(batch[index:])
                    raise
                self.sent += 1

    def _unclaim(self, rows: list[outbox.OutboxRow]) -> None:
        now = self.ctx.now()
        try:
            with self.ctx.engine.begin() as connection:
                for row in rows:
                    outbox.finish(connection, row.id, self.ctx.owner, now, state=outbox.PENDING)
        except SQLAlchemyError as exc:
            # The claims expire by themselves.
            self.log.warning("outbox_unclaim_failed", error=str(exc).splitlines()[0])

    def _send(self, row: outbox.OutboxRow) -> None:
        if self.ctx.stop.is_set():
            raise errors.StoppedError("confirmShipment")
        ahead = row.ship_date - self.ctx.client.clock.now()
        if ahead > SHIP_DATE_TOLERANCE:
            # The warehouse's clock runs ahead of Amazon's (or the ship time was typed for
            # later today). Amazon rejects a future ship date, so the row waits until then.
            wait = ahead + SHIP_DATE_TOLERANCE
            early = errors.RequestError(
                CONFIRM_SHIPMENT.name,
                _("the ship date {date} lies ahead of Amazon's clock; sent after it").format(
                    date=row.ship_date.isoformat()
                ),
            )
            self._record_retry(row, early, delay=wait)
            return
        package = Package(
            package_reference_id=row.package_reference_id,
            carrier=_carrier(row),
            tracking_number=row.tracking_number,
            ship_date=row.ship_date,
            items=row.items,
            shipping_method=row.shipping_method,
        )
        try:
            response = self.shipments.confirm(row.order_id, row.marketplace_id, package)
        except errors.RequestError as exc:
            self._record(row, outbox.DEAD, code="request_not_sent", message=exc.reason)
            return
        except (errors.StoppedError, errors.InvalidGrantError, errors.LeaseLostError):
            raise
        except errors.AccessDeniedError as exc:
            self._record_retry(row, exc, delay=ACCESS_DENIED_DELAY)
            raise
        except errors.FatalApiError as exc:
            if is_already_fulfilled(exc):
                self._settle_already_fulfilled(row, exc)
            else:
                self._record(
                    row,
                    outbox.DEAD,
                    code=exc.error_code or str(exc.status_code),
                    message=exc.error_message,
                    request_id=exc.request_id,
                )
            return
        except (errors.ApiError, errors.AuthError) as exc:
            self._record_retry(row, exc)
            return
        now = self.ctx.now()
        self._record(
            row,
            outbox.DELIVERED,
            request_id=response.request_id,
            sent_at=now,
            next_attempt_at=now + VERIFY_FIRST_DELAY,
        )
        if self.account.status == accounts.SHIPMENTS_DENIED:
            # Amazon takes this seller's confirmations again.
            with self.ctx.engine.begin() as connection:
                accounts.set_status(connection, self.account.id, accounts.ACTIVE, None, now)
            self.account = replace(self.account, status=accounts.ACTIVE)

    def _record(
        self,
        row: outbox.OutboxRow,
        state: str,
        *,
        code: str | None = None,
        message: str | None = None,
        request_id: str | None = None,
        **values: Any,
    ) -> None:
        """Store a final outcome of one attempt; a lost claim means another worker has it."""
        now = self.ctx.now()
        changes: dict[str, Any] = {
            "state": state,
            "attempts": row.attempts + 1,
            "last_error_code": code,
            "last_error_message": message,
            "last_request_id": request_id,
        }
        if state != outbox.DELIVERED:
            changes["next_attempt_at"] = None
        changes.update(values)
        with fenced(self.ctx, self.account) as connection:
            kept = outbox.finish(connection, row.id, self.ctx.owner, now, **changes)
        if not kept:
            self.log.warning("outbox_claim_lost", outbox_id=row.id)
            return
        counts = {
            outbox.DELIVERED: "delivered",
            outbox.DEAD: "dead",
            outbox.CONFLICT: "conflicts",
        }
        name = counts.get(state)
        if name is not None:
            setattr(self.summary, name, getattr(self.summary, name) + 1)
        event = self.log.info if state == outbox.DELIVERED else self.log.error
        event(
            "shipment_" + state,
            outbox_id=row.id,
            amazon_order_id=row.order_id,
            package_reference_id=row.package_reference_id,
            attempts=row.attempts + 1,
            error_code=code,
            error=message,
            request_id=request_id,
        )

    def _record_retry(
        self, row: outbox.OutboxRow, exc: errors.SyncdError, delay: timedelta | None = None
    ) -> None:
        attempts = row.attempts + 1
        wait = delay or timedelta(seconds=self.backoff.delay(attempts))
        now = self.ctx.now()
        code = getattr(exc, "error_code", None) or _status_text(exc)
        message = getattr(exc, "error_message", None) or getattr(exc, "reason", None) or str(exc)
        with fenced(self.ctx, self.account) as connection:
            kept = outbox.finish(
                connection,
                row.id,
                self.ctx.owner,
                now,
                state=outbox.PENDING,
                attempts=attempts,
                next_attempt_at=now + wait,
                last_error_code=code,
                last_error_message=message,
                last_request_id=getattr(exc, "request_id", None),
            )
        if kept:
            self.summary.retried += 1
            self.log.warning(
                "shipment_retry_scheduled",
                outbox_id=row.id,
                amazon_order_id=row.order_id,
                attempts=attempts,
                delay_seconds=round(wait.total_seconds(), 1),
                error_code=code,
                error=message,
            )

    def _settle_already_fulfilled(self, row: outbox.OutboxRow, error: errors.FatalApiError) -> None:
        """Look at the order's packages: ours there means delivered, another one a conflict."""
        try:
            order = self._fetch_order(row.order_id)
        except (errors.ApiError, errors.RecordError) as exc:
            self._record_retry(row, exc)
            return
        ours = _normalize_tracking(row.tracking_number)
        packages = order.packages or []
        match = next(
            (p for p in packages if _normalize_tracking(p.tracking_number or "") == ours), None
        )
        now = self.ctx.now()
        if match is not None:
            self._record(
                row,
                outbox.DELIVERED,
                code=error.error_code,
                message=_("Amazon already had this tracking number in package {reference}").format(
                    reference=match.package_reference_id
                ),
                request_id=error.request_id,
                sent_at=now,
                verified_at=now,
                next_attempt_at=None,
            )
            return
        others = ", ".join(f"{p.package_reference_id}:{p.tracking_number or '-'}" for p in packages)
        self._record(
            row,
            outbox.CONFLICT,
            code=error.error_code,
            message=_(
                "Amazon reports the order as already shipped, with other tracking numbers "
                "({packages}); decide whether this shipment should replace one of them"
            ).format(packages=others or "-"),
            request_id=error.request_id,
        )

    # -- verification ----------------------------------------------------------------------------

    def _verify(self) -> None:
        buckets = self.ctx.client.buckets
        bucket = buckets.bucket(self.account.name, self.account.region, "getOrder")
        with self.ctx.engine.begin() as connection:
            rows = outbox.unverified(connection, self.account.id, self.ctx.now(), limit=100)
        by_order: dict[str, list[outbox.OutboxRow]] = {}
        for row in rows:
            by_order.setdefault(row.order_id, []).append(row)
        for order_id, order_rows in by_order.items():
            if self.ctx.stop.is_set() or not bucket.available():
                return  # the rest waits for free getOrder quota
            try:
                order = self._fetch_order(order_id)
            except (errors.ApiError, errors.RecordError) as exc:
                self.log.warning("shipment_verify_failed", amazon_order_id=order_id, error=str(exc))
                for row in order_rows:
                    self._verify_missed(row)
                continue
            for row in order_rows:
                self._verify_row(row, order)

    def _verify_row(self, row: outbox.OutboxRow, order: Order) -> None:
        package = next(
            (p for p in order.packages or [] if p.package_reference_id == row.package_reference_id),
            None,
        )
        now = self.ctx.now()
        if package is None:
            self._verify_missed(row)
            return
        tracking = package.tracking_number or ""
        if _normalize_tracking(tracking) == _normalize_tracking(row.tracking_number):
            with fenced(self.ctx, self.account) as connection:
                outbox.set_values(connection, row.id, now, verified_at=now, next_attempt_at=None)
            self.summary.verified += 1
            return
        message = _(
            "package {reference} on Amazon has tracking number {theirs}, not {ours}; it was "
            "changed after syncd sent it"
        ).format(
            reference=row.package_reference_id, theirs=tracking or "-", ours=row.tracking_number
        )
        with fenced(self.ctx, self.account) as connection:
            outbox.set_values(
                connection,
                row.id,
                now,
                state=outbox.CONFLICT,
                next_attempt_at=None,
                last_error_code="TrackingNumberChanged",
                last_error_message=message,
            )
        self.summary.conflicts += 1
        self.log.error("shipment_conflict", outbox_id=row.id, amazon_order_id=row.order_id)

    def _verify_missed(self, row: outbox.OutboxRow) -> None:
        attempts = row.verify_attempts + 1
        now = self.ctx.now()
        give_up = attempts >= outbox.MAX_VERIFY_ATTEMPTS
        next_at = None if give_up else now + timedelta(minutes=2**attempts)
        with fenced(self.ctx, self.account) as connection:
            outbox.set_values(
                connection, row.id, now, verify_attempts=attempts, next_attempt_at=next_at
            )
        if give_up:
            # Not sent again blindly: Amazon returned 204, and a resend only edits the package.
            self.log.error(
                "shipment_unverified",
                outbox_id=row.id,
                amazon_order_id=row.order_id,
                package_reference_id=row.package_reference_id,
                verify_attempts=attempts,
            )


class _Counter:
    def __init__(self, account: AccountRecord) -> None:
        self.account = account
        self.calls = 0

    def __call__(self, record: Any) -> None:
        if record.account == self.account.name and record.region == self.account.region:
            self.calls += 1


def _carrier(row: outbox.OutboxRow) -> Carrier:
    return Carrier(row.carrier_code, row.carrier_name)


def _deadline(order: Order) -> datetime | None:
    window = None if order.fulfillment is None else order.fulfillment.ship_by_window
    return None if window is None else window.latest_date_time


def _with_packages(order: Order) -> Order:
    """Amazon leaves ``packages`` out of an order that has none, even when asked for them."""
    return order if order.packages is not None else order.model_copy(update={"packages": []})


def _normalize_tracking(value: str) -> str:
    return "".join(value.split()).upper()


def _status_text(exc: errors.SyncdError) -> str | None:
    status = getattr(exc, "status_code", None)
    return None if status is None else str(status)


def _iso(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def accounts_with_shipments(ctx: JobContext) -> list[AccountRecord]:
    """Return the accounts with shipment work now: new requests, or rows to send or verify.

    Requests that name no account are rejected here, since no account's run would see them.
    Accounts that need re-authorization are left out until an operator repairs them.
    """
    now = ctx.now()
    with ctx.engine.begin() as connection:
        known = {account.name: account for account in accounts.list_accounts(connection)}
        stray = intake.reject_unknown_accounts(
            connection,
            set(known),
            _("no syncd account has this name; see 'syncd account list'"),
            now,
        )
        names = intake.accounts_with_new_requests(connection)
        busy = set(outbox.accounts_with_due_rows(connection, now))
    for request in stray:
        log.warning(
            "shipment_request_rejected",
            intake_id=request.id,
            account=request.account,
            source_system=request.source_system,
            source_key=request.source_key,
            amazon_order_id=request.amazon_order_id,
            code="unknown_account",
        )
    return [
        account
        for account in known.values()
        if account.status != accounts.REAUTH_REQUIRED
        and (account.name in names or account.id in busy)
    ]


def warn_near_deadlines(ctx: JobContext) -> int:
    """Log each unfinished shipment whose ship-by deadline is near, at most once an hour.

    Dead, conflict and backing-off rows count too: they are the ones an operator must see.
    The dispatcher calls this on every look for shipments; it returns how many it logged.
    """
    warning = timedelta(hours=ctx.settings.shipment_deadline_warning)
    with ctx.engine.begin() as connection:
        rows = outbox.near_deadline(connection, ctx.now(), warning)
    now = time.monotonic()
    logged = 0
    with _warned_lock:
        for row_id, at in list(_warned.items()):
            if now - at >= DEADLINE_WARNING_EVERY:
                del _warned[row_id]
        for row in rows:
            if row.id in _warned:
                continue
            _warned[row.id] = now
            log.warning(
                "shipment_deadline_near",
                account=row.account,
                outbox_id=row.id,
                amazon_order_id=row.order_id,
                state=row.state,
                deadline=_iso(row.deadline),
                error=row.last_error_message,
            )
            logged += 1
    return logged
