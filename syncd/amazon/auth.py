"""Login with Amazon (LWA) access tokens, cached per account and sent as an ``httpx.Auth``.

A :class:`TokenProvider` exchanges one refresh token (or, for grantless operations, the
client credentials and a scope) for access tokens and caches the current one. It refreshes
ahead of expiry, under a lock, so many threads that need a token at once cause one refresh.
Expiry counts from the moment the refresh request was sent, minus a safety margin.

:class:`LwaAuth` puts the token into ``x-amz-access-token``. When SP-API returns 403 because
the token expired anyway (a clock jump, a token revoked early), it refreshes once and
replays the request once.

An error LWA itself returns (``invalid_grant``, ``invalid_client``, ``invalid_scope`` …) is
permanent until a person acts: the provider remembers it and raises it again without
calling LWA until ``failure_recheck`` seconds pass. Failures that may pass (5xx, 429, a
network error, a proxy's page) are retried with backoff instead.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from syncd import errors
from syncd.amazon import outcomes
from syncd.amazon.clock import AmazonClock, monotonic
from syncd.amazon.operations import Operation
from syncd.amazon.retry import RetryPolicy
from syncd.logs import get_logger

log = get_logger(__name__)

ACCESS_TOKEN_HEADER = "x-amz-access-token"
# Request extension under which the client passes the Operation to the auth flow.
OPERATION_EXTENSION = "syncd_operation"
_LWA_OPERATION = Operation("lwaToken", "POST", "/auth/o2/token", idempotent=True)


@dataclass(frozen=True)
class LwaClient:
    """The application's LWA identity and where to exchange tokens."""

    client_id: str
    client_secret: SecretStr
    token_url: str


@dataclass(frozen=True)
class AccessToken:
    """A cached access token; ``repr`` never shows its value."""

    value: str = field(repr=False)
    expires_in: float  # seconds, as LWA reported it
    refresh_due: float  # monotonic time after which it is refreshed


