"""Marketplace table and region checks; secret redaction in logs."""

from __future__ import annotations

import io
import json
import logging

import pytest
import structlog

from syncd import errors, logs
from syncd.amazon import marketplaces


def test_every_marketplace_has_region_and_currency() -> None:
    ids = [marketplace.marketplace_id for marketplace in marketplaces.MARKETPLACES]

    assert len(ids) == len(set(ids)) == 23
    assert {marketplace.region for marketplace in marketplaces.MARKETPLACES} == {"na", "eu", "fe"}
    assert marketplaces.get_marketplace("A1VC38T7YXB528").currency == "JPY"
    assert marketplaces.get_marketplace("A1F83G8C2ARO7P").country_code == "UK"
    assert marketplaces.find_by_country("gb") == marketplaces.get_marketplace("A1F83G8C2ARO7P")


def test_wrong_region_is_rejected_with_the_fix() -> None:
    with pytest.raises(errors.MarketplaceError) as caught:
        marketplaces.check_region(["A1PA6795UKMFR9", "A1VC38T7YXB528"], "eu")

    assert caught.value.marketplace_id == "A1VC38T7YXB528"
    assert caught.value.expected_region == "fe"
    assert "region FE" in str(caught.value)


def test_unknown_marketplace_is_rejected() -> None:
    with pytest.raises(errors.MarketplaceError, match="Unknown marketplace id 'XYZ'"):
        marketplaces.get_marketplace("XYZ")


def test_region_of_needs_one_region() -> None:
    assert marketplaces.region_of(["A1PA6795UKMFR9", "APJ6JRA9NG5V4"]) == "eu"
    with pytest.raises(errors.MarketplaceError):
        marketplaces.region_of(["ATVPDKIKX0DER", "A1PA6795UKMFR9"])


def test_secrets_are_redacted_from_keys_and_values() -> None:
    out = io.StringIO()
    logs.configure_logging("json", "debug", stream=out)

    structlog.get_logger().info(
        "something_happened",
        refresh_token="Atzr|IwEBIA-secret",
        client_secret="s3cr3t",
        headers="x-amz-access-token: Atza|IwEBIB-secret",
        body="grant_type=refresh_token&refresh_token=plain-secret&client_id=x",
        token_lifetime=3600,
        account="acme",
    )

    line = json.loads(out.getvalue())
    text = out.getvalue()
    for secret in ("IwEBIA-secret", "s3cr3t", "IwEBIB-secret", "plain-secret"):
        assert secret not in text
    assert line["refresh_token"] == logs.REDACTED
    assert line["token_lifetime"] == 3600
    assert line["account"] == "acme"
    assert line["event"] == "something_happened"


def test_library_warnings_become_json_lines() -> None:
    out = io.StringIO()
    logs.configure_logging("json", "info", stream=out)
    failure = RuntimeError("connection reset")
    logging.getLogger("sqlalchemy.pool").warning("reset failed", exc_info=failure)
    logging.getLogger("apscheduler.scheduler").info("Running job")
    logs.configure_logging("json", "info", stream=out)  # a second call adds no second handler
    logging.getLogger("sqlalchemy.pool").error("client_secret=abc leaked")

    lines = [json.loads(line) for line in out.getvalue().splitlines()]

    assert len(lines) == 2
    assert lines[0]["event"] == "library_log"
    assert lines[0]["library"] == "sqlalchemy.pool"
    assert lines[0]["level"] == "warning"
    assert "RuntimeError: connection reset" in lines[0]["exception"]
    assert "abc" not in lines[1]["message"]
