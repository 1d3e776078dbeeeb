"""Crash safety: SIGKILL the shipments job hundreds of times, then compare with the sandbox.

Runs tests/shipments_crash_harness.py in episodes. Each episode has a fresh sandbox (its own
seed), a fresh database and new orders, so intake, delivery and the final runs happen again in
every episode. After each episode every request must be accepted, every outbox row delivered
and verified, and each order's packages on the sandbox must be exactly its outbox rows. A
difference stops the script with the harness's message.

Usage: python bench/crash_shipments.py [--kills N] [--kills-per-episode K] [--seed S]
       [--orders N] [--speed F] [--database sqlite|postgresql|mariadb|all] [--no-write]

PostgreSQL and MariaDB are named by SYNCD_TEST_POSTGRESQL_URL and SYNCD_TEST_MARIADB_URL; a
database whose variable is not set is skipped. Writes its section of bench/RESULTS.md unless
--no-write is given.
"""

from __future__ import annotations

import argparse
import sys
from collections import Counter
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
from tests.shipments_crash_harness import (  # noqa: E402
    PHASES,
    ShipmentCrashConfig,
    ShipmentCrashError,
    ShipmentCrashResult,
    run_shipments_crash_harness,
)

HEADING = "## Crash safety of the shipments job (bench/crash_shipments.py)"


def episode_runner(
    args: argparse.Namespace,
) -> Callable[[str, Path, int, int], ShipmentCrashResult]:
    """Return the function that runs one episode of the shipments harness."""

    def run_episode(url: str, work_dir: Path, episode: int, kills: int) -> ShipmentCrashResult:
        config = ShipmentCrashConfig(
            url,
            work_dir,
            kills=kills,
            seed=args.seed + episode,
            orders=args.orders,
            waves=kills,
            speed=args.speed,
        )
        return run_shipments_crash_harness(config)

    return run_episode


def _faults(run: DatabaseRun) -> Counter[str]:
    total: Counter[str] = Counter()
    for result in run.episodes:
        total.update(result.faults_added)
    return total


def _count(run: DatabaseRun, test: Callable[[object], bool]) -> int:
    return sum(1 for result in run.episodes for record in result.rounds if test(record))


def render(
    runs: list[DatabaseRun], skipped: list[str], args: argparse.Namespace, command: str
) -> str:
    """Return the Markdown section of RESULTS.md."""
    config = ShipmentCrashConfig("", Path())
    lines = [
        *section_header(HEADING, command),
        (
            f"- Sandbox: separate process, quotas on at speed {args.speed:g} (confirmShipment "
            f"{2 * args.speed:g}/s, burst 10; getOrder {0.5 * args.speed:g}/s, burst 30). One NA "
            f"seller with {args.orders} new merchant-fulfilled unshipped orders per episode, "
            "1 to 3 items of 1 to 3 units each, synced once with `syncd once orders` first."
        ),
        (
            "- Requests: per order, about 45 % split by item into two requests (two packages), "
            "30 % one request listing its items by SKU, the rest one request without items "
            "(the whole order). They are written in one wave per kill, before the rounds. The "
            "intake reads each order with getOrder once per run."
        ),
        (
            f"- Episodes of {args.kills_per_episode} kills, each with a fresh sandbox (seeds "
            f"{args.seed} and up) and a fresh database. A round runs `syncd once shipments`, or "
            f"with chance {config.daemon_probability:g} `syncd run`. Before a round, with chance "
            f"{config.fault_probability:g}, a confirmShipment fault is added (apply_then_slow "
            f"{config.read_timeout + 1:g} s against a read timeout of {config.read_timeout:g} s, "
            "apply_then_server_error, server_error or throttle; 1 to 3 firings). With chance "
            f"{config.stall_probability:g} the harness holds the database write lock for the "
            "last 0.2 to 1.2 s before the kill, so the process cannot commit what Amazon "
            "answered."
        ),
        (
            "- Each killed run's lease is marked expired by the harness, standing in for "
            "SYNCD_LEASE_SECONDS passing. Before each final run the harness makes due what "
            "time would: backoffs, verifications, claims of killed processes, a minute of quota."
        ),
        (
            "- Result: every episode's checks passed (after every round: no package on Amazon "
            "without its outbox row, no tracking number twice on an order, no dead or conflict "
            "row; at the end: every request accepted, every row delivered and verified, each "
            "order's packages exactly its rows with the same reference, carrier, tracking "
            "number and items)."
        ),
        "",
        (
            "| database | kills | rounds | `syncd run` rounds | write lock held | faults added "
            "| applied, not recorded at kill | requests | shipments | packages "
            "| confirmShipment calls | 429 | getOrder calls | final runs | claims expired "
            "by the harness | wall time |"
        ),
        "|---|" + "---:|" * 15,
    ]
    for run in runs:
        daemon_rounds = _count(run, lambda record: "syncd run" in getattr(record, "command", ""))
        stalled = _count(run, lambda record: bool(getattr(record, "stalled", False)))
        faults = sum(_faults(run).values())
        lines.append(
            f"| {run.name} | {run.kills} | {run.rounds} | {daemon_rounds} | {stalled} "
            f"| {faults} | {run.total('applied_unrecorded')} | {run.total('requests')} "
            f"| {run.total('shipments')} | {run.total('packages')} "
            f"| {run.total('confirm_calls')} | {run.total('confirm_throttled')} "
            f"| {run.total('get_order_calls')} | {run.total('final_runs')} "
            f"| {run.total('claims_expired_by_harness')} | {run.seconds / 60:.1f} min |"
        )
    kinds = sorted({kind for run in runs for kind in _faults(run)})
    lines += [
        "",
        (
            "Applied, not recorded: rows a kill left in `sending` while the sandbox already had "
            "their package with their tracking number, the case a resend with the same "
            "packageReferenceId must turn into an edit. Claims expired by the harness: rows "
            "still claimed by a killed process when a final `syncd once shipments` found "
            "nothing to do."
        ),
        "",
        "Faults added, by kind: "
        + "; ".join(
            f"{kind} " + ", ".join(f"{run.name} {_faults(run)[kind]}" for run in runs)
            for kind in kinds
        )
        + ".",
        "",
        "Where the killed runs were, judged from the last job step each run logged:",
        "",
        *phase_table(runs, PHASES),
    ]
    if any(run.total("claims_expired_by_harness") for run in runs):
        lines += [
            "",
            (
                "Rows claimed by a killed process should be due once that process no longer "
                "holds the account's lease, and the next run releases them at its start. A "
                "count above 0 means some waited for their own claim to expire "
                "(SYNCD_SHIPMENT_CLAIM_SECONDS, 600 s by default) instead."
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
    parser.add_argument("--orders", type=int, default=60, help="orders per episode")
    parser.add_argument("--speed", type=float, default=1.0, help="sandbox quota speed factor")
    args = parser.parse_args()

    outcome = run_databases(args, episode_runner(args), ShipmentCrashError)
    if outcome is None:
        return 1
    runs, skipped = outcome

    command = "python bench/crash_shipments.py " + " ".join(sys.argv[1:])
    section = render(runs, skipped, args, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
