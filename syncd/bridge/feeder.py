"""Reading shipments from the WMS's own table into the shipment intake, and writing back.

A pass reads the WMS rows changed since its position (an increasing id, or an update-time
column), in pages ordered by that column and the row's key. Each row becomes one intake
request keyed by ``(source, the row's key)``, so a row read twice is one request. The position
is stored in the same syncd transaction as the requests, and the WMS is only read, so a crash
repeats at most the last page. Each pass starts a little before its position, because rows
committed out of order (a lower id committed after a higher one) would otherwise be passed
over. The unique source key absorbs the overlap.

A row that changes after syncd rejected its request (the warehouse fixed the tracking number)
sends the request through the intake again. Write-back columns, when the mapping names them,
get the request's state (queued, sending, confirmed, rejected, failed, cancelled) and the
reason in the operator's language. A row's final state is written once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import (
    Connection,
    DateTime,
    Engine,
    Integer,
    String,
    Table,
    and_,
    or_,
    select,
    type_coerce,
    update,
)

from syncd.bridge.check import ID_OVERLAP, ErpTables
from syncd.bridge.mapping import LoadedMapping, ShipmentsSpec
from syncd.bridge.values import OVERLAP_DST, OVERLAP_NO_DST, now_in_column
from syncd.db import bridge_state, intake, outbox
from syncd.db.models import ShipmentRequest, table_of
from syncd.i18n import gettext as _
from syncd.logs import get_logger
from syncd.shipping.carriers import CarrierMap
from syncd.shipping.intake import RejectedError, parse_request

log = get_logger(__name__)

_REQUESTS = table_of(ShipmentRequest)
_RAW_CHANGES = "syncd_changes"  # the changes column as the query compares it
_COMPARED = (
    "account",
    "amazon_order_id",
    "carrier",
    "carrier_name",
    "shipping_method",
    "tracking_number",
    "shipped_at",
    "shipped_at_zone",
    "items",
)


def position_name(source: str) -> str:
    """Return the name of a WMS source's position in ``syncd_bridge_positions``."""
    return f"wms:{source}"


@dataclass
class FeedSummary:
    """Counts of one WMS pass."""

    read: int = 0
    new: int = 0
    redriven: int = 0
    amended: int = 0  # accepted shipments whose carrier, tracking or time changed
    changed_after_acceptance: int = 0  # changes syncd cannot send on its own
    written_back: int = 0


