"""Exceptions raised by syncd, grouped by what the caller should do next.

Every exception has :class:`SyncdError` as its root and builds its own message from the ids
it carries, so a raise site is one line and ``str(exc)`` is never empty::

    SyncdError
    ├── ConfigError                  fix the settings or the account, then start again
    │   ├── SettingsError            one or more settings are invalid (lists every field)
    │   ├── MarketplaceError         unknown marketplace id, or one sent to the wrong region
    │   └── AccountError             no such account, a taken name, or an unusable token file
    ├── AuthError                    LWA refused us; fatal until a person fixes the credentials
    │   ├── InvalidGrantError        the refresh token was revoked: the seller must re-authorize
    │   └── InvalidClientError       the LWA client id or secret is wrong or expired
    ├── ApiError                     SP-API returned an error, or no response arrived
    │   ├── RetryableApiError        429, 5xx, timeouts on idempotent calls: retry later
    │   │   ├── ThrottledError       429 QuotaExceeded
    │   │   └── AccessTokenExpiredError  a fresh access token was reported expired too
    │   ├── WindowTooRecentError     the two-minute rule: clamp the window and retry once
    │   ├── OutcomeUnknownError      a call that creates something may or may not have run
    │   └── FatalApiError            everything else, including responses no rule matches
    │       ├── AccessDeniedError    403 that is not an expired token (missing role)
    │       └── PaginationTokenError Amazon rejected a page token (expired or params changed)
    ├── PaginationError              a page token repeated: the pages would loop
    ├── RecordError                  one record (an order) is unusable: skip it, go on
    ├── StoreError                   the database is unreachable, missing a driver, or failed
    ├── CursorError                  a watermark would move backwards or past its bound
    ├── RequestError                 syncd refused to build a request that Amazon would reject
    └── StoppedError                 the process is stopping: the call was not sent

No exception carries a secret: access tokens, refresh tokens and client secrets are never
passed to a constructor.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from syncd.i18n import gettext as _


class SyncdError(Exception):
    """Root of every error syncd raises on purpose."""


# -- configuration ------------------------------------------------------------------------------


class ConfigError(SyncdError):
    """The settings or an account's configuration are wrong; a person must fix them."""


@dataclass(frozen=True)
class SettingProblem:
    """One invalid setting: the environment variable, the value seen and the expected form."""

    variable: str
    value: str | None
    expected: str


class SettingsError(ConfigError):
    """One or more settings are invalid; the message names every one of them."""

    def __init__(self, problems: Sequence[SettingProblem]) -> None:
        self.problems = tuple(problems)
        lines = [_("Invalid settings ({count}):").format(count=len(self.problems))]
        for problem in self.problems:
            shown = _("(not set)") if problem.value is None else repr(problem.value)
            lines.append(
                _("  {variable} = {value}: expected {expected}").format(
                    variable=problem.variable, value=shown, expected=problem.expected
                )
            )
        super().__init__("\n".join(lines))


class MarketplaceError(ConfigError):
    """A marketplace id is unknown or belongs to another region than the one addressed."""

    def __init__(
        self, marketplace_id: str, region: str | None, expected_region: str | None
    ) -> None:
        self.marketplace_id = marketplace_id
        self.region = region
        self.expected_region = expected_region
        if expected_region is None:
            message = _(
                "Unknown marketplace id {marketplace_id!r}: use one of the ids listed by "
                "'syncd marketplaces'."
            ).format(marketplace_id=marketplace_id)
        else:
            message = _(
                "Marketplace {marketplace_id} belongs to region {expected_region}, not "
                "{region}: add it to an account of region {expected_region}."
            ).format(
                marketplace_id=marketplace_id,
                expected_region=expected_region.upper(),
                region=(region or "?").upper(),
            )
        super().__init__(message)


class AccountError(ConfigError):
    """An account command cannot be carried out as given."""

    def __init__(self, name: str, reason: str) -> None:
        self.name = name
        self.reason = reason
        super().__init__(_("Account {name!r}: {reason}.").format(name=name, reason=reason))


# -- LWA ----------------------------------------------------------------------------------------


