"""Buyer PII never reaches syncd's output or its non-PII columns, through a full run.

The sandbox serves orders with buyer and recipient data. Three orders carry marked values
(names, e-mail, company, address, postal code, phone, tax registration, gift message):
one to ship, one cancelled, and one that fails to parse and is quarantined. Every command
an operator runs, and the daemon at debug level with JSON logs, must print none of them,
nor of the generated PII of the other orders.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import MetaData, func, select, text, update

from syncd import cli
from syncd.db import quarantine
from syncd.db.models import TABLE_PREFIX, Account, Run, table_of
from syncd.db.retention import ORDER_PII_COLUMNS
from tests.erp_samples import (
    DOMESTIC_TABLES,
    backend_of,
    create_tables,
    domestic_ddl,
    domestic_mapping,
    drop_tables,
    write_mapping,
)
from tests.integration.orders_support import DATASETS, ITEMS, ORDERS, US, JobWorld
from tests.integration.shipments_support import new_order, seller_token

# Columns that hold PII by design: encrypted in syncd's tables.
_PII_COLUMNS = {*ORDER_PII_COLUMNS, "gift_message_pii"}
# Generated values shorter than this are too common to search for (states, house numbers).
_MIN_LENGTH = 6
_DAEMON_SECONDS = 30  # at most, waiting for the daemon's first orders run


def _marked_pii(mark: str) -> dict[str, Any]:
    """Buyer data whose every value contains ``mark``, in the shape Amazon sends it."""
    return {
        "buyer": {
            "buyerName": f"Zebedee Quillfeather {mark}",
            "buyerEmail": f"zq.{mark.lower()}@buyer.example",
            "buyerCompanyName": f"Quillfeather Trading {mark}",
            "buyerPurchaseOrderNumber": f"PO-{mark}-7731",
        },
        "recipient": {
            "deliveryAddress": {
                "name": f"Philippa Zanzibar {mark}",
                "addressLine1": f"{mark} Larkspur Crescent 17",
                "city": "Seattle",
                "stateOrRegion": "WA",
                "postalCode": f"98199-{mark[-4:]}",
                "countryCode": "US",
                "phone": f"+1 206-555-{mark[-4:]}",
            }
        },
        "tax": {
            "taxRegistrations": [
                {
                    "taxRegistrationType": "VAT",
                    "taxRegistrationNumber": f"US{mark}99",
                    "legalName": f"Quillfeather Trading {mark}",
                }
            ]
        },
    }


def _values_of(document: dict[str, Any]) -> set[str]:
    """The PII strings of an order document worth searching for."""
    found: set[str] = set()
    buyer = document.get("buyer") or {}
    found.update(str(value) for value in buyer.values())
    address = (document.get("recipient") or {}).get("deliveryAddress") or {}
    for key in ("name", "companyName", "addressLine1", "addressLine2", "addressLine3", "phone"):
        if address.get(key):
            found.add(str(address[key]))
    postal = str(address.get("postalCode") or "")
    if not postal.isdigit():
        # A bare number such as 98101 also occurs as a port or a count; a marked one does not.
        found.add(postal)
    for registration in (document.get("tax") or {}).get("taxRegistrations") or []:
        found.update(str(registration[key]) for key in ("taxRegistrationNumber", "legalName"))
    for item in document.get("orderItems") or []:
        gift = ((item.get("fulfillment") or {}).get("packing") or {}).get("giftOption") or {}
        if gift.get("giftMessage"):
            found.add(str(gift["giftMessage"]))
    return {value for value in found if len(value) >= _MIN_LENGTH}


def _mark_order(
    world: JobWorld, token: str, order: dict[str, Any], mark: str, **changes: Any
) -> dict[str, Any]:
    """Give an order marked PII and a gift message, updated four minutes ago."""
    moment = (world.sandbox.state.now() - timedelta(minutes=4)).strftime("%Y-%m-%dT%H:%M:%SZ")
    items = order["orderItems"]
    items[0].setdefault("fulfillment", {})["packing"] = {
        "giftOption": {"giftMessage": f"Happy birthday Zebedee, love {mark}"}
    }
    body = {**_marked_pii(mark), "orderItems": items, "lastUpdatedTime": moment, **changes}
    return world.sandbox.state.patch_order(token, order["orderId"], changes=body)


@pytest.fixture
def full_run(
    world: JobWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[JobWorld]:
    """A world with the domestic ERP in syncd's database, JSON logs at debug level."""
    url = world.ctx.settings.database_url
    create_tables(url, domestic_ddl(backend_of(url)), DOMESTIC_TABLES)
    mapping = write_mapping(tmp_path, domestic_mapping("acme-na"))
    monkeypatch.setenv("SYNCD_MAPPING_FILE", str(mapping))
    monkeypatch.setenv("SYNCD_LOG_FORMAT", "json")
    monkeypatch.setenv("SYNCD_LOG_LEVEL", "debug")
    # No retention, so the purge and the bridge's ERP purge have work in this run too.
    monkeypatch.setenv("SYNCD_PII_RETENTION_DAYS", "0")
    yield world
    drop_tables(url, DOMESTIC_TABLES)


