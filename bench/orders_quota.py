"""Quota use of the orders job: searchOrders calls per 1,000 orders, and backlog drain time.

Everything runs against ``syncd sandbox serve`` in its own process, with quotas on at a speed
factor (every refill rate multiplied by it), into a fresh SQLite database. The sandbox's call
log gives the calls and the 429 responses.

(a) Calls per 1,000 orders written (new plus updated):
    - backfill: the first run of an EU account (DE, FR, IT) over the sandbox's 30 days;
    - steady state: after the backfill, rounds that each let the sandbox create and change
      orders, then run the job once. Rounds are ``--interval`` seconds apart and the job's
      look-back is scaled by the same factor as the interval (defaults 300 s and 900 s), so
      each run re-reads the same share of history as with the default settings.
(b) Backlog drain: a fresh EU account with about 10,000 orders from the last day in three
    marketplaces, read under Amazon's default usage plan (searchOrders 0.0056/s, burst 20).
    Sandbox time is wall time × speed factor. A second process then starts at once, as a
    `syncd once orders` from cron would, and its 429 responses are counted.

Usage: python bench/orders_quota.py [--speed F] [--rounds N] [--interval S] [--no-write]

Writes its section of bench/RESULTS.md unless --no-write is given.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import (  # noqa: E402
    EU_MARKETPLACES,
    add_eu_account,
    run_once,
    section_header,
    write_section,
)
from syncd import config, logs  # noqa: E402
from syncd.crypto import generate_key  # noqa: E402
from syncd.db import migrate  # noqa: E402
from syncd.db.accounts import AccountRecord  # noqa: E402
from syncd.jobs.context import JobContext, build_context  # noqa: E402
from syncd.sandbox.external import ExternalSandbox  # noqa: E402

HEADING = "## Orders quota use and backlog drain (bench/orders_quota.py)"
REFRESH_TOKEN = "Atzr|bench-quota-seller"
# Amazon's default searchOrders plan, the one the sandbox enforces.
SEARCH_RATE = 0.0056  # requests per second
SEARCH_BURST = 20
# The defaults of SYNCD_ORDERS_INTERVAL and SYNCD_ORDERS_LOOKBACK, whose ratio the steady
# state keeps.
DEFAULT_INTERVAL = 300.0
DEFAULT_LOOKBACK = 900.0
# syncd's upper bound is Amazon's now minus two minutes minus SYNCD_CLOCK_SKEW_MARGIN (60 s).
BOUND_DELAY_SECONDS = 180


@dataclass
class Workload:
    """Calls and orders of one workload of part (a)."""

    name: str
    orders_written: int
    search_calls: int
    throttled: int
    runs: int

    @property
    def calls_per_thousand(self) -> float:
        return self.search_calls / self.orders_written * 1000 if self.orders_written else math.nan


@dataclass
class Drain:
    """The backlog drain of part (b)."""

    orders: int
    search_calls: int
    throttled: int
    wall_seconds: float
    first_to_last_call_seconds: float
    speed: float
    restart_calls: int
    restart_throttled: int

    @property
    def sandbox_hours(self) -> float:
        return self.wall_seconds * self.speed / 3600

    @property
    def calls_span_hours(self) -> float:
        return self.first_to_last_call_seconds * self.speed / 3600

    @property
    def floor_hours(self) -> float:
        """The plan's own minimum: the burst at once, then one call per 1/rate seconds."""
        return max(0, self.search_calls - SEARCH_BURST) / SEARCH_RATE / 3600


class Sandbox:
    """An external sandbox plus its control API."""

    def __init__(self, *args: str) -> None:
        self.external = ExternalSandbox(*args)

    @contextmanager
    def running(self) -> Iterator[Sandbox]:
        with self.external:
            base = self.external.settings["SYNCD_SPAPI_ENDPOINT_EU"] + "/_sandbox"
            with httpx.Client(base_url=base, timeout=120) as control:
                self.control = control
                yield self

    def search_calls(self) -> list[dict[str, Any]]:
        response = self.control.get("/calls", params={"operation": "searchOrders"})
        response.raise_for_status()
        return list(response.json()["calls"])

    def clear_calls(self) -> None:
        self.control.delete("/calls").raise_for_status()

    def evolve(self, count: int, ago: float) -> int:
        response = self.control.post(
            "/orders/evolve",
            json={
                "refresh_token": REFRESH_TOKEN,
                "count": count,
                "marketplace_ids": list(EU_MARKETPLACES),
                "ago": ago,
            },
        )
        response.raise_for_status()
        return len(response.json()["changes"])


def _throttled(calls: list[dict[str, Any]]) -> int:
    return sum(1 for call in calls if call["status"] == 429)


