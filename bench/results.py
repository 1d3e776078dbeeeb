"""Shared by the benchmark scripts: the machine, RESULTS.md sections, the benchmark account."""

from __future__ import annotations

import os
import platform
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path

from pydantic import SecretStr

from syncd.amazon.clock import utc_now
from syncd.cli_accounts import DEFAULT_INCLUDED_DATA
from syncd.db import accounts, runs
from syncd.db.accounts import AccountRecord
from syncd.jobs.context import JobContext
from syncd.jobs.leasing import LeaseKeeper
from syncd.jobs.orders import run_orders

RESULTS = Path(__file__).resolve().parent / "RESULTS.md"

# The variables that name the database servers, as in tests/conftest.py and .ci/run.
POSTGRESQL_URL_VARIABLE = "SYNCD_TEST_POSTGRESQL_URL"
MARIADB_URL_VARIABLE = "SYNCD_TEST_MARIADB_URL"
# The benchmark seller: one EU account in three marketplaces.
EU_MARKETPLACES = ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")  # DE, FR, IT


def machine() -> str:
    """Describe the machine: cores, CPU model, Python, operating system."""
    model = "unknown CPU"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        found = re.search(r"model name\s*:\s*(.+)", cpuinfo.read_text(encoding="utf-8"))
        if found:
            model = found.group(1).strip()
    return (
        f"{os.cpu_count()} cores, {model}, Python {platform.python_version()}, {platform.system()}"
    )


def source_revision() -> str:
    """Name the commit of the code measured, noting uncommitted changes under syncd/."""
    root = RESULTS.parent.parent
    try:
        commit = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"],  # noqa: S607 - git from PATH
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        changes = subprocess.run(  # noqa: S603 - fixed arguments
            ["git", "-C", str(root), "status", "--porcelain", "--", "syncd"],  # noqa: S607
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    return f"{commit} with uncommitted changes under syncd/" if changes else commit


def database_urls(sqlite_url: str) -> dict[str, str | None]:
    """Return the URL of each database to measure; None where its variable is not set."""
    return {
        "SQLite": sqlite_url,
        "PostgreSQL": os.environ.get(POSTGRESQL_URL_VARIABLE) or None,
        "MariaDB": os.environ.get(MARIADB_URL_VARIABLE) or None,
    }


def url_variable(name: str) -> str:
    """Return the variable that names the server of database ``name``."""
    return POSTGRESQL_URL_VARIABLE if name == "PostgreSQL" else MARIADB_URL_VARIABLE


def write_section(heading: str, section: str) -> None:
    """Replace the section under ``heading`` in RESULTS.md, keeping the other sections."""
    text = RESULTS.read_text(encoding="utf-8") if RESULTS.exists() else "# Benchmark results\n\n"
    pattern = re.compile(re.escape(heading) + r".*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(text):
        text = pattern.sub(lambda _match: section + "\n", text)
    else:
        text = text.rstrip() + "\n\n" + section
    RESULTS.write_text(text, encoding="utf-8")


# The commit measured: read when the benchmark starts, since a long run can outlast a commit.
REVISION_AT_START = source_revision()


def section_header(heading: str, command: str, *, with_revision: bool = True) -> list[str]:
    """Return the first lines of a RESULTS.md section: command, machine, commit and date."""
    lines = [heading, "", f"- Command: `{command}`", f"- Machine: {machine()}"]
    if with_revision:
        lines.append(f"- syncd: commit {REVISION_AT_START}")
    lines.append(f"- Date: {datetime.now(UTC).strftime('%Y-%m-%d')}")
    return lines


def add_eu_account(context: JobContext, refresh_token: str) -> AccountRecord:
    """Add the EU account with the datasets that `syncd account add` requests by default."""
    with context.engine.begin() as connection:
        return accounts.save_account(
            connection,
            context.vault,
            name="bench-eu",
            region="eu",
            marketplace_ids=EU_MARKETPLACES,
            included_data=DEFAULT_INCLUDED_DATA,
            refresh_token=SecretStr(refresh_token),
            now=utc_now(),
        )


def run_once(context: JobContext, account: AccountRecord) -> runs.RunSummary:
    """Run the orders job once under the account's lease, as `syncd once orders` does.

    Stops the benchmark when the lease is taken or the run fails.
    """
    keeper = LeaseKeeper(context, account)
    if not keeper.acquire():
        raise SystemExit(f"the lease of account {account.name} is held by another process")
    with keeper:
        summary = run_orders(context, account)
    if summary.result != runs.SUCCEEDED:
        raise SystemExit(f"the orders run failed: {summary.error}")
    return summary
