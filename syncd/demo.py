"""``syncd demo``: syncd's client against the local sandbox, with nothing to configure.

The demo starts the sandbox in this process on free loopback ports and signs in three demo
sellers: NA with US, EU with DE, FR and IT, FE with JP. It reads the last 30 days of their
orders through the client the daemon uses, with its quotas, retries and paging. Then it
prints the orders per marketplace and status, the API calls used and the time taken.
"""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import timedelta

from pydantic import SecretStr
from rich import box
from rich.console import Console
from rich.table import Table

from syncd import config, errors
from syncd.amazon import marketplaces
from syncd.amazon.client import CallRecord, SellerAccount, SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.models.orders import FULFILLED_BY_AMAZON, Order
from syncd.amazon.orders import OrdersClient, SearchOrdersQuery
from syncd.cli_base import join_list
from syncd.i18n import gettext as _
from syncd.i18n import gettext_noop as N_
from syncd.sandbox.server import SandboxServer
from syncd.sandbox.state import SandboxConfig

DEMO_ACCOUNTS: tuple[tuple[str, marketplaces.Region, tuple[str, ...]], ...] = (
    ("demo-na", "na", ("ATVPDKIKX0DER",)),
    ("demo-eu", "eu", ("A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4")),
    ("demo-fe", "fe", ("A1VC38T7YXB528",)),
)
DEMO_DAYS = 30
DEMO_DATASETS = ("FULFILLMENT", "PROCEEDS", "PACKAGES")
# The sandbox's quota speed factor: a minute of Amazon's quota per second, so the demo does
# not wait three minutes for each searchOrders token after the burst.
DEMO_SPEED = 60.0


@dataclass
class DemoResult:
    """The orders the demo fetched, and the calls and time they cost."""

    orders: list[Order] = field(default_factory=list)
    calls: Counter[str] = field(default_factory=Counter)
    throttled: int = 0
    seconds: float = 0.0


def run_demo(
    console: Console, settings: config.Settings | None = None, speed: float = DEMO_SPEED
) -> DemoResult:
    """Start the sandbox, fetch the demo sellers' orders and print the summary.

    Args:
        console: where the tables go.
        settings: the operator's settings. The demo replaces the endpoints and credentials
            with the sandbox's, and sends nothing through a proxy because the sandbox runs on
            this machine.
        speed: the sandbox's quota speed factor.
    """
    result = DemoResult()
    started = time.perf_counter()
    base = settings if settings is not None else config.load_settings()
    with SandboxServer(SandboxConfig(seed=2026, speed=speed)) as sandbox:
        demo_settings = base.model_copy(update=_sandbox_settings(sandbox))
        with SpApiClient(demo_settings) as client:
            client.add_listener(lambda record: _count(result, record))
            console.print(
                _(
                    "Local SP-API sandbox running for this demo only, with quotas {speed:g} "
                    "times faster than Amazon's: {url}"
                ).format(speed=speed, url=sandbox.base_urls["na"])
            )
            for name, region, marketplace_ids in DEMO_ACCOUNTS:
                account = SellerAccount(name, region, SecretStr(f"Atzr|{name}"), marketplace_ids)
                fetched = _fetch(client, account)
                result.orders.extend(fetched)
                countries = join_list(_marketplace_label(mid) for mid in marketplace_ids)
                console.print(
                    _("{account}: {count} orders from {marketplaces}").format(
                        account=name, count=len(fetched), marketplaces=countries
                    )
                )
    result.seconds = time.perf_counter() - started
    _print_summary(console, result)
    return result


def _sandbox_settings(sandbox: SandboxServer) -> dict[str, object]:
    env = sandbox.settings_env()
    return {
        "environment": "sandbox",
        "lwa_token_url": env["SYNCD_LWA_TOKEN_URL"],
        "spapi_endpoint_na": env["SYNCD_SPAPI_ENDPOINT_NA"],
        "spapi_endpoint_eu": env["SYNCD_SPAPI_ENDPOINT_EU"],
        "spapi_endpoint_fe": env["SYNCD_SPAPI_ENDPOINT_FE"],
        "lwa_client_id": env["SYNCD_LWA_CLIENT_ID"],
        "lwa_client_secret": SecretStr(env["SYNCD_LWA_CLIENT_SECRET"]),
        "https_proxy": None,
    }


def _count(result: DemoResult, record: CallRecord) -> None:
    result.calls[record.operation] += 1
    if record.throttled:
        result.throttled += 1


def _fetch(client: SpApiClient, account: SellerAccount) -> list[Order]:
    orders = OrdersClient(client, account)
    query = SearchOrdersQuery(
        account.marketplace_ids,
        last_updated_after=utc_now() - timedelta(days=DEMO_DAYS),
        included_data=DEMO_DATASETS,
    )
    return [order for page in orders.search_orders(query) for order in page.orders]


_STATUS_COLUMNS = ("PENDING", "UNSHIPPED", "PARTIALLY_SHIPPED", "SHIPPED", "CANCELLED")
_STATUS_LABELS = (
    N_("Pending"),
    N_("Unshipped"),
    N_("Partial"),
    N_("Shipped"),
    N_("Cancelled"),
)


def _print_summary(console: Console, result: DemoResult) -> None:
    by_marketplace: dict[str, list[Order]] = {}
    for order in result.orders:
        by_marketplace.setdefault(_marketplace_label(order.marketplace_id), []).append(order)
    columns = sorted(by_marketplace)
    table = Table(
        "",
        *columns,
        title=_("Orders of the last {days} days, by marketplace").format(days=DEMO_DAYS),
        box=box.SIMPLE_HEAD,
    )

    table.add_row(_("Orders"), *(str(len(by_marketplace[c])) for c in columns), style="bold")
    statuses = {c: Counter(o.fulfillment_status or "?" for o in by_marketplace[c]) for c in columns}
    for status, label in zip(_STATUS_COLUMNS, _STATUS_LABELS, strict=True):
        table.add_row(_(label), *(str(statuses[c][status]) for c in columns))
    table.add_row(
        _("Other"),
        *(
            str(len(by_marketplace[c]) - sum(statuses[c][s] for s in _STATUS_COLUMNS))
            for c in columns
        ),
        end_section=True,
    )

    fba = {
        c: sum(1 for o in by_marketplace[c] if _fulfilled_by(o) == FULFILLED_BY_AMAZON)
        for c in columns
    }
    table.add_row("FBA", *(str(fba[c]) for c in columns))
    table.add_row("MFN", *(str(len(by_marketplace[c]) - fba[c]) for c in columns))
    table.add_row(
        "MCF", *(str(sum(1 for o in by_marketplace[c] if o.is_multichannel)) for c in columns)
    )
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


def _fulfilled_by(order: Order) -> str | None:
    return None if order.fulfillment is None else order.fulfillment.fulfilled_by


def _marketplace_label(marketplace_id: str | None) -> str:
    if marketplace_id is None:
        return "?"
    try:
        marketplace = marketplaces.get_marketplace(marketplace_id)
    except errors.MarketplaceError:
        return marketplace_id
    return marketplace.country_code