def point_settings_at(sandbox: Sandbox, work_dir: Path, **settings: str) -> None:
    """Set the SYNCD_ variables for the sandbox and a fresh, migrated SQLite database."""
    for name in [name for name in os.environ if name.upper().startswith("SYNCD_")]:
        del os.environ[name]
    database = work_dir / f"quota-{time.monotonic_ns()}.sqlite3"
    os.environ.update(sandbox.external.settings)
    os.environ.update(
        {
            "SYNCD_DATABASE_URL": f"sqlite:///{database}",
            "SYNCD_ENCRYPTION_KEY": generate_key(),
            **settings,
        }
    )
    migrate.upgrade(os.environ["SYNCD_DATABASE_URL"])


@contextmanager
def job_context() -> Iterator[JobContext]:
    """Yield a job context built from the environment, as a new syncd process would have."""
    context = build_context(config.load_settings())
    try:
        yield context
    finally:
        context.close()


def measure_calls_per_thousand(
    speed: float, rounds: int, interval: float, changes: tuple[int, ...], work_dir: Path
) -> list[Workload]:
    """Measure part (a): the backfill, then steady-state rounds for each number of changes."""
    lookback = interval * DEFAULT_LOOKBACK / DEFAULT_INTERVAL
    sandbox = Sandbox("--orders-per-marketplace", "1500", "--speed", str(speed), "--seed", "21")
    results: list[Workload] = []
    with sandbox.running():
        point_settings_at(sandbox, work_dir, SYNCD_ORDERS_LOOKBACK=str(lookback))
        with job_context() as context:
            account = add_eu_account(context, REFRESH_TOKEN)
            summary = run_once(context, account)
            calls = sandbox.search_calls()
            written = summary.orders_new + summary.orders_updated
            results.append(Workload("backfill, 30 days", written, len(calls), _throttled(calls), 1))
            print(f"backfill: {written} orders, {len(calls)} calls", flush=True)
            results += [
                steady_state(
                    sandbox,
                    context,
                    account,
                    per_round=per_round,
                    rounds=rounds,
                    interval=interval,
                )
                for per_round in changes
            ]
    return results


