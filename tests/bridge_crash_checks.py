"""What the bridge crash harness reads and checks in syncd's database and in the ERP's.

The ERP side is the domestic sample (tests/erp_samples.py) without the unique indexes on the
natural keys of orders and order lines. Both databases are read between rounds, while no
bridge process runs, so the two reads see one state even without a shared transaction.
"""

from __future__ import annotations

import hashlib
import json
import re
import tomllib
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine, func, inspect, select, text

from syncd.bridge.feeder import describe_request
from syncd.db import bridge_state, intake, outbox, quarantine
from syncd.db.models import (
    ErpOrder,
    Order,
    OrderItem,
    OutboxEntry,
    ShipmentRequest,
    WmsWriteBack,
    table_of,
)
from tests.erp_samples import domestic_ddl, domestic_mapping
from tests.shipments_crash_harness import ACCOUNT

SHOP_CODE = "US01"
MAPPING = tomllib.loads(domestic_mapping(ACCOUNT, shop_code=SHOP_CODE))
SOURCE = str(MAPPING["shipments"]["source"])
STATUS_CODES: dict[str, int] = MAPPING["maps"]["order_status"]["values"]
WRITE_BACK_CODES: dict[str, int] = MAPPING["shipments"]["write_back"]["values"]
PICK_STATUS_ON_INSERT = int(MAPPING["orders"]["columns"]["pick_status"]["value"])
MESSAGE_LENGTH = 500  # wms_delivery.amz_upload_msg is VARCHAR(500)
SHIPPED, NOT_SHIPPED = 2, 1  # wms_delivery.status; the mapping reads status 2 only
CHANGES_COLUMN = str(MAPPING["shipments"]["changes"])  # the WMS column the feeder follows
# The unique index of each natural key in the domestic sample: (table, name, columns, plain
# index that replaces it).
_UNIQUE_KEYS = (
    ("oms_order", "uk_platform_order", "platform, shop_code, platform_order_no", "ix_order"),
    ("oms_order_item", "uk_order_item", "order_id, platform_item_id", "ix_order_item"),
)

_ORDERS = table_of(Order)
_ITEMS = table_of(OrderItem)
_ERP_ORDERS = table_of(ErpOrder)
_REQUESTS = table_of(ShipmentRequest)
_OUTBOX = table_of(OutboxEntry)
_WRITE_BACKS = table_of(WmsWriteBack)


@dataclass
class WmsPlan:
    """The shipped WMS row the harness wrote for one order, and what must become of it."""

    order_id: str
    carrier: str
    tracking_number: str  # empty: the intake rejects the request


def domestic_ddl_without_unique_keys(backend: str) -> list[str]:
    """Return the domestic schema with plain indexes on the order and line keys, not unique ones.

    Only syncd's lookup by natural key then keeps an order or a line from being inserted twice.

    Raises:
        ValueError: the sample schema no longer declares a unique key this function removes.
    """
    statements = domestic_ddl(backend)
    indexes = []
    for table, unique, columns, plain in _UNIQUE_KEYS:
        index = next(i for i, s in enumerate(statements) if f"CREATE TABLE {table} (" in s)
        # Match the clause in any layout, because the sample's indentation is not its schema.
        names = r"\s*,\s*".join(re.escape(name.strip()) for name in columns.split(","))
        if backend == "mariadb":
            pattern, new = (
                rf"UNIQUE\s+KEY\s+{unique}\s*\(\s*{names}\s*\)",
                f"KEY {plain} ({columns})",
            )
        else:
            pattern, new = rf",\s*UNIQUE\s*\(\s*{names}\s*\)", ""
            indexes.append(f"CREATE INDEX {plain} ON {table} ({columns})")
        statements[index], found = re.subn(pattern, new, statements[index])
        if found != 1:
            raise ValueError(f"the domestic sample no longer declares a unique key on {columns}")
    return statements + indexes


@dataclass
class Comparison:
    """The differences found at the end, and the counts compared."""

    differences: list[str] = field(default_factory=list)
    orders: int = 0
    lines: int = 0
    erp_orders: int = 0
    erp_lines: int = 0
    wms_rows: int = 0  # shipped rows
    requests: int = 0
    confirmed: int = 0
    rejected: int = 0


