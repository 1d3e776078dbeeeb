"""searchOrders page tokens: opaque, bound to the request's parameters, valid 24 hours.

When page 1 is computed, the matching orders are captured in a snapshot in a shuffled but
deterministic order (Amazon documents no order). A token points at a position in that
snapshot. Tokens are standard base64 of random bytes and always contain ``+``, ``/`` and
``=``, so a client that sends a token without percent-encoding it, or encodes it twice,
gets a token the sandbox never issued.

A token is bound to the seller, the region and a hash of every request parameter except
``maxResultsPerPage`` and ``includedData`` (which may change between pages), compared as
the exact strings sent.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

TOKEN_LIFETIME = timedelta(hours=24)
# Parameters a client may change between pages, besides the token itself.
UNBOUND_PARAMETERS = frozenset({"maxResultsPerPage", "includedData", "paginationToken"})
# Oldest tokens are dropped beyond this many; a dropped token reads as unknown.
MAX_TOKENS = 50_000


@dataclass(frozen=True)
class SearchSnapshot:
    """The result set of one search, captured when its first page was computed."""

    documents: tuple[dict[str, Any], ...]  # full order documents, never modified
    bound_name: str  # "lastUpdatedBefore" or "createdBefore"
    bound_value: str  # the echoed bound, RFC 3339


@dataclass(frozen=True)
class PageCursor:
    """Position in a snapshot that a token refers to."""

    seller_id: str
    region: str
    parameters_hash: str
    snapshot: SearchSnapshot
    offset: int
    issued_at: datetime


def hash_parameters(params: dict[str, str]) -> str:
    """Hash the first-occurrence values of every parameter a token is bound to."""
    bound = sorted(
        (name, value) for name, value in params.items() if name not in UNBOUND_PARAMETERS
    )
    digest = hashlib.sha256()
    for name, value in bound:
        digest.update(name.encode("utf-8") + b"\x00" + value.encode("utf-8") + b"\x01")
    return digest.hexdigest()


def new_token() -> str:
    """Return a fresh token: standard base64 of random bytes with ``+``, ``/`` and ``=``."""
    while True:
        # 31 bytes encode to 44 characters ending in "=", so only "+" and "/" can be missing.
        token = base64.b64encode(secrets.token_bytes(31)).decode("ascii")
        if "+" in token and "/" in token:
            return token


class PageTokens:
    """Issued page tokens. Not thread-safe: callers hold the state lock."""

    def __init__(self) -> None:
        self._cursors: dict[str, PageCursor] = {}

    def issue(self, cursor: PageCursor) -> str:
        """Store a cursor under a new token and return the token."""
        token = new_token()
        self._cursors[token] = cursor
        if len(self._cursors) > MAX_TOKENS:
            oldest = next(iter(self._cursors))
            del self._cursors[oldest]
        return token

    def resolve(
        self, token: str, seller_id: str, region: str, parameters_hash: str, now: datetime
    ) -> PageCursor | None:
        """Return the cursor of a valid token, or None if it is unknown, expired or misused."""
        cursor = self._cursors.get(token)
        if cursor is None:
            return None
        if now - cursor.issued_at > TOKEN_LIFETIME:
            return None
        if (cursor.seller_id, cursor.region, cursor.parameters_hash) != (
            seller_id,
            region,
            parameters_hash,
        ):
            return None
        return cursor

    def clear(self) -> None:
        """Forget every token."""
        self._cursors.clear()
