"""Helpers for orders-job tests: a job context on a migrated database, pointed at a sandbox."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select

from syncd import config
from syncd.amazon.clock import utc_now
from syncd.crypto import generate_key
from syncd.db import accounts
from syncd.db.accounts import AccountRecord
from syncd.db.models import Checkpoint, Order, OrderItem, table_of
from syncd.jobs.context import JobContext, build_context
from syncd.sandbox.server import SandboxServer

DATASETS = ("FULFILLMENT", "PROCEEDS", "PROMOTION", "PACKAGES", "BUYER", "RECIPIENT")
US = "ATVPDKIKX0DER"
DE, FR, IT = "A1PA6795UKMFR9", "A13V1IB3VIYZZH", "APJ6JRA9NG5V4"
JP = "A1VC38T7YXB528"

ORDERS = table_of(Order)
ITEMS = table_of(OrderItem)
CHECKPOINTS = table_of(Checkpoint)


@dataclass
class JobWorld:
    """A sandbox, a migrated database and a job context that connects them."""

    sandbox: SandboxServer
    ctx: JobContext

    def add_account(
        self,
        name: str,
        region: str,
        *marketplace_ids: str,
        refresh_token: str | None = None,
        included_data: tuple[str, ...] = DATASETS,
    ) -> AccountRecord:
        with self.ctx.engine.begin() as connection:
            return accounts.save_account(
                connection,
                self.ctx.vault,
                name=name,
                region=region,  # type: ignore[arg-type]
                marketplace_ids=marketplace_ids,
                included_data=included_data,
                refresh_token=SecretStr(refresh_token or f"Atzr|{name}"),
                now=utc_now(),
            )

    def account(self, name: str) -> AccountRecord:
        with self.ctx.engine.begin() as connection:
            return accounts.get_account(connection, name)

    def stored_orders(self, account: AccountRecord) -> dict[str, Any]:
        with self.ctx.engine.begin() as connection:
            rows = connection.execute(select(ORDERS).where(ORDERS.c.account_id == account.id))
            return {row.order_id: row for row in rows}

    def stored_items(self, order_pk: int) -> list[Any]:
        with self.ctx.engine.begin() as connection:
            query = (
                select(ITEMS).where(ITEMS.c.order_pk == order_pk).order_by(ITEMS.c.order_item_id)
            )
            return list(connection.execute(query))

    def watermark(self, account: AccountRecord) -> datetime | None:
        with self.ctx.engine.begin() as connection:
            return connection.execute(
                select(CHECKPOINTS.c.watermark).where(CHECKPOINTS.c.account_id == account.id)
            ).scalar_one_or_none()

    def amazon_orders(
        self, account: AccountRecord, until: datetime | None = None
    ) -> dict[str, dict[str, Any]]:
        """The sandbox's orders of the account updated up to ``until`` (default: its watermark)."""
        bound = until or self.watermark(account)
        assert bound is not None
        documents = self.sandbox.state.orders(
            f"Atzr|{account.name}", marketplace_ids=list(account.marketplace_ids)
        )
        return {
            doc["orderId"]: doc
            for doc in documents
            if datetime.fromisoformat(doc["lastUpdatedTime"].replace("Z", "+00:00")) <= bound
        }


def raw_of(row: Any) -> dict[str, Any]:
    """The stored raw JSON of an order row."""
    return dict(json.loads(row.raw_json))


@pytest.fixture
def world(
    migrated_database_url: str, sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> Iterator[JobWorld]:
    """A sandbox with fast quotas, a fresh database and a context with short retries."""
    server = sandbox_factory(speed=1000)
    settings = {
        **server.settings_env(),
        "SYNCD_DATABASE_URL": migrated_database_url,
        "SYNCD_ENCRYPTION_KEY": generate_key(),
        "SYNCD_RETRY_BASE_DELAY": "0.01",
        "SYNCD_RETRY_MAX_DELAY": "0.05",
        "SYNCD_HTTP_READ_TIMEOUT": "3",
    }
    for key, value in settings.items():
        monkeypatch.setenv(key, value)
    ctx = build_context(config.load_settings())
    yield JobWorld(server, ctx)
    ctx.close()
