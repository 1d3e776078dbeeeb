"""Messages for invalid fault rules and settings: field, value given, what is accepted."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import BaseModel, ValidationError

from syncd.sandbox.faults import FaultRule
from syncd.sandbox.problems import describe
from syncd.sandbox.state import SandboxConfig

KINDS = (
    "throttle, server_error, slow, expired_token, access_denied, revoke, invalid_client, "
    "malformed_json, repeat_page, duplicate_pages, omit_rate_limit_header, reject_dataset, "
    "apply_then_slow, apply_then_server_error"
)
DATASETS = (
    "BUYER, RECIPIENT, PROCEEDS, EXPENSE, PROMOTION, CANCELLATION, FULFILLMENT, PACKAGES, TAX, "
    "PAYMENT, FULFILLMENT_ORDERS"
)


def _messages(model: type[BaseModel], data: Any, **options: Any) -> list[str]:
    with pytest.raises(ValidationError) as caught:
        model.model_validate(data)
    return describe(caught.value, model, **options)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"kind": "thrott"},
            f'kind "thrott" is not valid: expected one of {KINDS}',
            id="unknown-kind",
        ),
        pytest.param({}, f"missing field kind: expected one of {KINDS}", id="no-kind"),
        pytest.param(
            {"kind": "throttle", "count": 0},
            "count 0 is not valid: expected a whole number of at least 1",
            id="count-zero",
        ),
        pytest.param(
            {"kind": "throttle", "count": "x"},
            'count "x" is not valid: expected a whole number of at least 1',
            id="count-text",
        ),
        pytest.param(
            {"kind": "slow", "delay": 700},
            "delay 700 is not valid: expected a number from 0 to 600",
            id="delay-too-long",
        ),
        pytest.param(
            {"kind": "slow"},
            "missing field delay: expected a number of seconds above 0 for a slow fault",
            id="slow-without-delay",
        ),
        pytest.param(
            {"kind": "server_error", "status": 501},
            "status 501 is not valid: expected one of 500, 502, 503, 504",
            id="bad-status",
        ),
        pytest.param(
            {"kind": "throttle", "region": "NA"},
            'region "NA" is not valid: expected one of na, eu, fe',
            id="region-case",
        ),
        pytest.param(
            {"kind": "throttle", "colour": "red"},
            "unknown field colour: the known fields are kind, operation, region, count, after, "
            "refresh_token, status, delay, field, dataset",
            id="unknown-field",
        ),
        pytest.param(
            {"kind": "reject_dataset"},
            f"missing field dataset: expected one of {DATASETS}",
            id="no-dataset",
        ),
        pytest.param(
            {"kind": "reject_dataset", "dataset": "fulfillment"},
            f'dataset "fulfillment" is not valid: expected one of {DATASETS}',
            id="dataset-case",
        ),
        pytest.param(
            {"kind": "invalid_client", "operation": "getOrder"},
            'operation "getOrder" is not valid: expected lwa or *, because this fault kind '
            "acts on the LWA token endpoint",
            id="lwa-only-kind",
        ),
        pytest.param([1], "[1] is not valid: expected a JSON object", id="not-an-object"),
    ],
)
def test_fault_rule_messages(data: Any, expected: str) -> None:
    assert _messages(FaultRule, data) == [expected]


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        pytest.param(
            {"speed": 0},
            "speed 0 is not valid: expected a number above 0 and at most 1000000",
            id="speed-zero",
        ),
        pytest.param(
            {"quotas": "maybe"}, 'quotas "maybe" is not valid: expected true or false', id="bool"
        ),
        pytest.param(
            {"pii_roles": "all"},
            'pii_roles "all" is not valid: expected one of granted, omitted, forbidden',
            id="choice",
        ),
        pytest.param(
            {"anchor": "2026-01-01T00:00:00"},
            'anchor "2026-01-01T00:00:00" is not valid: expected a date and time with a UTC '
            "offset, such as 2026-01-01T00:00:00Z",
            id="naive-anchor",
        ),
        pytest.param(
            {"faults": [{"kind": "throttle"}, {"kind": "x"}]},
            f'faults[1].kind "x" is not valid: expected one of {KINDS}',
            id="nested-rule",
        ),
    ],
)
def test_settings_messages(data: Any, expected: str) -> None:
    assert _messages(SandboxConfig, data) == [expected]


def test_unknown_marketplace_lists_the_ids() -> None:
    [message] = _messages(SandboxConfig, {"marketplace_ids": ["XX"]})

    assert message.startswith('marketplace_ids "XX" is not valid: expected one of ')
    assert "ATVPDKIKX0DER" in message
    assert "A1VC38T7YXB528" in message


def test_one_message_per_problem() -> None:
    messages = _messages(FaultRule, {"kind": "thrott", "count": 0, "after": -1})

    assert len(messages) == 3
    assert messages[1] == "count 0 is not valid: expected a whole number of at least 1"
    assert messages[2] == "after -1 is not valid: expected a whole number of at least 0"


def test_messages_have_no_pydantic_boilerplate() -> None:
    messages = _messages(FaultRule, {"kind": "thrott", "count": "x", "colour": 1})

    for message in messages:
        assert "pydantic" not in message
        assert "Input should" not in message
        assert "type=" not in message


def test_templates_go_through_translate() -> None:
    catalog = {
        "{field} {value} is not valid: expected {expected}": "{field}={value}? {expected}",
        "one of {values}": "[{values}]",
        ", ": "|",
    }

    messages = _messages(
        FaultRule, {"kind": "throttle", "region": "x"}, translate=lambda m: catalog.get(m, m)
    )

    assert messages == ['region="x"? [na|eu|fe]']


def test_labels_replace_field_names() -> None:
    messages = _messages(SandboxConfig, {"speed": -1}, labels={"speed": "--speed"})

    assert messages == ["--speed -1 is not valid: expected a number above 0 and at most 1000000"]
