"""Checkpoints of query streams: the watermark, the window being read and its page token.

A stream (for example the orders of one account) reads windows of Amazon's
``lastUpdatedAfter``/``lastUpdatedBefore``. The window's bounds are stored when it starts.
Each page is committed together with the token of the next page, so a crash resumes there.
Only when the last page is in does the watermark move, to the window's upper bound: never
backwards, and never past the bound chosen when the window started.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import ColumnElement, Connection, and_, delete, insert, select, update

from syncd import errors
from syncd.db.models import Checkpoint, table_of

_TABLE = table_of(Checkpoint)


@dataclass(frozen=True)
class Cursor:
    """Position of one stream: watermark, open window and page token."""

    account_id: int
    stream: str
    watermark: datetime | None
    window_after: datetime | None
    window_before: datetime | None
    page_query: str | None
    page_token: str | None
    page_token_at: datetime | None

    @property
    def has_open_window(self) -> bool:
        """True when a window was started and its last page is not in yet."""
        return self.window_before is not None


def load_cursor(connection: Connection, account_id: int, stream: str, now: datetime) -> Cursor:
    """Return the stream's cursor, creating an empty one on first use."""
    row = connection.execute(
        select(_TABLE).where(_TABLE.c.account_id == account_id, _TABLE.c.stream == stream)
    ).first()
    if row is None:
        connection.execute(
            insert(_TABLE).values(account_id=account_id, stream=stream, updated_at=now)
        )
        return Cursor(account_id, stream, None, None, None, None, None, None)
    return Cursor(
        account_id,
        stream,
        row.watermark,
        row.window_after,
        row.window_before,
        row.page_query,
        row.page_token,
        row.page_token_at,
    )


def _where(cursor: Cursor) -> ColumnElement[bool]:
    return and_(_TABLE.c.account_id == cursor.account_id, _TABLE.c.stream == cursor.stream)


def start_window(
    connection: Connection, cursor: Cursor, after: datetime, before: datetime, now: datetime
) -> Cursor:
    """Record the bounds of a new window; an unfinished window's page token is dropped.

    Raises:
        errors.CursorError: the window ends before it starts.
    """
    if before < after:
        raise errors.CursorError(cursor.stream, cursor.account_id, after, before)
    connection.execute(
        update(_TABLE)
        .where(_where(cursor))
        .values(
            window_after=after,
            window_before=before,
            page_query=None,
            page_token=None,
            page_token_at=None,
            updated_at=now,
        )
    )
    return Cursor(
        cursor.account_id, cursor.stream, cursor.watermark, after, before, None, None, None
    )


def narrow_window(
    connection: Connection, cursor: Cursor, before: datetime, now: datetime
) -> Cursor:
    """Lower the open window's upper bound to the one Amazon was actually sent.

    Raises:
        errors.CursorError: the new bound would widen the window or end it before it starts.
    """
    if cursor.window_before is None or cursor.window_after is None:
        raise errors.CursorError(cursor.stream, cursor.account_id, cursor.window_after, before)
    if before > cursor.window_before or before < cursor.window_after:
        raise errors.CursorError(cursor.stream, cursor.account_id, cursor.window_after, before)
    connection.execute(
        update(_TABLE).where(_where(cursor)).values(window_before=before, updated_at=now)
    )
    return Cursor(
        cursor.account_id,
        cursor.stream,
        cursor.watermark,
        cursor.window_after,
        before,
        cursor.page_query,
        cursor.page_token,
        cursor.page_token_at,
    )


def save_page(
    connection: Connection,
    cursor: Cursor,
    *,
    page_query: str,
    next_token: str | None,
    fetched_at: datetime,
    now: datetime,
) -> Cursor:
    """Record the next page's token (in the transaction of the page's rows)."""
    connection.execute(
        update(_TABLE)
        .where(_where(cursor))
        .values(
            page_query=page_query, page_token=next_token, page_token_at=fetched_at, updated_at=now
        )
    )
    return Cursor(
        cursor.account_id,
        cursor.stream,
        cursor.watermark,
        cursor.window_after,
        cursor.window_before,
        page_query,
        next_token,
        fetched_at,
    )


def finish_window(connection: Connection, cursor: Cursor, now: datetime) -> Cursor:
    """Move the watermark to the open window's upper bound after its last page.

    Raises:
        errors.CursorError: no window is open.
    """
    bound = cursor.window_before
    if bound is None:
        raise errors.CursorError(cursor.stream, cursor.account_id, cursor.watermark, None)
    watermark = bound if cursor.watermark is None else max(cursor.watermark, bound)
    return _close_window(connection, cursor, watermark, now)


def abandon_window(connection: Connection, cursor: Cursor, now: datetime) -> Cursor:
    """Close the open window without moving the watermark; the next run reads it again."""
    return _close_window(connection, cursor, cursor.watermark, now)


def _close_window(
    connection: Connection, cursor: Cursor, watermark: datetime | None, now: datetime
) -> Cursor:
    connection.execute(
        update(_TABLE)
        .where(_where(cursor))
        .values(
            watermark=watermark,
            window_after=None,
            window_before=None,
            page_query=None,
            page_token=None,
            page_token_at=None,
            updated_at=now,
        )
    )
    return Cursor(cursor.account_id, cursor.stream, watermark, None, None, None, None, None)


def reset_cursors(connection: Connection, account_id: int) -> None:
    """Forget every stream of an account, so that its next run starts with the backfill."""
    connection.execute(delete(_TABLE).where(_TABLE.c.account_id == account_id))
