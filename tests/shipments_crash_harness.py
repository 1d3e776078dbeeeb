"""Crash safety of the shipments job: SIGKILL syncd while it sends tracking numbers, then compare.

The harness plays an operator whose server dies again and again while shipments go out:

1. It starts ``syncd sandbox serve`` in its own process, with no generated orders and quotas
   on at a speed factor. Through the control API (``POST /_sandbox/orders``) it creates
   merchant-fulfilled, unshipped orders of one NA seller, with one to three items of one to
   three units each.
2. It migrates the database with ``syncd db upgrade``, adds the account with
   ``syncd account add`` (the refresh token on standard input) and runs ``syncd once orders``
   once, so that syncd's tables hold the orders, as a running daemon's would. The sandbox
   starts ten minutes behind and sets its clock right before that run, so the orders are ten
   minutes old: syncd reads only orders updated at least two minutes and a margin before now.
3. It writes the shipment requests into the intake, as an ERP would, in waves: one wave
   before each of the first rounds, so that later rounds also find requests to check. An
   order is shipped whole (a request without items), in one request that lists its items by
   SKU, or split by item into two requests, so that it gets two packages.
4. Each round starts ``syncd once shipments``, or sometimes the daemon ``syncd run``, as a
   subprocess and sends it SIGKILL after a random delay (seeded). The delays are drawn from
   the running times seen so far, so that kills land at start-up, during intake and during
   delivery. Before some rounds the harness adds a confirmShipment fault (``apply_then_slow``
   with a delay above the client's read timeout, ``apply_then_server_error``,
   ``server_error`` or ``throttle``). In some rounds it also holds the database's write lock
   (the account's lease row on PostgreSQL and MariaDB, the whole database on SQLite) for the
   last moments before the kill. The process then cannot commit what it learned, so the
   kill lands between Amazon's 204 and the commit far more often than by timing alone.
5. After each kill the harness marks the lease as expired, as ``SYNCD_LEASE_SECONDS`` passing
   would. Rows that the dead process had claimed are released by the next holder of the
   lease (``outbox.release_claims``) when that holder runs the account's job. After each
   round no package on Amazon may lack its outbox row, and no two packages of an order may
   share a tracking number.
6. A last phase writes the remaining requests and runs ``syncd once shipments`` to its end
   until nothing is left to do. Before each of those runs the harness makes waiting rows due
   now, as time passing would: pending rows whose backoff has not ended and delivered rows
   not yet verified. It also lets a minute pass for quota: the sandbox clock moves ahead and
   syncd's saved quota levels are dated a minute back, so the runs verify more than one order
   each. Should a run find nothing to do while rows are still claimed by a killed process,
   the harness expires those claims, as ``SYNCD_SHIPMENT_CLAIM_SECONDS`` (600 s by default)
   passing would, and counts the rows. syncd counts such rows as due once the claiming
   process has lost the lease, so the count stays 0 unless that breaks.

Then every request must be accepted and every outbox row delivered and verified. For every
order, the sandbox's packages (``GET /_sandbox/orders/{orderId}/packages``) must be exactly the
outbox rows of that order: one package per row, with the row's reference, carrier, tracking
number and items. Any failure raises :class:`ShipmentCrashError` naming the seed and the
first difference, so the run can be repeated with the same seed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Connection, Engine, func, select, text, update

from syncd.db import intake, outbox
from syncd.db.models import Account, Lease, Order, OutboxEntry, ShipmentRequest, table_of
from syncd.sandbox.external import ExternalSandbox
from syncd.shipping.submit import submit_shipment
from tests.crash_support import (
    HarnessBase,
    KillTiming,
    command_environment,
    expire_lease,
    parse_time,
    plain_lines,
    read_events,
    run_killable,
)

US = "ATVPDKIKX0DER"
ACCOUNT = "crash-na"
REFRESH_TOKEN = "Atzr|shipments-crash-seller"
SOURCE_SYSTEM = "crash-erp"
# Carriers as a warehouse names them: Amazon codes, a name syncd maps, and an unknown one
# that goes to Amazon as Other with its name.
CARRIERS = ("UPS", "DHL", "云途", "4PX", "Kurier Schmidt")
# The sandbox starts this far behind, so the orders it creates at the start are this old once
# its clock is set right. A new `syncd once orders` process reads up to its local now minus
# two minutes and a 60 s margin: it has no measurement of Amazon's clock before its first call.
CLOCK_BEHIND_SECONDS = 600
# Share of kills aimed at process start-up, before the job logs its first step.
STARTUP_KILL_SHARE = 0.15
# Quota time that passes before each final run (see _let_quota_refill).
QUOTA_MINUTE_SECONDS = 60
# Seconds by which an apply_then_slow fault outlasts the client's read timeout.
SLOW_BEYOND_TIMEOUT = 1.0

_ACCOUNTS = table_of(Account)
_LEASES = table_of(Lease)
_ORDERS = table_of(Order)
_OUTBOX = table_of(OutboxEntry)
_REQUESTS = table_of(ShipmentRequest)

# Where a killed run was, judged from the last event it logged.
PHASE_STARTING = "starting, before the job logged its first step"
PHASE_INTAKE = "intake: checking requests and enqueueing them"
PHASE_SENDING = "delivery: claiming, waiting for quota or for Amazon's answer"
PHASE_AFTER_204 = "delivery: Amazon answered 204, outcome not yet committed"
PHASE_VERIFYING = "verification: reading packages back with getOrder"
PHASE_IDLE = "after a run ended (giving the lease back, or the daemon idle)"
PHASE_EXITED = "not killed: the run ended before the delay"
PHASES = (
    PHASE_STARTING,
    PHASE_INTAKE,
    PHASE_SENDING,
    PHASE_AFTER_204,
    PHASE_VERIFYING,
    PHASE_IDLE,
    PHASE_EXITED,
)

# The sandbox: no generated orders, the US marketplace only, the clock behind (see above).
SANDBOX_ARGS = (
    "--orders-per-marketplace",
    "0",
    "--marketplace",
    US,
    "--clock-offset",
    str(-CLOCK_BEHIND_SECONDS),
)
ONCE = ("once", "shipments")
# What `syncd once shipments` prints when no account has requests or due rows.
NOTHING_WAITING = "No shipment is waiting."
DAEMON = ("run",)


class ShipmentCrashError(AssertionError):
    """After the crashes, a request, an outbox row or a package differs from what it must be."""


@dataclass
class ShipmentCrashConfig:
    """Settings of one harness run. The defaults suit a CI run of a few kills."""

    database_url: str
    work_dir: Path  # round logs go here
    kills: int = 10
    seed: int = 1
    orders: int = 60
    waves: int = 10  # the requests are written in this many waves, one before each round
    speed: float = 1.0  # quota speed factor of the sandbox
    fault_probability: float = 0.4  # chance of a new confirmShipment fault before a round
    stall_probability: float = 0.3  # chance that a round's last moments hold the write lock
    daemon_probability: float = 0.25  # chance that a round runs `syncd run`
    read_timeout: float = 2.0  # SYNCD_HTTP_READ_TIMEOUT of the syncd commands
    first_run_guess_seconds: float = 3.0  # work time assumed until a run has been seen
    round_timeout_seconds: float = 300.0  # a final run that takes longer is a failure
    max_final_runs: int = 40


@dataclass
class PlannedRequest:
    """One request the harness writes into the intake, and the package it must become."""

    key: str
    order_id: str
    carrier: str
    tracking_number: str
    items: list[dict[str, Any]] | None  # as the request names them; None: the whole order
    expected: dict[str, int]  # order item id -> units in the package
    kind: str  # "whole", "listed" or "split"


@dataclass
class ShipmentRound:
    """One run of ``syncd once shipments`` or ``syncd run``."""

    number: int
    command: str
    delay_seconds: float | None  # None for the final runs, which are never killed
    killed: bool
    phase: str
    returncode: int
    seconds: float
    stalled: bool  # the harness held the write lock before the kill
    fault: str | None  # the kind of fault added just before this round
    requests_written: int  # requests added to the intake just before this round
    applied_unrecorded: int  # rows the kill left sending while Amazon had their package
    output: str  # what the command printed, without its JSON log lines


@dataclass
class ShipmentCrashResult:
    """Figures of one harness run."""

    seed: int
    rounds: list[ShipmentRound] = field(default_factory=list)
    orders: int = 0
    requests: int = 0
    shipments: int = 0  # outbox rows
    packages: int = 0  # packages on the sandbox's orders
    confirm_calls: int = 0
    confirm_throttled: int = 0  # 429 responses to confirmShipment, faults included
    get_order_calls: int = 0
    faults_added: Counter[str] = field(default_factory=Counter)
    final_runs: int = 0
    claims_expired_by_harness: int = 0  # claimed rows that a final run found nothing to do for
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        """Rounds ended by SIGKILL."""
        return sum(1 for record in self.rounds if record.killed)

    @property
    def phases(self) -> Counter[str]:
        """How many rounds ended in each phase."""
        return Counter(record.phase for record in self.rounds)

    @property
    def applied_unrecorded(self) -> int:
        """Rows left sending by a kill although Amazon had recorded their package."""
        return sum(record.applied_unrecorded for record in self.rounds)

    @property
    def failed_runs(self) -> list[ShipmentRound]:
        """Rounds that ended by themselves with a non-zero exit status."""
        return [r for r in self.rounds if not r.killed and r.returncode != 0]


def run_shipments_crash_harness(
    config: ShipmentCrashConfig, progress: Callable[[str], None] | None = None
) -> ShipmentCrashResult:
    """Run the rounds of ``config`` and compare; return the figures.

    The database must be empty of syncd's tables (the harness migrates it).

    Raises:
        ShipmentCrashError: a request is not accepted, a row is not delivered and verified,
            a package is missing, extra, duplicated or differs from its row, or a final run
            failed.
    """
    started = time.monotonic()
    config.work_dir.mkdir(parents=True, exist_ok=True)
    sandbox_args = (
        *SANDBOX_ARGS,
        "--speed",
        str(config.speed),
        "--seed",
        str(config.seed),
    )
    with (
        ExternalSandbox(*sandbox_args) as sandbox,
        _Harness(config, sandbox, progress) as harness,
    ):
        result = harness.run()
    result.seconds = time.monotonic() - started
    return result


class _Harness(HarnessBase):
    """The state of one harness run: sandbox, environment, database engine, records."""

    error_type = ShipmentCrashError
    result: ShipmentCrashResult

    def __init__(
        self,
        config: ShipmentCrashConfig,
        sandbox: ExternalSandbox,
        progress: Callable[[str], None] | None,
    ) -> None:
        super().__init__(
            seed=config.seed,
            work_dir=config.work_dir,
            database_url=config.database_url,
            control_url=sandbox.settings["SYNCD_SPAPI_ENDPOINT_NA"] + "/_sandbox",
            env=command_environment(
                config.database_url,
                sandbox.settings,
                {
                    "SYNCD_ORDERS_BACKFILL_DAYS": "1",
                    "SYNCD_HTTP_READ_TIMEOUT": str(config.read_timeout),
                    "SYNCD_SHIPMENTS_INTERVAL": "1",
                    "SYNCD_DISPATCH_INTERVAL": "1",
                },
            ),
            timing=KillTiming(
                work=config.first_run_guess_seconds, startup_share=STARTUP_KILL_SHARE
            ),
            progress=progress,
        )
        self.config = config
        self.result = ShipmentCrashResult(seed=config.seed)
        self.plans: list[PlannedRequest] = []
        self.waves: list[list[PlannedRequest]] = []
        self.account_id = 0
        self._serial = 0  # the last number given to a planned request

    # -- the rounds --------------------------------------------------------------------------

    def run(self) -> ShipmentCrashResult:
        self._set_up()
        number = 0
        while self.result.kills < self.config.kills:
            number += 1
            written = self._write_wave()
            fault = self._maybe_add_fault()
            command = DAEMON if self.rng.random() < self.config.daemon_probability else ONCE
            delay = self.timing.draw_delay(self.rng)
            stall_at = None
            if self.rng.random() < self.config.stall_probability:
                stall_at = max(0.0, delay - self.rng.uniform(0.2, 1.2))
            record = self._round(
                number, command, delay=delay, stall_at=stall_at, fault=fault, written=written
            )
            self._check_packages(f"after round {number} ({record.phase})")
            self.progress(_describe(record))

        self._finish(number)
        self._compare()
        self._count_calls()
        return self.result

    def _set_up(self) -> None:
        """Create the orders, migrate, add the account, sync the orders and plan requests."""
        orders = [
            create_merchant_order(
                self.control, [self.rng.randint(1, 3) for _ in range(self.rng.randint(1, 3))]
            )
            for _ in range(self.config.orders)
        ]
        self.result.orders = len(orders)
        add_synced_account(self.control, self._syncd)
        with self.engine.begin() as connection:
            accounts = connection.execute(select(func.count()).select_from(_ACCOUNTS)).scalar_one()
            self.account_id = int(
                connection.execute(
                    select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.name == ACCOUNT)
                ).scalar_one()
            )
        if accounts != 1:
            raise self._error(
                f"the database already had syncd accounts ({accounts} in all): "
                "drop syncd's tables before running the harness"
            )
        stored = stored_orders(self.engine)
        if stored != len(orders):
            raise self._error(f"syncd once orders stored {stored} of the {len(orders)} orders")

        for order in orders:
            self.plans.extend(self._plan_requests(order))
        self.rng.shuffle(self.plans)
        self.result.requests = len(self.plans)
        size = -(-len(self.plans) // max(1, self.config.waves))
        self.waves = [self.plans[start : start + size] for start in range(0, len(self.plans), size)]

    def _plan_requests(self, order: dict[str, Any]) -> list[PlannedRequest]:
        """Plan one order's requests: whole, listed by SKU, or split by item into two."""
        order_id = order["orderId"]
        items = [
            (item["orderItemId"], int(item["quantityOrdered"])) for item in order["orderItems"]
        ]
        skus = [item["product"]["sellerSku"] for item in order["orderItems"]]
        draw = self.rng.random()
        if len(items) >= 2 and draw < 0.45:
            cut = self.rng.randint(1, len(items) - 1)
            parts = [items[:cut], items[cut:]]
            return [
                self._plan(
                    order_id,
                    "split",
                    [{"order_item_id": item_id, "quantity": count} for item_id, count in part],
                    dict(part),
                )
                for part in parts
            ]
        if draw < 0.75 and len(set(skus)) == len(skus):
            listed = [
                {"sku": sku, "quantity": count} for sku, (_, count) in zip(skus, items, strict=True)
            ]
            return [self._plan(order_id, "listed", listed, dict(items))]
        return [self._plan(order_id, "whole", None, dict(items))]

    def _plan(
        self,
        order_id: str,
        kind: str,
        items: list[dict[str, Any]] | None,
        expected: dict[str, int],
    ) -> PlannedRequest:
        self._serial += 1
        serial = f"{self.config.seed:04d}{self._serial:05d}"
        return PlannedRequest(
            key=f"{order_id}/{kind}/{serial}",
            order_id=order_id,
            carrier=self.rng.choice(CARRIERS),
            tracking_number=f"TRK{serial}",
            items=items,
            expected=expected,
            kind=kind,
        )

    def _write_wave(self) -> int:
        """Write the next wave of requests into the intake; return how many."""
        if not self.waves:
            return 0
        wave = self.waves.pop(0)
        shipped_at = datetime.now(UTC) - timedelta(minutes=5)
        for plan in wave:
            submitted = submit_shipment(
                self.engine,
                account=ACCOUNT,
                order_id=plan.order_id,
                carrier=plan.carrier,
                tracking_number=plan.tracking_number,
                shipped_at=shipped_at,
                source_system=SOURCE_SYSTEM,
                source_key=plan.key,
                items=plan.items,
            )
            if not submitted.created:
                raise self._error(f"request {plan.key} was already in the intake")
        return len(wave)

    def _maybe_add_fault(self) -> str | None:
        if self.rng.random() >= self.config.fault_probability:
            return None
        kind = self.rng.choice(
            ("apply_then_slow", "apply_then_server_error", "server_error", "throttle")
        )
        rule: dict[str, Any] = {
            "kind": kind,
            "operation": "confirmShipment",
            "after": self.rng.randint(0, 4),
            "count": self.rng.randint(1, 3),
        }
        if kind == "apply_then_slow":
            rule["delay"] = self.config.read_timeout + SLOW_BEYOND_TIMEOUT
        if kind in ("apply_then_server_error", "server_error"):
            rule["status"] = self.rng.choice((500, 502, 503, 504))
        response = self.control.post("/faults", json=rule)
        response.raise_for_status()
        self.result.faults_added[kind] += 1
        return kind

    def _round(
        self,
        number: int,
        command: tuple[str, ...],
        *,
        delay: float | None,
        stall_at: float | None,
        fault: str | None,
        written: int,
    ) -> ShipmentRound:
        log_path = self.config.work_dir / f"round-{number:04d}.log"
        out_path = self.config.work_dir / f"round-{number:04d}.out"
        with self._write_lock() as lock:
            hooks = [] if stall_at is None else [(stall_at, lock.take)]
            process = run_killable(
                command,
                self.env,
                log_path,
                out_path,
                delay=delay,
                timeout=self.config.round_timeout_seconds,
                hooks=hooks,
            )
            stalled = lock.held
        if process.timed_out and delay is None:
            raise self._error(
                f"the final run did not finish in {self.config.round_timeout_seconds} s"
            )
        applied_unrecorded = 0
        if process.killed:
            expire_lease(self.engine, self.account_id)
            applied_unrecorded = self._applied_unrecorded()
        events = read_events(log_path)
        self._learn_timing(events, process.started_at, process.seconds, process.killed)
        record = ShipmentRound(
            number=number,
            command=" ".join(("syncd", *command)),
            delay_seconds=delay,
            killed=process.killed,
            phase=_phase(events) if process.killed else PHASE_EXITED,
            returncode=process.returncode,
            seconds=process.seconds,
            stalled=stalled,
            fault=fault,
            requests_written=written,
            applied_unrecorded=applied_unrecorded,
            output=out_path.read_text(encoding="utf-8") + plain_lines(log_path),
        )
        self.result.rounds.append(record)
        return record

    def _learn_timing(
        self, events: list[dict[str, Any]], spawned: datetime, seconds: float, killed: bool
    ) -> None:
        """Update the estimates from one round's log; a round with nothing to do says little."""
        steps = [e for e in events if _is_job_step(e)]
        if not steps:
            return
        first = _event_time(steps[0])
        self.timing.startup = max(0.1, (first - spawned).total_seconds())
        seen = (_event_time(steps[-1]) - first).total_seconds()
        if killed:
            self.timing.work = max(self.timing.work, seen)
        elif len(steps) > 1:
            # A moving average, so the estimate follows the waves as they grow and shrink.
            self.timing.work = max(0.5, (self.timing.work + seen) / 2)

    def _finish(self, number: int) -> None:
        """Write the remaining requests, then run the job to its end until nothing is left."""
        while self.waves:
            self._write_wave()
        self.control.delete("/faults")
        for _attempt in range(self.config.max_final_runs):
            if self._settled():
                return
            self._make_due()
            self._let_quota_refill()
            number += 1
            record = self._round(number, ONCE, delay=None, stall_at=None, fault=None, written=0)
            self.result.final_runs += 1
            self.progress(_describe(record))
            if record.returncode != 0:
                raise self._error(
                    f"final run {number} of syncd once shipments exited with "
                    f"{record.returncode}: {record.output.strip()}"
                )
            if NOTHING_WAITING in record.output:
                # The job found nothing to do: rows a killed process claimed wait for their
                # claim to expire. Time passing would expire it.
                self.result.claims_expired_by_harness += self._expire_claims()
        if not self._settled():
            raise self._error(
                f"after {self.config.max_final_runs} final runs requests or rows are still "
                f"open: {self._open_work()}"
            )

    # -- the database ------------------------------------------------------------------------

    @contextmanager
    def _write_lock(self) -> Iterator[_WriteLock]:
        lock = _WriteLock(self.engine, self.account_id)
        try:
            yield lock
        finally:
            lock.release()

    def _rows(self) -> list[outbox.OutboxRow]:
        with self.engine.begin() as connection:
            return outbox.list_rows(connection, account=ACCOUNT, limit=100_000)

    def _requests(self) -> list[intake.RequestRow]:
        """Return every intake row, read the way syncd reads them."""
        with self.engine.begin() as connection:
            ids = connection.execute(select(_REQUESTS.c.id).order_by(_REQUESTS.c.id)).scalars()
            found = [intake.get_request(connection, request_id) for request_id in list(ids)]
        return [request for request in found if request is not None]

    def _settled(self) -> bool:
        return not self._open_work()

    def _open_work(self) -> str:
        """Describe what is still open (new requests, unfinished or unverified rows)."""
        new = sum(1 for request in self._requests() if request.status == intake.NEW)
        states = Counter(row.state for row in self._rows())
        unverified = sum(
            1 for row in self._rows() if row.state == outbox.DELIVERED and row.verified_at is None
        )
        open_rows = states[outbox.PENDING] + states[outbox.SENDING]
        if not new and not open_rows and not unverified:
            return ""
        return (
            f"{new} new requests, {states[outbox.PENDING]} pending and "
            f"{states[outbox.SENDING]} sending rows, {unverified} delivered rows not verified"
        )

    def _make_due(self) -> None:
        """Make rows waiting for a backoff or a verification due now, as time passing would."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        with self.engine.begin() as connection:
            connection.execute(
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.account_id == self.account_id,
                    _OUTBOX.c.next_attempt_at.is_not(None),
                    _OUTBOX.c.next_attempt_at > past,
                )
                .values(next_attempt_at=past)
            )

    def _expire_claims(self) -> int:
        """Expire the claims of rows still sending, as SYNCD_SHIPMENT_CLAIM_SECONDS passing does."""
        past = datetime.now(UTC) - timedelta(seconds=1)
        with self.engine.begin() as connection:
            claimed = connection.execute(
                update(_OUTBOX)
                .where(
                    _OUTBOX.c.account_id == self.account_id,
                    _OUTBOX.c.state == outbox.SENDING,
                    _OUTBOX.c.claim_expires_at >= past,
                )
                .values(claim_expires_at=past)
            )
        return int(claimed.rowcount)

    def _let_quota_refill(self) -> None:
        """Let a minute of quota time pass at Amazon and in syncd's saved quota levels.

        Verification spends only getOrder quota that is free, so back-to-back final runs at
        real quota rates would each verify about one order.
        """
        self.control.post("/clock", json={"advance_seconds": QUOTA_MINUTE_SECONDS})
        with self.engine.begin() as connection:
            saved_at = connection.execute(
                select(_LEASES.c.quota_saved_at).where(_LEASES.c.account_id == self.account_id)
            ).scalar_one_or_none()
            if saved_at is not None:
                connection.execute(
                    update(_LEASES)
                    .where(_LEASES.c.account_id == self.account_id)
                    .values(quota_saved_at=saved_at - timedelta(seconds=QUOTA_MINUTE_SECONDS))
                )

    def _applied_unrecorded(self) -> int:
        """Count rows left sending whose package Amazon has, with the row's tracking number."""
        sending = [row for row in self._rows() if row.state == outbox.SENDING]
        if not sending:
            return 0
        packages = self._sandbox_packages()
        count = 0
        for row in sending:
            match = next(
                (
                    package
                    for package in packages.get(row.order_id, [])
                    if package["packageReferenceId"] == row.package_reference_id
                ),
                None,
            )
            if match is not None and match.get("trackingNumber") == row.tracking_number:
                count += 1
        return count

    # -- the comparison ----------------------------------------------------------------------

    def _sandbox_packages(self) -> dict[str, list[dict[str, Any]]]:
        """Return every order's packages from the control API's list of the seller's orders."""
        response = self.control.get("/orders", params={"refresh_token": REFRESH_TOKEN})
        response.raise_for_status()
        return {
            document["orderId"]: list(document.get("packages") or [])
            for document in response.json()["orders"]
        }

    def _check_packages(self, when: str) -> None:
        """Check what must hold after any round: every package on Amazon has its outbox row."""
        rows = self._rows()
        differences = [
            f"{when}: outbox row {row.id} of order {row.order_id} is {row.state}: "
            f"{row.last_error_code} {row.last_error_message}"
            for row in rows
            if row.state in (outbox.DEAD, outbox.CONFLICT, outbox.CANCELLED)
        ]
        by_reference = {(row.order_id, row.package_reference_id): row for row in rows}
        for order_id, packages in sorted(self._sandbox_packages().items()):
            trackings = Counter(package.get("trackingNumber") for package in packages)
            differences.extend(
                f"{when}: order {order_id} has {count} packages with tracking number {tracking}"
                for tracking, count in trackings.items()
                if count > 1
            )
            for package in packages:
                reference = package["packageReferenceId"]
                row = by_reference.get((order_id, reference))
                if row is None:
                    differences.append(
                        f"{when}: order {order_id} has package {reference} "
                        f"({package.get('trackingNumber')}) that no outbox row has"
                    )
                elif package.get("trackingNumber") != row.tracking_number:
                    differences.append(
                        f"{when}: order {order_id} package {reference} has tracking number "
                        f"{package.get('trackingNumber')}, its outbox row {row.tracking_number}"
                    )
        if differences:
            self._raise_first(differences)

    def _compare(self) -> None:
        """Compare requests, outbox rows and the sandbox's packages; raise on a difference."""
        requests = self._requests()
        rows = self._rows()
        by_id = {row.id: row for row in rows}
        plans = {plan.key: plan for plan in self.plans}
        self.result.shipments = len(rows)
        differences: list[str] = []

        if len(requests) != len(self.plans):
            differences.append(f"the intake holds {len(requests)} requests, not {len(self.plans)}")
        for request in requests:
            plan = plans.get(request.source_key)
            if plan is None:
                differences.append(f"request {request.id} ({request.source_key}) was never written")
                continue
            if request.status != intake.ACCEPTED or request.outbox_id is None:
                differences.append(
                    f"request {request.id} ({plan.kind}, order {plan.order_id}) is "
                    f"{request.status}: {request.reject_code} {request.reject_reason}"
                )
                continue
            row = by_id.get(request.outbox_id)
            if row is None:
                differences.append(
                    f"request {request.id} names outbox row {request.outbox_id}, gone"
                )
                continue
            differences.extend(_row_differences(request.id, plan, row))
        linked = Counter(request.outbox_id for request in requests if request.outbox_id)
        differences.extend(
            f"outbox row {row.id} belongs to {linked[row.id]} requests"
            for row in rows
            if linked[row.id] != 1
        )

        packages_found = 0
        for order_id in sorted({plan.order_id for plan in self.plans}):
            packages = self._order_packages(order_id)
            packages_found += len(packages)
            mine = [row for row in rows if row.order_id == order_id]
            differences.extend(_package_differences(order_id, mine, packages))
        self.result.packages = packages_found
        if differences:
            self._raise_first(differences)

    def _order_packages(self, order_id: str) -> list[dict[str, Any]]:
        response = self.control.get(
            f"/orders/{order_id}/packages", params={"refresh_token": REFRESH_TOKEN}
        )
        response.raise_for_status()
        packages: list[dict[str, Any]] = response.json()["packages"]
        return packages

    def _count_calls(self) -> None:
        calls = self.control.get("/calls", params={"operation": "confirmShipment"}).json()["calls"]
        self.result.confirm_calls = len(calls)
        self.result.confirm_throttled = sum(1 for call in calls if call["status"] == 429)
        response = self.control.get("/calls", params={"operation": "getOrder"})
        self.result.get_order_calls = len(response.json()["calls"])

    # -- helpers -----------------------------------------------------------------------------

    def _raise_first(self, differences: list[str]) -> None:
        more = f" ({len(differences) - 1} more differences)" if len(differences) > 1 else ""
        raise self._error(differences[0] + more)