class TokenProvider:
    """Issues access tokens for one refresh token, or for one grantless scope."""

    def __init__(
        self,
        http: httpx.Client,
        lwa: LwaClient,
        *,
        account: str,
        refresh_token: SecretStr | None = None,
        scope: str | None = None,
        refresh_margin: float = 300.0,
        failure_recheck: float = 3600.0,
        retry: RetryPolicy | None = None,
        clock: AmazonClock | None = None,
        monotonic_clock: Callable[[], float] = monotonic,
        sleep: Callable[[float], None] = time.sleep,
        on_refresh_token_rotated: Callable[[SecretStr], None] | None = None,
    ) -> None:
        if (refresh_token is None) == (scope is None):
            raise ValueError("give exactly one of refresh_token and scope")
        self._http = http
        self._lwa = lwa
        self.account = account
        self.initial_refresh_token = refresh_token
        self._refresh_token = refresh_token
        self._scope = scope
        self._refresh_margin = refresh_margin
        self._failure_recheck = failure_recheck
        self._retry = retry or RetryPolicy(max_attempts=3, max_seconds=60.0)
        self._clock = clock
        self._monotonic = monotonic_clock
        self._sleep = sleep
        self._on_rotated = on_refresh_token_rotated
        self._token: AccessToken | None = None
        self._failure: tuple[errors.AuthError, float] | None = None
        self._transient: tuple[errors.RetryableApiError, float] | None = None
        self._lock = threading.Lock()

    @property
    def refresh_token(self) -> SecretStr | None:
        """The refresh token in use; LWA may have rotated it since the provider was built."""
        return self._refresh_token

    def get(self) -> AccessToken:
        """Return a valid access token, refreshing it first when it is due.

        Raises:
            errors.InvalidGrantError: the refresh token was revoked (remembered for a while).
            errors.InvalidClientError: the client id or secret was rejected (remembered too).
            errors.AuthError: LWA rejected the request for another reason (remembered too).
            errors.RetryableApiError: LWA was unreachable or failed after the retries.
        """
        token = self._token
        if token is not None and self._monotonic() < token.refresh_due:
            return token
        waiting_since = self._monotonic()
        with self._lock:
            token = self._token
            if token is not None and self._monotonic() < token.refresh_due:
                return token
            self._raise_remembered_failure()
            # A refresh that failed while this thread waited for the lock has just spent the
            # retry budget. Repeating it at once would multiply the load on a failing LWA.
            if self._transient is not None and self._transient[1] > waiting_since:
                raise self._transient[0]
            try:
                self._token = self._refresh()
            except errors.RetryableApiError as exc:
                self._transient = (exc, self._monotonic())
                raise
            return self._token

    def invalidate(self, token: AccessToken) -> None:
        """Drop ``token`` so the next :meth:`get` refreshes; a newer token is kept."""
        with self._lock:
            if self._token is token:
                self._token = None

    def _raise_remembered_failure(self) -> None:
        if self._failure is None:
            return
        failure, since = self._failure
        if self._monotonic() - since < self._failure_recheck:
            raise failure
        self._failure = None

    def _form(self) -> dict[str, str]:
        form = {
            "client_id": self._lwa.client_id,
            "client_secret": self._lwa.client_secret.get_secret_value(),
        }
        if self._refresh_token is not None:
            form["grant_type"] = "refresh_token"
            form["refresh_token"] = self._refresh_token.get_secret_value()
        else:
            assert self._scope is not None
            form["grant_type"] = "client_credentials"
            form["scope"] = self._scope
        return form

    def _refresh(self) -> AccessToken:
        started = self._monotonic()
        attempt = 0
        while True:
            attempt += 1
            sent_at = self._monotonic()
            try:
                return self._exchange(sent_at)
            except errors.RetryableApiError as exc:
                delay = self._retry.delay(attempt)
                if not self._retry.allows(attempt, self._monotonic() - started, delay):
                    log.error(
                        "lwa_token_refresh_failed",
                        account=self.account,
                        attempts=attempt,
                        status_code=exc.status_code,
                        error=str(exc),
                    )
                    raise
                log.warning(
                    "lwa_token_refresh_retried",
                    account=self.account,
                    attempt=attempt,
                    delay_seconds=round(delay, 3),
                    status_code=exc.status_code,
                    error=exc.error_message,
                )
                self._sleep(delay)
            except errors.AuthError as exc:
                self._failure = (exc, self._monotonic())
                log.error(
                    "lwa_token_refresh_failed",
                    account=self.account,
                    lwa_error=exc.lwa_error,
                    status_code=exc.status_code,
                    error=str(exc),
                )
                raise

    def _exchange(self, sent_at: float) -> AccessToken:
        try:
            response = self._http.post(self._lwa.token_url, data=self._form())
        except httpx.TransportError as exc:
            raise errors.RetryableApiError(
                _LWA_OPERATION.name,
                None,
                None,
                f"{type(exc).__name__} from {self._lwa.token_url}: {exc}",
            ) from exc
        if self._clock is not None:
            # LWA's clock is Amazon's too, but only a first guess until SP-API responses replace it.
            self._clock.observe_date_header(response.headers.get("date"), provisional=True)
        body = _json_object(response)
        if response.status_code == 200 and isinstance(body.get("access_token"), str):
            return self._accept(body, sent_at)
        error = body.get("error")
        if isinstance(error, str) and not _is_transient(response.status_code, error):
            # LWA's own verdict on the request: it stays the same until a person acts.
            raise _auth_error(response.status_code, body, self.account)
        if isinstance(error, str):
            raise errors.RetryableApiError(
                _LWA_OPERATION.name,
                response.status_code,
                error,
                str(body.get("error_description") or error),
            )
        # Anything else came from something between us and LWA, such as a proxy's error page,
        # a captive portal or an overloaded gateway. It may pass, so it is retried.
        raise errors.RetryableApiError(
            _LWA_OPERATION.name, response.status_code, None, _text_excerpt(response)
        )

    def _accept(self, body: dict[str, Any], sent_at: float) -> AccessToken:
        expires_in = _lifetime(body.get("expires_in"), self.account)
        margin = min(self._refresh_margin, expires_in / 2)
        rotated = body.get("refresh_token")
        if (
            self._refresh_token is not None
            and isinstance(rotated, str)
            and rotated
            and rotated != self._refresh_token.get_secret_value()
        ):
            self._refresh_token = SecretStr(rotated)
            log.info("lwa_refresh_token_rotated", account=self.account)
            if self._on_rotated is not None:
                self._on_rotated(self._refresh_token)
        log.info(
            "lwa_token_refreshed",
            account=self.account,
            grant="refresh_token" if self._scope is None else "client_credentials",
            token_lifetime=expires_in,
            duration_ms=round((self._monotonic() - sent_at) * 1000),
        )
        return AccessToken(
            value=str(body["access_token"]),
            expires_in=expires_in,
            refresh_due=sent_at + expires_in - margin,
        )