class WmsFeeder:
    """Feeder of the shipment intake from one WMS table, which writes each outcome back."""

    def __init__(
        self,
        mapping: LoadedMapping,
        tables: ErpTables,
        *,
        engine: Engine,
        erp_engine: Engine,
        batch_size: int,
        now: Callable[[], datetime],
        carriers: CarrierMap | None = None,
    ) -> None:
        assert mapping.spec.shipments is not None
        assert tables.shipments is not None
        self.mapping = mapping
        self.spec: ShipmentsSpec = mapping.spec.shipments
        self.table: Table = tables.shipments
        self.tables = tables
        self.engine = engine
        self.erp_engine = erp_engine
        self.batch_size = batch_size
        self.now = now
        self.carriers = carriers or CarrierMap()
        self.by_constant = self._accounts_by_constant()

    # -- reading ---------------------------------------------------------------------------

    def feed(self) -> FeedSummary:
        """Read the WMS rows changed since the last pass into the intake."""
        summary = FeedSummary()
        name = position_name(self.spec.source)
        with self.engine.begin() as connection:
            position: dict[str, Any] = bridge_state.load_position(connection, name)
        lower = self._start(position)
        after: tuple[Any, Any] | None = None
        while True:
            with self.erp_engine.connect() as erp:
                rows = self._read(erp, lower, after)
                items = self._read_items(erp, rows)
            if not rows:
                break
            with self.engine.begin() as connection:
                self._take(connection, rows, items, summary)
                last = rows[-1]
                after = (last[_RAW_CHANGES], last[self.spec.key])
                furthest = self._later(position.get("after"), last[self.spec.changes])
                position = {"after": furthest}
                bridge_state.save_position(connection, name, position, self.now())
            summary.read += len(rows)
            if len(rows) < self.batch_size:
                break
        # Written on every pass, so `syncd status` shows when the WMS was last read.
        with self.engine.begin() as connection:
            bridge_state.save_position(connection, name, position, self.now())
        return summary

    def _start(self, position: Mapping[str, Any]) -> Any:
        stored = position.get("after")
        if stored is None:
            return None
        column = self.table.c[self.spec.changes]
        if isinstance(column.type, Integer):
            return int(stored) - ID_OVERLAP
        moment = datetime.fromisoformat(stored)
        zone = self.spec.changes_zone
        has_dst = zone is not None and _has_dst(zone)
        return moment - (OVERLAP_DST if has_dst else OVERLAP_NO_DST)

    def _later(self, stored: Any, value: Any) -> Any:
        current = self._decode(stored) if stored is not None else None
        if current is not None and value is not None and current >= value:
            value = current
        return value.isoformat() if isinstance(value, datetime) else value

    def _decode(self, stored: Any) -> Any:
        column = self.table.c[self.spec.changes]
        return int(stored) if isinstance(column.type, Integer) else datetime.fromisoformat(stored)

    def _read(self, erp: Connection, lower: Any, after: tuple[Any, Any] | None) -> list[Any]:
        changes = self._changes_expression()
        key = self.table.c[self.spec.key]
        query = (
            select(self.table, changes.label(_RAW_CHANGES))
            .order_by(changes, key)
            .limit(self.batch_size)
        )
        for name, wanted in self.spec.where.items():
            column = self.table.c[name]
            query = query.where(
                column.in_(wanted) if isinstance(wanted, list) else column == wanted
            )
        query = query.where(self.table.c[self.spec.changes].is_not(None))
        if after is not None:
            query = query.where(or_(changes > after[0], and_(changes == after[0], key > after[1])))
        elif lower is not None:
            if isinstance(lower, datetime) and self._times_as_text():
                lower = lower.isoformat(sep=" ")
            query = query.where(changes >= lower)
        return [row._mapping for row in erp.execute(query)]

    def _times_as_text(self) -> bool:
        column = self.table.c[self.spec.changes]
        return self.erp_engine.dialect.name == "sqlite" and isinstance(column.type, DateTime)

    def _changes_expression(self) -> Any:
        """Return the changes column in the form the pages compare it.

        SQLite keeps times as text in whatever form the WMS wrote (CURRENT_TIMESTAMP has no
        fraction of a second), while a bound datetime gets six decimals. Compared as
        datetimes, rows of the same second would never equal the page's last one, so on
        SQLite the column is compared as text.
        """
        column = self.table.c[self.spec.changes]
        return type_coerce(column, String) if self._times_as_text() else column

    def _read_items(self, erp: Connection, rows: Sequence[Any]) -> dict[str, list[dict[str, Any]]]:
        spec = self.spec.items
        table = self.tables.items
        if spec is None or table is None or not rows:
            return {}
        keys = [row[self.spec.key] for row in rows]
        identity = spec.sku or spec.order_item_id
        assert identity is not None
        label = "sku" if spec.sku else "order_item_id"
        found: dict[str, list[dict[str, Any]]] = {}
        query = select(table.c[spec.link], table.c[identity], table.c[spec.quantity]).where(
            table.c[spec.link].in_(keys)
        )
        amazon_skus = self._reverse_skus(erp) if spec.sku else {}
        accounts = {str(row[self.spec.key]): self._account(row) for row in rows}
        for link, item, stored_quantity in erp.execute(query):
            value = None if item is None else str(item)
            if value is not None and spec.sku:
                value = _amazon_sku(amazon_skus, accounts.get(str(link), ""), value)
            quantity = stored_quantity
            if isinstance(quantity, Decimal) and quantity == quantity.to_integral_value():
                quantity = int(quantity)  # a DECIMAL(10,2) quantity column returns 2.00
            found.setdefault(str(link), []).append({label: value, "quantity": quantity})
        return found

    def _reverse_skus(self, erp: Connection) -> dict[tuple[str | None, str], set[str]]:
        """Read the seller's SKU map backwards: (account, ERP SKU) → Amazon SKUs.

        The WMS stores the ERP's SKUs, while the intake matches Amazon's seller SKUs.
        """
        skus = self.mapping.spec.skus
        table = self.tables.skus
        if skus is None or table is None:
            return {}
        match = skus.account
        by_constant = self._constant_accounts(match.constant if match else None)
        account_column = table.c[match.column] if match is not None and match.column else None
        columns = [table.c[skus.erp_sku], table.c[skus.amazon_sku]]
        if account_column is not None:
            columns.append(account_column)
        query = select(*columns).where(
            *(table.c[name] == value for name, value in skus.where.items())
        )
        reverse: dict[tuple[str | None, str], set[str]] = {}
        for row in erp.execute(query):
            if row[0] is None or row[1] is None:
                continue
            account = None
            if account_column is not None:
                account = by_constant.get(str(row[2]))
            elif match is not None and match.name is not None:
                account = intake.normalize_account(match.name)
            reverse.setdefault((account, str(row[0])), set()).add(str(row[1]))
        return reverse

    def _constant_accounts(self, constant: str | None) -> dict[str, str]:
        if constant is None:
            return {}
        return {
            str(values[constant]): name
            for name, values in self.mapping.spec.accounts.items()
            if constant in values
        }

    def _take(
        self,
        connection: Connection,
        rows: Sequence[Any],
        items: Mapping[str, list[dict[str, Any]]],
        summary: FeedSummary,
    ) -> None:
        source = self.spec.source
        key_length = getattr(_REQUESTS.c.source_key.type, "length", None) or 128
        usable = []
        for row in rows:
            if len(str(row[self.spec.key])) > key_length:
                # Cut short, the key would no longer name its row for the write-back.
                log.warning(
                    "wms_row_key_too_long", source=source, length=len(str(row[self.spec.key]))
                )
            else:
                usable.append(row)
        values = [self._request_values(row, items) for row in usable]
        existing = bridge_state.requests_by_key(
            connection, source, [v["source_key"] for v in values]
        )
        redriven = []
        for value in values:
            found = existing.get(value["source_key"])
            if found is None:
                _row, created = intake.insert_request(connection, value)
                summary.new += created
                continue
            if all(_same(found, value, name) for name in _COMPARED):
                continue
            if found.status in (intake.NEW, intake.REJECTED):
                self._redrive(connection, found.id, value)
                redriven.append(found.id)
                summary.redriven += 1
            elif self._amend(connection, found, value):
                redriven.append(found.id)
                summary.amended += 1
            else:
                summary.changed_after_acceptance += 1
        bridge_state.reopen_write_backs(connection, redriven)

    def _amend(self, connection: Connection, found: Any, value: Mapping[str, Any]) -> bool:
        """Send a corrected carrier, tracking number or ship time under the same package.

        Amazon edits a package when the same packageReferenceId comes again, so a WMS that
        corrects a tracking number after syncd sent it corrects Amazon's record too. A change
        of order or items is another shipment, which the operator settles (logged).
        """
        log_fields = {
            "source": self.spec.source,
            "source_key": value["source_key"],
            "amazon_order_id": found.amazon_order_id,
            "outbox_id": found.outbox_id,
        }
        fixed = ("account", "amazon_order_id", "items")
        if found.outbox_id is None or not all(_same(found, value, name) for name in fixed):
            log.warning("wms_shipment_changed_after_acceptance", **log_fields)
            return False
        now = self.now()
        request = intake.RequestRow(**{**found._mapping, **{n: value[n] for n in _COMPARED}})
        try:
            parsed = parse_request(request, self.carriers, now)
        except RejectedError as exc:
            log.warning(
                "wms_shipment_amendment_rejected", code=exc.code, reason=exc.reason, **log_fields
            )
            return False
        amended = outbox.amend_row(
            connection,
            found.outbox_id,
            now,
            carrier_code=parsed.carrier.code,
            carrier_name=parsed.carrier.name,
            shipping_method=parsed.shipping_method,
            tracking_number=parsed.tracking_number,
            ship_date=parsed.ship_date,
        )
        if not amended:
            current = outbox.get_row(connection, found.outbox_id)
            if current is not None and current.state == outbox.SENDING:
                # The package is being sent right now. The next pass retries the amendment
                # only if it still re-reads the row (inside the overlap before its position).
                log.info("wms_shipment_amendment_deferred", **log_fields)
            else:
                log.warning("wms_shipment_changed_after_acceptance", **log_fields)
            return False
        connection.execute(
            update(_REQUESTS)
            .where(_REQUESTS.c.id == found.id)
            .values({name: value[name] for name in _COMPARED})
        )
        log.info(
            "wms_shipment_amended",
            tracking_changed=found.tracking_number != value["tracking_number"],
            **log_fields,
        )
        return True

    def _redrive(self, connection: Connection, request_id: int, value: Mapping[str, Any]) -> None:
        changes = {name: value[name] for name in _COMPARED}
        connection.execute(
            update(_REQUESTS)
            .where(
                _REQUESTS.c.id == request_id, _REQUESTS.c.status.in_((intake.NEW, intake.REJECTED))
            )
            .values(
                status=value["status"],
                reject_code=value.get("reject_code"),
                reject_reason=value.get("reject_reason"),
                processed_at=value.get("processed_at"),
                **changes,
            )
        )

    def _request_values(
        self, row: Mapping[str, Any], items: Mapping[str, list[dict[str, Any]]]
    ) -> dict[str, Any]:
        spec = self.spec
        shipped_at, zone = self._ship_time(row[spec.shipped_at])
        key = str(row[spec.key])
        row_items = items.get(key)
        values: dict[str, Any] = {
            "contract_version": intake.CONTRACT_VERSION,
            "source_system": spec.source,
            "source_key": key,
            "account": self._account(row),
            "amazon_order_id": _text(row[spec.order_id]) or "",
            "carrier": _text(row[spec.carrier]),
            "carrier_name": _text(row[spec.carrier_name]) if spec.carrier_name else None,
            "shipping_method": _text(row[spec.shipping_method]) if spec.shipping_method else None,
            "tracking_number": _text(row[spec.tracking_number]),
            "shipped_at": shipped_at,
            "shipped_at_zone": zone,
            "items": json.dumps(row_items, ensure_ascii=False, default=str) if row_items else None,
            "status": intake.NEW,
            "reject_code": None,
            "reject_reason": None,
            "processed_at": None,
        }
        raw_time = row[spec.shipped_at]
        if shipped_at is None and raw_time is not None and str(raw_time).strip():
            # Reject here, with the WMS's raw value in the reason, because the intake would
            # only see a missing time.
            values.update(
                status=intake.REJECTED,
                reject_code="bad_ship_date",
                reject_reason=_(
                    "shipped_at {value!r} is not a date and time such as 2026-12-04 15:30:00"
                ).format(value=str(raw_time)),
                processed_at=self.now(),
            )
        return _fit_lengths(values, self.now())

    def _ship_time(self, value: Any) -> tuple[datetime | None, str | None]:
        if isinstance(value, str):
            value = _parse_wall_clock(value)
        elif isinstance(value, date) and not isinstance(value, datetime):
            # A DATE column gives the day's start in local time, which is never in the future.
            value = datetime.combine(value, time())
        if not isinstance(value, datetime):
            return None, None
        if value.tzinfo is not None:
            return value.astimezone(UTC).replace(tzinfo=None), "UTC"
        column = self.table.c[self.spec.shipped_at]
        if isinstance(column.type, DateTime) and not self.tables.is_naive(self.table, column.name):
            # MariaDB's TIMESTAMP comes back in syncd's session zone, UTC, without a zone.
            return value, "UTC"
        return value, self.spec.shipped_at_zone or "UTC"

    def _account(self, row: Mapping[str, Any]) -> str:
        match = self.spec.account
        if match.name is not None:
            return match.name
        assert match.column is not None
        value = row[match.column]
        return self.by_constant.get(str(value), str(value) if value is not None else "")

    def _accounts_by_constant(self) -> dict[str, str]:
        return self._constant_accounts(self.spec.account.constant)

    # -- writing back ----------------------------------------------------------------------

    def write_back(self) -> int:
        """Write each request's current state into its WMS row; return the rows written."""
        write_back = self.spec.write_back
        if write_back is None:
            return 0
        written = 0
        after_id = 0
        while True:
            with self.engine.begin() as connection:
                rows = bridge_state.write_backs_due(
                    connection, self.spec.source, after_id, self.batch_size
                )
            if not rows:
                break
            after_id = rows[-1].id
            changed = []
            for row in rows:
                state, message = describe_request(row)
                digest = _digest(message)
                if state != row.written_state or digest != row.message_hash:
                    changed.append((row, state, message, digest))
            if changed:
                now = self.now()
                with self.erp_engine.begin() as erp:
                    for row, state, message, _digest_value in changed:
                        self._write_row(erp, row.source_key, state, message, now)
                with self.engine.begin() as connection:
                    for row, state, _message, digest in changed:
                        bridge_state.record_write_back(
                            connection,
                            row.id,
                            state=state,
                            message_hash=digest,
                            is_final=is_final(state, row),
                            now=now,
                        )
                written += len(changed)
            if len(rows) < self.batch_size:
                break
        return written

    def _write_row(
        self, erp: Connection, key: str, state: str, message: str | None, now: datetime
    ) -> None:
        write_back = self.spec.write_back
        assert write_back is not None
        values: dict[str, Any] = {}
        if write_back.status is not None:
            status_column = self.table.c[write_back.status]
            value: Any = write_back.values.get(state, state)
            if isinstance(status_column.type, Integer):
                value = int(value)
            values[write_back.status] = value
        if write_back.message is not None:
            length = getattr(self.table.c[write_back.message].type, "length", None)
            values[write_back.message] = (
                message if length is None or message is None else (message[:length])
            )
        if write_back.time is not None:
            naive = self.tables.is_naive(self.table, write_back.time)
            values[write_back.time] = now_in_column(now, write_back.zone, naive)
        key_column = self.table.c[self.spec.key]
        key_value: Any = int(key) if isinstance(key_column.type, Integer) else key
        erp.execute(update(self.table).where(key_column == key_value).values(values))