def create_merchant_order(control: httpx.Client, quantities: Sequence[int]) -> dict[str, Any]:
    """Create an unshipped merchant-fulfilled order of the seller, one item per quantity."""
    response = control.post(
        "/orders",
        json={
            "refresh_token": REFRESH_TOKEN,
            "marketplace_id": US,
            "order": {
                "fulfillment": {"fulfilledBy": "MERCHANT"},
                "orderItems": [{"quantityOrdered": quantity} for quantity in quantities],
            },
        },
    )
    response.raise_for_status()
    order: dict[str, Any] = response.json()["order"]
    return order


def stored_orders(engine: Engine) -> int:
    """Return how many orders syncd's tables hold."""
    with engine.begin() as connection:
        return int(connection.execute(select(func.count()).select_from(_ORDERS)).scalar_one())


def add_synced_account(control: httpx.Client, syncd: Callable[..., None]) -> None:
    """Migrate, add the seller's NA account and store its orders, as an operator would.

    ``syncd(*args, stdin=…)`` runs one syncd command and raises when it fails. The sandbox,
    started with :data:`SANDBOX_ARGS`, first sets its clock right, so that the orders it
    created lie inside the window of ``syncd once orders``.
    """
    control.post("/clock", json={"offset_seconds": 0}).raise_for_status()
    syncd("db", "upgrade")
    syncd(
        "account",
        "add",
        ACCOUNT,
        "--region",
        "na",
        "--marketplace",
        US,
        "--refresh-token-file",
        "-",
        stdin=REFRESH_TOKEN + "\n",
    )
    syncd("once", "orders")