class AuthError(SyncdError):
    """Login with Amazon refused to issue an access token.

    Carries the LWA error code and the HTTP status, never the refresh token or the secret.
    """

    def __init__(
        self,
        lwa_error: str | None,
        status_code: int | None,
        description: str = "",
        account: str | None = None,
    ) -> None:
        self.lwa_error = lwa_error
        self.status_code = status_code
        self.description = description
        self.account = account
        super().__init__(self._build_message())

    def _build_message(self) -> str:
        return _(
            "LWA refused the token request (HTTP {status}, error {error}): {description}"
        ).format(status=self.status_code, error=self.lwa_error, description=self.description or "-")


class InvalidGrantError(AuthError):
    """The refresh token was revoked or never granted: the seller must authorize again."""

    def _build_message(self) -> str:
        return _(
            "LWA rejected the refresh token (invalid_grant): the seller revoked or never granted "
            "access. Authorize the application again in Seller Central and store the new "
            "refresh token with 'syncd account set-token {account} --refresh-token-file FILE'; "
            "a running daemon picks it up without a restart."
        ).format(account=self.account or _("NAME"))


class InvalidClientError(AuthError):
    """LWA rejected the application's client id or secret (often a secret older than 180 days)."""

    def _build_message(self) -> str:
        return _(
            "LWA rejected the client credentials (invalid_client): check SYNCD_LWA_CLIENT_ID and "
            "SYNCD_LWA_CLIENT_SECRET; LWA client secrets expire every 180 days."
        )


# -- SP-API -------------------------------------------------------------------------------------


class ApiError(SyncdError):
    """An SP-API call failed; carries the status, error code, message and request id."""

    def __init__(
        self,
        operation: str,
        status_code: int | None,
        error_code: str | None = None,
        message: str = "",
        request_id: str | None = None,
        *,
        details: str = "",
        retry_after: float | None = None,
    ) -> None:
        self.operation = operation
        self.status_code = status_code
        self.error_code = error_code
        self.error_message = message
        self.details = details
        self.request_id = request_id
        self.retry_after = retry_after
        super().__init__(self._build_message())

    def _build_message(self) -> str:
        text = self.error_message or "-"
        if self.details and self.details not in text:
            text = f"{text} ({self.details})"
        if self.status_code is None:
            # No HTTP response at all: the network, a proxy or an endpoint setting is at fault.
            return _(
                "{operation} failed without a response: {message}. Check this server's network "
                "connection and firewall, the proxy setting SYNCD_HTTPS_PROXY, and the endpoint "
                "settings SYNCD_LWA_TOKEN_URL and SYNCD_SPAPI_ENDPOINT_*."
            ).format(operation=self.operation, message=text)
        return _(
            "{operation} failed: HTTP {status}, code {code}, request id {request_id}: {message}"
        ).format(
            operation=self.operation,
            status=self.status_code if self.status_code is not None else "-",
            code=self.error_code or "-",
            request_id=self.request_id or "-",
            message=text,
        )


class RetryableApiError(ApiError):
    """A transient failure (429, 5xx, timeout) of a call that is safe to repeat."""


class ThrottledError(RetryableApiError):
    """Amazon returned 429: the usage plan's bucket for this operation is empty."""


class AccessTokenExpiredError(RetryableApiError):
    """SP-API reported an access token expired again right after a refresh and replay.

    The refresh token is fine, so this is no reason to ask for re-authorization: Amazon has
    had incidents where every fresh token was reported expired. The caller backs off and
    tries later.
    """

    def _build_message(self) -> str:
        return _(
            "{operation}: SP-API reported an expired access token again right after a refresh "
            "(request id {request_id}); retry later, and check the server clock and the LWA "
            "token URL if it persists."
        ).format(operation=self.operation, request_id=self.request_id or "-")


class WindowTooRecentError(ApiError):
    """The two-minute rule: a ``*Before`` bound was too close to Amazon's current time."""


class OutcomeUnknownError(ApiError):
    """A call that creates something failed in a way that leaves its outcome unknown.

    The caller must look the resource up (for example with getReports) before it sends the
    request again, or it may create a duplicate.
    """


class FatalApiError(ApiError):
    """A response that retrying will not change, or one that no rule of the table matches."""


class AccessDeniedError(FatalApiError):
    """403 that is not an expired token: the application lacks a role or the seller's grant."""


class PaginationTokenError(FatalApiError):
    """Amazon rejected a page token: it expired or other parameters changed since page one."""


# -- local checks -------------------------------------------------------------------------------


