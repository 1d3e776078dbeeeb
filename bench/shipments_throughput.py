"""Shipment delivery under Amazon's quotas: 1,000 tracking numbers through the daemon.

The sandbox runs in its own process with quotas on (confirmShipment 2 requests per second,
burst 10; getOrder 0.5 per second, burst 30, at speed 1). For each database and case:

1. The sandbox gets one NA seller's new unshipped merchant orders (one or two items of one or
   two units), created through the control API, and ``syncd db upgrade``,
   ``syncd account add`` and ``syncd once orders`` store them.
2. The shipments are written, one per order:

   - outbox: ``--shipments`` rows put straight into the outbox with
     ``syncd.db.outbox.enqueue``, as the intake writes them (reference 1, every item). This
     measures delivery alone, because the intake reads every order with getOrder (once per
     order and run), which would make the getOrder plan the limit.
   - intake, items given: ``--intake`` requests naming their items by order item id, written
     with ``syncd.shipping.submit.submit_shipment``.
   - intake, whole order: ``--intake`` requests without items.

3. ``syncd run`` starts as a subprocess (SYNCD_SHIPMENTS_INTERVAL=1) and the database is polled
   every second until every outbox row is delivered; then the daemon gets SIGTERM. Its CPU
   time and peak RSS come from the kernel's accounting of the child (``os.wait4``).
4. The sandbox's call log gives the wall time from the first getOrder or confirmShipment
   call to the last confirmShipment 204, and the 429 responses. The time is compared with the
   plans' floor (see :meth:`Measurement.floor`).

Usage: python bench/shipments_throughput.py [--shipments N] [--intake N] [--speed F]
       [--server-speed F] [--database sqlite|postgresql|mariadb|all] [--no-write]

``--speed`` is the quota speed factor for SQLite (default 1, Amazon's real rates), and
``--server-speed`` the one for PostgreSQL and MariaDB (default 1). At a speed factor above 1
the plans refill faster, so wall times and rates are not Amazon's. PostgreSQL and MariaDB are
named by SYNCD_TEST_POSTGRESQL_URL and SYNCD_TEST_MARIADB_URL; a database whose variable is not
set is skipped. Writes its section of bench/RESULTS.md unless --no-write is given.
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import Engine, func, select

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crash_episodes import CHOICES  # noqa: E402
from bench.results import (  # noqa: E402
    database_urls,
    section_header,
    url_variable,
    write_section,
)
from syncd.amazon.shipments import PackageItem  # noqa: E402
from syncd.db import outbox  # noqa: E402
from syncd.db.engine import create_db_engine  # noqa: E402
from syncd.db.models import Account, OutboxEntry, table_of  # noqa: E402
from syncd.jobs.shipments import INTAKE_BATCH  # noqa: E402
from syncd.sandbox.external import ExternalSandbox  # noqa: E402
from syncd.shipping.submit import submit_shipment  # noqa: E402
from tests.conftest import reset_database  # noqa: E402
from tests.crash_support import command_environment, parse_time, run_syncd  # noqa: E402
from tests.shipments_crash_harness import (  # noqa: E402
    ACCOUNT,
    SANDBOX_ARGS,
    add_synced_account,
    create_merchant_order,
    stored_orders,
)

HEADING = "## Shipments throughput under quotas (bench/shipments_throughput.py)"
SEED = 51
# Amazon's default plans, which the sandbox enforces (requests per second, burst).
CONFIRM_RATE, CONFIRM_BURST = 2.0, 10
GET_ORDER_RATE, GET_ORDER_BURST = 0.5, 30
POLL_SECONDS = 1.0
_OUTBOX = table_of(OutboxEntry)
_ACCOUNTS = table_of(Account)


OUTBOX = "outbox"
ITEMS_GIVEN = "intake, items given"
WHOLE_ORDER = "intake, whole order"


@dataclass(frozen=True)
class Case:
    """One delivery to measure: how the shipments are written, how many, at which speed."""

    database: str
    url: str
    kind: str  # OUTBOX, ITEMS_GIVEN or WHOLE_ORDER
    shipments: int
    speed: float


@dataclass
class Measurement:
    """One delivery run of the daemon."""

    database: str
    case: str  # OUTBOX, ITEMS_GIVEN or WHOLE_ORDER
    shipments: int
    speed: float
    delivered: int
    first_to_last_204: float  # seconds of wall time
    first_call_to_last_204: float  # from the daemon's first SP-API call of the job
    confirm_calls: int
    confirm_throttled: int
    get_order_calls: int
    get_order_throttled: int
    search_calls: int
    cpu_seconds: float
    peak_rss_mib: float
    wall_seconds: float  # daemon start to the poll that saw every row delivered

    @property
    def floor(self) -> float:
        """Seconds of wall time the plans allow at the least, at this speed factor.

        Outbox rows: the confirmShipment burst at once, then one call per 1/rate seconds.
        Intake: one getOrder per order, burst first, and after the last getOrder the
        confirmations of the last intake batch, which a run sends only after checking it.
        """
        if self.case == OUTBOX:
            return max(0, self.shipments - CONFIRM_BURST) / (CONFIRM_RATE * self.speed)
        fetch = max(0, self.shipments - GET_ORDER_BURST) / (GET_ORDER_RATE * self.speed)
        last_batch = min(self.shipments, INTAKE_BATCH)
        return fetch + max(0, last_batch - CONFIRM_BURST) / (CONFIRM_RATE * self.speed)


def prepare(case: Case, work_dir: Path) -> tuple[ExternalSandbox, dict[str, str], Engine]:
    """Start a sandbox, create ``count`` orders, store them in syncd and write the requests."""
    sandbox = ExternalSandbox(*SANDBOX_ARGS, "--speed", str(case.speed), "--seed", str(SEED))
    sandbox.__enter__()
    database = case.url
    if case.database == "SQLite":
        database = f"sqlite:///{work_dir / f'{case.kind}-{case.shipments}.sqlite3'}"
    reset_database(database)
    env = command_environment(
        database,
        sandbox.settings,
        {
            "SYNCD_ORDERS_BACKFILL_DAYS": "1",
            "SYNCD_SHIPMENTS_INTERVAL": "1",
            "SYNCD_LOG_LEVEL": "info",
        },
    )
    control = httpx.Client(
        base_url=sandbox.settings["SYNCD_SPAPI_ENDPOINT_NA"] + "/_sandbox", timeout=60
    )
    rng = random.Random(SEED)  # noqa: S311 - seeded test data, not a secret
    orders = [
        create_merchant_order(control, [rng.randint(1, 2) for _ in range(rng.randint(1, 2))])
        for _ in range(case.shipments)
    ]

    def syncd(*args: str, stdin: str | None = None) -> None:
        completed = run_syncd(env, *args, stdin=stdin, timeout=600)
        if completed.returncode != 0:
            raise SystemExit(f"syncd {' '.join(args)} failed: {completed.stderr.strip()}")

    add_synced_account(control, syncd)
    engine = create_db_engine(database)
    stored = stored_orders(engine)
    if stored != case.shipments:
        raise SystemExit(f"syncd once orders stored {stored} of {case.shipments} orders")
    if case.kind == OUTBOX:
        enqueue_rows(engine, orders)
    else:
        write_requests(engine, orders, with_items=case.kind == ITEMS_GIVEN)
    control.delete("/calls").raise_for_status()
    control.close()
    return sandbox, env, engine


def write_requests(engine: Engine, orders: list[dict[str, Any]], *, with_items: bool) -> None:
    """Write one intake request per order, as an ERP would."""
    shipped_at = datetime.now(UTC) - timedelta(minutes=5)
    for number, order in enumerate(orders):
        items = [
            {"order_item_id": item["orderItemId"], "quantity": item["quantityOrdered"]}
            for item in order["orderItems"]
        ]
        submit_shipment(
            engine,
            account=ACCOUNT,
            order_id=order["orderId"],
            carrier="UPS",
            tracking_number=f"1ZBENCH{number:011d}",
            shipped_at=shipped_at,
            source_system="bench",
            source_key=f"{order['orderId']}:{number}",
            items=items if with_items else None,
        )


def enqueue_rows(engine: Engine, orders: list[dict[str, Any]]) -> None:
    """Put one pending outbox row per order, with every item, as the intake would."""
    now = datetime.now(UTC)
    with engine.begin() as connection:
        account_id = connection.execute(
            select(_ACCOUNTS.c.id).where(_ACCOUNTS.c.name == ACCOUNT)
        ).scalar_one()
        for number, order in enumerate(orders):
            window = order["fulfillment"].get("shipByWindow") or {}
            deadline = window.get("latestDateTime")
            outbox.enqueue(
                connection,
                outbox.NewShipment(
                    account_id=int(account_id),
                    marketplace_id=order["salesChannel"]["marketplaceId"],
                    order_id=order["orderId"],
                    package_reference_id="1",
                    carrier_code="UPS",
                    carrier_name=None,
                    shipping_method=None,
                    tracking_number=f"1ZBENCH{number:011d}",
                    ship_date=now - timedelta(minutes=5),
                    items=tuple(
                        PackageItem(item["orderItemId"], int(item["quantityOrdered"]))
                        for item in order["orderItems"]
                    ),
                    deadline=None if deadline is None else parse_time(deadline),
                ),
                now,
            )


def deliver(
    engine: Engine, env: dict[str, str], count: int, timeout: float, log: Path
) -> tuple[float, float, float]:
    """Run ``syncd run`` until ``count`` rows are delivered; return wall, CPU and peak RSS MiB."""
    started = time.monotonic()
    with log.open("w", encoding="utf-8") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "syncd", "run"],
            stdout=output,
            stderr=output,
            stdin=subprocess.DEVNULL,
            env=env,
        )
        try:
            while _delivered(engine) < count:
                if process.poll() is not None:
                    raise SystemExit(f"syncd run exited with {process.returncode}; see {log}")
                if time.monotonic() - started > timeout:
                    raise SystemExit(f"not every row was delivered in {timeout:.0f} s; see {log}")
                time.sleep(POLL_SECONDS)
            wall = time.monotonic() - started
        finally:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        _pid, status, usage = os.wait4(process.pid, 0)
        process.returncode = os.waitstatus_to_exitcode(status)
    cpu = usage.ru_utime + usage.ru_stime
    return wall, cpu, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def _delivered(engine: Engine) -> int:
    with engine.begin() as connection:
        return int(
            connection.execute(
                select(func.count()).select_from(_OUTBOX).where(_OUTBOX.c.state == outbox.DELIVERED)
            ).scalar_one()
        )


def _calls(sandbox: ExternalSandbox, operation: str) -> list[dict[str, Any]]:
    base = sandbox.settings["SYNCD_SPAPI_ENDPOINT_NA"]
    response = httpx.get(f"{base}/_sandbox/calls", params={"operation": operation}, timeout=60)
    response.raise_for_status()
    calls: list[dict[str, Any]] = response.json()["calls"]
    return calls


def measure(case: Case, work_dir: Path) -> Measurement:
    """Prepare one case on one database, deliver it with the daemon and read the call log."""
    sandbox, env, engine = prepare(case, work_dir)
    count, speed = case.shipments, case.speed
    try:
        slowest = min(CONFIRM_RATE, GET_ORDER_RATE) * speed
        log = work_dir / f"{case.database}-{case.kind}-{count}.log"
        wall, cpu, rss = deliver(engine, env, count, timeout=3 * count / slowest + 600, log=log)
        delivered = _delivered(engine)
        confirms = _calls(sandbox, "confirmShipment")
        fetches = _calls(sandbox, "getOrder")
        searches = _calls(sandbox, "searchOrders")
    finally:
        engine.dispose()
        sandbox.__exit__(None, None, None)
    accepted = sorted(parse_time(call["wall_time"]) for call in confirms if call["status"] == 204)
    first_call = min(parse_time(call["wall_time"]) for call in [*confirms, *fetches])
    result = Measurement(
        database=case.database,
        case=case.kind,
        shipments=count,
        speed=speed,
        delivered=delivered,
        first_to_last_204=(accepted[-1] - accepted[0]).total_seconds(),
        first_call_to_last_204=(accepted[-1] - first_call).total_seconds(),
        confirm_calls=len(confirms),
        confirm_throttled=sum(1 for call in confirms if call["status"] == 429),
        get_order_calls=len(fetches),
        get_order_throttled=sum(1 for call in fetches if call["status"] == 429),
        search_calls=len(searches),
        cpu_seconds=cpu,
        peak_rss_mib=rss,
        wall_seconds=wall,
    )
    print(
        f"{case.database} {result.case}: {delivered} delivered, first to last 204 "
        f"{result.first_to_last_204:.1f} s, first call to last 204 "
        f"{result.first_call_to_last_204:.1f} s (floor {result.floor:.1f} s), "
        f"{result.confirm_throttled} confirmShipment 429s, CPU {cpu:.1f} s, RSS {rss:.0f} MiB",
        flush=True,
    )
    return result


def render(
    results: list[Measurement], skipped: list[str], args: argparse.Namespace, command: str
) -> str:
    """Return the Markdown section of RESULTS.md."""
    lines = [
        *section_header(HEADING, command),
        (
            "- Sandbox: separate process, quotas on with Amazon's default plans (confirmShipment "
            "2/s, burst 10; getOrder 0.5/s, burst 30) times the speed factor in the table. One "
            "NA seller; new unshipped merchant orders of one or two items of one or two units, "
            "stored by `syncd once orders` before the requests are written. The database "
            "servers run on the same machine."
        ),
        (
            "- Delivery: `syncd run` as a subprocess with SYNCD_SHIPMENTS_INTERVAL=1 and "
            "SYNCD_LOG_LEVEL=info, otherwise default settings, stopped with SIGTERM once the "
            "database shows every row delivered (polled every second). A run of the shipments "
            "job sends at most 500 rows, so 1,000 take at least two runs. The daemon also "
            "verifies delivered rows with getOrder, using only free getOrder quota, and runs "
            "the orders job when it is due."
        ),
        (
            "- Cases, one shipment per order: outbox, rows put straight into the outbox as the "
            "intake writes them (measures delivery alone); intake, items given, requests naming "
            "their items by order item id; intake, whole order, requests without items. The "
            "intake reads each order with getOrder (once per order and run) and checks at most "
            f"{INTAKE_BATCH} requests per run, then sends what it enqueued."
        ),
        (
            "- Floor: what the plans allow at the least, divided by the speed factor. Outbox: "
            "(shipments − 10) / 2 s. Intake: (shipments − 30) / 0.5 s of getOrder, plus "
            f"(min(shipments, {INTAKE_BATCH}) − 10) / 2 s for the last batch's confirmations. "
            "First to last: outbox from the first to the last confirmShipment 204, intake from "
            "the first getOrder. CPU and peak RSS: the daemon process, from start to stop, "
            "including start-up, verification and any orders run."
        ),
        "",
        (
            "| database | case | speed | shipments | delivered | first to last | floor "
            "| over floor | shipments/s | confirmShipment calls | 429 | getOrder calls "
            "| getOrder 429 | searchOrders calls | daemon CPU | CPU ms/shipment | peak RSS |"
        ),
        "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in results:
        span = r.first_to_last_204 if r.case == OUTBOX else r.first_call_to_last_204
        lines.append(
            f"| {r.database} | {r.case} | {r.speed:g} | {r.shipments} | {r.delivered} "
            f"| {span:.1f} s | {r.floor:.1f} s | {(span / r.floor - 1) * 100:+.1f} % "
            f"| {r.shipments / span:.2f} | {r.confirm_calls} | {r.confirm_throttled} "
            f"| {r.get_order_calls} | {r.get_order_throttled} | {r.search_calls} "
            f"| {r.cpu_seconds:.1f} s | {r.cpu_seconds / r.shipments * 1000:.1f} "
            f"| {r.peak_rss_mib:.0f} MiB |"
        )
    lines += [
        "",
        (
            "A speed factor above 1 multiplies every refill rate, so wall times and rates "
            "there are not Amazon's: divide the rate (or multiply the time) by the factor to "
            "compare. CPU time per shipment does not scale that way, since the daemon does "
            "the same work per shipment."
        ),
    ]
    if any(r.confirm_throttled for r in results):
        lines += [
            "",
            (
                "A confirmShipment 429 right after the burst comes from pacing without a "
                "margin: syncd sends the eleventh call the moment its own bucket holds a token "
                "again, and the sandbox counts the call when it arrives. When the first call "
                "took longer on the way than the eleventh, the sandbox's token is not there "
                "yet. tests/integration/test_shipments_pacing.py reproduces it."
            ),
        ]
    if skipped:
        lines.append("")
        lines += [f"- {note}" for note in skipped]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--shipments", type=int, default=1000, help="outbox rows to deliver")
    parser.add_argument(
        "--intake", type=int, default=100, help="requests per intake case; 0 skips them"
    )
    parser.add_argument("--speed", type=float, default=1.0, help="quota speed factor, SQLite")
    parser.add_argument(
        "--server-speed", type=float, default=1.0, help="quota speed factor, PostgreSQL, MariaDB"
    )
    parser.add_argument(
        "--database", choices=[*CHOICES, "all"], default="all", help="which databases to run"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()

    results: list[Measurement] = []
    skipped: list[str] = []
    chosen = list(CHOICES.values()) if args.database == "all" else [CHOICES[args.database]]
    with tempfile.TemporaryDirectory(prefix="syncd-shipments-") as temporary:
        work_dir = Path(temporary)
        urls = database_urls("sqlite:///unused")
        for name in chosen:
            url = urls[name]
            if url is None:
                skipped.append(f"{name} skipped: set {url_variable(name)} to measure it.")
                print(skipped[-1], flush=True)
                continue
            speed = args.speed if name == "SQLite" else args.server_speed
            cases = [Case(name, url, OUTBOX, args.shipments, speed)]
            if args.intake:
                cases += [
                    Case(name, url, ITEMS_GIVEN, args.intake, speed),
                    Case(name, url, WHOLE_ORDER, args.intake, speed),
                ]
            results += [measure(case, work_dir) for case in cases]
            if name != "SQLite":
                reset_database(url)  # leave the server's database empty again

    command = "python bench/shipments_throughput.py " + " ".join(sys.argv[1:])
    section = render(results, skipped, args, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