class BridgeDatabases:
    """syncd's database and the ERP's, read as the harness needs them between rounds."""

    def __init__(self, engine: Engine, erp: Engine, account_id: int) -> None:
        self.engine = engine
        self.erp = erp
        self.account_id = account_id

    # -- syncd's side --------------------------------------------------------------------------

    def stored_order_ids(self) -> set[str]:
        """Return the Amazon order ids stored for the account."""
        with self.engine.begin() as connection:
            return set(
                connection.execute(
                    select(_ORDERS.c.order_id).where(_ORDERS.c.account_id == self.account_id)
                ).scalars()
            )

    def recorded_order_pks(self) -> set[int]:
        """Return the orders (primary keys) that syncd_erp_orders has a record of."""
        with self.engine.begin() as connection:
            return set(connection.execute(select(_ERP_ORDERS.c.order_pk)).scalars())

    def pending_orders(self) -> list[Any]:
        """Return the orders the next pass projects, in its order.

        The pass itself reads only orders stored since an hour before its previous start,
        which covers every order of a harness run.
        """
        with self.engine.begin() as connection:
            return bridge_state.orders_to_project(
                connection, None, 1_000_000, account_ids=[self.account_id]
            )

    def requests(self) -> dict[str, list[Any]]:
        """Return the WMS source's requests by source key, with their outbox rows' state and
        syncd's record of their write-back."""
        query = (
            select(
                _REQUESTS.c.id,
                _REQUESTS.c.source_key,
                _REQUESTS.c.amazon_order_id,
                _REQUESTS.c.tracking_number,
                _REQUESTS.c.status,
                _REQUESTS.c.reject_code,
                _REQUESTS.c.reject_reason,
                _OUTBOX.c.state.label("outbox_state"),
                _OUTBOX.c.attempts,
                _OUTBOX.c.last_error_code,
                _OUTBOX.c.last_error_message,
                _WRITE_BACKS.c.state.label("written_state"),
                _WRITE_BACKS.c.message_hash,
            )
            .outerjoin(_OUTBOX, _OUTBOX.c.id == _REQUESTS.c.outbox_id)
            .outerjoin(_WRITE_BACKS, _WRITE_BACKS.c.request_id == _REQUESTS.c.id)
            .where(_REQUESTS.c.source_system == SOURCE)
        )
        found: dict[str, list[Any]] = {}
        with self.engine.begin() as connection:
            for row in connection.execute(query):
                found.setdefault(row.source_key, []).append(row)
        return found

    def stale_write_backs(self) -> int:
        """Count requests whose state or message differs from the one syncd recorded writing."""
        return sum(
            1
            for rows in self.requests().values()
            for row in rows
            if (row.written_state, row.message_hash) != _state_and_hash(row)
        )

    # -- the ERP's side ------------------------------------------------------------------------

    def erp_order_rows(self) -> list[Any]:
        """Return every row of the ERP's order table."""
        with self.erp.connect() as connection:
            return list(connection.execute(text("SELECT * FROM oms_order ORDER BY id")))

    def erp_line_rows(self) -> list[Any]:
        """Return every row of the ERP's order line table."""
        with self.erp.connect() as connection:
            return list(connection.execute(text("SELECT * FROM oms_order_item ORDER BY id")))

    def wms_rows(self) -> list[Any]:
        """Return every row of the WMS table, shipped or not."""
        with self.erp.connect() as connection:
            return list(connection.execute(text("SELECT * FROM wms_delivery ORDER BY id")))

    def unique_key_problems(self) -> list[str]:
        """Name each ERP order or line key that still has a unique index or constraint."""
        inspector = inspect(self.erp)
        problems = []
        for table, _unique, columns, _plain in _UNIQUE_KEYS:
            key = [name.strip() for name in columns.split(",")]
            unique = [
                *(c["column_names"] for c in inspector.get_unique_constraints(table)),
                *(i["column_names"] for i in inspector.get_indexes(table) if i["unique"]),
            ]
            if key in unique:
                problems.append(f"the ERP table {table} still has a unique key on {columns}")
        return problems

    # -- across both ---------------------------------------------------------------------------

    def unrequested_rows(self) -> list[int]:
        """Return the ids of shipped WMS rows that have no request yet."""
        requested = self.requests()
        return [
            row.id
            for row in self.wms_rows()
            if row.status == SHIPPED and str(row.id) not in requested
        ]

    def inserted_unrecorded(self) -> set[str]:
        """Return the order ids of ERP order rows whose order syncd has no record of."""
        with self.engine.begin() as connection:
            recorded = set(
                connection.execute(
                    select(_ORDERS.c.order_id).join(
                        _ERP_ORDERS, _ERP_ORDERS.c.order_pk == _ORDERS.c.id
                    )
                ).scalars()
            )
        return {row.platform_order_no for row in self.erp_order_rows()} - recorded

    def write_backs_unrecorded(self) -> set[tuple[int, int]]:
        """Return (WMS row id, written status) of the rows whose status is not the one syncd
        recorded writing."""
        recorded = {
            key: WRITE_BACK_CODES.get(rows[0].written_state or "", 0)
            for key, rows in self.requests().items()
        }
        return {
            (row.id, row.amz_upload_status)
            for row in self.wms_rows()
            if str(row.id) in recorded and row.amz_upload_status != recorded[str(row.id)]
        }

    def duplicates(self) -> list[str]:
        """Name each ERP order and order line that exists more than once under its key."""
        orders = Counter(
            (row.platform, row.shop_code, row.platform_order_no) for row in self.erp_order_rows()
        )
        lines = Counter((row.order_id, row.platform_item_id) for row in self.erp_line_rows())
        return [
            *(
                f"order {order_id} of shop {shop} has {count} ERP order rows"
                for (_platform, shop, order_id), count in orders.items()
                if count > 1
            ),
            *(
                f"item {item_id} of ERP order row {order_row} has {count} line rows"
                for (order_row, item_id), count in lines.items()
                if count > 1
            ),
        ]

    def open_work(self) -> str:
        """Describe what a pass or the shipments job still has to do, or return "" when
        nothing is left."""
        with self.engine.begin() as connection:
            new = connection.execute(
                select(func.count()).select_from(_REQUESTS).where(_REQUESTS.c.status == intake.NEW)
            ).scalar_one()
            sending = connection.execute(
                select(func.count())
                .select_from(_OUTBOX)
                .where(_OUTBOX.c.state.in_((outbox.PENDING, outbox.SENDING)))
            ).scalar_one()
        counts = {
            "orders waiting for the ERP": len(self.pending_orders()),
            "shipped WMS rows without a request": len(self.unrequested_rows()),
            "new requests": new,
            "outbox rows pending or sending": sending,
            "stale write-backs": self.stale_write_backs(),
        }
        return ", ".join(f"{count} {what}" for what, count in counts.items() if count)


