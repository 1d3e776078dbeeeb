"""Writing a shipment into the intake from Python, as ``syncd ship`` does."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Engine

from syncd.db import intake
from syncd.db.models import ShipmentRequest, table_of
from syncd.i18n import gettext as _
from syncd.shipping.intake import request_values

_COLUMNS = table_of(ShipmentRequest).columns


@dataclass(frozen=True)
class Submitted:
    """The intake row of a request, and whether this call created it."""

    request: intake.RequestRow
    created: bool


def submit_shipment(
    engine: Engine,
    *,
    account: str,
    order_id: str,
    carrier: str,
    tracking_number: str,
    shipped_at: datetime,
    source_system: str,
    source_key: str,
    items: Sequence[Mapping[str, Any]] | None = None,
    carrier_name: str | None = None,
    shipping_method: str | None = None,
) -> Submitted:
    """Write one shipment request into ``syncd_shipment_requests``.

    The same ``(source_system, source_key)`` twice is one request: the second call returns
    the first row with ``created`` False. ``items`` are ``{"sku": …, "quantity": …}`` or
    ``{"order_item_id": …, "quantity": …}``; none means every item left to ship. The shipments
    job checks the request against the order and records a rejection reason on the row when
    it cannot be sent.

    Raises:
        ValueError: ``shipped_at`` has no time zone, or a value is longer than its column.
    """
    values = request_values(
        account=account,
        order_id=order_id,
        carrier=carrier,
        tracking_number=tracking_number,
        shipped_at=shipped_at,
        source_system=source_system,
        source_key=source_key,
        items=items,
        carrier_name=carrier_name,
        shipping_method=shipping_method,
    )
    _check_lengths(values)
    with engine.begin() as connection:
        row, created = intake.insert_request(connection, values)
    return Submitted(row, created)


def _check_lengths(values: Mapping[str, Any]) -> None:
    """Raise ValueError for text longer than its column, which a database would cut or refuse."""
    for name, value in values.items():
        limit = getattr(_COLUMNS[name].type, "length", None)
        if isinstance(value, str) and limit is not None and len(value) > limit:
            raise ValueError(
                _("{field} is longer than {limit} characters: {value!r}").format(
                    field=name, limit=limit, value=value[:120]
                )
            )
