"""Crash safety of the bridge: SIGKILL it between syncd's database and the ERP's, then compare.

The bridge writes two databases and no transaction spans both. The ERP rows are committed
first and syncd's record of them after. A kill in between therefore makes the next pass
write the same rows again, and only the lookup by natural key keeps that from inserting them
twice. The harness plays an operator whose server dies again and again while the bridge
runs:

1. It starts ``syncd sandbox serve`` in its own process, with no generated orders and the
   clock ten minutes behind. Through the control API it creates merchant-fulfilled unshipped
   orders, then migrates syncd's database, adds the seller's NA account and stores the
   orders with ``syncd once orders`` (tests/shipments_crash_harness.py does the same).
2. It creates the domestic sample's ERP and WMS tables (tests/erp_samples.py) in a database
   of their own beside syncd's, without the unique indexes on the natural keys of orders and
   order lines. The mapping file is the domestic sample's.
3. Before each round it may insert a wave of WMS rows or correct the tracking number of
   rows already written. It may create orders and cancel others in the sandbox and store
   them as getOrder returns them. It may edit columns that the ERP owns, make every order
   due for projection again (as ``syncd bridge reproject`` does) or run
   ``syncd once shipments``, so that write-backs change. The intake rejects rows without a
   tracking number. A corrected row sends its rejected request through the intake again,
   or amends its accepted shipment. Unshipped rows (status 1) are outside the mapping's
   filter.
4. Each round runs one bridge pass in a subprocess, which is then killed with SIGKILL in
   one of two ways. At a kill point, the subprocess is this module
   (``python -m tests.bridge_crash_harness pass --kill-at POINT --occurrence N``): it runs
   :class:`syncd.jobs.bridge.Bridge` with the settings in its environment and sends SIGKILL
   to itself the Nth time the pass reaches POINT (see :data:`KILL_POINTS`). After a random
   delay, the subprocess is ``syncd once bridge`` and the harness kills it
   (:func:`tests.crash_support.run_killable`). The harness draws N from the work that waits,
   so that the point is reached with something written on one side only.
5. A killed process cannot give the bridge lease back, so the harness marks the lease as
   expired, as ``SYNCD_LEASE_SECONDS`` passing would. After every round no ERP order row and
   no order line may exist twice.
6. A last phase runs passes to their end, with ``syncd once shipments`` between them, until
   no order waits for the ERP, no request waits for the intake or for Amazon and every
   write-back is current.

Then every stored order must have exactly one ERP order row with its current status and
exactly one line row per item, with the values the ERP's users set in ERP-owned columns.
Every shipped WMS row must have exactly one intake request and end with its final state
written back. syncd's records of orders and write-backs must agree with the ERP's rows, and
no quarantine entry may be open. Any failure raises :class:`BridgeCrashError` naming the seed
and the first difference, so the run can be repeated with the same seed.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import Engine, text, update

from syncd import config, i18n, logs
from syncd.amazon.orders import OrdersClient
from syncd.bridge import projection
from syncd.bridge.feeder import WmsFeeder
from syncd.db import accounts, bridge_state, intake
from syncd.db.engine import create_db_engine
from syncd.db.models import BridgePosition, table_of
from syncd.db.order_rows import build_rows
from syncd.db.orders import store_orders
from syncd.jobs import bridge
from syncd.jobs.context import JobContext, build_context
from syncd.jobs.shipments import included_data
from syncd.sandbox.external import ExternalSandbox
from tests import bridge_crash_checks as checks
from tests.bridge_crash_checks import (
    NOT_SHIPPED,
    SHIPPED,
    SHOP_CODE,
    WmsPlan,
    domestic_ddl_without_unique_keys,
)
from tests.crash_support import (
    HarnessBase,
    KillTiming,
    RoundProcess,
    command_environment,
    parse_time,
    plain_lines,
    read_events,
    run_killable,
)
from tests.erp_samples import (
    DOMESTIC_TABLES,
    backend_of,
    create_tables,
    domestic_mapping,
    write_mapping,
)
from tests.shipments_crash_harness import (
    ACCOUNT,
    REFRESH_TOKEN,
    SANDBOX_ARGS,
    add_synced_account,
    create_merchant_order,
)

log = logs.get_logger(__name__)

ROOT = Path(__file__).resolve().parent.parent
CHILD_MODULE = "tests.bridge_crash_harness"
SHANGHAI = ZoneInfo("Asia/Shanghai")
# Carriers as the WMS names them, each one that syncd maps to an Amazon carrier code.
CARRIERS = ("云途", "燕文", "UPS", "DHL", "4PX")
# Share of the setup's orders kept without WMS rows, so that the harness can cancel them.
CANCEL_POOL_SHARE = 0.3
# The ship time a wave's rows carry is this many seconds before the wave is written. The
# setup's orders are ten minutes old (the sandbox starts behind), so it follows the order.
SHIPPED_AGO_SECONDS = 300

_POSITIONS = table_of(BridgePosition)


# -- kill points -------------------------------------------------------------------------------

ERP_BATCH = "erp_batch"
ERP_COMMITTED = "erp_committed"
FEEDER_REQUEST = "feeder_request"
FEEDER_PAGE = "feeder_page"
WRITE_BACK_COMMITTED = "write_back_committed"


@dataclass(frozen=True)
class KillPoint:
    """A place in the bridge pass where the subprocess kills itself after a call returns."""

    description: str
    owner: Any  # the module or class whose attribute is wrapped
    attribute: str
    # Decides from a call's arguments whether the call counts. None counts every call.
    counts: Callable[..., bool] | None = None


def _has_outcomes(_connection: Any, outcomes: Sequence[Any], _now: datetime) -> bool:
    return bool(outcomes)


KILL_POINTS: dict[str, KillPoint] = {
    ERP_BATCH: KillPoint(
        "inside an ERP batch, after an order's rows, before the batch's ERP commit",
        projection.Projector,
        "_project_order",
    ),
    ERP_COMMITTED: KillPoint(
        "after an ERP batch's commit, before syncd's record of its outcomes commits",
        bridge_state,
        "record_outcomes",
        _has_outcomes,
    ),
    FEEDER_REQUEST: KillPoint(
        "in the feeder's syncd transaction, after a request was inserted",
        intake,
        "insert_request",
    ),
    FEEDER_PAGE: KillPoint(
        "in the feeder's syncd transaction, after a page's requests, before its position",
        WmsFeeder,
        "_take",
    ),
    WRITE_BACK_COMMITTED: KillPoint(
        "after a write-back's ERP commit, before syncd's record of it commits",
        bridge_state,
        "record_write_back",
    ),
}

PHASE_TIMED_STARTING = "random delay: syncd once bridge before its mapping was loaded"
PHASE_TIMED_PASS = "random delay: syncd once bridge during its pass"
PHASE_TIMED_AFTER = "random delay: syncd once bridge after its pass"
PHASE_EXITED = "not killed: the pass ended before its kill point or delay"
PHASE_FINAL = "final pass, run to its end"
# Where the rounds meant to be killed ended.
PHASES = (
    *(point.description for point in KILL_POINTS.values()),
    PHASE_TIMED_STARTING,
    PHASE_TIMED_PASS,
    PHASE_TIMED_AFTER,
    PHASE_EXITED,
)


def arm_kill_point(name: str, occurrence: int) -> None:
    """Make this process send SIGKILL to itself when the ``occurrence``-th counted call of
    the kill point ``name`` returns."""
    point = KILL_POINTS[name]
    original = getattr(point.owner, point.attribute)
    calls = 0

    @functools.wraps(original)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        result = original(*args, **kwargs)
        if point.counts is None or point.counts(*args, **kwargs):
            calls += 1
            if calls == occurrence:
                log.info("kill_point_reached", point=name, occurrence=occurrence)
                sys.stderr.flush()
                os.kill(os.getpid(), signal.SIGKILL)
        return result

    setattr(point.owner, point.attribute, wrapper)


# -- the subprocess ----------------------------------------------------------------------------


def fetch_orders(context: JobContext, order_ids: Sequence[str]) -> None:
    """Store orders as getOrder returns them now (searchOrders lags two minutes behind)."""
    with context.engine.begin() as connection:
        account = accounts.get_account(connection, ACCOUNT)
        seller = accounts.seller_account(connection, context.vault, account)
    client = OrdersClient(context.client, seller)
    for order_id in order_ids:
        order, raw = client.get_order_with_raw(order_id, included_data(account))
        with context.engine.begin() as connection:
            store_orders(
                connection, account.id, [build_rows(order, raw, context.vault)], context.now()
            )


def _child_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=f"python -m {CHILD_MODULE}")
    commands = parser.add_subparsers(dest="command", required=True)
    one_pass = commands.add_parser("pass", help="run one bridge pass")
    one_pass.add_argument("--kill-at", choices=sorted(KILL_POINTS))
    one_pass.add_argument("--occurrence", type=int, default=1)
    fetch = commands.add_parser("fetch", help="store orders as getOrder returns them")
    fetch.add_argument("order_ids", nargs="+")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run one bridge pass (or store orders) with the settings in the environment.

    The pass writes ``{"ran": …, "error": …}`` to standard output. The exit status is 0
    when the pass ran without an error. A process killed at its kill point ends by SIGKILL.
    """
    args = _child_parser().parse_args(argv)
    i18n.activate(i18n.resolve_language(config.read_language_setting()))
    settings = config.load_settings()
    logs.configure_logging(settings.log_format, settings.log_level)
    context = build_context(settings)
    try:
        if args.command == "fetch":
            fetch_orders(context, args.order_ids)
            return 0
        if args.kill_at is not None:
            arm_kill_point(args.kill_at, args.occurrence)
        runner = bridge.Bridge(context)
        try:
            summary = runner.run()
        finally:
            runner.close()
    finally:
        context.close()
    sys.stdout.write(json.dumps({"ran": summary.ran, "error": summary.error}) + "\n")
    return 0 if summary.ran and summary.error is None else 1


