"""The classification table: every kind of outcome maps to one action and one error class."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import httpx
import pytest

from syncd import errors
from syncd.amazon import outcomes
from syncd.amazon.operations import GET_ORDER, SEARCH_ORDERS, Operation
from syncd.amazon.outcomes import Action, Failure

CREATE_REPORT = Operation("createReport", "POST", "/reports/2021-06-30/reports", idempotent=False)
NOW = datetime(2026, 5, 10, 12, 0, 0, tzinfo=UTC)


def _outcome(
    status: int | None,
    code: str | None = None,
    message: str = "",
    details: str = "",
    *,
    operation: Operation = SEARCH_ORDERS,
    failure: Failure | None = None,
    query: dict[str, str] | None = None,
) -> outcomes.Outcome:
    found = (outcomes.AmazonError(code, message, details),) if code or message else ()
    return outcomes.Outcome(
        operation=operation,
        status=status,
        errors=found,
        failure=failure,
        query=query,
        amazon_now=NOW,
    )


CASES = [
    pytest.param(_outcome(200), Action.SUCCESS, errors.ApiError, id="200"),
    pytest.param(_outcome(204, operation=GET_ORDER), Action.SUCCESS, errors.ApiError, id="204"),
    pytest.param(
        _outcome(429, "QuotaExceeded", "You exceeded your quota for the requested resource."),
        Action.RETRY,
        errors.ThrottledError,
        id="429",
    ),
    pytest.param(
        _outcome(429, "QuotaExceeded", operation=CREATE_REPORT),
        Action.RETRY,
        errors.ThrottledError,
        id="429-on-create-is-safe-to-repeat",
    ),
    pytest.param(
        _outcome(403, "Unauthorized", "The access token you provided has expired."),
        Action.REFRESH_AND_REPLAY,
        errors.AccessDeniedError,
        id="403-expired-in-message",
    ),
    pytest.param(
        _outcome(
            403,
            "Unauthorized",
            "Access to requested resource is denied.",
            "The access token you provided has expired.",
        ),
        Action.REFRESH_AND_REPLAY,
        errors.AccessDeniedError,
        id="403-expired-in-details",
    ),
    pytest.param(
        _outcome(403, "Unauthorized", "Access to requested resource is denied."),
        Action.FATAL,
        errors.AccessDeniedError,
        id="403-missing-role",
    ),
    pytest.param(
        _outcome(401, "Unauthorized", "bad header"), Action.FATAL, errors.FatalApiError, id="401"
    ),
    pytest.param(
        _outcome(
            400,
            "InvalidInput",
            "Invalid Input. Please provide a date that is at least 2 minutes before current time",
        ),
        Action.FIX_WINDOW,
        errors.WindowTooRecentError,
        id="400-two-minute-rule-explicit",
    ),
    pytest.param(
        _outcome(
            400,
            "InvalidInput",
            "The input you have submitted is not valid. Please check your input and try again.",
            query={"lastUpdatedBefore": "2026-05-10T11:59:30Z"},
        ),
        Action.FIX_WINDOW,
        errors.WindowTooRecentError,
        id="400-generic-with-recent-bound",
    ),
    pytest.param(
        _outcome(
            400,
            "InvalidInput",
            "The input you have submitted is not valid. Please check your input and try again.",
            query={"lastUpdatedBefore": "2026-05-10T11:50:00Z"},
        ),
        Action.FATAL,
        errors.FatalApiError,
        id="400-generic-with-old-bound-is-a-bug",
    ),
    pytest.param(
        _outcome(
            400,
            "InvalidInput",
            "at least 2 minutes before current time",
            operation=GET_ORDER,
        ),
        Action.FATAL,
        errors.FatalApiError,
        id="400-two-minute-text-on-operation-without-window",
    ),
    pytest.param(
        _outcome(
            400,
            "InvalidInput",
            "The paginationToken you have submitted is not valid. All parameters must match "
            "the original request except maxResultsPerPage.",
        ),
        Action.FATAL,
        errors.PaginationTokenError,
        id="400-page-token",
    ),
    pytest.param(
        _outcome(400, "InvalidInput", "We could not decode your NextToken."),
        Action.FATAL,
        errors.PaginationTokenError,
        id="400-v0-next-token",
    ),
    pytest.param(
        _outcome(400, "InvalidInput", "Invalid paginationToken."),
        Action.FATAL,
        errors.PaginationTokenError,
        id="400-invalid-before-token",
    ),
    pytest.param(
        _outcome(400, "InvalidInput", "The pagination token has expired."),
        Action.FATAL,
        errors.PaginationTokenError,
        id="400-expired-page-token",
    ),
    pytest.param(
        _outcome(404, "NotFound", "no order"), Action.FATAL, errors.FatalApiError, id="404"
    ),
    pytest.param(
        _outcome(500, "InternalFailure"), Action.RETRY, errors.RetryableApiError, id="500"
    ),
    pytest.param(
        _outcome(503, "ServiceUnavailable"), Action.RETRY, errors.RetryableApiError, id="503"
    ),
    pytest.param(
        _outcome(500, "InternalFailure", operation=CREATE_REPORT),
        Action.OUTCOME_UNKNOWN,
        errors.OutcomeUnknownError,
        id="500-on-create",
    ),
    pytest.param(
        _outcome(None, failure=Failure.NOT_SENT, operation=CREATE_REPORT),
        Action.RETRY,
        errors.RetryableApiError,
        id="connect-error-on-create-never-reached-amazon",
    ),
    pytest.param(
        _outcome(None, failure=Failure.NO_RESPONSE),
        Action.RETRY,
        errors.RetryableApiError,
        id="read-timeout-on-read",
    ),
    pytest.param(
        _outcome(None, failure=Failure.NO_RESPONSE, operation=CREATE_REPORT),
        Action.OUTCOME_UNKNOWN,
        errors.OutcomeUnknownError,
        id="read-timeout-on-create",
    ),
    pytest.param(
        _outcome(200, failure=Failure.MALFORMED_BODY),
        Action.RETRY,
        errors.RetryableApiError,
        id="malformed-json-on-read",
    ),
    pytest.param(
        _outcome(202, failure=Failure.MALFORMED_BODY, operation=CREATE_REPORT),
        Action.OUTCOME_UNKNOWN,
        errors.OutcomeUnknownError,
        id="malformed-json-on-create",
    ),
    pytest.param(_outcome(418, "Teapot"), Action.FATAL, errors.FatalApiError, id="unknown-status"),
    pytest.param(
        _outcome(400, "SomethingNew", "new"), Action.FATAL, errors.FatalApiError, id="unknown-code"
    ),
]


@pytest.mark.parametrize(("outcome", "action", "error_class"), CASES)
def test_table_classifies(outcome: outcomes.Outcome, action: Action, error_class: type) -> None:
    rule = outcomes.classify(outcome)

    assert rule.action is action
    assert rule.error_class is error_class


def test_error_carries_amazon_details() -> None:
    outcome = outcomes.Outcome(
        operation=SEARCH_ORDERS,
        status=429,
        errors=(outcomes.AmazonError("QuotaExceeded", "You exceeded your quota.", ""),),
        request_id="req-1",
        retry_after=3.0,
    )

    error = outcomes.build_error(outcomes.classify(outcome), outcome)

    assert isinstance(error, errors.ThrottledError)
    assert error.status_code == 429
    assert error.error_code == "QuotaExceeded"
    assert error.request_id == "req-1"
    assert error.retry_after == 3.0
    assert "req-1" in str(error)
    assert "QuotaExceeded" in str(error)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(
            {"errors": [{"code": "InvalidInput", "message": "m", "details": "d"}]}, id="errors"
        ),
        pytest.param(
            {"payload": None, "errors": [{"code": "InvalidInput", "message": "m", "details": "d"}]},
            id="payload-and-errors",
        ),
    ],
)
def test_both_error_body_styles_parse(body: dict[str, object]) -> None:
    parsed = outcomes.parse_errors(json.dumps(body).encode())

    assert parsed == (outcomes.AmazonError("InvalidInput", "m", "d"),)


def test_non_json_error_body_keeps_its_text() -> None:
    parsed = outcomes.parse_errors(b"<html>502 Bad Gateway</html>")

    assert parsed == (outcomes.AmazonError(None, "<html>502 Bad Gateway</html>"),)


def test_outcome_from_response_reads_headers() -> None:
    request = httpx.Request(
        "GET", "https://h/orders/2026-01-01/orders?lastUpdatedBefore=2026-05-10T11:59:00Z"
    )
    response = httpx.Response(
        400,
        headers={
            "x-amzn-RequestId": "abc",
            "Date": "Sun, 10 May 2026 12:00:00 GMT",
            "Retry-After": "2",
        },
        json={"errors": [{"code": "InvalidInput", "message": "x"}]},
        request=request,
    )

    outcome = outcomes.outcome_from_response(SEARCH_ORDERS, response)

    assert outcome.request_id == "abc"
    assert outcome.amazon_now == NOW
    assert outcome.retry_after == 2.0
    assert outcome.query == {"lastUpdatedBefore": "2026-05-10T11:59:00Z"}
    assert outcome.first_error == outcomes.AmazonError("InvalidInput", "x", "")


@pytest.mark.parametrize(
    ("exc", "failure"),
    [
        pytest.param(httpx.ConnectError("refused"), Failure.NOT_SENT, id="connect-error"),
        pytest.param(httpx.ConnectTimeout("slow"), Failure.NOT_SENT, id="connect-timeout"),
        pytest.param(httpx.PoolTimeout("pool"), Failure.NOT_SENT, id="pool-timeout"),
        pytest.param(httpx.ProxyError("407"), Failure.NOT_SENT, id="proxy-refused"),
        pytest.param(httpx.ReadTimeout("slow"), Failure.NO_RESPONSE, id="read-timeout"),
        pytest.param(httpx.RemoteProtocolError("closed"), Failure.NO_RESPONSE, id="dropped"),
        pytest.param(httpx.ReadError("reset"), Failure.NO_RESPONSE, id="reset"),
    ],
)
def test_transport_errors_tell_sent_from_not_sent(
    exc: httpx.TransportError, failure: Failure
) -> None:
    assert outcomes.failure_of(exc) is failure


def test_gateway_message_body_keeps_its_text() -> None:
    assert outcomes.parse_errors(b'{"message": "Internal server error"}') == (
        outcomes.AmazonError(None, "Internal server error"),
    )