def is_final(state: str, row: Any) -> bool:
    """Return whether a request's write-back can no longer change.

    A confirmed shipment is final only once Amazon's packages showed it, because until then
    the verification may still find another tracking number there (a conflict). A rejection
    is final until the WMS row changes, which makes it due again.
    """
    if state == "confirmed":
        return row.verified_at is not None
    return state in ("rejected", "cancelled")


def describe_request(row: Any) -> tuple[str, str | None]:  # noqa: PLR0911 - one per state
    """Return the write-back state of a request and the message that explains it."""
    if row.status == intake.NEW:
        return "queued", None
    if row.status == intake.REJECTED:
        return "rejected", f"{row.reject_code}: {row.reject_reason}"
    state = row.outbox_state
    if state in ("delivered",):
        return "confirmed", None
    if state in ("dead", "conflict"):
        return "failed", f"{row.last_error_code or state}: {row.last_error_message or ''}".strip()
    if state == "cancelled":
        return "cancelled", None
    if row.attempts and row.last_error_message:
        return "sending", _("retrying: {error}").format(error=row.last_error_message)
    return "sending", None


def _amazon_sku(
    reverse: Mapping[tuple[str | None, str], set[str]], account: str, erp_sku: str
) -> str:
    """Return the one Amazon SKU of an ERP SKU, else the ERP's SKU as it is.

    When several listings share one ERP SKU, the intake cannot tell which line shipped.
    It then reports the SKU as unknown, and the WMS has to name the item by order item id.
    """
    found = reverse.get((intake.normalize_account(account), erp_sku)) or reverse.get(
        (None, erp_sku)
    )
    if found is not None and len(found) == 1:
        return next(iter(found))
    return erp_sku


