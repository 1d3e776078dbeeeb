"""Holding accounts' leases: for one command's run, or for as long as a daemon node lives.

The job itself renews the lease in the transaction of every page it stores (:func:`fenced`),
which is what keeps two processes from writing the same account: a process that lost the
lease writes nothing more. The heartbeats here keep leases alive between those writes.

A one-off command (``syncd once``) holds an account's lease for its run only, through
:class:`LeaseBook` and :class:`LeaseKeeper`.

A daemon node keeps the leases it holds between runs (:class:`NodeLeases`): sticky ownership.
Its heartbeat renews all of them in one statement and keeps the node near its fair share,
``ceil(accounts / live nodes)``. Above it, the node gives idle accounts back, so that a node
that just started gets some. Below it, the node claims free or expired ones. Leases
taken per run would also keep each account on one node at a time, but an account would hop
between nodes from run to run. Sticky ownership keeps an account's quota buckets in the one
process that spends them, as Amazon meters them per seller and application. It also costs
one renewal statement per heartbeat for all accounts instead of a claim and a release per
run. A node that dies (SIGKILL) stops renewing, and after ``SYNCD_LEASE_SECONDS`` its
accounts are free for the other nodes' next heartbeat.
"""

from __future__ import annotations

import math
import os
import socket
import threading
from collections.abc import Collection, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from types import TracebackType

from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from syncd import __version__, errors
from syncd.amazon.throttle import BucketLevel
from syncd.db import accounts, leases, nodes
from syncd.db.accounts import AccountRecord
from syncd.i18n import gettext as _
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


@dataclass
class _HeldAccount:
    """An account whose lease the node holds, and how many of its jobs run now."""

    name: str
    region: str
    jobs: int = 0


