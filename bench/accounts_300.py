"""One ``syncd run`` daemon serving 300 accounts: CPU, memory, and whether any account starves.

Everything runs against ``syncd sandbox serve`` in its own process, with quotas on at a speed
factor (every refill rate and the sandbox clock multiplied by it). The accounts are 240 NA
sellers (US) and 60 EU sellers (DE, FR, IT), each with its own refresh token and generated
orders. The benchmark adds them to a fresh database, starts the daemon as a subprocess and:

1. Busy: samples the daemon's CPU time (user + system, ``/proc/PID/stat``) and resident
   memory (``/proc/PID/status``) every few seconds for ``--minutes``. The first minutes are
   every account's backfill; meanwhile the sandbox changes orders of random sellers, so every
   later run has something to read. ``SYNCD_ORDERS_INTERVAL`` is 60 s, which at the speed
   factor of 5 is Amazon's 300 s default in sandbox time.
2. Idle: stops the daemon, makes every account due only tomorrow, starts a new daemon and
   samples it for ``--idle-minutes``: the footprint of 300 accounts with nothing to do (node
   heartbeat, lease renewal, dispatch looks).

Starvation shows in the gaps between an account's runs: with the accounts due oldest first
and four workers, no gap should be much longer than the interval.

Usage: python bench/accounts_300.py [--database sqlite|postgresql|mariadb] [--minutes M]
       [--idle-minutes M] [--accounts N] [--speed F] [--no-write]

PostgreSQL and MariaDB come from ``SYNCD_TEST_POSTGRESQL_URL`` / ``SYNCD_TEST_MARIADB_URL``;
the benchmark drops syncd's tables there first. Writes its section of bench/RESULTS.md
unless --no-write is given.
"""

from __future__ import annotations

import argparse
import itertools
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine, func, select, update

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import database_urls, section_header, write_section  # noqa: E402
from syncd import logs  # noqa: E402
from syncd.crypto import Vault  # noqa: E402
from syncd.db import accounts, migrate, runs  # noqa: E402
from syncd.db.engine import create_db_engine  # noqa: E402
from syncd.db.models import Account, Order, Run, table_of  # noqa: E402
from syncd.sandbox.external import ExternalSandbox  # noqa: E402
from tests.conftest import reset_database  # noqa: E402
from tests.crash_support import command_environment  # noqa: E402

HEADING = "## 300 accounts on one daemon, {database} (bench/accounts_300.py)"
US = "ATVPDKIKX0DER"
EU = ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")  # DE, FR, IT
EU_SHARE = 0.2  # of the accounts
ORDERS_PER_MARKETPLACE = 40
HISTORY_DAYS = 7
ORDERS_INTERVAL = 60  # seconds; SYNCD_ORDERS_INTERVAL's minimum
SAMPLE_SECONDS = 5.0
EVOLVE_SECONDS = 2.0  # how often the sandbox changes orders of a few sellers
EVOLVE_SELLERS = 6  # sellers changed each time
EVOLVE_CHANGES = 3  # changes per seller each time
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")

_ACCOUNTS = table_of(Account)
_ORDERS = table_of(Order)
_RUNS = table_of(Run)


@dataclass
class Sample:
    """One reading of the daemon process."""

    at: float  # seconds since the phase started
    cpu_seconds: float  # user + system since the process started
    rss_kib: int


@dataclass
class Phase:
    """The readings of one phase and what the daemon did meanwhile."""

    name: str
    seconds: float = 0.0
    samples: list[Sample] = field(default_factory=list)
    runs: int = 0
    failed_runs: int = 0
    accounts_run: int = 0
    orders_stored: int = 0
    api_calls: int = 0
    throttled: int = 0
    gaps: list[float] = field(default_factory=list)  # per account, its longest gap in seconds
    first_pass_seconds: float | None = None  # until every account had run once

    @property
    def cpu_seconds(self) -> float:
        return self.samples[-1].cpu_seconds - self.samples[0].cpu_seconds

    @property
    def cpu_percent(self) -> float:
        span = self.samples[-1].at - self.samples[0].at
        return 100 * self.cpu_seconds / span if span else 0.0

    @property
    def peak_cpu_percent(self) -> float:
        """The busiest interval between two samples, in percent of one core."""
        pairs = zip(self.samples, self.samples[1:], strict=False)
        return max(
            (100 * (b.cpu_seconds - a.cpu_seconds) / (b.at - a.at) for a, b in pairs), default=0.0
        )