def compare(
    databases: BridgeDatabases,
    wms_plans: Mapping[str, WmsPlan],
    erp_owned: Mapping[str, tuple[int, str]],
) -> Comparison:
    """Compare both databases with each other and with what the harness wrote.

    ``wms_plans`` maps an Amazon order id to its shipped WMS row, and ``erp_owned`` to the
    pick status and remark that the ERP's users set.
    """
    comparison = Comparison()
    _compare_orders(databases, erp_owned, comparison)
    _compare_wms_rows(databases, wms_plans, comparison)
    with databases.engine.begin() as connection:
        entries = quarantine.list_entries(connection)
    comparison.differences += [
        f"quarantine entry {entry.id} ({entry.stream}, {entry.record_id}) is open: {entry.reason}"
        for entry in entries
    ]
    return comparison


def _compare_orders(
    databases: BridgeDatabases, erp_owned: Mapping[str, tuple[int, str]], comparison: Comparison
) -> None:
    """Every stored order: one ERP row with its status, one line per item, syncd's record."""
    with databases.engine.begin() as connection:
        orders = {
            row.order_id: row
            for row in connection.execute(
                select(_ORDERS).where(_ORDERS.c.account_id == databases.account_id)
            )
        }
        items: dict[int, dict[str, int]] = {}
        for item in connection.execute(select(_ITEMS)):
            items.setdefault(item.order_pk, {})[item.order_item_id] = item.quantity_ordered
        records = {row.order_pk: row for row in connection.execute(select(_ERP_ORDERS))}
    erp_rows: dict[str, list[Any]] = {}
    for row in databases.erp_order_rows():
        erp_rows.setdefault(row.platform_order_no, []).append(row)
    lines: dict[int, list[Any]] = {}
    for line in databases.erp_line_rows():
        lines.setdefault(line.order_id, []).append(line)
    comparison.orders = len(orders)
    comparison.lines = sum(len(found) for found in items.values())
    comparison.erp_orders = sum(len(found) for found in erp_rows.values())
    comparison.erp_lines = sum(len(found) for found in lines.values())

    differences = comparison.differences
    differences += [
        f"ERP order rows {order_id} belong to no stored order"
        for order_id in sorted(set(erp_rows) - set(orders))
    ]
    known_rows = {row.id for found in erp_rows.values() for row in found}
    differences += [
        f"ERP line rows of order row {order_row} belong to no ERP order row"
        for order_row in sorted(set(lines) - known_rows)
    ]
    for order_id, order in sorted(orders.items()):
        found = erp_rows.get(order_id, [])
        if len(found) != 1:
            differences.append(f"order {order_id} has {len(found)} ERP order rows, not 1")
            continue
        [row] = found
        differences += _erp_row_differences(
            order, row, items.get(order.id, {}), erp_owned.get(order_id), records.get(order.id)
        )
        differences += _line_differences(
            order_id, row, lines.get(row.id, []), items.get(order.id, {})
        )


