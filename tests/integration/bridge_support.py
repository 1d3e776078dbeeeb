"""Helpers for bridge tests: an ERP database beside syncd's, sample schemas, one bridge pass."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import SQLAlchemyError

from syncd import config
from syncd.db.engine import create_db_engine
from syncd.jobs.bridge import Bridge, BridgeSummary
from syncd.jobs.context import JobContext, build_context
from tests.erp_samples import backend_of
from tests.integration.orders_support import JobWorld


def separate_database_url(url: str, tmp_path: Path) -> str:
    """A second database on the same server as ``url`` (or a second SQLite file)."""
    parsed = make_url(url)
    backend = backend_of(url)
    if backend == "sqlite":
        return f"sqlite:///{tmp_path / 'erp.sqlite3'}"
    name = f"{parsed.database}_erp"
    admin = create_db_engine(url, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as connection:
            if backend == "mariadb":
                connection.execute(text(f"CREATE DATABASE IF NOT EXISTS `{name}`"))
            else:
                exists = connection.execute(
                    text("SELECT 1 FROM pg_database WHERE datname = :name"), {"name": name}
                ).first()
                if exists is None:
                    connection.execute(text(f'CREATE DATABASE "{name}"'))
    except SQLAlchemyError as exc:
        pytest.skip(f"{backend}: cannot create the ERP database {name}: {exc}")
    finally:
        admin.dispose()
    return parsed.set(database=name).render_as_string(hide_password=False)


@dataclass
class BridgeWorld:
    """A job world whose settings name a mapping file and an ERP database."""

    world: JobWorld
    erp_url: str
    mapping_path: Path
    ctx: JobContext
    bridge: Bridge

    def run(self) -> BridgeSummary:
        """Run one bridge pass and fail the test on an error."""
        summary = self.bridge.run()
        assert summary.error is None, summary.error
        return summary

    def erp(self) -> Engine:
        """The ERP database's engine."""
        return self.bridge.erp_engine

    def rows(self, sql: str, **params: Any) -> list[Any]:
        """Rows of a query on the ERP database."""
        with self.erp().connect() as connection:
            return list(connection.execute(text(sql), params))

    def execute(self, sql: str, **params: Any) -> None:
        """Run a statement on the ERP database and commit it."""
        with self.erp().begin() as connection:
            connection.execute(text(sql), params)


def bridge_world(
    world: JobWorld,
    erp_url: str,
    mapping_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    **settings: str,
) -> Iterator[BridgeWorld]:
    """Build a context whose settings add the mapping and the ERP database to ``world``'s."""
    monkeypatch.setenv("SYNCD_MAPPING_FILE", str(mapping_path))
    if erp_url != world.ctx.settings.database_url:
        monkeypatch.setenv("SYNCD_ERP_DATABASE_URL", erp_url)
    for name, value in settings.items():
        monkeypatch.setenv(f"SYNCD_{name.upper()}", value)
    ctx = build_context(config.load_settings())
    ctx.vault = world.ctx.vault
    bridge = Bridge(ctx)
    try:
        yield BridgeWorld(world, erp_url, mapping_path, ctx, bridge)
    finally:
        bridge.close()
        ctx.close()


def fetch_orders(world: JobWorld, account: Any, *order_ids: str) -> None:
    """Store orders as getOrder returns them now (searchOrders lags two minutes behind)."""
    from syncd.amazon.orders import OrdersClient  # noqa: PLC0415
    from syncd.db import accounts  # noqa: PLC0415
    from syncd.db.order_rows import build_rows  # noqa: PLC0415
    from syncd.db.orders import store_orders  # noqa: PLC0415
    from syncd.jobs.shipments import included_data  # noqa: PLC0415

    with world.ctx.engine.begin() as connection:
        seller = accounts.seller_account(connection, world.ctx.vault, account)
    client = OrdersClient(world.ctx.client, seller)
    for order_id in order_ids:
        order, raw = client.get_order_with_raw(order_id, included_data(account))
        with world.ctx.engine.begin() as connection:
            store_orders(
                connection, account.id, [build_rows(order, raw, world.ctx.vault)], world.ctx.now()
            )