def read_process(pid: int) -> tuple[float, int]:
    """Return a process's CPU seconds (user + system) and resident memory in KiB."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    # After the command name: state is field 3, utime field 14 and stime field 15.
    cpu = (int(fields[11]) + int(fields[12])) / CLOCK_TICKS
    rss = 0
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            rss = int(line.split()[1])
    return cpu, rss


def add_accounts(engine: Engine, key: str, count: int) -> list[tuple[str, str, tuple[str, ...]]]:
    """Add the accounts; return each one's refresh token, region and marketplaces."""
    vault = Vault(SecretStr(key))
    added: list[tuple[str, str, tuple[str, ...]]] = []
    eu_count = round(count * EU_SHARE)
    with engine.begin() as connection:
        for number in range(count):
            region, marketplaces = ("eu", EU) if number < eu_count else ("na", (US,))
            token = f"Atzr|bench-300-{number:03d}"
            accounts.save_account(
                connection,
                vault,
                name=f"seller-{number:03d}",
                region=region,  # type: ignore[arg-type]
                marketplace_ids=marketplaces,
                included_data=("FULFILLMENT", "PROCEEDS", "PACKAGES"),
                refresh_token=SecretStr(token),
                now=datetime.now(UTC),
            )
            added.append((token, region, marketplaces))
    return added


def start_daemon(env: dict[str, str], log_path: Path) -> subprocess.Popen[bytes]:
    with log_path.open("ab") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "syncd", "run"],
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )


def stop_daemon(process: subprocess.Popen[bytes]) -> int:
    process.send_signal(signal.SIGTERM)
    return process.wait(timeout=120)


def measure(
    name: str,
    process: subprocess.Popen[bytes],
    seconds: float,
    *,
    engine: Engine,
    control: httpx.Client,
    sellers: list[tuple[str, str, tuple[str, ...]]] | None,
) -> Phase:
    """Sample the daemon for ``seconds``; with ``sellers``, change their orders meanwhile."""
    phase = Phase(name)
    rng = random.Random(300)  # noqa: S311 - a repeatable workload, not a secret
    control.delete("/calls").raise_for_status()
    started_wall = datetime.now(UTC)
    started = time.monotonic()
    next_sample = next_evolve = started

    while (now := time.monotonic()) - started < seconds:
        if process.poll() is not None:
            raise SystemExit(f"the daemon exited with {process.returncode} during {name}")
        if now >= next_sample:
            cpu, rss = read_process(process.pid)
            phase.samples.append(Sample(now - started, cpu, rss))
            next_sample += SAMPLE_SECONDS
        if sellers and now >= next_evolve:
            for token, region, marketplaces in rng.sample(sellers, EVOLVE_SELLERS):
                control.post(
                    "/orders/evolve",
                    json={
                        "refresh_token": token,
                        "count": EVOLVE_CHANGES,
                        "region": region,
                        "marketplace_ids": ",".join(marketplaces),
                        "ago": 300,
                    },
                ).raise_for_status()
            next_evolve += EVOLVE_SECONDS
        time.sleep(0.2)

    cpu, rss = read_process(process.pid)
    phase.samples.append(Sample(time.monotonic() - started, cpu, rss))
    phase.seconds = time.monotonic() - started
    count_work(phase, engine, control, started_wall)
    return phase


def count_work(phase: Phase, engine: Engine, control: httpx.Client, since: datetime) -> None:
    """Count the runs, orders and calls of the phase, and each account's longest gap."""
    with engine.begin() as connection:
        rows = connection.execute(
            select(_RUNS.c.account_id, _RUNS.c.started_at, _RUNS.c.result)
            .where(_RUNS.c.started_at >= since)
            .order_by(_RUNS.c.started_at)
        ).all()
        phase.orders_stored = int(
            connection.execute(select(func.count()).select_from(_ORDERS)).scalar_one()
        )
        first_runs = connection.execute(
            select(func.min(_RUNS.c.finished_at)).group_by(_RUNS.c.account_id)
        ).scalars()
        firsts = [value for value in first_runs if value is not None]
        total_accounts = int(
            connection.execute(select(func.count()).select_from(_ACCOUNTS)).scalar_one()
        )

    phase.runs = len(rows)
    phase.failed_runs = sum(1 for row in rows if row.result == runs.FAILED)
    starts: dict[int, list[datetime]] = defaultdict(list)
    for row in rows:
        starts[row.account_id].append(_aware(row.started_at))
    phase.accounts_run = len(starts)
    ended = since + timedelta(seconds=phase.seconds)
    for times in starts.values():
        points = [since, *times, ended]
        phase.gaps.append(max((b - a).total_seconds() for a, b in itertools.pairwise(points)))
    if len(firsts) == total_accounts and firsts:
        phase.first_pass_seconds = (_aware(max(firsts)) - since).total_seconds()

    calls = control.get("/calls").json()["calls"]
    phase.api_calls = sum(1 for call in calls if call["operation"] != "lwa")
    phase.throttled = sum(1 for call in calls if call["status"] == 429)


