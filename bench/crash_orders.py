"""Crash safety: SIGKILL ``syncd once orders`` hundreds of times, then compare with the sandbox.

Runs tests/crash_harness.py in episodes. Each episode has a fresh sandbox (its own seed) and a
fresh database, so the first-run backfill, which reads many windows and pages, is killed
again in every episode and not only once. After each episode's final run the stored orders
must equal the sandbox's; a difference stops the script with the harness's message.

Usage: python bench/crash_orders.py [--kills N] [--kills-per-episode K] [--seed S]
       [--database sqlite|postgresql|mariadb|all] [--no-write]

PostgreSQL and MariaDB are named by SYNCD_TEST_POSTGRESQL_URL and SYNCD_TEST_MARIADB_URL; a
database whose variable is not set is skipped. Writes its section of bench/RESULTS.md unless
--no-write is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.crash_episodes import (  # noqa: E402
    DatabaseRun,
    add_common_arguments,
    phase_table,
    run_databases,
)
from bench.results import section_header, write_section  # noqa: E402
from tests.crash_harness import (  # noqa: E402
    PHASE_BETWEEN_WINDOWS,
    PHASE_EXITED,
    PHASE_FETCHING,
    PHASE_FINISHING,
    PHASE_STARTING,
    PHASE_STORING,
    CrashConfig,
    CrashResult,
    CrashSafetyError,
    run_crash_harness,
)

HEADING = "## Crash safety of the orders job (bench/crash_orders.py)"
PHASES = (
    PHASE_STARTING,
    PHASE_FETCHING,
    PHASE_STORING,
    PHASE_BETWEEN_WINDOWS,
    PHASE_FINISHING,
    PHASE_EXITED,
)


def episode_runner(args: argparse.Namespace) -> Callable[[str, Path, int, int], CrashResult]:
    """Return the function that runs one episode of the orders harness."""

    def run_episode(url: str, work_dir: Path, episode: int, kills: int) -> CrashResult:
        config = CrashConfig(
            url,
            work_dir,
            kills=kills,
            seed=args.seed + episode,
            window_days=args.window_days,
            speed=args.speed,
        )
        return run_crash_harness(config)

    return run_episode


def render(
    runs: list[DatabaseRun], skipped: list[str], args: argparse.Namespace, command: str
) -> str:
    """Return the Markdown section of RESULTS.md."""
    lines = [
        *section_header(HEADING, command),
        (
            f"- Sandbox: separate process, quotas on at speed {args.speed:g}, 600 orders per "
            "marketplace (DE, FR, IT) over 30 days. One EU account, whose first run backfills "
            f"30 days with SYNCD_ORDERS_WINDOW_DAYS={args.window_days:g}."
        ),
        (
            f"- Episodes of {args.kills_per_episode} kills, each with a fresh sandbox (seeds "
            f"{args.seed} and up) and a fresh database. Before a round, with chance 0.3, the "
            "sandbox creates or changes 1 to 150 orders dated 240 s back."
        ),
        (
            "- Each killed run's lease is marked expired by the harness, standing in for "
            "SYNCD_LEASE_SECONDS passing."
        ),
        (
            "- Result: every episode's final comparison passed (no missing, extra, stale or "
            "duplicate order or item; no watermark moved backwards or past the two-minute bound)."
        ),
        "",
        (
            "| database | kills | rounds | resumed from token | windows read again "
            "| orders compared | sandbox changes | searchOrders calls | 429 responses "
            "| runs failed | wall time |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {run.name} | {run.kills} | {run.rounds} | {run.total('resumed_from_token')} "
        f"| {run.total('windows_restarted')} | {run.total('orders_compared')} "
        f"| {run.total('evolve_changes')} | {run.total('search_calls')} "
        f"| {run.total('throttled_calls')} "
        f"| {sum(len(result.failed_runs) for result in run.episodes)} "
        f"| {run.seconds / 60:.1f} min |"
        for run in runs
    ]
    lines += [
        "",
        (
            "A round resumed from a token when its first searchOrders call sent the page token "
            "that the killed run had committed. A window was read again from page one when the "
            "killed run left it open without a usable token."
        ),
        "",
        "Where the killed runs were, judged from the last event each run logged:",
        "",
        *phase_table(runs, PHASES),
    ]
    if any(run.total("throttled_calls") for run in runs):
        lines += [
            "",
            (
                "The 429 responses follow restarts. A new process starts from the quota levels "
                "that the killed one saved with its last page or heartbeat; calls the killed "
                "process made after that, and calls it had in flight, are not in them, so the "
                "sandbox's bucket may hold less than the new process expects."
            ),
        ]
    if skipped:
        lines.append("")
        lines += [f"- {note}" for note in skipped]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, kills_per_episode=20)
    parser.add_argument("--window-days", type=float, default=1.0, help="SYNCD_ORDERS_WINDOW_DAYS")
    parser.add_argument("--speed", type=float, default=500.0, help="sandbox quota speed factor")
    args = parser.parse_args()

    outcome = run_databases(args, episode_runner(args), CrashSafetyError)
    if outcome is None:
        return 1
    runs, skipped = outcome

    command = "python bench/crash_orders.py " + " ".join(sys.argv[1:])
    section = render(runs, skipped, args, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
