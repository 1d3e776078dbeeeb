"""Query strings: comma-joined arrays, one encoding pass, UTC times."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl

import pytest

from syncd.amazon.query import Query, format_time


def test_page_token_is_encoded_exactly_once() -> None:
    query = Query.build({"marketplaceIds": ["A1PA6795UKMFR9"]}).with_param(
        "paginationToken", "Ab+cD/eF9g=="
    )

    encoded = query.encode()

    assert encoded == "marketplaceIds=A1PA6795UKMFR9&paginationToken=Ab%2BcD%2FeF9g%3D%3D"
    assert "%25" not in encoded
    assert dict(parse_qsl(encoded))["paginationToken"] == "Ab+cD/eF9g=="


def test_array_is_one_comma_joined_parameter() -> None:
    query = Query.build({"marketplaceIds": ["APJ6JRA9NG5V4", "A1PA6795UKMFR9"]})

    assert query.encode() == "marketplaceIds=APJ6JRA9NG5V4,A1PA6795UKMFR9"
    assert query.encode().count("marketplaceIds=") == 1


def test_times_are_utc_with_z() -> None:
    beijing = timezone(timedelta(hours=8))
    value = datetime(2026, 3, 1, 18, 0, 0, 999_999, tzinfo=beijing)

    assert format_time(value) == "2026-03-01T10:00:00Z"
    assert (
        Query.build({"lastUpdatedAfter": value}).encode() == "lastUpdatedAfter=2026-03-01T10:00:00Z"
    )


def test_naive_time_is_rejected() -> None:
    with pytest.raises(ValueError, match="naive datetime"):
        format_time(datetime(2026, 3, 1, 10, 0))


def test_list_value_with_comma_is_rejected() -> None:
    with pytest.raises(ValueError, match="contains a comma"):
        Query.build({"includedData": ["BUYER,RECIPIENT"]})


def test_none_and_empty_lists_are_left_out() -> None:
    query = Query.build({"a": None, "b": [], "c": 5, "d": datetime(2026, 1, 1, tzinfo=UTC)})

    assert query.as_dict() == {"c": "5", "d": "2026-01-01T00:00:00Z"}


def test_with_param_replaces_instead_of_repeating() -> None:
    query = Query.build({"paginationToken": "a"}).with_param("paginationToken", "b")

    assert query.params == (("paginationToken", "b"),)


def test_decode_reverses_encode() -> None:
    query = Query.build(
        {
            "marketplaceIds": ["A1PA6795UKMFR9", "APJ6JRA9NG5V4"],
            "lastUpdatedAfter": "2026-03-01T10:00:00Z",
        }
    ).with_param("paginationToken", "Ab+cD/eF9g== x")

    assert Query.decode(query.encode()) == query
