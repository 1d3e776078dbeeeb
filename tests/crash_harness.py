"""Crash safety of the orders job: SIGKILL ``syncd once orders`` at random moments, then compare.

The harness plays an operator whose server dies again and again during a sync:

1. It starts ``syncd sandbox serve`` in its own process, with enough orders that one run reads
   several windows of several pages, and with a quota speed factor so quota waits are short.
2. It migrates the database with ``syncd db upgrade`` and adds one EU account with
   ``syncd account add`` (the refresh token on standard input).
3. Each round starts ``syncd once orders`` as a subprocess and sends it SIGKILL after a random
   delay (seeded). Delays are drawn so that kills land before the first call, while pages are
   fetched and while they are committed. Between rounds the sandbox sometimes creates and
   changes orders (``POST /_sandbox/orders/evolve``).
4. A last round runs to its end. Then the stored orders must equal the sandbox's orders.

A killed process cannot give its lease back, so after each kill the harness marks the lease as
expired, as ``SYNCD_LEASE_SECONDS`` passing would. Without that the next run would be skipped
(correctly) for up to that many seconds.

The watermark is read after every round: it must never move backwards and never pass Amazon's
two-minute bound. Any failure raises :class:`CrashSafetyError` naming the seed and the first
difference, so the run can be repeated with the same seed.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

from sqlalchemy import func, select

from syncd.db.models import Account, Checkpoint, Order, OrderItem, Quarantine, table_of
from syncd.sandbox.external import ExternalSandbox
from tests.crash_support import (
    HarnessBase,
    KillTiming,
    command_environment,
    expire_lease,
    iso,
    parse_time,
    plain_lines,
    read_events,
    run_killable,
)

DE, FR, IT = "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4"
ACCOUNT = "crash-eu"
REFRESH_TOKEN = "Atzr|crash-harness-seller"

# Evolved changes are dated this many seconds back. syncd's upper bound is Amazon's now minus
# two minutes minus SYNCD_CLOCK_SKEW_MARGIN (60 s by default), so a change 240 s old is
# inside the next run's window. The change may lie behind the watermark of a run that ended
# less than a minute ago, and the job's look-back (SYNCD_ORDERS_LOOKBACK, 900 s by default)
# re-reads it.
EVOLVE_AGO_SECONDS = 240
# Amazon's rule: a searchOrders upper bound is at least two minutes before Amazon's now.
AMAZON_MIN_DELAY = timedelta(minutes=2)
# Share of kills aimed at process start-up, before the first SP-API call.
STARTUP_KILL_SHARE = 0.2

_ORDERS = table_of(Order)
_ITEMS = table_of(OrderItem)
_ACCOUNTS = table_of(Account)
_CHECKPOINTS = table_of(Checkpoint)
_QUARANTINE = table_of(Quarantine)

# Where a killed run was, judged from the last event it logged.
PHASE_STARTING = "starting, before the first SP-API answer"
PHASE_STORING = "storing a page (page received, commit not logged)"
PHASE_FETCHING = "fetching the next page or waiting for quota"
PHASE_BETWEEN_WINDOWS = "after a window ended, before the next window's first page"
PHASE_FINISHING = "recording the run after its last window"
PHASE_EXITED = "not killed: the run ended before the delay"


class CrashSafetyError(AssertionError):
    """The database after the crashes differs from the sandbox, or a watermark went wrong."""


@dataclass
class CrashConfig:
    """Settings of one harness run. The defaults suit a CI run of a few kills."""

    database_url: str
    work_dir: Path  # round logs go here
    kills: int = 5
    seed: int = 1
    orders_per_marketplace: int = 600
    marketplace_ids: tuple[str, ...] = (DE, FR, IT)
    speed: float = 500.0  # quota speed factor of the sandbox
    backfill_days: int = 30
    window_days: float = 3.0
    evolve_probability: float = 0.3  # chance of sandbox changes before a round
    max_evolve_count: int = 150  # changes per evolve, drawn from 1 to this
    first_run_guess_seconds: float = 3.0  # run length assumed until one run has finished
    round_timeout_seconds: float = 600.0  # a run that takes longer is a failure


@dataclass
class RoundRecord:
    """One run of ``syncd once orders``."""

    number: int
    delay_seconds: float | None  # None for the final run, which is never killed
    killed: bool
    phase: str
    returncode: int
    seconds: float
    watermark: datetime | None
    evolved: int  # sandbox changes applied just before this round
    output: str  # what the command printed, without its JSON log lines
    started_at: datetime  # wall clock when the process was started
    windows_restarted: int  # open windows read again from page one (no usable token)


@dataclass
class CrashResult:
    """Figures of one harness run: its rounds, the orders compared and the API calls."""

    seed: int
    rounds: list[RoundRecord] = field(default_factory=list)
    orders_stored: int = 0
    items_stored: int = 0
    orders_compared: int = 0  # sandbox orders updated up to the watermark, all stored
    orders_newer_than_watermark: int = 0
    evolve_changes: int = 0
    search_calls: int = 0
    throttled_calls: int = 0  # 429 responses, from the sandbox's call log
    resumed_from_token: int = 0  # rounds whose first searchOrders call sent a stored token
    final_watermark: datetime | None = None
    seconds: float = 0.0

    @property
    def kills(self) -> int:
        """Rounds ended by SIGKILL."""
        return sum(1 for record in self.rounds if record.killed)

    @property
    def failed_runs(self) -> list[RoundRecord]:
        """Rounds that ended by themselves with a non-zero exit status."""
        return [r for r in self.rounds if not r.killed and r.returncode != 0]

    @property
    def windows_restarted(self) -> int:
        """Open windows that a run read again from page one because no usable token was left."""
        return sum(record.windows_restarted for record in self.rounds)

    @property
    def phases(self) -> Counter[str]:
        """How many rounds ended in each phase."""
        return Counter(record.phase for record in self.rounds)


def run_crash_harness(
    config: CrashConfig, progress: Callable[[str], None] | None = None
) -> CrashResult:
    """Run the rounds of ``config`` and compare; return the figures.

    The database must be empty of syncd's tables (the harness migrates it).

    Raises:
        CrashSafetyError: an order is missing, extra, stale or duplicated, an item differs, a
            watermark moved backwards or past the bound, or the final run failed.
    """
    started = time.monotonic()
    config.work_dir.mkdir(parents=True, exist_ok=True)
    sandbox_args = (
        "--orders-per-marketplace",
        str(config.orders_per_marketplace),
        "--speed",
        str(config.speed),
        "--seed",
        str(config.seed),
    )
    with ExternalSandbox(*sandbox_args) as sandbox, _Harness(config, sandbox, progress) as harness:
        result = harness.run()
    result.seconds = time.monotonic() - started
    return result


class _Harness(HarnessBase):
    """The state of one harness run: sandbox, environment, database engine, records."""

    error_type = CrashSafetyError
    result: CrashResult

    def __init__(
        self,
        config: CrashConfig,
        sandbox: ExternalSandbox,
        progress: Callable[[str], None] | None,
    ) -> None:
        super().__init__(
            seed=config.seed,
            work_dir=config.work_dir,
            database_url=config.database_url,
            control_url=sandbox.settings["SYNCD_SPAPI_ENDPOINT_EU"] + "/_sandbox",
            env=command_environment(
                config.database_url,
                sandbox.settings,
                {
                    "SYNCD_ORDERS_BACKFILL_DAYS": str(config.backfill_days),
                    "SYNCD_ORDERS_WINDOW_DAYS": str(config.window_days),
                },
            ),
            timing=KillTiming(
                work=config.first_run_guess_seconds, startup_share=STARTUP_KILL_SHARE
            ),
            progress=progress,
        )
        self.config = config
        self.result = CrashResult(seed=config.seed)

    # -- the rounds --------------------------------------------------------------------------

    def run(self) -> CrashResult:
        account_id = self._set_up()

        watermark: datetime | None = None
        number = 0
        while self.result.kills < self.config.kills:
            number += 1
            evolved = self._maybe_evolve(first=number == 1)
            delay = self.timing.draw_delay(self.rng)
            record = self._round(number, delay, evolved, account_id)
            watermark = self._check_watermark(record, watermark)
            self.progress(_describe(record))

        evolved = self._maybe_evolve(first=False)
        final = self._round(number + 1, None, evolved, account_id)
        self._check_watermark(final, watermark)
        self.progress(_describe(final))
        if final.returncode != 0:
            raise self._error(
                f"the final run of syncd once orders exited with {final.returncode}: "
                f"{final.output.strip()}"
            )

        self._compare(account_id, final.watermark)
        self._count_calls()
        return self.result

    def _set_up(self) -> int:
        """Migrate the database and add the account as an operator would; return its id."""
        self._syncd("db", "upgrade")
        marketplace_options = [
            option
            for marketplace in self.config.marketplace_ids
            for option in ("--marketplace", marketplace)
        ]
        self._syncd(
            "account",
            "add",
            ACCOUNT,
            "--region",
            "eu",
            *marketplace_options,
            "--refresh-token-file",
            "-",
            stdin=REFRESH_TOKEN + "\n",
        )
        with self.engine.begin() as connection:
            accounts = connection.execute(select(func.count()).select_from(_ACCOUNTS)).scalar_one()
        if accounts != 1:
            raise self._error(
                f"the database already had syncd accounts ({accounts} in all): "
                "drop syncd's tables before running the harness"
            )
        return self._account_id()

    def _round(
        self, number: int, delay: float | None, evolved: int, account_id: int
    ) -> RoundRecord:
        log_path = self.config.work_dir / f"round-{number:04d}.log"
        out_path = self.config.work_dir / f"round-{number:04d}.out"
        process = run_killable(
            ("once", "orders"),
            self.env,
            log_path,
            out_path,
            delay=delay,
            timeout=self.config.round_timeout_seconds,
        )
        if process.timed_out and delay is None:
            raise self._error(
                f"the final run did not finish in {self.config.round_timeout_seconds} s"
            )

        killed = process.killed
        if killed:
            expire_lease(self.engine, account_id)
        events = read_events(log_path)
        self._learn_timing(events, process.started_at, process.seconds, killed)
        record = RoundRecord(
            number=number,
            delay_seconds=delay,
            killed=killed,
            phase=_phase(events) if killed else PHASE_EXITED,
            returncode=process.returncode,
            seconds=process.seconds,
            watermark=self._watermark(account_id),
            evolved=evolved,
            output=out_path.read_text(encoding="utf-8") + plain_lines(log_path),
            started_at=process.started_at,
            windows_restarted=sum(1 for e in events if e["event"] == "orders_window_restarted"),
        )
        self.result.rounds.append(record)
        return record

    def _learn_timing(
        self, events: list[dict[str, Any]], spawned: datetime, seconds: float, killed: bool
    ) -> None:
        first_call = next((e for e in events if e.get("event") == "api_call_finished"), None)
        if first_call is None:
            return
        startup = (parse_time(first_call["timestamp"]) - spawned).total_seconds()
        self.timing.startup = max(0.1, startup)
        if not killed:
            self.timing.work = max(0.2, seconds - startup)

    def _maybe_evolve(self, first: bool) -> int:
        if first or self.rng.random() >= self.config.evolve_probability:
            return 0
        count = self.rng.randint(1, self.config.max_evolve_count)
        response = self.control.post(
            "/orders/evolve",
            json={
                "refresh_token": REFRESH_TOKEN,
                "count": count,
                "marketplace_ids": list(self.config.marketplace_ids),
                "ago": EVOLVE_AGO_SECONDS,
            },
        )
        response.raise_for_status()
        changes = len(response.json()["changes"])
        self.result.evolve_changes += changes
        return changes

    # -- the database ------------------------------------------------------------------------

    def _account_id(self) -> int:
        with self.engine.begin() as connection:
            return int(
                connection.execute(
                    select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.name == ACCOUNT)
                ).scalar_one()
            )

    def _watermark(self, account_id: int) -> datetime | None:
        with self.engine.begin() as connection:
            value = connection.execute(
                select(_CHECKPOINTS.c.watermark).where(_CHECKPOINTS.c.account_id == account_id)
            ).scalar_one_or_none()
        return value if isinstance(value, datetime) else None

    def _check_watermark(self, record: RoundRecord, previous: datetime | None) -> datetime | None:
        current = record.watermark
        if previous is not None and (current is None or current < previous):
            raise self._error(
                f"round {record.number} ({record.phase}) moved the watermark backwards "
                f"from {iso(previous)} to {iso(current)}"
            )
        if current is not None:
            sandbox_now = parse_time(self.control.get("/clock").json()["now"])
            if current > sandbox_now - AMAZON_MIN_DELAY:
                raise self._error(
                    f"round {record.number} moved the watermark to {iso(current)}, less than "
                    f"two minutes before the sandbox's now {iso(sandbox_now)}"
                )
        return current

    # -- the comparison ----------------------------------------------------------------------

    def _compare(self, account_id: int, watermark: datetime | None) -> None:
        """Compare the stored orders with the sandbox's; raise on the first difference.

        Every sandbox order last updated at or before the watermark must be stored in its
        current version (time, status, total, items). An order updated after the watermark
        may be missing or stored in an older version, but never in a newer one. Nothing the
        sandbox lacks may be stored, and no order or item may be stored twice.
        """
        if watermark is None:
            raise self._error("the final run left no watermark")
        self.result.final_watermark = watermark
        stored, items = self._stored(account_id)
        self.result.orders_stored = len(stored)
        self.result.items_stored = sum(len(found) for found in items.values())

        duplicates = self._duplicates(account_id)
        differences: list[str] = list(duplicates)
        amazon = self._sandbox_orders()
        differences.extend(
            f"order {order_id} is stored but the sandbox has no such order"
            for order_id in sorted(set(stored) - set(amazon))
        )
        for order_id, document in sorted(amazon.items()):
            updated = parse_time(document["lastUpdatedTime"])
            row = stored.get(order_id)
            if updated > watermark:
                self.result.orders_newer_than_watermark += 1
                if row is not None and row.last_updated_time > updated:
                    differences.append(
                        f"order {order_id}: stored lastUpdatedTime {iso(row.last_updated_time)} "
                        f"is newer than the sandbox's {iso(updated)}"
                    )
                continue
            self.result.orders_compared += 1
            if row is None:
                differences.append(
                    f"order {order_id} ({document['salesChannel']['marketplaceId']}, "
                    f"lastUpdatedTime {document['lastUpdatedTime']}) is missing: it was updated "
                    f"before the watermark {iso(watermark)}"
                )
                continue
            differences.extend(_order_differences(order_id, row, document))
            differences.extend(_item_differences(order_id, items.get(row.id, []), document))
        with self.engine.begin() as connection:
            quarantined = connection.execute(
                select(func.count()).select_from(_QUARANTINE).where(_QUARANTINE.c.status == "open")
            ).scalar_one()
        if quarantined:
            differences.append(f"{quarantined} orders are quarantined")
        if differences:
            more = f" ({len(differences) - 1} more differences)" if len(differences) > 1 else ""
            raise self._error(differences[0] + more)

    def _stored(self, account_id: int) -> tuple[dict[str, Any], dict[int, list[Any]]]:
        with self.engine.begin() as connection:
            rows = list(
                connection.execute(select(_ORDERS).where(_ORDERS.c.account_id == account_id))
            )
            item_rows = connection.execute(
                select(_ITEMS)
                .join(_ORDERS, _ITEMS.c.order_pk == _ORDERS.c.id)
                .where(_ORDERS.c.account_id == account_id)
            )
            items: dict[int, list[Any]] = {}
            for item in item_rows:
                items.setdefault(item.order_pk, []).append(item)
        return {row.order_id: row for row in rows}, items

    def _duplicates(self, account_id: int) -> list[str]:
        found: list[str] = []
        with self.engine.begin() as connection:
            order_query = (
                select(_ORDERS.c.order_id, func.count())
                .where(_ORDERS.c.account_id == account_id)
                .group_by(_ORDERS.c.order_id)
                .having(func.count() > 1)
            )
            for order_id, count in connection.execute(order_query):
                found.append(f"order {order_id} is stored {count} times")
            item_query = (
                select(_ITEMS.c.order_pk, _ITEMS.c.order_item_id, func.count())
                .group_by(_ITEMS.c.order_pk, _ITEMS.c.order_item_id)
                .having(func.count() > 1)
            )
            for order_pk, item_id, count in connection.execute(item_query):
                found.append(f"item {item_id} of order row {order_pk} is stored {count} times")
            orphans = connection.execute(
                select(func.count())
                .select_from(_ITEMS)
                .where(_ITEMS.c.order_pk.not_in(select(_ORDERS.c.id)))
            ).scalar_one()
            if orphans:
                found.append(f"{orphans} item rows belong to no stored order")
        return found

    def _sandbox_orders(self) -> dict[str, dict[str, Any]]:
        response = self.control.get(
            "/orders",
            params={
                "refresh_token": REFRESH_TOKEN,
                "marketplace_ids": ",".join(self.config.marketplace_ids),
            },
        )
        response.raise_for_status()
        return {document["orderId"]: document for document in response.json()["orders"]}

    def _count_calls(self) -> None:
        calls = self.control.get("/calls", params={"operation": "searchOrders"}).json()["calls"]
        self.result.search_calls = len(calls)
        self.result.throttled_calls = sum(1 for call in calls if call["status"] == 429)

        # A round resumed from the checkpoint's token when its first call carried one.
        starts = [record.started_at for record in self.result.rounds]
        ends = [*starts[1:], datetime.max.replace(tzinfo=UTC)]
        for start, end in zip(starts, ends, strict=True):
            first = next(
                (call for call in calls if start <= parse_time(call["wall_time"]) < end), None
            )
            if first is not None and "paginationToken" in first["params"]:
                self.result.resumed_from_token += 1

    # -- helpers -----------------------------------------------------------------------------


def _phase(events: list[dict[str, Any]]) -> str:
    """Name the phase a killed run was in, from the last job or SP-API event it logged."""
    names = [event["event"] for event in events]
    if "orders_run_finished" in names:
        return PHASE_FINISHING
    calls = [e for e in events if e["event"] == "api_call_finished"]
    if not calls:
        return PHASE_STARTING
    relevant = [
        e
        for e in events
        if e["event"] in {"api_call_finished", "orders_page_stored", "cursor_advanced"}
    ]
    last = relevant[-1]
    if last["event"] == "cursor_advanced":
        return PHASE_BETWEEN_WINDOWS
    if last["event"] == "api_call_finished" and last.get("status_code") == 200:
        return PHASE_STORING
    return PHASE_FETCHING


def _order_differences(order_id: str, row: Any, document: dict[str, Any]) -> list[str]:
    found: list[str] = []
    updated = parse_time(document["lastUpdatedTime"])
    if row.last_updated_time != updated:
        found.append(
            f"order {order_id}: stored lastUpdatedTime {iso(row.last_updated_time)}, "
            f"sandbox {document['lastUpdatedTime']}"
        )
    status = document["fulfillment"]["fulfillmentStatus"]
    if row.status != status:
        found.append(f"order {order_id}: stored status {row.status}, sandbox {status}")
    grand_total = (document.get("proceeds") or {}).get("grandTotal")
    expected_total = None if grand_total is None else Decimal(grand_total["amount"])
    if row.order_total != expected_total:
        found.append(
            f"order {order_id}: stored order_total {row.order_total}, sandbox {expected_total}"
        )
    return found


def _item_differences(order_id: str, stored: list[Any], document: dict[str, Any]) -> list[str]:
    expected = {item["orderItemId"]: item for item in document["orderItems"]}
    by_id = {item.order_item_id: item for item in stored}
    if set(by_id) != set(expected):
        return [f"order {order_id}: stored items {sorted(by_id)}, sandbox items {sorted(expected)}"]
    found: list[str] = []
    for item_id, item in sorted(expected.items()):
        row = by_id[item_id]
        product = item.get("product") or {}
        fulfillment = item.get("fulfillment") or {}
        pairs = {
            "quantity_ordered": (row.quantity_ordered, item["quantityOrdered"]),
            "seller_sku": (row.seller_sku, product.get("sellerSku")),
            "asin": (row.asin, product.get("asin")),
            "quantity_shipped": (row.quantity_shipped, fulfillment.get("quantityFulfilled")),
            "quantity_unshipped": (row.quantity_unshipped, fulfillment.get("quantityUnfulfilled")),
        }
        for column, (stored_value, sandbox_value) in pairs.items():
            if stored_value != sandbox_value:
                found.append(
                    f"order {order_id} item {item_id}: stored {column} {stored_value!r}, "
                    f"sandbox {sandbox_value!r}"
                )
    return found


def _describe(record: RoundRecord) -> str:
    delay = "final run" if record.delay_seconds is None else f"delay {record.delay_seconds:.2f} s"
    return (
        f"round {record.number}: {delay}, {record.phase}, exit {record.returncode}, "
        f"{record.seconds:.2f} s, evolved {record.evolved}, watermark {iso(record.watermark)}"
    )
