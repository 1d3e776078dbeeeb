"""Orders API v2026-01-01: ``searchOrders`` and ``getOrder`` with Amazon's rules built in.

- A search requests all of an account's marketplaces at once (up to 50, comma-joined).
- Exactly one of ``createdAfter`` and ``lastUpdatedAfter``; created and last-updated bounds
  are never mixed.
- The ``*Before`` bound is clamped to two minutes before Amazon's clock minus a margin; a
  window that becomes empty is not sent. If Amazon still returns the two-minute-rule 400,
  the bound is clamped again from the clock of that response and page one is sent once
  more.
- Page two onwards repeat page one's query byte for byte plus ``paginationToken``.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

import pydantic

from syncd import errors
from syncd.amazon import pagination
from syncd.amazon.client import SellerAccount, SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.models.orders import GetOrderResponse, Order, SearchOrdersResponse
from syncd.amazon.operations import GET_ORDER, SEARCH_ORDERS
from syncd.amazon.query import Query
from syncd.amazon.retry import RetryPolicy
from syncd.i18n import gettext as _
from syncd.i18n import gettext_noop as N_
from syncd.logs import get_logger

log = get_logger(__name__)

INCLUDED_DATA = frozenset(
    {
        "BUYER",
        "RECIPIENT",
        "PROCEEDS",
        "EXPENSE",
        "PROMOTION",
        "CANCELLATION",
        "FULFILLMENT",
        "PACKAGES",
        "TAX",
        "PAYMENT",
        "FULFILLMENT_ORDERS",
    }
)
PII_DATASETS = frozenset({"BUYER", "RECIPIENT"})
FULFILLMENT_STATUSES = frozenset(
    {
        "PENDING_AVAILABILITY",
        "PENDING",
        "UNSHIPPED",
        "PARTIALLY_SHIPPED",
        "SHIPPED",
        "CANCELLED",
        "UNFULFILLABLE",
    }
)
FULFILLED_BY = frozenset({"MERCHANT", "AMAZON"})
MAX_MARKETPLACES = 50
MAX_PAGE_SIZE = 100


@dataclass(frozen=True)
class SearchOrdersQuery:
    """The parameters of one searchOrders run, checked against Amazon's rules."""

    marketplace_ids: tuple[str, ...]
    last_updated_after: datetime | None = None
    last_updated_before: datetime | None = None
    created_after: datetime | None = None
    created_before: datetime | None = None
    included_data: tuple[str, ...] = ()
    fulfillment_statuses: tuple[str, ...] = ()
    fulfilled_by: tuple[str, ...] = ()
    max_results_per_page: int = MAX_PAGE_SIZE

    def validate(self) -> None:
        """Raise :class:`errors.RequestError` for any rule Amazon would reject the query for."""
        reason = self._first_problem()
        if reason is not None:
            raise errors.RequestError(SEARCH_ORDERS.name, reason)

    def _first_problem(self) -> str | None:
        bounds = (
            self.created_after,
            self.created_before,
            self.last_updated_after,
            self.last_updated_before,
        )
        if any(bound is not None and bound.utcoffset() is None for bound in bounds):
            # A naive time (an ERP's Beijing-time watermark, say) has no defined instant.
            return _("window bounds need a time zone; give them in UTC")
        created = self.created_after is not None or self.created_before is not None
        updated = self.last_updated_after is not None or self.last_updated_before is not None
        checks: list[tuple[bool, str]] = [
            (created and updated, _("created and last-updated bounds cannot be mixed")),
            (
                (self.created_after is None) == (self.last_updated_after is None),
                _("give exactly one of createdAfter and lastUpdatedAfter"),
            ),
            (not self.marketplace_ids, _("at least one marketplace id is needed")),
            (
                len(self.marketplace_ids) > MAX_MARKETPLACES,
                _("at most {count} marketplace ids per call").format(count=MAX_MARKETPLACES),
            ),
            (
                not 1 <= self.max_results_per_page <= MAX_PAGE_SIZE,
                _("maxResultsPerPage must be between 1 and 100"),
            ),
        ]
        for values, allowed, name in (
            (self.included_data, INCLUDED_DATA, "includedData"),
            (self.fulfillment_statuses, FULFILLMENT_STATUSES, "fulfillmentStatuses"),
            (self.fulfilled_by, FULFILLED_BY, "fulfilledBy"),
        ):
            unknown = sorted(set(values) - allowed)
            checks.append(
                (
                    bool(unknown),
                    _("unknown {name} values: {values}").format(
                        name=name, values=", ".join(unknown)
                    ),
                )
            )
        for after, before in (
            (self.created_after, self.created_before),
            (self.last_updated_after, self.last_updated_before),
        ):
            checks.append(
                (
                    after is not None and before is not None and before < after,
                    _("the window ends before it starts"),
                )
            )
        return next((reason for failed, reason in checks if failed), None)

    @property
    def before(self) -> datetime | None:
        """The window's upper bound, whichever kind it is."""
        return self.created_before if self.created_after is not None else self.last_updated_before

    @property
    def after(self) -> datetime | None:
        """The window's lower bound, whichever kind it is."""
        return self.created_after if self.created_after is not None else self.last_updated_after

    def with_before(self, bound: datetime) -> SearchOrdersQuery:
        """Return a copy whose upper bound is ``bound``."""
        if self.created_after is not None:
            return replace(self, created_before=bound)
        return replace(self, last_updated_before=bound)

    def to_query(self) -> Query:
        """Build the query string parameters in the order the model lists them."""
        return Query.build(
            {
                "createdAfter": self.created_after,
                "createdBefore": self.created_before,
                "lastUpdatedAfter": self.last_updated_after,
                "lastUpdatedBefore": self.last_updated_before,
                "fulfillmentStatuses": self.fulfillment_statuses,
                "marketplaceIds": self.marketplace_ids,
                "fulfilledBy": self.fulfilled_by,
                "maxResultsPerPage": self.max_results_per_page,
                "includedData": self.included_data,
            }
        )


