"""Login with Amazon's token endpoint, ``POST /auth/o2/token``, as the sandbox plays it.

Grants:

- ``refresh_token`` with ``refresh_token``, ``client_id`` and ``client_secret``: returns
  ``access_token`` (``Atza|...``), the same ``refresh_token``, ``token_type`` ``bearer`` and
  ``expires_in``. Any refresh token is accepted until it is revoked; each one is a seller.
- ``client_credentials`` with ``scope`` (``sellingpartnerapi::notifications`` or
  ``sellingpartnerapi::client_credential:rotation``): a grantless token, which the Orders
  operations refuse with 403.

Errors use LWA's shape ``{"error", "error_description"}``:

- ``invalid_request`` (400): a missing parameter or an unreadable body;
- ``unsupported_grant_type`` (400);
- ``invalid_client`` (401): the client id differs from the configured one, or the secret
  is neither the configured one nor one of the ``retiring_client_secrets``;
- ``invalid_grant`` (400): a revoked refresh token;
- ``invalid_scope`` (400): an unknown scope.
 The body may be form-encoded (as Amazon documents) or a JSON object (as
some of Amazon's SDKs send it).
"""

from __future__ import annotations

import json
from datetime import datetime
from urllib.parse import parse_qsl

from syncd.sandbox.exchange import Reply
from syncd.sandbox.faults import FiredFault
from syncd.sandbox.state import SandboxState

GRANTLESS_SCOPES = frozenset(
    {"sellingpartnerapi::notifications", "sellingpartnerapi::client_credential:rotation"}
)
INVALID_GRANT_MESSAGE = (
    "The request has an invalid grant parameter : refresh_token. User may have revoked or "
    "didn't grant the permission."
)
# Form fields that are secrets: the call log shows them as redacted.
SECRET_FIELDS = frozenset({"refresh_token", "client_secret", "code"})
REDACTED = "[REDACTED]"


class TokenRequestError(ValueError):
    """The token request body could not be read."""


def lwa_error(status: int, error: str, description: str) -> Reply:
    """Return an LWA error response."""
    return Reply(status, {"error_description": description, "error": error})


def parse_token_request(body: bytes, content_type: str) -> dict[str, str]:
    """Read the fields of a token request, form-encoded or JSON.

    Raises:
        TokenRequestError: the body is neither a form nor a JSON object of strings.
    """
    media_type = content_type.split(";", 1)[0].strip().lower()
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TokenRequestError("the request body is not UTF-8") from exc
    if media_type == "application/json":
        try:
            fields = json.loads(text)
        except json.JSONDecodeError as exc:
            raise TokenRequestError("the request body is not valid JSON") from exc
        if not isinstance(fields, dict):
            raise TokenRequestError("the JSON request body is not an object")
        return {str(key): str(value) for key, value in fields.items() if value is not None}
    if media_type in ("application/x-www-form-urlencoded", ""):
        return dict(parse_qsl(text, keep_blank_values=True))
    raise TokenRequestError(f"unsupported content type {media_type!r}")


def redact(fields: dict[str, str]) -> dict[str, str]:
    """Return the fields with secrets replaced, for the call log."""
    return {key: REDACTED if key in SECRET_FIELDS else value for key, value in fields.items()}


def respond_to_token_request(
    state: SandboxState, fields: dict[str, str], fired: list[FiredFault], now: datetime
) -> tuple[Reply, str | None]:
    """Build the response to a token request, after the faults that fired on it.

    Returns:
        The reply and the seller id of the refresh token (None for grantless requests).
    """
    problem = _apply_faults(state, fields, fired) or _check_client(state, fields)
    if problem is not None:
        return problem, None

    grant_type = fields.get("grant_type")
    if grant_type == "refresh_token":
        return _refresh_token_grant(state, fields, now)
    if grant_type == "client_credentials":
        return _client_credentials_grant(state, fields, now), None
    if not grant_type:
        return _missing("grant_type"), None
    return lwa_error(
        400,
        "unsupported_grant_type",
        "The authorization grant type is not supported by the authorization server",
    ), None


def _apply_faults(
    state: SandboxState, fields: dict[str, str], fired: list[FiredFault]
) -> Reply | None:
    for fault in fired:
        kind = fault.rule.kind
        target = fault.rule.refresh_token or fields.get("refresh_token")
        if kind == "revoke" and target:
            state.revoke(target)
        elif kind == "throttle":
            # NOTE: LWA does not document its throttling response; this body is a guess.
            return lwa_error(429, "server_error", "Rate exceeded: too many token requests.")
        elif kind == "server_error":
            return lwa_error(fault.rule.status, "server_error", "Internal server error")
        elif kind == "invalid_client":
            return lwa_error(401, "invalid_client", "Client authentication failed")
    return None


def _missing(name: str) -> Reply:
    return lwa_error(
        400, "invalid_request", f"The request is missing a required parameter : {name}"
    )


def _check_client(state: SandboxState, fields: dict[str, str]) -> Reply | None:
    for name in ("client_id", "client_secret"):
        if not fields.get(name):
            return _missing(name)
    config = state.config
    if not config.check_client:
        return None
    accepted = (config.client_secret, *config.retiring_client_secrets)
    if fields["client_id"] != config.client_id or fields["client_secret"] not in accepted:
        return lwa_error(401, "invalid_client", "Client authentication failed")
    return None


def _refresh_token_grant(
    state: SandboxState, fields: dict[str, str], now: datetime
) -> tuple[Reply, str | None]:
    refresh_token = fields.get("refresh_token")
    if not refresh_token:
        return _missing("refresh_token"), None

    with state.lock:
        if state.tokens.is_revoked(refresh_token):
            return lwa_error(400, "invalid_grant", INVALID_GRANT_MESSAGE), None
        seller = state.orderbook.seller(refresh_token)
        lifetime = state.config.token_lifetime
        access_token = state.tokens.issue(
            now, lifetime, refresh_token=refresh_token, seller_id=seller.seller_id
        )

    body = {
        "access_token": access_token,
        "refresh_token": refresh_token,
        "token_type": "bearer",
        "expires_in": lifetime,
    }
    return Reply(200, body), seller.seller_id


def _client_credentials_grant(state: SandboxState, fields: dict[str, str], now: datetime) -> Reply:
    scope = fields.get("scope")
    if not scope:
        return _missing("scope")
    if scope not in GRANTLESS_SCOPES:
        return lwa_error(400, "invalid_scope", "The request has an invalid parameter : scope")

    with state.lock:
        lifetime = state.config.token_lifetime
        access_token = state.tokens.issue(now, lifetime, scope=scope)
    return Reply(
        200,
        {
            "access_token": access_token,
            "scope": scope,
            "token_type": "bearer",
            "expires_in": lifetime,
        },
    )