def _compare_wms_rows(
    databases: BridgeDatabases, wms_plans: Mapping[str, WmsPlan], comparison: Comparison
) -> None:
    """Every shipped WMS row: one request, the final state written back, syncd's record."""
    requests = databases.requests()
    rows = databases.wms_rows()
    comparison.wms_rows = sum(1 for row in rows if row.status == SHIPPED)
    comparison.requests = sum(len(found) for found in requests.values())
    keys = {str(row.id) for row in rows}
    by_changes = Counter(row._mapping[CHANGES_COLUMN] for row in rows if row.status == SHIPPED)
    differences = comparison.differences
    differences += [
        f"request {found[0].id} names WMS row {key}, which does not exist"
        for key, found in sorted(requests.items())
        if key not in keys
    ]
    for row in rows:
        found = requests.get(str(row.id), [])
        if row.status != SHIPPED:
            if found:
                differences.append(f"unshipped WMS row {row.id} has a request")
            continue
        if len(found) != 1:
            # A row that shares its position with another is the one a paging fault skips.
            value = row._mapping[CHANGES_COLUMN]
            shared = f" (shares its {CHANGES_COLUMN} {value})" if by_changes[value] > 1 else ""
            differences.append(f"WMS row {row.id} has {len(found)} requests, not 1{shared}")
            continue
        plan = wms_plans.get(row.platform_order_no)
        if plan is None:
            differences.append(f"WMS row {row.id} of {row.platform_order_no} was never planned")
            continue
        state, problems = _write_back_differences(row, found[0], plan)
        differences += problems
        comparison.confirmed += state == "confirmed"
        comparison.rejected += state == "rejected"