def steady_state(
    sandbox: Sandbox,
    context: JobContext,
    account: AccountRecord,
    *,
    per_round: int,
    rounds: int,
    interval: float,
) -> Workload:
    """Run ``rounds`` rounds of sandbox changes and one run each, ``interval`` seconds apart."""
    sandbox.clear_calls()
    written = 0
    next_round = time.monotonic()
    for _ in range(rounds):
        time.sleep(max(0.0, next_round - time.monotonic()))
        next_round += interval
        # Date the round's changes over the interval that ends at syncd's upper bound.
        parts = 4
        for part in range(parts):
            ago = BOUND_DELAY_SECONDS + 2 + part * (interval - 4) / parts
            sandbox.evolve(max(1, per_round // parts), ago)
        summary = run_once(context, account)
        written += summary.orders_new + summary.orders_updated
    calls = sandbox.search_calls()
    name = f"steady state, {per_round} changes per interval"
    print(f"{name}: {written} orders, {len(calls)} calls", flush=True)
    return Workload(name, written, len(calls), _throttled(calls), rounds)


def measure_drain(speed: float, per_marketplace: int, work_dir: Path) -> Drain:
    """Measure part (b): one run that reads a day's backlog, then a second process at once."""
    sandbox = Sandbox(
        "--orders-per-marketplace",
        str(per_marketplace),
        "--history-days",
        "1",
        "--speed",
        str(speed),
        "--seed",
        "31",
    )
    with sandbox.running():
        point_settings_at(sandbox, work_dir, SYNCD_ORDERS_BACKFILL_DAYS="1")
        with job_context() as context:
            account = add_eu_account(context, REFRESH_TOKEN)
            started = time.monotonic()
            summary = run_once(context, account)
            wall = time.monotonic() - started
        calls = sandbox.search_calls()
        times = [datetime.fromisoformat(call["wall_time"]) for call in calls]
        span = (max(times) - min(times)).total_seconds()
        print(f"drain: {summary.orders_new} orders, {len(calls)} calls, {wall:.0f} s", flush=True)

        # A new process: a new client, while the sandbox's bucket is nearly empty after the
        # drain. Its buckets start from the levels the first process saved with the lease.
        sandbox.clear_calls()
        with job_context() as context:
            run_once(context, account)
        restart_calls = sandbox.search_calls()
    return Drain(
        orders=summary.orders_new,
        search_calls=len(calls),
        throttled=_throttled(calls),
        wall_seconds=wall,
        first_to_last_call_seconds=span,
        speed=speed,
        restart_calls=len(restart_calls),
        restart_throttled=_throttled(restart_calls),
    )


def render(workloads: list[Workload], drain: Drain, args: argparse.Namespace, command: str) -> str:
    """Return the Markdown section of RESULTS.md."""
    lookback = args.interval * DEFAULT_LOOKBACK / DEFAULT_INTERVAL
    lines = [
        *section_header(HEADING, command),
        (
            f"- Sandbox: separate process, quotas on (Amazon's default plans) at speed "
            f"{args.speed:g}; one EU account with DE, FR and IT and the default includedData; "
            "SQLite; syncd's default settings except where named."
        ),
        "",
        "(a) searchOrders calls per 1,000 orders written (new plus updated):",
        "",
        (
            "- Backfill: 1,500 generated orders per marketplace over 30 days (seed 21), "
            "windows of 7 days."
        ),
        (
            f"- Steady state: {args.rounds} rounds {args.interval:g} s apart after the backfill. "
            "Before each run the sandbox creates and changes orders (about 20 % new), spread "
            f"over the last interval. SYNCD_ORDERS_LOOKBACK is {lookback:g} s, the default "
            "900 s scaled like the interval (default 300 s), so every run re-reads the "
            "changes of the three intervals before its own, as with the defaults. Orders "
            "written also count the sandbox's own scheduled status changes."
        ),
        "",
        (
            "| workload | runs | orders written | searchOrders calls | calls per run "
            "| calls per 1,000 orders | 429 responses |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {w.name} | {w.runs} | {w.orders_written} | {w.search_calls} "
        f"| {w.search_calls / w.runs:.2f} | {w.calls_per_thousand:.1f} | {w.throttled} |"
        for w in workloads
    ]
    lines += [
        "",
        (
            f"The default plan refills {SEARCH_RATE * DEFAULT_INTERVAL:.2f} searchOrders calls "
            f"per default interval of {DEFAULT_INTERVAL:g} s. A steady state that needs more "
            f"calls per run lives on the burst of {SEARCH_BURST} for a while and then falls "
            "behind."
        ),
    ]
    lines += [
        "",
        "(b) Backlog drain under the default plan (searchOrders 0.0056/s, burst 20):",
        "",
        (
            f"- Backlog: a fresh account and a sandbox that generated {args.per_marketplace:,} "
            "orders per marketplace (DE, FR, IT) over the last day (seed 31); "
            "SYNCD_ORDERS_BACKFILL_DAYS=1, so the first run reads them all in one window. "
            "Orders updated in the last three minutes lie beyond syncd's bound and wait for "
            "the next run."
        ),
        (
            "- Sandbox time is wall time × speed factor. Processing time is multiplied too, so "
            "the figure overstates slightly. The floor is the plan's own limit: the burst at "
            "once, then one call every 1/0.0056 s."
        ),
        "",
        (
            "| orders | searchOrders calls | wall time | sandbox time | first to last call "
            "| plan's floor | 429 responses |"
        ),
        "|---:|---:|---:|---:|---:|---:|---:|",
        (
            f"| {drain.orders} | {drain.search_calls} | {drain.wall_seconds:.0f} s "
            f"| {drain.sandbox_hours:.2f} h | {drain.calls_span_hours:.2f} h "
            f"| {drain.floor_hours:.2f} h | {drain.throttled} |"
        ),
        "",
        (
            "A second process started right after the drain (a new client, as a "
            f"`syncd once orders` from cron would be) made {drain.restart_calls} searchOrders "
            f"calls, and {drain.restart_throttled} of them got a 429 response."
        ),
    ]
    lines.append(
        "The second process starts its buckets from the quota levels that the first one "
        "saved with the account's lease (`syncd_leases.quota_levels`), refilled for the time "
        "in between, and not from a full burst that the seller's bucket at the sandbox, as at "
        "Amazon, no longer holds."
    )
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--speed", type=float, default=100.0, help="sandbox quota speed factor")
    parser.add_argument("--rounds", type=int, default=8, help="steady-state rounds per series")
    parser.add_argument(
        "--interval", type=float, default=15.0, help="seconds between steady-state rounds"
    )
    parser.add_argument(
        "--changes",
        type=int,
        nargs="+",
        default=[20, 100],
        help="sandbox changes per steady-state interval, one series each",
    )
    parser.add_argument(
        "--per-marketplace", type=int, default=3350, help="backlog orders per marketplace"
    )
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logs.configure_logging("json", "warning")

    with tempfile.TemporaryDirectory(prefix="syncd-quota-") as temporary:
        work_dir = Path(temporary)
        workloads = measure_calls_per_thousand(
            args.speed, args.rounds, args.interval, tuple(args.changes), work_dir
        )
        drain = measure_drain(args.speed, args.per_marketplace, work_dir)

    command = "python bench/orders_quota.py " + " ".join(sys.argv[1:])
    section = render(workloads, drain, args, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0 if drain.throttled == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
