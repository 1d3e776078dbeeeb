"""Local cost of the orders job: orders per second into each database, quotas off.

The sandbox runs in its own process with quotas off and generates the same orders for every
database. For each database the orders job backfills one EU account (DE, FR, IT) into freshly
migrated tables, in this process, and is timed from start to end: searchOrders over HTTP,
parsing, row building and the page-by-page commits. Then the rows it wrote are read back and
inserted with plain SQLAlchemy executemany, in one transaction, into a fresh copy of the
orders and items tables (same columns, keys and indexes) to give the ratio.

Usage: python bench/orders_throughput.py [--orders-per-marketplace N] [--no-write]

PostgreSQL and MariaDB are named by SYNCD_TEST_POSTGRESQL_URL and SYNCD_TEST_MARIADB_URL; a
database whose variable is not set is skipped. Only tables whose names start with syncd_ are
created and dropped there. Writes its section of bench/RESULTS.md unless --no-write is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from sqlalchemy import (
    Column,
    Engine,
    ForeignKey,
    Index,
    MetaData,
    Table,
    UniqueConstraint,
    func,
    insert,
    select,
)

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import (  # noqa: E402
    EU_MARKETPLACES,
    add_eu_account,
    database_urls,
    run_once,
    section_header,
    url_variable,
    write_section,
)
from syncd import config, logs  # noqa: E402
from syncd.crypto import generate_key  # noqa: E402
from syncd.db import migrate  # noqa: E402
from syncd.db.models import Account, Order, OrderItem, table_of  # noqa: E402
from syncd.jobs.context import build_context  # noqa: E402
from syncd.sandbox.external import ExternalSandbox  # noqa: E402
from tests.conftest import reset_database  # noqa: E402

HEADING = "## Orders job throughput (bench/orders_throughput.py)"
REFRESH_TOKEN = "Atzr|bench-throughput-seller"
SEED = 41
COPY_ORDERS = "syncd_bench_orders"
COPY_ITEMS = "syncd_bench_order_items"


@dataclass
class Measurement:
    """One database's figures."""

    database: str
    orders: int
    items: int
    pages: int
    job_seconds: float
    job_cpu_seconds: float
    bulk_seconds: float

    @property
    def job_rate(self) -> float:
        return self.orders / self.job_seconds

    @property
    def bulk_rate(self) -> float:
        return self.orders / self.bulk_seconds

    @property
    def ratio(self) -> float:
        """How many times the bulk insert's time the job takes."""
        return self.job_seconds / self.bulk_seconds


def copy_table(source: Table, metadata: MetaData, name: str, renamed: dict[str, str]) -> Table:
    """Copy ``source`` as table ``name`` with its columns, keys and indexes.

    A foreign key to a table named in ``renamed`` points at the new name instead.
    """
    columns: list[Column[Any]] = []
    for column in source.columns:
        references = [
            ForeignKey(
                f"{renamed.get(key.column.table.name, key.column.table.name)}.{key.column.name}",
                ondelete=key.ondelete,
            )
            for key in column.foreign_keys
        ]
        columns.append(
            Column(
                column.name,
                column.type,
                *references,
                primary_key=column.primary_key,
                nullable=column.nullable,
                autoincrement=column.autoincrement,
            )
        )
    uniques = [
        UniqueConstraint(*constraint.columns.keys(), name=f"uq_{name}_{number}")
        for number, constraint in enumerate(source.constraints)
        if isinstance(constraint, UniqueConstraint)
    ]
    indexes = [
        Index(f"ix_{name}_{number}", *(column.name for column in index.columns))
        for number, index in enumerate(sorted(source.indexes, key=lambda index: str(index.name)))
    ]
    return Table(name, metadata, *columns, *uniques, *indexes, **source.kwargs)


def bulk_insert_seconds(engine: Engine, account_id: int) -> float:
    """Insert the account's stored orders and items into fresh copies; return the seconds."""
    orders_table, items_table = table_of(Order), table_of(OrderItem)
    with engine.begin() as connection:
        order_rows = [
            dict(row._mapping)
            for row in connection.execute(
                select(orders_table).where(orders_table.c.account_id == account_id)
            )
        ]
        item_rows = [
            dict(row._mapping)
            for row in connection.execute(
                select(items_table)
                .join(orders_table, items_table.c.order_pk == orders_table.c.id)
                .where(orders_table.c.account_id == account_id)
            )
        ]

    metadata = MetaData()
    table_of(Account).to_metadata(metadata)  # the copies' account_id still points here
    renamed = {orders_table.name: COPY_ORDERS}
    copy_orders = copy_table(orders_table, metadata, COPY_ORDERS, renamed)
    copy_items = copy_table(items_table, metadata, COPY_ITEMS, renamed)
    copies = [copy_orders, copy_items]
    metadata.drop_all(engine, tables=copies[::-1])
    metadata.create_all(engine, tables=copies)
    try:
        started = time.perf_counter()
        with engine.begin() as connection:
            connection.execute(insert(copy_orders), order_rows)
            connection.execute(insert(copy_items), item_rows)
        return time.perf_counter() - started
    finally:
        metadata.drop_all(engine, tables=copies[::-1])