_DEFAULT_LIFETIME = 3600.0  # seconds; LWA's documented access token lifetime


def _lifetime(value: Any, account: str) -> float:
    """Read ``expires_in``; an unusable value falls back to LWA's usual hour, with a warning."""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = float("nan")
    if not math.isfinite(seconds) or seconds <= 0:
        log.warning("lwa_expires_in_invalid", account=account, expires_in=str(value)[:40])
        return _DEFAULT_LIFETIME
    return seconds


def _json_object(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _text_excerpt(response: httpx.Response) -> str:
    text = " ".join(response.text.split())
    return f"HTTP {response.status_code}: {text[:200]}" if text else f"HTTP {response.status_code}"


# The OAuth 2.0 error codes for a server that failed or is overloaded (RFC 6749, 4.1.2.1);
# LWA may send them from its token endpoint too.
_TRANSIENT_LWA_ERRORS = frozenset({"server_error", "temporarily_unavailable"})


def _is_transient(status_code: int, error: str) -> bool:
    """True for an LWA error that may pass: a 5xx, a 429, or a server-side OAuth error."""
    return status_code >= 500 or status_code == 429 or error in _TRANSIENT_LWA_ERRORS


def _auth_error(status_code: int, body: dict[str, Any], account: str) -> errors.AuthError:
    code = str(body["error"])
    description = str(body.get("error_description") or "")
    if code == "invalid_grant":
        return errors.InvalidGrantError(code, status_code, description, account)
    if code == "invalid_client":
        return errors.InvalidClientError(code, status_code, description, account)
    return errors.AuthError(code, status_code, description, account)


class LwaAuth(httpx.Auth):
    """Sends the provider's access token; one refresh and one replay on an expired token.

    One instance serves one call, however many attempts it makes, so a call replays at most
    once. ``before_replay`` runs before the replay is sent (the client takes a quota token
    there); when it returns False, the expired-token response is returned instead.
    """

    def __init__(
        self, provider: TokenProvider, before_replay: Callable[[], bool] | None = None
    ) -> None:
        self.provider = provider
        self._before_replay = before_replay
        self.replayed = False

    def sync_auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response]:
        token = self.provider.get()
        request.headers[ACCESS_TOKEN_HEADER] = token.value
        response = yield request

        if self.replayed or not self._is_expired_token(request, response):
            return
        log.warning(
            "access_token_expired",
            account=self.provider.account,
            request_id=response.headers.get("x-amzn-requestid"),
        )
        self.replayed = True
        self.provider.invalidate(token)
        request.headers[ACCESS_TOKEN_HEADER] = self.provider.get().value
        if self._before_replay is not None and not self._before_replay():
            return
        yield request

    @staticmethod
    def _is_expired_token(request: httpx.Request, response: httpx.Response) -> bool:
        if response.status_code != 403:
            return False
        response.read()
        operation = request.extensions.get(OPERATION_EXTENSION, _LWA_OPERATION)
        rule = outcomes.classify(outcomes.outcome_from_response(operation, response))
        return rule.action is outcomes.Action.REFRESH_AND_REPLAY
