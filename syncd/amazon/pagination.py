"""Following page tokens safely.

SP-API spells paging differently per API: where the next token sits in the response, what
the request parameter is called, and whether the other parameters go along. A
:class:`TokenStyle` states that once per API. :class:`Paginator` follows the tokens, freezes
the first page's query so every later page repeats it byte for byte, and stops with
:class:`errors.PaginationError` when a token repeats or, optionally, when pages stop bringing
new items (Amazon has returned the same orders under ever new tokens).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from syncd import errors
from syncd.amazon.query import Query
from syncd.logs import get_logger

log = get_logger(__name__)


@dataclass(frozen=True)
class TokenStyle:
    """An API's spelling of paging: where the next token sits and how a request carries it."""

    response_path: tuple[str, ...]  # keys leading to the token in the response body
    request_param: str
    token_only: bool = False  # True: the token must be the request's only parameter

    def next_token(self, body: Any) -> str | None:
        """Return the next token from a response body, or None on the last page."""
        node = body
        for key in self.response_path:
            if not isinstance(node, dict):
                return None
            node = node.get(key)
        return node if isinstance(node, str) and node else None

    def page_query(self, first: Query, token: str) -> Query:
        """Return the query of the page that ``token`` points to."""
        if self.token_only:
            return Query(((self.request_param, token),))
        return first.with_param(self.request_param, token)


# Orders 2026-01-01: every other parameter must repeat page one's values (except
# maxResultsPerPage and includedData); the token lives 24 hours.
ORDERS_2026 = TokenStyle(("pagination", "nextToken"), "paginationToken")
ORDERS_V0 = TokenStyle(("payload", "NextToken"), "NextToken")
# Reports 2021-06-30 getReports: the token must be sent alone.
REPORTS_2021 = TokenStyle(("nextToken",), "nextToken", token_only=True)
# Finances 2024-06-19 listTransactions: the token goes with the original parameters.
FINANCES_2024 = TokenStyle(("payload", "nextToken"), "nextToken")
FBA_INVENTORY_V1 = TokenStyle(("pagination", "nextToken"), "nextToken")


@dataclass(frozen=True)
class Page:
    """One fetched page."""

    number: int  # 1-based, counted from where this paginator started
    query: Query  # exactly what was sent
    token: str | None  # the token this page was fetched with (None for page one)
    body: Any
    next_token: str | None


class Paginator:
    """Iterates the pages of one query.

    Args:
        operation: the operation name, for errors and logs.
        style: the API's token spelling.
        first_query: page one's query, frozen for the whole run.
        fetch: sends one query and returns the parsed response body.
        start_token: resume at the page this stored token points to.
        first_body: page one's body when the caller already fetched it with ``first_query``.
        items: extracts the items of a body (needed for ``max_stale_pages``).
        item_key: the identity of an item, such as the order id.
        max_stale_pages: stop after this many consecutive pages without a new item.
    """

    def __init__(
        self,
        operation: str,
        style: TokenStyle,
        first_query: Query,
        fetch: Callable[[Query], Any],
        *,
        start_token: str | None = None,
        first_body: Any = None,
        items: Callable[[Any], Iterable[Any]] | None = None,
        item_key: Callable[[Any], Hashable] | None = None,
        max_stale_pages: int | None = None,
    ) -> None:
        if max_stale_pages is not None and (items is None or item_key is None):
            raise ValueError("max_stale_pages needs items and item_key")
        self.operation = operation
        self.style = style
        self.first_query = first_query.without(style.request_param)
        self._fetch = fetch
        self._start_token = start_token
        self._first_body = first_body
        self._items = items
        self._item_key = item_key
        self._max_stale = max_stale_pages

    def __iter__(self) -> Iterator[Page]:
        seen_tokens: set[str] = set()
        seen_items: set[Hashable] = set()
        stale_pages = 0
        token = self._start_token
        number = 0
        while True:
            number += 1
            query = (
                self.first_query
                if token is None
                else self.style.page_query(self.first_query, token)
            )
            if token is not None:
                seen_tokens.add(token)
            if number == 1 and token is None and self._first_body is not None:
                body = self._first_body
            else:
                body = self._fetch(query)
            next_token = self.style.next_token(body)
            yield Page(number, query, token, body, next_token)

            if self._max_stale is not None:
                stale_pages = self._count_stale(body, seen_items, stale_pages)
                if stale_pages >= self._max_stale:
                    log.warning(
                        "pages_without_new_items", operation=self.operation, pages=stale_pages
                    )
                    raise errors.PaginationError(
                        self.operation, number, errors.PaginationError.NO_NEW_ITEMS
                    )
            if next_token is None:
                return
            if next_token in seen_tokens:
                log.error("page_token_repeated", operation=self.operation, page=number)
                raise errors.PaginationError(self.operation, number)
            token = next_token

    def _count_stale(self, body: Any, seen: set[Hashable], stale: int) -> int:
        assert self._items is not None
        assert self._item_key is not None
        keys = {self._item_key(item) for item in self._items(body)}
        new = keys - seen
        seen.update(keys)
        return 0 if new else stale + 1