def _aware(value: datetime) -> datetime:
    return value if value.tzinfo is not None else value.replace(tzinfo=UTC)


def make_idle(engine: Engine) -> None:
    """Make every account due only tomorrow, so the next daemon has nothing to run."""
    with engine.begin() as connection:
        connection.execute(
            update(_ACCOUNTS).values(next_run_at=datetime.now(UTC) + timedelta(days=1))
        )


def run_benchmark(args: argparse.Namespace, url: str, work_dir: Path) -> tuple[Phase, Phase]:
    reset_database(url)
    migrate.upgrade(url)
    engine = create_db_engine(url)
    sandbox_args = [
        "--speed",
        str(args.speed),
        "--orders-per-marketplace",
        str(ORDERS_PER_MARKETPLACE),
        "--history-days",
        str(HISTORY_DAYS),
        "--seed",
        "300",
        "--marketplace",
        US,
    ]
    for marketplace in EU:
        sandbox_args += ["--marketplace", marketplace]
    with ExternalSandbox(*sandbox_args) as sandbox:
        env = command_environment(
            url,
            sandbox.settings,
            {
                "SYNCD_ORDERS_INTERVAL": str(ORDERS_INTERVAL),
                "SYNCD_ORDERS_BACKFILL_DAYS": str(HISTORY_DAYS),
                "SYNCD_ORDERS_WINDOW_DAYS": str(HISTORY_DAYS),
                "SYNCD_LOG_LEVEL": "info",
                "SYNCD_RETRY_BASE_DELAY": "1",
                "SYNCD_RETRY_MAX_DELAY": "60",
            },
        )
        sellers = add_accounts(engine, env["SYNCD_ENCRYPTION_KEY"], args.accounts)
        control_url = sandbox.settings["SYNCD_SPAPI_ENDPOINT_NA"] + "/_sandbox"
        with httpx.Client(base_url=control_url, timeout=120) as control:
            daemon = start_daemon(env, work_dir / "busy.log")
            try:
                busy = measure(
                    "busy",
                    daemon,
                    args.minutes * 60,
                    engine=engine,
                    control=control,
                    sellers=sellers,
                )
            finally:
                stop_daemon(daemon)
            make_idle(engine)
            daemon = start_daemon(env, work_dir / "idle.log")
            try:
                time.sleep(SAMPLE_SECONDS)  # start-up is not idling
                idle = measure(
                    "idle",
                    daemon,
                    args.idle_minutes * 60,
                    engine=engine,
                    control=control,
                    sellers=None,
                )
            finally:
                stop_daemon(daemon)
    engine.dispose()
    return busy, idle