# -- the harness -------------------------------------------------------------------------------


class BridgeCrashError(AssertionError):
    """After the crashes, an ERP row, a request or a write-back differs from what it must be."""


@dataclass
class BridgeCrashConfig:
    """Settings of one harness run. The defaults suit a CI run of a few kills."""

    database_url: str  # syncd's database
    erp_url: str  # the ERP's database, another database than syncd's
    work_dir: Path  # round logs and the mapping file go here
    kills: int = 10
    seed: int = 1
    orders: int = 40  # orders created before the first round
    batch_size: int = 5  # SYNCD_BRIDGE_BATCH_SIZE: orders per ERP batch, WMS rows per page
    speed: float = 10.0  # quota speed factor of the sandbox
    timed_share: float = 0.2  # chance that a round is killed after a random delay
    wave_probability: float = 0.4  # chance of a wave of WMS rows before a round
    correction_probability: float = 0.2  # chance that the WMS corrects tracking numbers
    change_probability: float = 0.3  # chance of new and cancelled orders before a round
    edit_probability: float = 0.4  # chance that ERP users edit ERP-owned columns
    reproject_probability: float = 0.1  # chance that every order is projected again
    shipments_probability: float = 0.15  # chance of `syncd once shipments` before a round
    first_run_guess_seconds: float = 0.5  # pass time assumed until one pass has been seen
    round_timeout_seconds: float = 120.0  # a pass that takes longer is a failure
    max_final_passes: int = 5


