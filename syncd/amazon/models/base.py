"""Building blocks shared by the response models: camelCase aliases, UTC times, money."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict
from pydantic.alias_generators import to_camel


class AmazonModel(BaseModel):
    """A response object: camelCase on the wire, snake_case in Python.

    Fields Amazon adds later are kept (``extra="allow"``), so a new field never breaks
    parsing, and every field Amazon may leave out is optional.
    """

    model_config = ConfigDict(
        alias_generator=to_camel,
        validate_by_name=True,
        validate_by_alias=True,
        extra="allow",
        frozen=True,
    )


def _as_utc(value: datetime) -> datetime:
    # SP-API documents every time as UTC; a time without an offset is read as UTC.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _decimal_from_json(value: Any) -> Any:
    # Amounts are strings in the models; a number would arrive as a float, whose binary
    # value must not leak into the Decimal (0.1 is not exactly representable).
    if isinstance(value, float):
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            return Decimal(value.strip())
        except InvalidOperation:
            return value
    return value


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Amount = Annotated[Decimal, BeforeValidator(_decimal_from_json)]


class Money(AmazonModel):
    """An amount with its currency; the amount is exact (Decimal)."""

    amount: Amount
    currency_code: str


class DateTimeRange(AmazonModel):
    """A time window such as the ship-by window."""

    earliest_date_time: UtcDatetime | None = None
    latest_date_time: UtcDatetime | None = None
