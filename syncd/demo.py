"""``syncd demo``: the orders job on the embedded defaults, with nothing to configure.

The demo starts the local sandbox in this process on free loopback ports, creates an SQLite
database in the current folder (``syncd-demo.sqlite3``, made anew on every run) and migrates
it. It adds three demo sellers: NA with US, EU with DE, FR and IT, FE with JP. Then it runs
the orders job, which backfills 30 days, and lets the sandbox create and change orders. It
runs the job again, which reads only what changed. Then the warehouse ships a few
unshipped orders of each seller: their tracking numbers, with carriers named as Chinese
warehouses name them, go through the shipment intake and the shipments job to Amazon's
confirmShipment. Then it creates the example ERP tables of ``syncd bridge example`` in the
same database, writes a mapping file for the demo sellers next to it
(``syncd-demo-mapping.toml``) and runs one bridge pass, which writes the orders into the
ERP's order and order line tables. Last it prints the stored orders per marketplace and
status, the shipments, the API calls used and the time taken.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

from pydantic import SecretStr
from rich import box
from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text

from syncd import config, crypto
from syncd.amazon import marketplaces
from syncd.amazon.client import CallRecord
from syncd.amazon.clock import utc_now
from syncd.bridge import examples
from syncd.bridge.projection import ProjectionSummary
from syncd.cli_base import join_list
from syncd.cli_support import marketplace_label
from syncd.db import accounts, migrate
from syncd.db.accounts import AccountRecord
from syncd.db.models import Order, table_of
from syncd.db.runs import RunSummary
from syncd.i18n import gettext as _
from syncd.i18n import gettext_noop as N_
from syncd.jobs.bridge import Bridge, BridgeSummary
from syncd.jobs.context import JobContext, build_context
from syncd.jobs.orders import run_orders
from syncd.jobs.shipments import ShipmentsSummary, run_shipments
from syncd.sandbox.server import SandboxServer
from syncd.sandbox.state import SandboxConfig
from syncd.shipping.submit import submit_shipment
from syncd.status import OrderCounts, count_orders

DEMO_DATABASE = Path("syncd-demo.sqlite3")
DEMO_ACCOUNTS: tuple[tuple[str, marketplaces.Region, tuple[str, ...]], ...] = (
    ("demo-na", "na", ("ATVPDKIKX0DER",)),
    ("demo-eu", "eu", ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")),
    ("demo-fe", "fe", ("A1VC38T7YXB528",)),
)
DEMO_DATASETS = ("FULFILLMENT", "PROCEEDS", "PROMOTION", "PACKAGES", "BUYER", "RECIPIENT")
# The sandbox's quota speed factor: a minute of Amazon's quota per second, so the demo does
# not wait three minutes for each searchOrders token after the burst.
DEMO_SPEED = 60.0
# Changes the sandbox makes per seller between the two runs. They are dated four minutes
# back, so they already lie inside the second run's window despite the two-minute rule.
DEMO_CHANGES = 15
DEMO_CHANGES_AGO = 240.0  # seconds
# Unshipped merchant orders of each seller that the demo warehouse ships, and the carrier
# names it writes, as Chinese warehouse systems do.
DEMO_SHIPMENTS = 3
DEMO_CARRIERS = ("云途", "燕文", "4PX", "顺丰", "中国邮政")


@dataclass
class DemoResult:
    """Results of the two runs: orders, pages, API calls and time."""

    first: list[RunSummary] = field(default_factory=list)
    second: list[RunSummary] = field(default_factory=list)
    shipments: list[ShipmentsSummary] = field(default_factory=list)
    counts: list[OrderCounts] = field(default_factory=list)
    bridge: BridgeSummary | None = None
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    seconds: float = 0.0


def run_demo(
    console: Console,
    settings: config.Settings | None = None,
    database: Path = DEMO_DATABASE,
    speed: float = DEMO_SPEED,
) -> DemoResult:
    """Run the demo and print what it did.

    Args:
        console: where the output goes.
        settings: the operator's settings. The demo replaces the database, the key, the
            endpoints and credentials, and sends nothing through a proxy, because the sandbox
            runs on this machine.
        database: the SQLite file the demo recreates.
        speed: the sandbox's quota speed factor.
    """
    result = DemoResult()
    started = time.perf_counter()
    for leftover in (database, Path(f"{database}-wal"), Path(f"{database}-shm")):
        leftover.unlink(missing_ok=True)
    url = f"sqlite:///{database}"
    migrate.upgrade(url)
    mapping = _write_mapping(database)
    base = settings if settings is not None else config.load_settings()
    with SandboxServer(SandboxConfig(seed=2026, speed=speed)) as sandbox:
        demo_settings = base.model_copy(update=_demo_settings(sandbox, url, mapping))
        job = build_context(demo_settings)
        job.client.add_listener(lambda record: _count(result, record))
        try:
            console.print(
                _(
                    "Local SP-API sandbox running for this demo only, with quotas {speed:g} "
                    "times faster than Amazon's: {url}"
                ).format(speed=speed, url=sandbox.base_urls["na"])
            )
            console.print(_("Database: {path} (made anew on every demo)").format(path=database))
            demo_accounts = _add_accounts(job)
            console.print(_("First run: every order of the last 30 days."))
            result.first = [_run(console, job, account) for account in demo_accounts]
            for account in demo_accounts:
                sandbox.state.evolve(
                    f"Atzr|{account.name}",
                    DEMO_CHANGES,
                    marketplace_ids=list(account.marketplace_ids),
                    ago=DEMO_CHANGES_AGO,
                )
            console.print(
                _("The sandbox created and changed orders; second run: only what changed.")
            )
            result.second = [_run(console, job, account) for account in demo_accounts]
            console.print(
                _("The warehouse ships {count} unshipped orders of each seller.").format(
                    count=DEMO_SHIPMENTS
                )
            )
            result.shipments = [_ship(console, job, account) for account in demo_accounts]
            result.bridge = _bridge(console, job, mapping)
            with job.engine.begin() as connection:
                result.counts = count_orders(connection)
        finally:
            job.close()
    result.seconds = time.perf_counter() - started
    _print_summary(console, result, database, mapping)
    return result


def _demo_settings(sandbox: SandboxServer, url: str, mapping: Path) -> dict[str, object]:
    env = sandbox.settings_env()
    return {
        "database_url": url,
        # The example ERP tables live in the demo's database, whatever the operator's
        # settings name.
        "erp_database_url": None,
        "mapping_file": mapping,
        "encryption_key": SecretStr(crypto.generate_key()),
        "environment": "sandbox",
        "lwa_token_url": env["SYNCD_LWA_TOKEN_URL"],
        "spapi_endpoint_na": env["SYNCD_SPAPI_ENDPOINT_NA"],
        "spapi_endpoint_eu": env["SYNCD_SPAPI_ENDPOINT_EU"],
        "spapi_endpoint_fe": env["SYNCD_SPAPI_ENDPOINT_FE"],
        "lwa_client_id": env["SYNCD_LWA_CLIENT_ID"],
        "lwa_client_secret": SecretStr(env["SYNCD_LWA_CLIENT_SECRET"]),
        "https_proxy": None,
    }


def _add_accounts(job: JobContext) -> list[AccountRecord]:
    added = []
    with job.engine.begin() as connection:
        for name, region, marketplace_ids in DEMO_ACCOUNTS:
            added.append(
                accounts.save_account(
                    connection,
                    job.vault,
                    name=name,
                    region=region,
                    marketplace_ids=marketplace_ids,
                    included_data=DEMO_DATASETS,
                    refresh_token=SecretStr(f"Atzr|{name}"),
                    now=utc_now(),
                )
            )
    return added


def _run(console: Console, job: JobContext, account: AccountRecord) -> RunSummary:
    summary = run_orders(job, account)
    console.print(
        _("  {account} ({marketplaces}): new {new}, updated {updated}, pages {pages}").format(
            account=account.name,
            marketplaces=join_list(marketplace_label(m) for m in account.marketplace_ids),
            new=summary.orders_new,
            updated=summary.orders_updated,
            pages=summary.pages,
        )
    )
    if summary.error:
        console.print(_("  error: {error}").format(error=summary.error))
    return summary


def _ship(console: Console, job: JobContext, account: AccountRecord) -> ShipmentsSummary:
    """Write shipment requests for a few unshipped orders, then run the shipments job."""
    orders = table_of(Order)
    query = (
        select(orders.c.order_id, orders.c.programs)
        .where(
            orders.c.account_id == account.id,
            orders.c.status == "UNSHIPPED",
            orders.c.fulfilled_by == "MERCHANT",
        )
        .order_by(orders.c.purchase_time)
    )
    with job.engine.begin() as connection:
        rows = connection.execute(query).all()
    # Ship+ orders take no confirmation from the seller; the demo leaves them out.
    chosen = [row.order_id for row in rows if "FBM_SHIP_PLUS" not in (row.programs or "")]
    shipped_at = utc_now() - timedelta(minutes=5)
    for number, order_id in enumerate(chosen[:DEMO_SHIPMENTS]):
        submit_shipment(
            job.engine,
            account=account.name,
            order_id=order_id,
            carrier=DEMO_CARRIERS[(account.id + number) % len(DEMO_CARRIERS)],
            tracking_number=f"DEMO{account.id:02d}{number:08d}CN",
            shipped_at=shipped_at,
            source_system="demo",
            source_key=order_id,
        )
    summary = run_shipments(job, account)
    console.print(
        _("  {account}: shipments confirmed to Amazon {delivered}, rejected {rejected}").format(
            account=account.name, delivered=summary.delivered, rejected=summary.rejected
        )
    )
    if summary.error:
        console.print(_("  error: {error}").format(error=summary.error))
    return summary


def _write_mapping(database: Path) -> Path:
    """Write the example mapping for the demo sellers next to the database.

    Each seller's shop code comes from its name: demo-na is the shop NA01.
    """
    shop_codes = {
        name: f"{name.removeprefix('demo-').upper()}01" for name, _region, _ids in DEMO_ACCOUNTS
    }
    path = database.with_name(f"{database.stem}-mapping.toml")
    path.write_text(examples.example_mapping(shop_codes), encoding="utf-8")
    return path


def _bridge(console: Console, job: JobContext, mapping: Path) -> BridgeSummary:
    """Create the example ERP tables, run one bridge pass and print the rows it wrote."""
    with job.engine.begin() as connection:
        for statement in examples.example_schema("sqlite"):
            connection.execute(text(statement))
    console.print(
        _(
            "The bridge writes the orders into the example ERP tables of 'syncd bridge example' "
            "in the same database, as the mapping {path} says."
        ).format(path=mapping)
    )
    bridge = Bridge(job)
    try:
        summary = bridge.run()
    finally:
        bridge.close()
    # A pass that failed has no projection counts. The lease is always free in the new database.
    if summary.error is not None or summary.projection is None:
        console.print(_("  error: {error}").format(error=summary.error or "-"))
        return summary

    _print_erp_rows(console, job, summary.projection)
    return summary


def _print_erp_rows(console: Console, job: JobContext, projection: ProjectionSummary) -> None:
    orders = table_of(Order)
    with job.engine.begin() as connection:
        erp_orders = connection.execute(text("SELECT COUNT(*) FROM oms_order")).scalar_one()
        erp_lines = connection.execute(text("SELECT COUNT(*) FROM oms_order_item")).scalar_one()
        # 20 is the example mapping's code for UNSHIPPED, so the example order is one to ship.
        example = connection.execute(
            text(
                "SELECT platform_order_no, shop_code, order_status, order_time FROM oms_order "
                "WHERE order_status = 20 ORDER BY order_time DESC LIMIT 1"
            )
        ).first()
        amazon = None
        if example is not None:
            amazon = connection.execute(
                select(orders.c.status, orders.c.purchase_time)
                .where(orders.c.order_id == example.platform_order_no)
                .limit(1)
            ).first()
    console.print(
        _(
            "  oms_order: {orders} orders, oms_order_item: {lines} lines; multi-channel "
            "orders left out: {skipped}, quarantined: {quarantined}"
        ).format(
            orders=erp_orders,
            lines=erp_lines,
            skipped=projection.skipped,
            quarantined=projection.quarantined,
        )
    )
    if example is None or amazon is None:
        return
    console.print(
        _(
            "  For example, order {order_id} of shop {shop}: Amazon's status {status} is the "
            "code {code}, and the purchase time {utc} UTC is {local} in Beijing time."
        ).format(
            order_id=example.platform_order_no,
            shop=example.shop_code,
            status=amazon.status,
            code=example.order_status,
            utc=f"{amazon.purchase_time:%Y-%m-%d %H:%M:%S}",
            local=str(example.order_time)[:19],
        )
    )


def _count(result: DemoResult, record: CallRecord) -> None:
    result.calls[record.operation] += 1
    if record.throttled:
        result.throttled += 1


_STATUS_COLUMNS = ("PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED")
_STATUS_LABELS = (
    N_("Pending"),
    N_("Unshipped"),
    N_("Partial"),
    N_("Shipped"),
    N_("Cancelled"),
)


def _print_summary(console: Console, result: DemoResult, database: Path, mapping: Path) -> None:
    counts = {marketplace_label(entry.marketplace_id): entry for entry in result.counts}
    columns = sorted(counts)
    table = Table(
        "",
        *columns,
        title=_("Orders stored, by marketplace"),
        box=box.SIMPLE_HEAD,
    )

    table.add_row(_("Orders"), *(str(counts[c].total) for c in columns), style="bold")
    for status, label in zip(_STATUS_COLUMNS, _STATUS_LABELS, strict=True):
        table.add_row(_(label), *(str(counts[c].by_status.get(status, 0)) for c in columns))
    table.add_row(
        _("Other"),
        *(
            str(counts[c].total - sum(counts[c].by_status.get(s, 0) for s in _STATUS_COLUMNS))
            for c in columns
        ),
        end_section=True,
    )
    table.add_row("FBA", *(str(counts[c].fulfilled_by_amazon) for c in columns))
    table.add_row("MFN", *(str(counts[c].total - counts[c].fulfilled_by_amazon) for c in columns))
    table.add_row("MCF", *(str(counts[c].multichannel) for c in columns))
    console.print(table)
    console.print(
        _(
            "MCF: multi-channel fulfilment orders (sales channel NON_AMAZON); Amazon ships "
            "them, so they are also counted as FBA."
        )
    )

    calls = join_list(
        _("{operation} {count}").format(operation=operation, count=count)
        for operation, count in sorted(result.calls.items())
    )
    console.print(
        _("API calls: {calls}; throttled (429): {throttled}.").format(
            calls=calls, throttled=result.throttled
        )
    )
    console.print(_("Time taken: {seconds:.1f} s.").format(seconds=result.seconds))
    console.print(
        _(
            "Look inside: SYNCD_DATABASE_URL=sqlite:///{path} SYNCD_MAPPING_FILE={mapping} "
            "syncd status"
        ).format(path=database, mapping=mapping)
    )
