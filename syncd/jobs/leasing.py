"""Holding an account's lease while a job works on it, with a heartbeat that renews it.

The job itself also renews the lease in the transaction of every page it stores, which is
what keeps two processes from writing the same account. The heartbeat here only keeps the
lease alive through long quota waits, so that another process does not take it needlessly.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import TracebackType

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from syncd import errors
from syncd.db import leases
from syncd.db.accounts import AccountRecord
from syncd.jobs.context import JobContext
from syncd.logs import get_logger

log = get_logger(__name__)


class LeaseKeeper:
    """One account's lease: take it, renew it every third of its lifetime, give it back."""

    def __init__(self, ctx: JobContext, account: AccountRecord) -> None:
        self.ctx = ctx
        self.account = account
        self.ttl = timedelta(seconds=ctx.settings.lease_seconds)
        self._done = threading.Event()
        self._thread: threading.Thread | None = None

    def acquire(self) -> bool:
        """Take the lease; False when another process holds it.

        With the lease come the quota levels its last holder saved, so that this process
        does not spend a burst that Amazon's bucket no longer has.
        """
        with self.ctx.engine.begin() as connection:
            if not leases.acquire_lease(connection, self.account.id, self.ctx.owner, self.ttl):
                return False
            saved = leases.load_quota_levels(connection, self.account.id)
        if saved is not None:
            levels, age = saved
            self.ctx.client.buckets.restore(self.account.name, self.account.region, levels, age)
        return True

    def _save_quota_levels(self, connection: Connection) -> None:
        levels = self.ctx.client.buckets.levels(self.account.name, self.account.region)
        leases.save_quota_levels(connection, self.account.id, self.ctx.owner, levels)

    def __enter__(self) -> LeaseKeeper:
        self._thread = threading.Thread(
            target=self._renew_until_done,
            name=f"syncd-lease-{self.account.name}",
            daemon=True,
        )
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self._done.set()
        if self._thread is not None:
            self._thread.join()
        self.release()

    def release(self) -> None:
        """Give the lease back; when the database fails, let the lease expire by itself."""
        try:
            with self.ctx.engine.begin() as connection:
                self._save_quota_levels(connection)
                leases.release_lease(connection, self.account.id, self.ctx.owner)
        except SQLAlchemyError as exc:
            log.error(
                "lease_release_failed",
                account=self.account.name,
                owner=self.ctx.owner,
                expires_in_seconds=self.ttl.total_seconds(),
                error=str(exc).splitlines()[0],
            )

    def _renew_until_done(self) -> None:
        interval = self.ttl.total_seconds() / 3
        while not self._done.wait(interval):
            try:
                with self.ctx.engine.begin() as connection:
                    kept = leases.renew_lease(connection, self.account.id, self.ctx.owner, self.ttl)
                    # Saved with every beat too, for the next holder if this process dies.
                    self._save_quota_levels(connection)
            except SQLAlchemyError as exc:
                # The next beat tries again; the job's own renewal decides whether it may write.
                log.warning(
                    "lease_renewal_failed",
                    account=self.account.name,
                    error=str(exc).splitlines()[0],
                )
                continue
            if not kept:
                log.error("lease_lost", account=self.account.name, owner=self.ctx.owner)
                return


@contextmanager
def fenced(ctx: JobContext, account: AccountRecord, *, take: bool = False) -> Iterator[Connection]:
    """Begin a transaction that writes only while this process holds the account's lease.

    With ``take`` the lease may also be free or expired (the start of a run); otherwise it
    must still be ours. The account's quota levels are saved in the same transaction, so a
    process killed between two heartbeats leaves the next holder levels no older than its
    last write.

    Raises:
        errors.LeaseLostError: another process holds the lease; nothing is written.
    """
    ttl = timedelta(seconds=ctx.settings.lease_seconds)
    renew = leases.acquire_lease if take else leases.renew_lease
    with ctx.engine.begin() as connection:
        if not renew(connection, account.id, ctx.owner, ttl):
            raise errors.LeaseLostError(account.name)
        levels = ctx.client.buckets.levels(account.name, account.region)
        leases.save_quota_levels(connection, account.id, ctx.owner, levels)
        yield connection


class LeaseBook:
    """The accounts whose lease this process holds, shared by its jobs.

    The orders job and the shipments job of one account may run at the same time in one
    process: the lease belongs to the process. The first job to start takes the lease and
    starts its heartbeat; the last one to finish gives it back.
    """

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        self._held: dict[int, tuple[LeaseKeeper, int]] = {}

    def take(self, account: AccountRecord) -> bool:
        """Hold the account's lease for one more job; False when another process holds it."""
        with self._lock:
            held = self._held.get(account.id)
            if held is not None:
                self._held[account.id] = (held[0], held[1] + 1)
                return True
            keeper = LeaseKeeper(self.ctx, account)
            if not keeper.acquire():
                return False
            keeper.__enter__()
            self._held[account.id] = (keeper, 1)
            return True

    def give_back(self, account: AccountRecord) -> None:
        """End one job's hold; the last one releases the lease."""
        with self._lock:
            held = self._held.get(account.id)
            if held is None:
                return
            keeper, count = held
            if count > 1:
                self._held[account.id] = (keeper, count - 1)
                return
            del self._held[account.id]
        keeper.__exit__(None, None, None)

    @contextmanager
    def holding(self, account: AccountRecord) -> Iterator[bool]:
        """Hold the lease for the ``with`` block; the value is whether it was obtained."""
        taken = self.take(account)
        try:
            yield taken
        finally:
            if taken:
                self.give_back(account)