class PaginationError(SyncdError):
    """Following the page tokens would loop: a token repeated, or pages stopped bringing news."""

    REPEATED_TOKEN = "repeated_token"
    NO_NEW_ITEMS = "no_new_items"

    def __init__(self, operation: str, page_number: int, reason: str = REPEATED_TOKEN) -> None:
        self.operation = operation
        self.page_number = page_number
        self.reason = reason
        if reason == self.NO_NEW_ITEMS:
            text = _(
                "{operation}: pages up to page {page} brought no new items under new page "
                "tokens; paging stopped to avoid a loop, and the window is read again on the next "
                "run. If this repeats, raise the limit (SYNCD_ORDERS_MAX_STALE_PAGES for orders)."
            )
        else:
            text = _(
                "{operation}: page {page} returned a page token that was already used; paging "
                "stopped to avoid a loop."
            )
        super().__init__(text.format(operation=operation, page=page_number))


class StoreError(SyncdError):
    """A database operation failed; the message names the database (password hidden)."""

    def __init__(self, database: str, reason: str, fix: str) -> None:
        self.database = database
        self.reason = reason
        self.fix = fix
        super().__init__(
            _("Database {database}: {reason}. {fix}").format(
                database=database, reason=reason, fix=fix
            )
        )


class RecordError(SyncdError):
    """One record Amazon sent cannot be used; the caller skips it and goes on.

    The reason names fields and rules only, never the record's values, which may carry PII.
    """

    def __init__(self, kind: str, record_id: str | None, reason: str) -> None:
        self.kind = kind
        self.record_id = record_id
        self.reason = reason
        super().__init__(
            _("{kind} {record_id} is unusable: {reason}").format(
                kind=_(kind), record_id=record_id or "?", reason=reason
            )
        )


class CursorError(SyncdError):
    """A checkpoint would move in a way that could lose data; a bug, never retried."""

    def __init__(
        self, stream: str, account_id: int, after: datetime | None, before: datetime | None
    ) -> None:
        self.stream = stream
        self.account_id = account_id
        super().__init__(
            _(
                "Checkpoint {stream} of account {account_id}: refused to use the window "
                "{after} to {before}."
            ).format(stream=stream, account_id=account_id, after=after, before=before)
        )


class StoppedError(SyncdError):
    """The process is stopping (SIGTERM); the call was not sent and can run after a restart."""

    def __init__(self, operation: str) -> None:
        self.operation = operation
        super().__init__(
            _("{operation}: not sent because syncd is stopping.").format(operation=operation)
        )


class LeaseLostError(SyncdError):
    """Another syncd process holds the account's lease, so this one must not write its data."""

    def __init__(self, account: str) -> None:
        self.account = account
        super().__init__(
            _(
                "{account}: another syncd process holds this account's lease, so this process "
                "stopped working on the account and stored nothing more. If no other syncd "
                "process runs, the lease expired while the database was unreachable or the "
                "process stalled; raise SYNCD_LEASE_SECONDS if this repeats."
            ).format(account=account)
        )


class DatasetUnavailableError(SyncdError):
    """Amazon refuses one includedData set of an account's region that it took before.

    The search works without the set, so the request itself is fine: this is taken for a
    fault on Amazon's side, such as the FE endpoint refusing FULFILLMENT in August 2026.
    """

    def __init__(self, account: str, region: str, dataset: str, request_id: str | None) -> None:
        self.account = account
        self.region = region
        self.dataset = dataset
        self.request_id = request_id
        super().__init__(
            _(
                "Amazon's {region} endpoint now refuses searchOrders with "
                "includedData {dataset} (400 InvalidInput, request id {request_id}), which it "
                "accepted before; the same search without {dataset} works. syncd keeps this "
                "account's watermark where it is and tries again every 30 minutes; the orders "
                "arrive once Amazon accepts {dataset} again. If it persists, open a case with "
                "Amazon and quote the request id."
            ).format(
                region=region.upper(),
                dataset=dataset,
                request_id=request_id or "-",
            )
        )


class RequestError(SyncdError):
    """syncd refused to send a request that breaks one of Amazon's documented rules."""

    def __init__(self, operation: str, reason: str) -> None:
        self.operation = operation
        self.reason = reason
        super().__init__(
            _("{operation}: request not sent: {reason}").format(operation=operation, reason=reason)
        )
