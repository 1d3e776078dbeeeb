"""Client overhead: requests per second and CPU time per request against the local sandbox.

The sandbox runs in its own process with quotas off, so the figures show what the client
itself costs (auth, pacing, classification, JSON and model parsing), not Amazon's limits.

Usage: python bench/client_overhead.py [--requests N] [--threads T] [--no-write]

Writes its section of bench/RESULTS.md unless --no-write is given.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

from pydantic import SecretStr

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.results import EU_MARKETPLACES, section_header, write_section  # noqa: E402
from syncd import config, logs  # noqa: E402
from syncd.amazon.client import SellerAccount, SpApiClient  # noqa: E402
from syncd.amazon.orders import OrdersClient, SearchOrdersQuery  # noqa: E402
from syncd.sandbox.external import ExternalSandbox  # noqa: E402

SECTION = "## Client overhead (bench/client_overhead.py)"
REFRESH_TOKEN = "Atzr|bench-seller"


@dataclass
class Measurement:
    """One measured workload."""

    name: str
    requests: int
    wall_seconds: float
    cpu_seconds: float

    @property
    def per_second(self) -> float:
        return self.requests / self.wall_seconds

    @property
    def cpu_ms_per_request(self) -> float:
        return self.cpu_seconds / self.requests * 1000


def measure(name: str, requests: int, work: Callable[[], None], threads: int = 1) -> Measurement:
    """Run ``work`` ``requests`` times on ``threads`` threads; time wall clock and CPU."""
    per_thread = requests // threads

    def loop() -> None:
        for _ in range(per_thread):
            work()

    wall, cpu = time.perf_counter(), time.process_time()
    workers = [threading.Thread(target=loop) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return Measurement(
        name, per_thread * threads, time.perf_counter() - wall, time.process_time() - cpu
    )


def run(requests: int, threads: int) -> list[Measurement]:
    """Measure getOrder (one order) and searchOrders pages (100 orders each, typed)."""
    sandbox = ExternalSandbox("--no-quotas", "--orders-per-marketplace", "300", "--seed", "11")
    with sandbox:
        os.environ.update(sandbox.settings)
        client = SpApiClient(config.load_settings())
        account = SellerAccount("bench-eu", "eu", SecretStr(REFRESH_TOKEN), EU_MARKETPLACES)
        orders = OrdersClient(client, account)
        query = SearchOrdersQuery(
            EU_MARKETPLACES,
            last_updated_after=datetime.now(UTC) - timedelta(days=30),
            included_data=("FULFILLMENT", "PROCEEDS", "BUYER", "RECIPIENT", "PACKAGES"),
        )
        order_id = next(orders.search_orders(query)).orders[0].order_id
        for _ in range(50):  # warm up connections, token and learned rates
            orders.get_order(order_id)

        pages: list[int] = []

        def search_once() -> None:
            pages.append(sum(1 for _page in orders.search_orders(query)))

        results = [
            measure(
                "getOrder, 1 thread", requests, lambda: orders.get_order(order_id, ["FULFILLMENT"])
            ),
            measure(
                f"getOrder, {threads} threads",
                requests,
                lambda: orders.get_order(order_id, ["FULFILLMENT"]),
                threads=threads,
            ),
        ]
        searches = max(1, requests // 100)
        search = measure("searchOrders search", searches, search_once)
        page_count = sum(pages)
        results.append(
            Measurement(
                "searchOrders page of 100 orders, typed",
                page_count,
                search.wall_seconds,
                search.cpu_seconds,
            )
        )
        client.close()
        return results


def render(results: list[Measurement], command: str) -> str:
    """Return the Markdown section of RESULTS.md."""
    lines = [
        *section_header(SECTION, command, with_revision=False),
        (
            "- Sandbox: separate process, quotas off, seed 11, "
            "300 orders per marketplace (DE, FR, IT)."
        ),
        "- CPU time is the client process's only (user + system), divided by requests.",
        "",
        "| workload | requests | requests/s | client CPU ms/request |",
        "|---|---:|---:|---:|",
    ]
    lines += [
        f"| {r.name} | {r.requests} | {r.per_second:.0f} | {r.cpu_ms_per_request:.2f} |"
        for r in results
    ]
    return "\n".join(lines) + "\n"


def main() -> int:
    """Run the benchmark and print (and record) its figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-write", action="store_true")
    args = parser.parse_args()
    logs.configure_logging("json", "warning")

    results = run(args.requests, args.threads)
    command = "python bench/client_overhead.py " + " ".join(sys.argv[1:])
    section = render(results, command.strip())
    print(section)
    if not args.no_write:
        write_section(SECTION, section)
    return 0


if __name__ == "__main__":
    sys.exit(main())