@dataclass
class BridgeRound:
    """One bridge pass, killed at a point, after a delay, or run to its end."""

    number: int
    point: str | None  # the kill point, None for a random delay or a final pass
    occurrence: int | None
    delay_seconds: float | None
    killed: bool
    phase: str
    returncode: int
    seconds: float
    # ERP order rows inserted in this round that syncd had no record of after it.
    inserted_unrecorded: int
    # WMS rows written back in this round with a state that syncd had not recorded after it.
    write_backs_unrecorded: int
    output: str  # what the process printed, without its JSON log lines


@dataclass
class BridgeCrashResult:
    """Figures of one harness run."""

    seed: int
    rounds: list[BridgeRound] = field(default_factory=list)
    orders: int = 0  # orders in syncd's tables at the end
    lines: int = 0  # their items
    erp_orders: int = 0  # ERP order rows at the end
    erp_lines: int = 0
    orders_created: int = 0  # orders created after the first round
    orders_cancelled: int = 0
    wms_rows: int = 0  # shipped WMS rows
    wms_rows_not_shipped: int = 0  # rows outside the mapping's filter
    wms_corrections: int = 0  # tracking numbers the WMS set or changed after the row's insert
    requests: int = 0
    confirmed: int = 0
    rejected: int = 0
    erp_edits: int = 0  # ERP-owned values set by the harness
    edits_of_unrecorded: int = 0  # of those, on rows that syncd had no record of
    reprojections: int = 0
    shipments_runs: int = 0
    final_passes: int = 0
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
    def points(self) -> Counter[str]:
        """Kills at each kill point."""
        return Counter(record.point for record in self.rounds if record.killed and record.point)

    @property
    def failed_runs(self) -> list[BridgeRound]:
        """Rounds that ended by themselves with a non-zero exit status."""
        return [r for r in self.rounds if not r.killed and r.returncode != 0]

    @property
    def inserted_unrecorded(self) -> int:
        """ERP order rows that the kills left without syncd's record."""
        return sum(record.inserted_unrecorded for record in self.rounds if record.killed)

    @property
    def write_backs_unrecorded(self) -> int:
        """WMS rows that the kills left with a write-back syncd had not recorded."""
        return sum(record.write_backs_unrecorded for record in self.rounds if record.killed)