class NodeLeases:
    """The accounts a daemon node owns between runs, renewed and balanced by its heartbeat.

    Jobs ask :meth:`take` before they start, as with :class:`LeaseBook`, and get only the
    accounts the node holds. :meth:`join` registers the node and claims its share,
    :meth:`beat` runs every heartbeat, and :meth:`leave` gives every lease back on a clean
    stop.
    """

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self.ttl = timedelta(seconds=ctx.settings.lease_seconds)
        self.heartbeat = timedelta(seconds=ctx.settings.node_heartbeat)
        self.fair_share: int | None = None  # unknown until the first heartbeat
        self.live_nodes = 1
        self._held: dict[int, _HeldAccount] = {}
        self._lock = threading.Lock()

    @property
    def held_ids(self) -> set[int]:
        """The ids of the accounts whose lease the node holds."""
        with self._lock:
            return set(self._held)

    def join(self) -> None:
        """Register the node, then claim its share of the accounts.

        Raises:
            nodes.NodeConflictError: the database is SQLite and another node is live on it.
        """
        hostname, pid = socket.gethostname(), os.getpid()
        with self.ctx.engine.begin() as connection:
            if connection.dialect.name == "sqlite":
                self._check_single_node(connection, hostname)
            nodes.register_node(
                connection, self.ctx.owner, hostname=hostname, pid=pid, version=__version__
            )
        log.info("node_registered", owner=self.ctx.owner, hostname=hostname, pid=pid)
        self.beat()

    def _check_single_node(self, connection: Connection, hostname: str) -> None:
        """Raise when another node is live on this SQLite database; delete dead nodes' rows."""
        now = leases.database_now(connection)
        for other in nodes.list_nodes(connection):
            if other.owner == self.ctx.owner or not nodes.is_live(other, now, self.heartbeat):
                continue
            if other.hostname == hostname and (
                other.pid == os.getpid() or not _is_running(other.pid)
            ):
                # Killed before it could deregister, such as by a SIGKILL before a restart.
                # Its process is gone, so its leases are free now rather than at expiry. A
                # row with this process's own id is gone too: in a container the daemon often
                # gets the same id at every start.
                nodes.deregister_node(connection, other.owner)
                freed = leases.release_owner_leases(connection, other.owner)
                log.warning("node_removed_dead", node=other.owner, pid=other.pid, leases=freed)
                continue
            age = (now - other.heartbeat_at).total_seconds()
            log.error(
                "node_refused",
                owner=self.ctx.owner,
                node=other.owner,
                hostname=other.hostname,
                pid=other.pid,
                heartbeat_age_seconds=round(age, 1),
            )
            raise nodes.NodeConflictError(other, age)

    def beat(self) -> None:
        """Renew every lease held, write the heartbeat, and move toward the fair share."""
        # Renewal and heartbeat share one transaction, so a failed rebalance below never
        # makes the node look dead to the others.
        with self.ctx.engine.begin() as connection:
            renewed = leases.renew_leases(connection, self.ctx.owner, self.ttl)
            live = {node.owner for node in nodes.live_nodes(connection, self.heartbeat)}
            total = leases.count_leases(connection)
            self.live_nodes = max(1, len(live | {self.ctx.owner}))
            self._write_heartbeat(connection, len(renewed), total)
            for dead in nodes.remove_dead_nodes(connection):
                log.info("node_row_removed", node=dead.owner, heartbeat_at=str(dead.heartbeat_at))
        self._forget_lost(renewed)

        # Balance: every live node aims at the same share, so a new node gets accounts, and a
        # dead node's accounts are taken up once their leases expire.
        share = math.ceil(total / self.live_nodes)
        self.fair_share = share
        held = len(self.held_ids)
        if held > share:
            self._release_extra(held - share)
        elif held < share:
            self._claim(share - held)
        self.ctx.client.buckets.share_application_budget(self.live_nodes)
        if len(self.held_ids) != len(renewed):
            with self.ctx.engine.begin() as connection:
                self._write_heartbeat(connection, len(self.held_ids), total)

    def _write_heartbeat(self, connection: Connection, held: int, total: int) -> None:
        with self._lock:
            running = sum(1 for entry in self._held.values() if entry.jobs)
        status = _("accounts held: {held}/{total}; running: {running}; live nodes: {nodes}").format(
            held=held, total=total, running=running, nodes=self.live_nodes
        )
        present = nodes.record_heartbeat(
            connection, self.ctx.owner, accounts_held=held, status=status
        )
        if not present:
            # Another node deleted the row after a pause longer than DEAD_ROW_AGE.
            nodes.register_node(
                connection,
                self.ctx.owner,
                hostname=socket.gethostname(),
                pid=os.getpid(),
                version=__version__,
            )
            log.warning("node_registered_again", owner=self.ctx.owner)

    def _forget_lost(self, renewed: set[int]) -> None:
        with self._lock:
            missing = {account_id for account_id in self._held if account_id not in renewed}
        taken: set[int] = set()
        if missing:
            # An account removed with 'syncd account remove' takes its lease row with it.
            with self.ctx.engine.begin() as connection:
                taken = leases.existing_leases(connection, missing)
        with self._lock:
            for account_id in missing:
                held = self._held.pop(account_id, None)
                if held is None:
                    continue
                if account_id in taken:
                    log.error("lease_lost", account=held.name, owner=self.ctx.owner)
                else:
                    log.info("held_account_removed", account=held.name, owner=self.ctx.owner)
            unknown = renewed - set(self._held)
        if unknown:
            # Leases that are ours in the database but not in memory: a claim whose commit
            # succeeded although the driver reported an error.
            with self.ctx.engine.begin() as connection:
                found = self._read_accounts(connection, unknown)
            self._hold(found)

    def _claim(self, limit: int, account_ids: Collection[int] | None = None) -> list[int]:
        """Claim up to ``limit`` free or expired leases, with their saved quota levels."""
        with self.ctx.engine.begin() as connection:
            claimed = leases.claim_leases(
                connection, self.ctx.owner, self.ttl, limit, account_ids=account_ids
            )
            found = self._read_accounts(connection, claimed)
        if not found:
            return []
        self._hold(found)
        log.info(
            "leases_claimed",
            owner=self.ctx.owner,
            accounts=[account.name for account, _levels in found],
            held=len(self.held_ids),
            fair_share=self.fair_share,
        )
        return claimed

    @staticmethod
    def _read_accounts(
        connection: Connection, account_ids: Collection[int]
    ) -> list[tuple[AccountRecord, tuple[dict[str, BucketLevel], float] | None]]:
        """Return the accounts of these ids, each with its saved quota levels and their age."""
        if not account_ids:
            return []
        found = [a for a in accounts.list_accounts(connection) if a.id in account_ids]
        return [(account, leases.load_quota_levels(connection, account.id)) for account in found]

    def _hold(
        self, found: list[tuple[AccountRecord, tuple[dict[str, BucketLevel], float] | None]]
    ) -> None:
        """Start holding accounts whose lease is ours, from the quota levels they come with."""
        for account, saved in found:
            if saved is not None:
                levels, age = saved
                self.ctx.client.buckets.restore(account.name, account.region, levels, age)
            with self._lock:
                self._held.setdefault(account.id, _HeldAccount(account.name, account.region))

    def _release_extra(self, count: int) -> None:
        """Give back up to ``count`` leases of accounts with no job running."""
        with self._lock:
            idle = sorted(
                (account_id for account_id, held in self._held.items() if held.jobs == 0),
                reverse=True,
            )[:count]
        if idle:
            self._release(idle, reason="fair_share", idle_only=True)

    def _release(
        self, account_ids: Collection[int], reason: str, *, idle_only: bool = False
    ) -> None:
        """Give back these leases; with ``idle_only``, those of accounts with no job running.

        A job may start between the choice of idle accounts and this call, so they are
        checked again under the lock that :meth:`take` holds.
        """
        with self._lock:
            released = {
                i: self._held.pop(i)
                for i in account_ids
                if i in self._held and not (idle_only and self._held[i].jobs)
            }
        if not released:
            return
        buckets = self.ctx.client.buckets
        with self.ctx.engine.begin() as connection:
            for account_id, held in released.items():
                levels = buckets.levels(held.name, held.region)
                leases.save_quota_levels(connection, account_id, self.ctx.owner, levels)
            leases.release_leases(connection, self.ctx.owner, list(released))
        log.info(
            "leases_released",
            owner=self.ctx.owner,
            accounts=[held.name for held in released.values()],
            reason=reason,
            held=len(self.held_ids),
        )

    def take(self, account: AccountRecord) -> bool:
        """Hold the account for one more job; False when the node does not hold it.

        Once the node has joined, only its heartbeat claims accounts, so a dispatch costs no
        database statement for the accounts other nodes hold. Before that (a dispatcher
        that was never started), a free or expired lease is claimed here.
        """
        with self._lock:
            held = self._held.get(account.id)
            if held is not None:
                held.jobs += 1
                return True
            if self.fair_share is not None:
                return False
        if not self._claim(1, account_ids=[account.id]):
            return False
        with self._lock:
            held = self._held.get(account.id)
            if held is None:
                return False  # lost again between the claim and now
            held.jobs += 1
            return True

    def give_back(self, account: AccountRecord) -> None:
        """End one job's hold; the node keeps the lease for the account's next run."""
        with self._lock:
            held = self._held.get(account.id)
            if held is not None and held.jobs > 0:
                held.jobs -= 1

    def leave(self) -> None:
        """Give every lease back and delete the node's row; the jobs must have ended.

        When the database fails, the leases expire by themselves after their lifetime.
        """
        try:
            self._release(self.held_ids, reason="node_stopping")
            with self.ctx.engine.begin() as connection:
                nodes.deregister_node(connection, self.ctx.owner)
        except SQLAlchemyError as exc:
            log.error(
                "node_leave_failed",
                owner=self.ctx.owner,
                expires_in_seconds=self.ttl.total_seconds(),
                error=str(exc).splitlines()[0],
            )
            return
        log.info("node_deregistered", owner=self.ctx.owner)


def _is_running(pid: int) -> bool:
    """Return True when a process with this id exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it exists, under another user
    return True