def render(busy: Phase, idle: Phase, args: argparse.Namespace, database: str, command: str) -> str:
    eu_accounts = round(args.accounts * EU_SHARE)
    lines = section_header(HEADING.format(database=database), command)
    lines.append(
        "- Note: the machine's 2 cores were shared with other work during the run (other"
        " helpers' test suites, the sandbox process and the database server), so the CPU"
        " figures are an upper bound."
    )
    lines.append(
        f"- Database: {database}. Sandbox: separate process, quotas on (Amazon's default"
        f" plans) at speed {args.speed:g}, {ORDERS_PER_MARKETPLACE} generated orders per"
        f" seller and marketplace over {HISTORY_DAYS} days."
    )
    lines.append(
        f"- Accounts: {args.accounts}, {eu_accounts} of them EU (DE, FR, IT) and the rest NA"
        f" (US). SYNCD_ORDERS_INTERVAL={ORDERS_INTERVAL} s (the default 300 s in sandbox time"
        f" at speed 5), SYNCD_ORDERS_BACKFILL_DAYS={HISTORY_DAYS}, other settings default"
        " (SYNCD_MAX_WORKERS=4, SYNCD_DISPATCH_INTERVAL=10 s, SYNCD_NODE_HEARTBEAT=15 s)."
    )
    lines.append(
        f"- Busy: {busy.seconds / 60:.1f} min from the daemon's start, backfills included."
        f" Every {EVOLVE_SECONDS:g} s the sandbox changed {EVOLVE_CHANGES} orders of each of"
        f" {EVOLVE_SELLERS} random sellers. Idle: a new daemon for {idle.seconds / 60:.1f} min"
        " with every account due only the next day. CPU is user + system time of the daemon"
        f" process from /proc, sampled every {SAMPLE_SECONDS:g} s, in % of one core."
    )
    lines += [
        "",
        (
            "| phase | minutes | CPU s | mean CPU | busiest 5 s | RSS at 30 s | RSS end"
            " | RSS peak | runs | failed | accounts run | API calls | 429 |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for phase in (busy, idle):
        rss = [sample.rss_kib for sample in phase.samples]
        # The first samples of the busy phase show the interpreter still importing.
        settled = next((s.rss_kib for s in phase.samples if s.at >= 30), rss[-1])
        lines.append(
            f"| {phase.name} | {phase.seconds / 60:.1f} | {phase.cpu_seconds:.1f}"
            f" | {phase.cpu_percent:.1f} % | {phase.peak_cpu_percent:.0f} %"
            f" | {settled / 1024:.0f} MiB | {rss[-1] / 1024:.0f} MiB | {max(rss) / 1024:.0f} MiB"
            f" | {phase.runs} | {phase.failed_runs} | {phase.accounts_run}"
            f" | {phase.api_calls} | {phase.throttled} |"
        )
    gaps = sorted(busy.gaps)
    first = "n/a" if busy.first_pass_seconds is None else f"{busy.first_pass_seconds:.0f} s"
    median = statistics.median(gaps) if gaps else 0.0
    lines.append("")
    lines.append(
        f"Every account ran at least once within {first} of the start (the backfills);"
        f" orders stored at the end: {busy.orders_stored}. Longest gap between two runs of one"
        f" account (or between the start or end and its first or last run), over the"
        f" {len(gaps)} accounts that"
        f" ran: median {median:.0f} s, 95th percentile {_percentile(gaps, 0.95):.0f} s, max"
        f" {max(gaps, default=0):.0f} s, against an interval of {ORDERS_INTERVAL} s. A run"
        " starts at the first dispatch look (every 10 s) after the account is due, or when a"
        " worker becomes free, so a gap of the interval plus up to 10 s and the run's own"
        " time is what an account that never waits for a worker gets."
    )
    return "\n".join(lines) + "\n"


def _percentile(values: list[float], share: float) -> float:
    if not values:
        return 0.0
    return values[min(len(values) - 1, int(share * len(values)))]


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=("sqlite", "postgresql", "mariadb"), default="sqlite")
    parser.add_argument("--minutes", type=float, default=10.0, help="busy phase, minutes")
    parser.add_argument("--idle-minutes", type=float, default=3.0, help="idle phase, minutes")
    parser.add_argument("--accounts", type=int, default=300)
    parser.add_argument("--speed", type=float, default=5.0, help="sandbox quota speed factor")
    parser.add_argument("--work-dir", help="keep the daemon logs (and SQLite file) here")
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logs.configure_logging("json", "warning")

    with tempfile.TemporaryDirectory(prefix="syncd-300-") as temporary:
        work_dir = Path(args.work_dir or temporary)
        work_dir.mkdir(parents=True, exist_ok=True)
        names = {"sqlite": "SQLite", "postgresql": "PostgreSQL", "mariadb": "MariaDB"}
        url = database_urls(f"sqlite:///{work_dir / 'syncd.sqlite3'}")[names[args.database]]
        if url is None:
            raise SystemExit(f"set the URL variable of {names[args.database]} first")
        busy, idle = run_benchmark(args, url, work_dir)

    command = ("python bench/accounts_300.py " + " ".join(sys.argv[1:])).strip()
    section = render(busy, idle, args, names[args.database], command)
    print(section)
    if not args.no_write:
        write_section(HEADING.format(database=names[args.database]), section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