def measure(name: str, url: str, sandbox: ExternalSandbox) -> Measurement:
    """Backfill the account into a fresh database at ``url``; time it and the bulk insert."""
    reset_database(url)
    migrate.upgrade(url)

    for variable in [variable for variable in os.environ if variable.startswith("SYNCD_")]:
        del os.environ[variable]
    os.environ.update(sandbox.settings)
    os.environ.update({"SYNCD_DATABASE_URL": url, "SYNCD_ENCRYPTION_KEY": generate_key()})
    context = build_context(config.load_settings())

    try:
        account = add_eu_account(context, REFRESH_TOKEN)
        wall, cpu = time.perf_counter(), time.process_time()
        summary = run_once(context, account)
        job_seconds, job_cpu = time.perf_counter() - wall, time.process_time() - cpu

        with context.engine.begin() as connection:
            items = connection.execute(
                select(func.count()).select_from(table_of(OrderItem))
            ).scalar_one()
        bulk = bulk_insert_seconds(context.engine, account.id)
    finally:
        context.close()

    if not url.startswith("sqlite"):
        reset_database(url)  # leave the shared server's test database empty again
    result = Measurement(name, summary.orders_new, items, summary.pages, job_seconds, job_cpu, bulk)
    print(
        f"{name}: {result.orders} orders in {job_seconds:.1f} s "
        f"({result.job_rate:.0f}/s), bulk insert {bulk:.2f} s",
        flush=True,
    )
    return result


def warm_up(sandbox: ExternalSandbox) -> None:
    """Have the sandbox generate the seller's orders before any timing starts."""
    base = sandbox.settings["SYNCD_SPAPI_ENDPOINT_EU"]
    response = httpx.get(
        f"{base}/_sandbox/orders",
        params={"refresh_token": REFRESH_TOKEN, "marketplace_ids": ",".join(EU_MARKETPLACES)},
        timeout=300,
    )
    response.raise_for_status()


def render(
    results: list[Measurement], skipped: list[str], per_marketplace: int, command: str
) -> str:
    """Return the Markdown section of RESULTS.md."""
    lines = [
        *section_header(HEADING, command),
        (
            f"- Sandbox: separate process, quotas off, seed {SEED}, {per_marketplace:,} orders "
            "per marketplace (DE, FR, IT) over 30 days. The database servers run on the same "
            "machine."
        ),
        (
            "- Job: the first run of one EU account with the default includedData and settings "
            "(30-day backfill in 7-day windows, pages of 100 orders), in the measuring process; "
            "wall time from start to end, CPU time of this process only."
        ),
        (
            "- Bulk insert: the rows the job wrote, read back and inserted with SQLAlchemy "
            "executemany in one transaction into fresh copies of the orders and items tables "
            "(same columns, keys and indexes). It does no HTTP, JSON parsing or row building."
        ),
        "",
        (
            "| database | orders | items | pages | job wall time | job orders/s "
            "| job CPU ms/order | bulk insert | bulk orders/s | job time ÷ bulk time |"
        ),
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    lines += [
        f"| {r.database} | {r.orders} | {r.items} | {r.pages} | {r.job_seconds:.1f} s "
        f"| {r.job_rate:.0f} | {r.job_cpu_seconds / r.orders * 1000:.2f} "
        f"| {r.bulk_seconds:.2f} s | {r.bulk_rate:.0f} | {r.ratio:.1f} |"
        for r in results
    ]
    if skipped:
        lines.append("")
        lines += [f"- {note}" for note in skipped]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--orders-per-marketplace", type=int, default=4000)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logs.configure_logging("json", "warning")

    results: list[Measurement] = []
    skipped: list[str] = []
    sandbox = ExternalSandbox(
        "--no-quotas",
        "--orders-per-marketplace",
        str(args.orders_per_marketplace),
        "--seed",
        str(SEED),
    )
    with tempfile.TemporaryDirectory(prefix="syncd-throughput-") as temporary, sandbox:
        warm_up(sandbox)
        urls = database_urls(f"sqlite:///{Path(temporary) / 'throughput.sqlite3'}")
        for name, url in urls.items():
            if url is None:
                skipped.append(f"{name} skipped: set {url_variable(name)} to measure it.")
                print(skipped[-1], flush=True)
                continue
            results.append(measure(name, url, sandbox))

    command = "python bench/orders_throughput.py " + " ".join(sys.argv[1:])
    section = render(results, skipped, args.orders_per_marketplace, command.strip())
    print(section)
    if not args.no_write:
        write_section(HEADING, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