@dataclass(frozen=True)
class InvalidOrder:
    """An order of a page that did not parse; the caller quarantines it."""

    order_id: str | None
    raw: Any  # usually an object, but whatever the page held
    reason: str


@dataclass(frozen=True)
class OrdersPage:
    """One searchOrders page, parsed."""

    number: int
    query: Query  # exactly what was sent, token included
    token: str | None  # the token this page was fetched with
    next_token: str | None
    orders: list[Order]
    raw_orders: list[dict[str, Any]]  # same order as ``orders``, for storing the raw JSON
    invalid: list[InvalidOrder] = field(default_factory=list)
    window_before: datetime | None = None  # the bound Amazon echoed
    # When the page arrived: its next_token expires 24 hours later, so a caller that stores
    # the token for a resume stores this time with it.
    fetched_at: datetime = field(default_factory=utc_now)


class OrdersClient:
    """The Orders API for one seller account."""

    def __init__(
        self,
        client: SpApiClient,
        account: SellerAccount,
        *,
        skew_margin: timedelta | None = None,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.client = client
        self.account = account
        self.retry = retry  # for getOrder; None: the client's own policy
        if skew_margin is None:
            skew_margin = timedelta(seconds=client.settings.clock_skew_margin)
        self.skew_margin = skew_margin

    def latest_before_bound(self) -> datetime:
        """Return the latest ``*Before`` bound Amazon accepts now, minus the margin."""
        return self.client.clock.latest_before_bound(self.skew_margin)

    def clamp(self, query: SearchOrdersQuery) -> SearchOrdersQuery | None:
        """Clamp the window to the two-minute rule; None when the window becomes empty."""
        bound = self.latest_before_bound()
        before = query.before
        if before is None or before > bound:
            if before is not None:
                log.info(
                    "window_clamped",
                    account=self.account.name,
                    requested_before=before.isoformat(),
                    clamped_before=bound.isoformat(),
                )
            query = query.with_before(bound)
        after = query.after
        if after is not None and query.before is not None and after >= query.before:
            return None
        return query

    def search_orders(
        self,
        query: SearchOrdersQuery,
        *,
        resume_query: Query | None = None,
        resume_token: str | None = None,
        max_stale_pages: int | None = 5,
    ) -> Iterator[OrdersPage]:
        """Yield the pages of a search, page one first.

        To resume after a crash, pass the stored page-one query and page token as
        ``resume_query`` and ``resume_token``: the search continues at that token with
        exactly the same parameters, and ``query`` is not used. A token expires 24 hours
        after its page's ``fetched_at``; Amazon then rejects it with PaginationTokenError.

        Nothing is yielded when the window clamps to nothing. A caller that moves a
        watermark calls :meth:`clamp` first and moves it no further than the bound it returns.

        Raises:
            errors.RequestError: the query breaks one of Amazon's rules.
            errors.PaginationError: a page token repeated, or pages brought nothing new.
            errors.ApiError: as classified by the client.
        """
        first_body: Any = None
        if resume_query is not None and resume_token is not None:
            first_query = resume_query
        else:
            query.validate()
            fetched = self._fetch_first_page(query)
            if fetched is None:
                return
            first_query, first_body = fetched

        pager = pagination.Paginator(
            SEARCH_ORDERS.name,
            pagination.ORDERS_2026,
            first_query,
            self._fetch,
            start_token=resume_token,
            first_body=first_body,
            items=_orders_of,
            item_key=_order_id_of,
            max_stale_pages=max_stale_pages,
        )
        for page in pager:
            yield self._parse_page(page)

    def _fetch_first_page(self, query: SearchOrdersQuery) -> tuple[Query, Any] | None:
        """Send page one with a clamped window; on the two-minute-rule 400, clamp and resend once.

        Returns None when the clamped window is empty, so no call is needed.
        """
        for attempt in (1, 2):
            clamped = self.clamp(query)
            if clamped is None:
                log.info("window_empty", account=self.account.name)
                return None
            first_query = clamped.to_query()
            try:
                return first_query, self._fetch(first_query)
            except errors.WindowTooRecentError as exc:
                if attempt == 2:
                    raise
                # The client measured Amazon's clock from this response's Date header, so the
                # next clamp uses Amazon's time rather than ours.
                log.warning(
                    "window_too_recent",
                    account=self.account.name,
                    request_id=exc.request_id,
                    skew_seconds=round(self.client.clock.skew_seconds, 3),
                )
                query = clamped
        return None

    def accepts(self, query: SearchOrdersQuery) -> bool:
        """Send page one of ``query``; True on success, False on 400 InvalidInput.

        Used to find the includedData set that Amazon rejects; other errors are raised. A
        window that clamps to nothing sends no request and proves nothing, so it returns False.
        """
        try:
            fetched = self._fetch_first_page(query)
        except errors.FatalApiError as exc:
            if is_invalid_input(exc):
                return False
            raise
        return fetched is not None

    def _fetch(self, query: Query) -> Any:
        return self.client.call(self.account, SEARCH_ORDERS, query=query).body

    def get_order(self, order_id: str, included_data: Sequence[str] = ()) -> Order:
        """Fetch one order.

        Raises:
            errors.RequestError: an unknown includedData value.
            errors.FatalApiError: 404 when the order does not exist for this seller.
            errors.RecordError: the order Amazon returned does not parse.
        """
        return self.get_order_with_raw(order_id, included_data)[0]

    def get_order_with_raw(
        self, order_id: str, included_data: Sequence[str] = ()
    ) -> tuple[Order, dict[str, Any]]:
        """Fetch one order, parsed and as Amazon sent it (for storing its raw JSON)."""
        unknown = sorted(set(included_data) - INCLUDED_DATA)
        if unknown:
            raise errors.RequestError(
                GET_ORDER.name,
                _("unknown {name} values: {values}").format(
                    name="includedData", values=", ".join(unknown)
                ),
            )
        response = self.client.call(
            self.account,
            GET_ORDER,
            retry=self.retry,
            path_params={"orderId": order_id},
            query=Query.build({"includedData": tuple(included_data)}),
        )
        try:
            order = GetOrderResponse.model_validate(response.body).order
        except pydantic.ValidationError as exc:
            raise errors.RecordError(N_("order"), order_id, _short(exc)) from None
        return order, response.body["order"]

    def _parse_page(self, page: pagination.Page) -> OrdersPage:
        try:
            envelope = SearchOrdersResponse.model_validate(page.body)
        except pydantic.ValidationError as exc:
            raise errors.FatalApiError(SEARCH_ORDERS.name, 200, None, _short(exc), None) from None
        orders: list[Order] = []
        raw_orders: list[dict[str, Any]] = []
        invalid: list[InvalidOrder] = []
        for raw in envelope.orders:
            if not isinstance(raw, dict):
                invalid.append(InvalidOrder(None, raw, _("an order must be a JSON object")))
                continue
            try:
                orders.append(Order.model_validate(raw))
                raw_orders.append(raw)
            except pydantic.ValidationError as exc:
                order_id = raw.get("orderId")
                invalid.append(
                    InvalidOrder(order_id if isinstance(order_id, str) else None, raw, _short(exc))
                )
        return OrdersPage(
            number=page.number,
            query=page.query,
            token=page.token,
            next_token=page.next_token,
            orders=orders,
            raw_orders=raw_orders,
            invalid=invalid,
            window_before=envelope.last_updated_before or envelope.created_before,
        )


def _orders_of(body: Any) -> list[Any]:
    orders = body.get("orders") if isinstance(body, dict) else None
    return orders if isinstance(orders, list) else []


def _order_id_of(raw: Any) -> Any:
    return raw.get("orderId") if isinstance(raw, dict) else None


def _short(exc: pydantic.ValidationError) -> str:
    """Describe validation errors by location and rule only: input values may carry PII."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc'])}: {error['msg']}" for error in exc.errors()
    )


def is_invalid_input(error: errors.ApiError) -> bool:
    """Return whether an error is Amazon's generic 400 InvalidInput."""
    return error.status_code == 400 and error.error_code == "InvalidInput"
