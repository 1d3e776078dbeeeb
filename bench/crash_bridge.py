"""Crash safety of the bridge: SIGKILL it hundreds of times between two databases, then compare.

Runs tests/bridge_crash_harness.py in episodes. Each episode has a fresh sandbox (its own
seed), fresh syncd tables and new orders. It also creates the domestic sample's ERP and WMS
tables again, without unique indexes on the natural keys, in a database of their own:
``<name>_erp`` beside a server database, a second file for SQLite. After each episode every stored
order must have exactly one ERP row and one line row per item, every shipped WMS row exactly
one request with its final state written back, and syncd's records must agree with the ERP's
rows. A difference stops the script with the harness's message.

Usage: python bench/crash_bridge.py [--kills N] [--kills-per-episode K] [--seed S]
       [--orders N] [--database sqlite|postgresql|mariadb|all] [--no-write] [--quiet]

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
from tests.bridge_crash_harness import (  # noqa: E402
    KILL_POINTS,
    PHASES,
    BridgeCrashConfig,
    BridgeCrashError,
    BridgeCrashResult,
    run_bridge_crash_harness,
)
from tests.erp_samples import DOMESTIC_TABLES, drop_tables  # noqa: E402
from tests.integration.bridge_support import separate_database_url  # noqa: E402

HEADING = "## Crash safety of the bridge (bench/crash_bridge.py)"


def episode_runner(
    args: argparse.Namespace,
) -> Callable[[str, Path, int, int], BridgeCrashResult]:
    """Return the function that runs one episode of the bridge harness."""

    def run_episode(url: str, work_dir: Path, episode: int, kills: int) -> BridgeCrashResult:
        work_dir.mkdir(parents=True, exist_ok=True)
        erp_url = separate_database_url(url, work_dir)
        config = BridgeCrashConfig(
            url, erp_url, work_dir, kills=kills, seed=args.seed + episode, orders=args.orders
        )
        result = run_bridge_crash_harness(config)
        drop_tables(erp_url, DOMESTIC_TABLES)
        return result

    return run_episode


def render(
    runs: list[DatabaseRun], skipped: list[str], args: argparse.Namespace, command: str
) -> str:
    """Return the Markdown section of RESULTS.md."""
    config = BridgeCrashConfig("", "", Path())
    points = "; ".join(f"`{name}`: {point.description}" for name, point in KILL_POINTS.items())
    lines = [
        *section_header(HEADING, command),
        (
            "- Sandbox: separate process, no generated orders, quotas on at speed "
            f"{config.speed:g}. One NA seller with {args.orders} new merchant-fulfilled "
            "unshipped orders per episode (1 to 3 items), stored with `syncd once orders` "
            "before the first round."
        ),
        (
            "- ERP: the domestic sample's tables in a database of their own (`<name>_erp` "
            "beside PostgreSQL's and MariaDB's, a second file for SQLite), with plain instead "
            "of unique indexes on the order key (platform, shop_code, platform_order_no) and "
            "the line key (order_id, platform_item_id). The mapping is the domestic sample's; "
            f"SYNCD_BRIDGE_BATCH_SIZE={config.batch_size} (orders per ERP batch, WMS rows per "
            "page)."
        ),
        (
            f"- Episodes of {args.kills_per_episode} kills, each with a fresh sandbox (seeds "
            f"{args.seed} and up) and fresh tables. Before a round, each with its chance: a "
            f"wave of 2 to 5 WMS rows ({config.wave_probability:g}; 15 % without a tracking "
            "number, which the intake rejects, and sometimes an unshipped row), new tracking "
            f"numbers on 1 or 2 rows ({config.correction_probability:g}), 1 to 3 new orders "
            f"and up to 2 cancelled ({config.change_probability:g}), ERP users setting "
            "pick_status and remark on up to 3 ERP orders, first those syncd has no record "
            f"of ({config.edit_probability:g}), every order made due again "
            f"({config.reproject_probability:g}), `syncd once shipments` "
            f"({config.shipments_probability:g})."
        ),
        (
            "- A round runs one bridge pass and kills it with SIGKILL. Mostly the pass kills "
            "itself at a kill point, the least used one that has work waiting, on a call "
            "drawn from that work: " + points + ". Once each point has had a kill, a share of "
            f"{config.timed_share:g} of the rounds instead runs `syncd once bridge` and the "
            "harness kills it after a random delay. After each kill the harness marks the "
            "bridge lease expired, standing in for SYNCD_LEASE_SECONDS passing. Final passes "
            "then run to their end, with `syncd once shipments` between them."
        ),
        (
            "- Checks: after every round, no ERP order or line row twice under its natural "
            "key; at the end, every stored order with one ERP row carrying its current "
            "status and the ERP users' pick_status and remark, one line row per item with "
            "its quantity, and syncd's record naming that version and those keys; every "
            "shipped WMS row with exactly one request with its tracking number, confirmed or "
            "rejected, its final status, message and time written back and recorded; no "
            "request for unshipped rows; no open quarantine entry."
        ),
        "",
        (
            "| database | kills | rounds | at a kill point | after a delay | orders "
            "| ERP order rows | lines | ERP line rows | shipped WMS rows | requests "
            "| confirmed | rejected | ERP rows unrecorded at a kill "
            "| write-backs unrecorded at a kill | ERP-owned edits (on unrecorded rows) "
            "| wall time |"
        ),
        "|---|" + "---:|" * 16,
    ]
    for run in runs:
        point_kills = sum(sum(result.points.values()) for result in run.episodes)
        lines.append(
            f"| {run.name} | {run.kills} | {run.rounds} | {point_kills} "
            f"| {run.kills - point_kills} | {run.total('orders')} | {run.total('erp_orders')} "
            f"| {run.total('lines')} | {run.total('erp_lines')} | {run.total('wms_rows')} "
            f"| {run.total('requests')} | {run.total('confirmed')} | {run.total('rejected')} "
            f"| {run.total('inserted_unrecorded')} | {run.total('write_backs_unrecorded')} "
            f"| {run.total('erp_edits')} ({run.total('edits_of_unrecorded')}) "
            f"| {run.seconds / 60:.1f} min |"
        )
    lines += [
        "",
        (
            "ERP rows unrecorded at a kill: ERP order rows inserted by a killed pass that "
            "syncd had no record of afterwards, the case where a repeated insert would "
            "duplicate the order. Write-backs unrecorded at a kill: WMS rows whose status a "
            "killed pass wrote without syncd recording it."
        ),
        "",
        "Where the rounds meant to be killed ended:",
        "",
        *phase_table(runs, PHASES),
    ]
    if skipped:
        lines.append("")
        lines += [f"- {note}" for note in skipped]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    add_common_arguments(parser, kills_per_episode=20)
    parser.add_argument("--orders", type=int, default=40, help="orders per episode")
    args = parser.parse_args()

    outcome = run_databases(args, episode_runner(args), BridgeCrashError)
    if outcome is None:
        return 1
    runs, skipped = outcome

    command = "python bench/crash_bridge.py " + " ".join(sys.argv[1:])
    section = render(runs, skipped, args, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