def _erp_row_differences(
    order: Any, row: Any, item_ids: Mapping[str, int], owned: tuple[int, str] | None, record: Any
) -> list[str]:
    """Compare one ERP order row with the stored order, the ERP's own values and syncd's record."""
    order_id = order.order_id
    found: list[str] = []
    expected_status = STATUS_CODES.get(order.status)
    if row.order_status != expected_status:
        found.append(
            f"order {order_id}: ERP order_status {row.order_status}, expected {expected_status} "
            f"({order.status})"
        )

    pick_status, remark = owned if owned is not None else (PICK_STATUS_ON_INSERT, None)
    if (row.pick_status, row.remark) != (pick_status, remark):
        found.append(
            f"order {order_id}: ERP-owned pick_status, remark are {row.pick_status}, "
            f"{row.remark!r}; the ERP's users set {pick_status}, {remark!r}"
        )
    if record is None:
        found.append(f"order {order_id} has an ERP row but no record in syncd_erp_orders")
        return found

    if record.state != bridge_state.PROJECTED or record.content_hash != order.content_hash:
        found.append(
            f"order {order_id}: syncd_erp_orders says {record.state} version "
            f"{record.content_hash}, the order is version {order.content_hash}"
        )
    keys = json.loads(record.erp_keys or "{}")
    expected_key = {"platform": "AMAZON", "shop_code": SHOP_CODE, "platform_order_no": order_id}
    if keys.get("order") != expected_key:
        found.append(f"order {order_id}: syncd_erp_orders names the ERP key {keys.get('order')}")
    line_keys = sorted(
        (str(key["order_id"]), str(key["platform_item_id"])) for key in keys.get("lines", [])
    )
    expected_lines = sorted((str(row.id), item_id) for item_id in item_ids)
    if line_keys != expected_lines:
        found.append(
            f"order {order_id}: syncd_erp_orders names line keys {line_keys}, "
            f"expected {expected_lines}"
        )
    return found


def _line_differences(
    order_id: str, row: Any, lines: Sequence[Any], items: Mapping[str, int]
) -> list[str]:
    """Compare the ERP lines of one order row with the stored order's items."""
    by_item: dict[str, list[Any]] = {}
    for line in lines:
        by_item.setdefault(line.platform_item_id, []).append(line)
    found = [
        f"order {order_id} (ERP row {row.id}): item {item_id} has "
        f"{len(by_item.get(item_id, []))} ERP line rows"
        for item_id in sorted(set(items) | set(by_item))
        if len(by_item.get(item_id, [])) != 1 or item_id not in items
    ]
    found += [
        f"order {order_id} item {item_id}: ERP qty {by_item[item_id][0].qty}, stored {quantity}"
        for item_id, quantity in sorted(items.items())
        if len(by_item.get(item_id, [])) == 1 and by_item[item_id][0].qty != quantity
    ]
    return found


def _write_back_differences(row: Any, request: Any, plan: WmsPlan) -> tuple[str, list[str]]:
    """Return the request's state and how its WMS row or syncd's record differs from it."""
    state, message = describe_request(request)
    expected = "confirmed" if plan.tracking_number else "rejected"
    found = []
    if (request.amazon_order_id, request.tracking_number) != (
        plan.order_id,
        plan.tracking_number or None,
    ):
        found.append(
            f"WMS row {row.id}: request {request.id} is for order {request.amazon_order_id}, "
            f"tracking {request.tracking_number}; the row names {plan.order_id}, "
            f"{plan.tracking_number!r}"
        )
    if state != expected:
        found.append(
            f"WMS row {row.id} (order {plan.order_id}, tracking {plan.tracking_number!r}): "
            f"request {request.id} is {state}, expected {expected}: {message}"
        )
    written = (row.amz_upload_status, row.amz_upload_msg, row.amz_upload_time is not None)
    message_written = None if message is None else message[:MESSAGE_LENGTH]
    if written != (WRITE_BACK_CODES[state], message_written, True):
        found.append(
            f"WMS row {row.id}: written back status, message, time set {written}, expected "
            f"{(WRITE_BACK_CODES[state], message_written, True)}"
        )
    recorded = (request.written_state, request.message_hash)
    if recorded != _state_and_hash(request):
        found.append(f"WMS row {row.id}: syncd recorded the write-back {recorded}, state {state}")
    return state, found


def _state_and_hash(request: Any) -> tuple[str, str | None]:
    """Return a request's write-back state and the hash syncd records of its message."""
    state, message = describe_request(request)
    digest = None if message is None else hashlib.sha256(message.encode("utf-8")).hexdigest()
    return state, digest