class _WriteLock:
    """Holds the database write lock that every fenced transaction of the account needs.

    On PostgreSQL and MariaDB it locks the account's lease row, which each such transaction
    updates. On SQLite it opens a write transaction, which blocks every other writer.
    """

    def __init__(self, engine: Engine, account_id: int) -> None:
        self.engine = engine
        self.account_id = account_id
        self.held = False
        self._connection: Connection | None = None

    def take(self) -> None:
        connection = self.engine.connect()
        connection.begin()  # rolled back by release()
        if self.engine.dialect.name == "sqlite":
            # The engine begins with BEGIN IMMEDIATE; a write makes sure the lock is held.
            connection.execute(text("UPDATE syncd_leases SET owner = owner WHERE 1 = 0"))
        else:
            connection.execute(
                select(_LEASES.c.account_id)
                .where(_LEASES.c.account_id == self.account_id)
                .with_for_update()
            )
        self._connection = connection
        self.held = True

    def release(self) -> None:
        if self._connection is not None:
            self._connection.rollback()
            self._connection.close()
            self._connection = None


def _row_differences(request_id: int, plan: PlannedRequest, row: outbox.OutboxRow) -> list[str]:
    found: list[str] = []
    items = {item.order_item_id: item.quantity for item in row.items}
    if row.order_id != plan.order_id:
        found.append(f"request {request_id}: outbox row {row.id} is for order {row.order_id}")
    if row.tracking_number != plan.tracking_number:
        found.append(
            f"request {request_id}: outbox row {row.id} has tracking number "
            f"{row.tracking_number}, the request {plan.tracking_number}"
        )
    if items != plan.expected:
        found.append(
            f"request {request_id} ({plan.kind}): outbox row {row.id} has items {items}, "
            f"expected {plan.expected}"
        )
    if row.state != outbox.DELIVERED:
        found.append(
            f"outbox row {row.id} of order {row.order_id} is {row.state}: "
            f"{row.last_error_code} {row.last_error_message}"
        )
    elif row.verified_at is None:
        found.append(f"outbox row {row.id} of order {row.order_id} is delivered but not verified")
    return found