def run_bridge_crash_harness(
    config: BridgeCrashConfig, progress: Callable[[str], None] | None = None
) -> BridgeCrashResult:
    """Run the rounds of ``config``, compare both databases and return the figures.

    syncd's database must be empty of syncd's tables (the harness migrates it). The sample
    tables in the ERP's database are dropped and created again.

    Raises:
        BridgeCrashError: an ERP row or line is missing, duplicated or stale, an ERP-owned
            value changed, a request is missing or twice, a write-back is not final or
            differs from syncd's record, an entry is quarantined, or a final pass failed.
    """
    started = time.monotonic()
    config.work_dir.mkdir(parents=True, exist_ok=True)
    sandbox_args = (*SANDBOX_ARGS, "--speed", str(config.speed), "--seed", str(config.seed))
    with ExternalSandbox(*sandbox_args) as sandbox, _Harness(config, sandbox, progress) as harness:
        result = harness.run()
    result.seconds = time.monotonic() - started
    return result


class _Harness(HarnessBase):
    """The state of one harness run: sandbox, environment, both databases, plans, records."""

    error_type = BridgeCrashError
    result: BridgeCrashResult

    def __init__(
        self,
        config: BridgeCrashConfig,
        sandbox: ExternalSandbox,
        progress: Callable[[str], None] | None,
    ) -> None:
        mapping_path = write_mapping(
            config.work_dir, domestic_mapping(ACCOUNT, shop_code=SHOP_CODE)
        )
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
                    "SYNCD_MAPPING_FILE": str(mapping_path),
                    "SYNCD_ERP_DATABASE_URL": config.erp_url,
                    "SYNCD_BRIDGE_BATCH_SIZE": str(config.batch_size),
                },
            ),
            timing=KillTiming(work=config.first_run_guess_seconds),
            progress=progress,
        )
        self.config = config
        self.result = BridgeCrashResult(seed=config.seed)
        self.erp: Engine = create_db_engine(config.erp_url)
        self.db = checks.BridgeDatabases(self.engine, self.erp, account_id=0)  # set up later
        self.wms_pool: list[str] = []  # setup orders that may still get a WMS row
        self.cancel_pool: list[str] = []  # orders without WMS rows that may be cancelled
        self.wms_plans: dict[str, WmsPlan] = {}  # by order id
        self.erp_owned: dict[str, tuple[int, str]] = {}  # order id: (pick_status, remark)
        self._serial = 0  # the last number given to a tracking number

    def __exit__(self, *exc: object) -> None:
        self.erp.dispose()
        super().__exit__(*exc)

    # -- the rounds --------------------------------------------------------------------------

    def run(self) -> BridgeCrashResult:
        self._set_up()
        number = 0
        while self.result.kills < self.config.kills:
            number += 1
            self._change_world(number)
            record = self._point_round(number) if self._wants_point() else None
            if record is None:
                record = self._timed_round(number)
            self._check_duplicates(record)
            self.progress(_describe(record))

        self._finish(number)
        differences = self._compare()
        if differences:
            self._raise_first(differences)
        return self.result

    def _set_up(self) -> None:
        """Create the ERP tables and the orders, migrate, add the account, store the orders."""
        backend = backend_of(self.config.erp_url)
        create_tables(
            self.config.erp_url, domestic_ddl_without_unique_keys(backend), DOMESTIC_TABLES
        )
        problems = self.db.unique_key_problems()
        if problems:
            raise self._error(problems[0])
        order_ids = [
            create_merchant_order(
                self.control, [self.rng.randint(1, 3) for _ in range(self.rng.randint(1, 3))]
            )["orderId"]
            for _ in range(self.config.orders)
        ]
        add_synced_account(self.control, self._syncd)
        with self.engine.begin() as connection:
            all_accounts = accounts.list_accounts(connection)
        if [account.name for account in all_accounts] != [ACCOUNT]:
            raise self._error(
                "the database already had syncd accounts: drop syncd's tables before running "
                "the harness"
            )
        self.db.account_id = all_accounts[0].id
        stored = self.db.stored_order_ids()
        if stored != set(order_ids):
            raise self._error(f"syncd once orders stored {len(stored)} of {len(order_ids)} orders")

        self.rng.shuffle(order_ids)
        cut = round(len(order_ids) * CANCEL_POOL_SHARE)
        self.cancel_pool, self.wms_pool = order_ids[:cut], order_ids[cut:]

    def _wants_point(self) -> bool:
        """Kill at a point, unless the round is one of the share killed after a delay.

        Delays start only once every kill point has had its kill, so that a short run covers
        all of them.
        """
        if min(self.result.points[name] for name in KILL_POINTS) == 0:
            return True
        return self.rng.random() >= self.config.timed_share

    def _point_round(self, number: int) -> BridgeRound | None:
        """Kill the pass at the least used kill point that has work, or return None when no
        point has any."""
        names = sorted(KILL_POINTS, key=lambda name: (self.result.points[name], self.rng.random()))
        for name in names:
            occurrences = self._ensure_work(name)
            if occurrences:
                occurrence = self.rng.choice(occurrences)
                return self._round(number, point=name, occurrence=occurrence)
        return None

    def _timed_round(self, number: int) -> BridgeRound:
        return self._round(number, delay=self.timing.draw_delay(self.rng))

    def _round(
        self,
        number: int,
        *,
        point: str | None = None,
        occurrence: int | None = None,
        delay: float | None = None,
    ) -> BridgeRound:
        """Run one pass: killed at ``point``, killed after ``delay``, or (neither) to its end."""
        log_path = self.config.work_dir / f"round-{number:04d}.log"
        out_path = self.config.work_dir / f"round-{number:04d}.out"
        orders_before = self.db.inserted_unrecorded()
        write_backs_before = self.db.write_backs_unrecorded()

        if delay is not None:
            process = run_killable(
                ("once", "bridge"),
                self.env,
                log_path,
                out_path,
                delay=delay,
                timeout=self.config.round_timeout_seconds,
            )
        else:
            kill_options = (
                [] if point is None else ["--kill-at", point, "--occurrence", str(occurrence)]
            )
            process = self._run_child(("pass", *kill_options), log_path, out_path)
        # With a delay, timed_out means the delay ran out, which is the point of the round.
        if process.timed_out and delay is None:
            raise self._error(
                f"round {number} did not finish in {self.config.round_timeout_seconds} s"
            )
        if process.killed:
            self._expire_bridge_lease()

        events = read_events(log_path)
        if delay is not None:
            self._learn_timing(events, process.started_at, process.seconds, process.killed)
        record = BridgeRound(
            number=number,
            point=point,
            occurrence=occurrence,
            delay_seconds=delay,
            killed=process.killed,
            phase=_phase(
                events, point, killed=process.killed, final=point is None and delay is None
            ),
            returncode=process.returncode,
            seconds=process.seconds,
            inserted_unrecorded=len(self.db.inserted_unrecorded() - orders_before),
            write_backs_unrecorded=len(self.db.write_backs_unrecorded() - write_backs_before),
            output=out_path.read_text(encoding="utf-8") + plain_lines(log_path),
        )
        self.result.rounds.append(record)
        return record

    def _run_child(self, args: Sequence[str], log_path: Path, out_path: Path) -> RoundProcess:
        """Run this module as a subprocess to its end or its own SIGKILL."""
        started_at = datetime.now(UTC)
        spawned = time.monotonic()
        timed_out = False
        with (
            log_path.open("w", encoding="utf-8") as log_file,
            out_path.open("w", encoding="utf-8") as out,
        ):
            try:
                returncode = subprocess.run(
                    [sys.executable, "-m", CHILD_MODULE, *args],
                    stdout=out,
                    stderr=log_file,
                    stdin=subprocess.DEVNULL,
                    env=self.env,
                    cwd=ROOT,
                    timeout=self.config.round_timeout_seconds,
                    check=False,
                ).returncode
            except subprocess.TimeoutExpired:
                returncode, timed_out = -signal.SIGKILL, True  # subprocess.run killed it
        seconds = time.monotonic() - spawned
        killed = returncode == -signal.SIGKILL and not timed_out
        return RoundProcess(returncode, seconds, started_at, killed, timed_out)

    def _child(self, *args: str) -> None:
        """Run this module to its end, raising the harness's error when it fails."""
        path = self.config.work_dir / "child"
        process = self._run_child(args, path.with_suffix(".log"), path.with_suffix(".out"))
        if process.returncode != 0:
            raise self._error(
                f"python -m {CHILD_MODULE} {' '.join(args)} exited with {process.returncode}: "
                f"{plain_lines(path.with_suffix('.log')).strip()}"
            )

    def _learn_timing(
        self, events: list[dict[str, Any]], spawned: datetime, seconds: float, killed: bool
    ) -> None:
        """Learn start-up time (to the mapping's loading) and pass time from a pass's log."""
        loaded = next((e for e in events if e["event"] == "bridge_mapping_loaded"), None)
        if loaded is None:
            return
        startup = (parse_time(loaded["timestamp"]) - spawned).total_seconds()
        self.timing.startup = max(0.1, startup)
        finished = next((e for e in events if e["event"] == "bridge_pass_finished"), None)
        if finished is not None and not killed:
            work = (
                parse_time(finished["timestamp"]) - parse_time(loaded["timestamp"])
            ).total_seconds()
            self.timing.work = max(0.1, (self.timing.work + work) / 2)

    def _expire_bridge_lease(self) -> None:
        """Mark a dead process's bridge lease as expired, as the lease's time passing would."""
        expired = datetime.now(UTC) - timedelta(hours=1)
        with self.engine.begin() as connection:
            connection.execute(
                update(_POSITIONS)
                .where(_POSITIONS.c.name == bridge.LEASE, _POSITIONS.c.owner.is_not(None))
                .values(lease_expires_at=expired)
            )

    # -- work for the kill points ------------------------------------------------------------

    def _ensure_work(self, name: str) -> list[int]:
        """Return the occurrences of kill point ``name`` that the next pass reaches with work
        waiting, making work first (orders, WMS rows, shipments) when there is none."""
        finders: dict[str, Callable[[], list[int]]] = {
            ERP_BATCH: self._batch_occurrences,
            ERP_COMMITTED: self._commit_occurrences,
            FEEDER_REQUEST: self._request_occurrences,
            FEEDER_PAGE: self._page_occurrences,
            WRITE_BACK_COMMITTED: self._write_back_occurrences,
        }
        makers: dict[str, Callable[[], object]] = {
            ERP_BATCH: self._change_orders,
            ERP_COMMITTED: self._change_orders,
            FEEDER_REQUEST: self._write_wave,
            FEEDER_PAGE: self._write_wave,
            WRITE_BACK_COMMITTED: self._make_write_back_work,
        }
        found = finders[name]()
        if not found:
            makers[name]()
            found = finders[name]()
        return found

    def _batch_occurrences(self) -> list[int]:
        """Calls of the order projection: one per pending order."""
        return list(range(1, len(self.db.pending_orders()) + 1))

    def _commit_occurrences(self) -> list[int]:
        """Batches that hold an order the ERP has never had, so the kill leaves it unrecorded."""
        pending = self.db.pending_orders()
        recorded = self.db.recorded_order_pks()
        size = self.config.batch_size
        return sorted(
            {index // size + 1 for index, row in enumerate(pending) if row.id not in recorded}
        )

    def _request_occurrences(self) -> list[int]:
        """Calls of the request insert: one per shipped WMS row without a request."""
        return list(range(1, len(self.db.unrequested_rows()) + 1))

    def _page_occurrences(self) -> list[int]:
        """Pages of the WMS read that hold a row without a request (the pass reads every row)."""
        rows = sorted(row.id for row in self.db.wms_rows() if row.status == SHIPPED)
        missing = set(self.db.unrequested_rows())
        size = self.config.batch_size
        return sorted({index // size + 1 for index, key in enumerate(rows) if key in missing})

    def _write_back_occurrences(self) -> list[int]:
        """Calls of the write-back record: one per request whose written state is stale,
        including the requests the pass creates first."""
        return list(range(1, self.db.stale_write_backs() + len(self.db.unrequested_rows()) + 1))

    def _make_write_back_work(self) -> None:
        """Write a wave; when no order is left for one, let the shipments job move states."""
        if not self._write_wave():
            self._run_shipments()

    # -- changes between rounds ----------------------------------------------------------------

    def _change_world(self, number: int) -> None:
        """Change what the next pass finds, as the seller, the WMS and the ERP's users would."""
        config = self.config
        if self.rng.random() < config.wave_probability:
            self._write_wave()
        if self.rng.random() < config.correction_probability:
            self._correct_wms_rows()
        if self.rng.random() < config.change_probability:
            self._change_orders()
        if self.rng.random() < config.edit_probability:
            self._edit_erp(number)
        if self.rng.random() < config.reproject_probability:
            self._reproject()
        if self.rng.random() < config.shipments_probability:
            self._run_shipments()

    def _write_wave(self) -> int:
        """Insert shipped WMS rows for a few orders, and sometimes an unshipped one.

        Returns how many shipped rows it wrote.
        """
        count = min(len(self.wms_pool), self.rng.randint(2, 5))
        shipped_at = datetime.now(SHANGHAI).replace(tzinfo=None, microsecond=0) - timedelta(
            seconds=SHIPPED_AGO_SECONDS
        )
        with self.erp.begin() as connection:
            for _ in range(count):
                order_id = self.wms_pool.pop(self.rng.randrange(len(self.wms_pool)))
                self._serial += 1
                tracking = (
                    "" if self.rng.random() < 0.15 else f"YT{self.seed:04d}{self._serial:06d}"
                )
                plan = WmsPlan(order_id, self.rng.choice(CARRIERS), tracking)
                self.wms_plans[order_id] = plan
                self._insert_wms_row(connection, plan, shipped_at, SHIPPED)
            if count and self.rng.random() < 0.3:
                order_id = self.rng.choice(sorted(self.wms_plans))
                plan = WmsPlan(order_id, self.rng.choice(CARRIERS), f"WAIT{self._serial:06d}")
                self._insert_wms_row(connection, plan, None, NOT_SHIPPED)
                self.result.wms_rows_not_shipped += 1
        return count

    def _correct_wms_rows(self) -> None:
        """Give up to two shipped rows a new tracking number, as warehouse staff fix them."""
        chosen = sorted(self.wms_plans)
        self.rng.shuffle(chosen)
        with self.erp.begin() as connection:
            for order_id in chosen[: self.rng.randint(1, 2)]:
                self._serial += 1
                plan = self.wms_plans[order_id]
                plan.tracking_number = f"YT{self.seed:04d}{self._serial:06d}"
                connection.execute(
                    text(
                        # What MariaDB's ON UPDATE does for the sample's update_time column.
                        "UPDATE wms_delivery SET tracking_no = :tracking, "
                        "update_time = CURRENT_TIMESTAMP "
                        "WHERE platform_order_no = :order_id AND status = :status"
                    ),
                    {"tracking": plan.tracking_number, "order_id": order_id, "status": SHIPPED},
                )
                self.result.wms_corrections += 1

    @staticmethod
    def _insert_wms_row(
        connection: Any, plan: WmsPlan, shipped_at: datetime | None, status: int
    ) -> None:
        connection.execute(
            text(
                "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, "
                "logistics_company, tracking_no, delivery_time, status) VALUES ('AMAZON', "
                ":shop, :order_id, :carrier, :tracking, :shipped_at, :status)"
            ),
            {
                "shop": SHOP_CODE,
                "order_id": plan.order_id,
                "carrier": plan.carrier,
                "tracking": plan.tracking_number,
                "shipped_at": shipped_at,
                "status": status,
            },
        )

    def _change_orders(self) -> None:
        """Create one to three orders, cancel up to two without WMS rows, and store them all."""
        created = [
            create_merchant_order(self.control, [self.rng.randint(1, 3)])["orderId"]
            for _ in range(self.rng.randint(1, 3))
        ]
        cancelled = [
            self.cancel_pool.pop(self.rng.randrange(len(self.cancel_pool)))
            for _ in range(min(len(self.cancel_pool), self.rng.randint(0, 2)))
        ]
        for order_id in cancelled:
            response = self.control.patch(
                f"/orders/{order_id}",
                json={"refresh_token": REFRESH_TOKEN, "status": "CANCELLED"},
            )
            response.raise_for_status()
        self._child("fetch", *created, *cancelled)
        self.cancel_pool.extend(created)
        self.result.orders_created += len(created)
        self.result.orders_cancelled += len(cancelled)

    def _edit_erp(self, number: int) -> None:
        """Set ERP-owned columns of up to three ERP orders, first those syncd has no record of."""
        unrecorded = sorted(self.db.inserted_unrecorded())
        others = sorted(
            {row.platform_order_no for row in self.db.erp_order_rows()} - set(unrecorded)
        )
        self.rng.shuffle(unrecorded)
        self.rng.shuffle(others)
        chosen = [*unrecorded, *others][:3]
        with self.erp.begin() as connection:
            for order_id in chosen:
                values = (self.rng.randint(1, 9), f"checked in round {number}")
                connection.execute(
                    text(
                        "UPDATE oms_order SET pick_status = :pick, remark = :remark "
                        "WHERE platform = 'AMAZON' AND shop_code = :shop "
                        "AND platform_order_no = :order_id"
                    ),
                    {
                        "pick": values[0],
                        "remark": values[1],
                        "shop": SHOP_CODE,
                        "order_id": order_id,
                    },
                )
                self.erp_owned[order_id] = values
        self.result.erp_edits += len(chosen)
        self.result.edits_of_unrecorded += len(set(chosen) & set(unrecorded))

    def _reproject(self) -> None:
        """Make every order project again at the next pass, as `syncd bridge reproject` does."""
        pks = list(self.db.recorded_order_pks())
        with self.engine.begin() as connection:
            bridge_state.forget_outcome(connection, pks)
        self.result.reprojections += 1

    def _run_shipments(self) -> None:
        self._syncd("once", "shipments")
        self.result.shipments_runs += 1

    # -- the final passes ----------------------------------------------------------------------

    def _finish(self, number: int) -> None:
        """Run passes to their end, with the shipments job between them, until nothing is open.

        Stops early when a pass and a shipments run left the same work open as before them.
        """
        open_work = previous = ""
        for attempt in range(1, self.config.max_final_passes + 1):
            record = self._round(number + attempt)
            self.result.final_passes += 1
            self.progress(_describe(record))
            if record.returncode != 0:
                raise self._error(
                    f"final pass {record.number} exited with {record.returncode}: "
                    f"{record.output.strip()}"
                )
            self._check_duplicates(record)
            previous, open_work = open_work, self.db.open_work()
            if not open_work or open_work == previous:
                break
            self._run_shipments()
        if not open_work:
            return
        differences = self._compare()
        first = differences[0] if differences else "no difference found"
        raise self._error(
            f"after {self.result.final_passes} final passes work is still open: "
            f"{open_work}; the first difference: {first}"
        )

    # -- checks ----------------------------------------------------------------------------------

    def _check_duplicates(self, record: BridgeRound) -> None:
        """Raise when an ERP order or order line exists twice, naming the last two rounds."""
        duplicates = self.db.duplicates()
        if not duplicates:
            return
        rounds = self.result.rounds
        before = f"; the round before ended {rounds[-2].phase}" if len(rounds) > 1 else ""
        first = f"after round {record.number} ({record.phase}{before}): {duplicates[0]}"
        self._raise_first([first, *duplicates[1:]])

    def _compare(self) -> list[str]:
        """Compare both databases with what the harness wrote; return the differences."""
        comparison = checks.compare(self.db, self.wms_plans, self.erp_owned)
        for name in (
            "orders",
            "lines",
            "erp_orders",
            "erp_lines",
            "wms_rows",
            "requests",
            "confirmed",
            "rejected",
        ):
            setattr(self.result, name, getattr(comparison, name))
        return comparison.differences

    # -- helpers -------------------------------------------------------------------------------

    def _raise_first(self, differences: list[str]) -> None:
        more = f" ({len(differences) - 1} more differences)" if len(differences) > 1 else ""
        raise self._error(differences[0] + more)


def _phase(events: list[dict[str, Any]], point: str | None, *, killed: bool, final: bool) -> str:
    """Name where a round ended: its kill point, or for a random delay the last step logged."""
    if final:
        return PHASE_FINAL
    if not killed:
        return PHASE_EXITED
    if point is not None:
        return KILL_POINTS[point].description
    names = {event["event"] for event in events}
    if "bridge_pass_finished" in names:
        return PHASE_TIMED_AFTER
    if "bridge_mapping_loaded" in names:
        return PHASE_TIMED_PASS
    return PHASE_TIMED_STARTING


def _describe(record: BridgeRound) -> str:
    cause = ""
    if record.point is not None:
        cause = f"kill at {record.point} #{record.occurrence}, "
    elif record.delay_seconds is not None:
        cause = f"delay {record.delay_seconds:.2f} s, "
    return (
        f"round {record.number}: {cause}{record.phase}, exit {record.returncode}, "
        f"{record.seconds:.2f} s, {record.inserted_unrecorded} ERP orders and "
        f"{record.write_backs_unrecorded} write-backs unrecorded"
    )


if __name__ == "__main__":
    sys.exit(main())