def _stored_pii(world: JobWorld) -> set[str]:
    """Decrypt the PII syncd stored: the values the sandbox really served."""
    vault = world.ctx.vault
    documents: list[dict[str, Any]] = []
    with world.ctx.engine.begin() as connection:
        for row in connection.execute(select(ORDERS)):
            document: dict[str, Any] = {}
            if row.buyer_pii:
                document["buyer"] = json.loads(vault.decrypt(row.buyer_pii, "buyer"))
            if row.recipient_pii:
                document["recipient"] = json.loads(vault.decrypt(row.recipient_pii, "recipient"))
            if row.tax_registrations_pii:
                registrations = json.loads(vault.decrypt(row.tax_registrations_pii, "tax"))
                document["tax"] = {"taxRegistrations": registrations}
            documents.append(document)
        for item in connection.execute(select(ITEMS.c.gift_message_pii)):
            if item.gift_message_pii:
                message = vault.decrypt(item.gift_message_pii, "gift message")
                documents.append(
                    {
                        "orderItems": [
                            {"fulfillment": {"packing": {"giftOption": {"giftMessage": message}}}}
                        ]
                    }
                )
    found: set[str] = set()
    for document in documents:
        found |= _values_of(document)
    return found


def _non_pii_text(world: JobWorld) -> str:
    """Every value of every syncd table, except the encrypted PII columns."""
    metadata = MetaData()
    metadata.reflect(world.ctx.engine, only=lambda name, _meta: name.startswith(TABLE_PREFIX))
    parts: list[str] = []
    with world.ctx.engine.begin() as connection:
        for table in metadata.sorted_tables:
            columns = [column for column in table.columns if column.name not in _PII_COLUMNS]
            for row in connection.execute(select(*columns)):
                parts.extend(str(value) for value in row if value is not None)
    return "\n".join(parts)


def _run_daemon(world: JobWorld) -> tuple[str, str]:
    """Run ``syncd run`` until its first orders run is recorded, then stop it with SIGTERM."""
    with world.ctx.engine.begin() as connection:
        connection.execute(update(table_of(Account)).values(next_run_at=None))
        runs_before = connection.execute(select(func.count()).select_from(table_of(Run))).scalar()
    process = subprocess.Popen(
        [sys.executable, "-m", "syncd", "run"],
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + _DAEMON_SECONDS
        runs_after = runs_before
        while time.monotonic() < deadline and runs_after == runs_before:
            time.sleep(0.5)
            with world.ctx.engine.begin() as connection:
                runs_after = connection.execute(
                    select(func.count()).select_from(table_of(Run))
                ).scalar()
        time.sleep(1.0)  # the bridge's pass after the orders
    finally:
        process.send_signal(signal.SIGTERM)
        out, err = process.communicate(timeout=60)
    assert process.returncode == 0, err
    return out, err


def _ship_in_wms(world: JobWorld, order_id: str) -> None:
    """Record a shipment in the sample WMS table, in Beijing time as the warehouse writes it."""
    shipped = datetime.now(ZoneInfo("Asia/Shanghai")).replace(tzinfo=None, microsecond=0)
    with world.ctx.engine.begin() as connection:
        connection.execute(
            text(
                "INSERT INTO wms_delivery (platform, shop_code, platform_order_no, "
                "logistics_company, tracking_no, delivery_time, status) VALUES ('AMAZON', "
                "'US01', :id, 'UPS', '1Z999AA10123456784', :at, 2)"
            ),
            {"id": order_id, "at": shipped - timedelta(minutes=5)},
        )


def _leaks(text: str, values: set[str]) -> list[str]:
    return sorted(value for value in values if re.search(re.escape(value), text))


def test_full_run_shows_no_pii(full_run: JobWorld, capsys: pytest.CaptureFixture[str]) -> None:
    world = full_run
    account = world.add_account("acme-na", "na", US, included_data=(*DATASETS, "TAX"))
    token = seller_token(account)
    to_ship = _mark_order(world, token, new_order(world, account, (1, 1)), "SHIP1234")
    cancelled = _mark_order(
        world,
        token,
        new_order(world, account, (1,)),
        "CANC5678",
        fulfillment={"fulfillmentStatus": "CANCELLED"},
    )
    broken = new_order(world, account, (1,))
    broken_items = [{**broken["orderItems"][0], "quantityOrdered": "lots"}]
    broken = _mark_order(world, token, {**broken, "orderItems": broken_items}, "QUAR9012")
    marked = _values_of(to_ship) | _values_of(cancelled) | _values_of(broken)

    outputs: list[str] = []

    def run(*args: str) -> int:
        code = cli.run(list(args))
        captured = capsys.readouterr()
        outputs.extend([captured.out, captured.err])
        return code

    assert run("once", "orders") == 0
    # The sandbox served the marked values: syncd stored them, encrypted.
    served = _stored_pii(world)
    assert _values_of(to_ship) <= served
    assert _values_of(cancelled) <= served
    assert len(served - marked) > 20  # generated buyers of the other orders
    with world.ctx.engine.begin() as connection:
        entries = quarantine.list_entries(connection)
    assert [entry.record_id for entry in entries] == [broken["orderId"]]
    _ship_in_wms(world, to_ship["orderId"])
    assert run("once", "bridge") == 0
    assert run("once", "shipments") == 0
    assert run("once", "bridge") == 0
    assert run("status") == 0
    assert run("quarantine", "list") == 0
    assert run("quarantine", "retry", "--all") == 1  # still broken at Amazon
    daemon_out, daemon_err = _run_daemon(world)
    assert run("once", "pii-purge") == 0
    assert run("status") == 0

    printed = "\n".join([*outputs, daemon_out, daemon_err])
    assert '"event": "order_quarantined"' in printed
    assert '"event": "orders_page_stored"' in daemon_err
    assert '"event": "pii_purged"' in daemon_err
    assert '"event": "bridge_pass_finished"' in daemon_err
    assert "Buyer data cleared" in printed
    assert _leaks(printed, served | marked) == []
    assert _leaks(_non_pii_text(world), served | marked) == []