def _package_differences(
    order_id: str, rows: list[outbox.OutboxRow], packages: list[dict[str, Any]]
) -> list[str]:
    """Compare an order's packages on Amazon with its outbox rows, one package per row."""
    found: list[str] = []
    by_reference: dict[str, list[dict[str, Any]]] = {}
    for package in packages:
        by_reference.setdefault(package["packageReferenceId"], []).append(package)
    references = {row.package_reference_id for row in rows}
    if len(packages) != len(rows) or set(by_reference) != references:
        theirs = sorted(package["packageReferenceId"] for package in packages)
        queued = sorted(row.package_reference_id for row in rows)
        found.append(f"order {order_id}: Amazon has packages {theirs}, the outbox rows {queued}")
    for row in rows:
        matches = by_reference.get(row.package_reference_id, [])
        if len(matches) != 1:
            continue
        [package] = matches
        items = {
            entry["orderItemId"]: int(entry["quantity"])
            for entry in package.get("packageItems", [])
        }
        expected_items = {item.order_item_id: item.quantity for item in row.items}
        carrier = row.carrier_name if row.carrier_code == "Other" else row.carrier_code
        pairs = {
            "tracking number": (package.get("trackingNumber"), row.tracking_number),
            "items": (items, expected_items),
            "carrier": (package.get("carrier"), carrier),
        }
        for name, (amazon, ours) in pairs.items():
            if amazon != ours:
                found.append(
                    f"order {order_id} package {row.package_reference_id}: Amazon has {name} "
                    f"{amazon!r}, outbox row {row.id} {ours!r}"
                )
    return found