def _parse_wall_clock(text: str) -> datetime | None:
    """Read a time as WMSs write it: ISO 8601, or with slashes (2026/12/05 10:00:00)."""
    cleaned = text.strip().replace("/", "-")
    try:
        return datetime.fromisoformat(cleaned)
    except ValueError:
        return None


def _digest(message: str | None) -> str | None:
    return None if message is None else hashlib.sha256(message.encode("utf-8")).hexdigest()


def _same(found: Any, value: Mapping[str, Any], name: str) -> bool:
    stored = getattr(found, name)
    new = value[name]
    if name == "account":
        return intake.normalize_account(str(stored)) == intake.normalize_account(str(new))
    return bool(stored == new)


def _text(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _fit_lengths(values: dict[str, Any], now: datetime) -> dict[str, Any]:
    """Reject the request when a WMS value is longer than the intake's column.

    The stored value is cut to the column so the request can be saved with its reason.
    A too-long ``source_system`` or ``source_key`` is only cut, because :meth:`WmsFeeder._take`
    already skips rows whose key is too long.
    """
    for name, value in values.items():
        column = _REQUESTS.c[name]
        length = getattr(column.type, "length", None)
        too_long = isinstance(value, str) and length is not None and len(value) > length
        if too_long and isinstance(column.type, String):
            values[name] = value[:length]
            if name not in ("source_system", "source_key"):
                values.update(
                    status=intake.REJECTED,
                    reject_code="value_too_long",
                    reject_reason=_(
                        "{column} has {length} characters; syncd takes at most {limit}"
                    ).format(column=name, length=len(value), limit=length),
                    processed_at=now,
                )
    return values


def _has_dst(zone: str) -> bool:
    """Return whether the zone observes DST, from its UTC offset sampled monthly over a year."""
    info = ZoneInfo(zone)
    now = datetime.now(UTC)
    offsets = {
        (now - timedelta(days=days)).astimezone(info).utcoffset() for days in range(0, 366, 30)
    }
    return len(offsets) > 1