def _event_time(event: dict[str, Any]) -> datetime:
    return parse_time(str(event["timestamp"]))


# Events of the shipments job, and the SP-API calls it makes.
_JOB_EVENTS = frozenset(
    {
        "outbox_claims_released",
        "shipment_enqueued",
        "shipment_request_rejected",
        "shipment_delivered",
        "shipment_retry_scheduled",
        "shipment_dead",
        "shipment_conflict",
        "shipments_run_finished",
    }
)
_JOB_OPERATIONS = frozenset({"getOrder", "confirmShipment"})
_INTAKE_EVENTS = frozenset(
    {"outbox_claims_released", "shipment_enqueued", "shipment_request_rejected"}
)


def _is_job_step(event: dict[str, Any]) -> bool:
    if event["event"] == "api_call_finished":
        return event.get("operation") in _JOB_OPERATIONS
    return event["event"] in _JOB_EVENTS


def _phase(events: list[dict[str, Any]]) -> str:
    """Name the phase a killed run was in, from the last job step it logged.

    A daemon may have run the job more than once: only the steps after its last finished run
    count, and none means it was between runs.
    """
    steps = [event for event in events if _is_job_step(event)]
    if not steps:
        return PHASE_STARTING
    finished = [i for i, event in enumerate(steps) if event["event"] == "shipments_run_finished"]
    if finished:
        steps = steps[finished[-1] + 1 :]
        if not steps:
            return PHASE_IDLE
    delivering = any(
        event.get("operation") == "confirmShipment" or event["event"].startswith("shipment_")
        for event in steps
        if event["event"] not in _INTAKE_EVENTS
    )
    last = steps[-1]
    if last["event"] == "api_call_finished" and last.get("operation") == "confirmShipment":
        return PHASE_AFTER_204 if last.get("status_code") == 204 else PHASE_SENDING
    if last["event"] == "api_call_finished" and last.get("operation") == "getOrder":
        return PHASE_VERIFYING if delivering else PHASE_INTAKE
    if last["event"] in (
        "shipment_enqueued",
        "shipment_request_rejected",
        "outbox_claims_released",
    ):
        return PHASE_INTAKE
    return PHASE_SENDING


def _describe(record: ShipmentRound) -> str:
    delay = "final run" if record.delay_seconds is None else f"delay {record.delay_seconds:.2f} s"
    extras = []
    if record.stalled:
        extras.append("write lock held")
    if record.fault:
        extras.append(f"fault {record.fault}")
    if record.requests_written:
        extras.append(f"{record.requests_written} requests written")
    if record.applied_unrecorded:
        extras.append(f"{record.applied_unrecorded} applied but unrecorded")
    more = "" if not extras else ", " + ", ".join(extras)
    return (
        f"round {record.number} ({record.command}): {delay}, {record.phase}, exit "
        f"{record.returncode}, {record.seconds:.2f} s{more}"
    )
