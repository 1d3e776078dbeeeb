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

The client secret belongs to the application, not to one account, so every provider of a
process shares one :class:`ClientCredentials`. When LWA returns ``invalid_client`` for the
current secret and a next one is configured, the next one is tried at once and used by every
provider from then on. When no secret is left to try, the application is marked refused: no
provider calls LWA again until ``failure_recheck`` seconds pass, and then one call checks.
Secrets appear in logs only as the first 8 hex digits of their SHA-256 fingerprint.
"""

from __future__ import annotations

import hashlib
import math
import threading
import time
from collections.abc import Callable, Generator
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from syncd import errors, metrics
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


FINGERPRINT_SHOWN = 8  # hex digits of a secret's fingerprint that logs and messages show


@dataclass(frozen=True)
class LwaClient:
    """The application's LWA identity and where to exchange tokens.

    ``client_secret_next`` is the secret Amazon issued to replace ``client_secret``; it is
    tried when LWA refuses the current one.
    """

    client_id: str
    client_secret: SecretStr
    token_url: str
    client_secret_next: SecretStr | None = None

    @property
    def secrets(self) -> tuple[SecretStr, ...]:
        """The secrets to try, in order: the current one, then the next one if it is set."""
        if self.client_secret_next is None or self.client_secret_next == self.client_secret:
            return (self.client_secret,)
        return (self.client_secret, self.client_secret_next)


def fingerprint(secret: SecretStr) -> str:
    """Return the SHA-256 of a secret in hex, which identifies it without revealing it."""
    return hashlib.sha256(secret.get_secret_value().encode("utf-8")).hexdigest()


class ClientCredentials:
    """The application's LWA client and which of its secrets is in use; thread-safe.

    Shared by every :class:`TokenProvider` of a process, so a secret LWA refused for one
    account is not sent again for another. ``refused`` lists fingerprints known to be refused
    (stored by an earlier process), which are skipped when another secret is left.
    ``on_refused`` and ``on_used`` receive a secret's fingerprint after LWA refused it or
    issued a token with it; the caller may record them in the database.
    """

    def __init__(
        self,
        lwa: LwaClient,
        *,
        failure_recheck: float = 3600.0,
        monotonic_clock: Callable[[], float] = monotonic,
        refused: frozenset[str] = frozenset(),
        on_refused: Callable[[str], None] | None = None,
        on_used: Callable[[str], None] | None = None,
    ) -> None:
        self._failure_recheck = failure_recheck
        self._monotonic = monotonic_clock
        self._on_refused = on_refused
        self._on_used = on_used
        self._lock = threading.Lock()
        self._refused_fingerprints = set(refused)
        # The application-wide invalid_client and when it was last checked, once no secret
        # is left to try.
        self._failure: tuple[errors.InvalidClientError, float] | None = None
        self._lwa = lwa
        self._index = self._first_usable(lwa)

    @property
    def lwa(self) -> LwaClient:
        """The client id, secrets and token URL in force."""
        with self._lock:
            return self._lwa

    @property
    def secret_in_use(self) -> SecretStr:
        """The secret the next token request sends."""
        with self._lock:
            return self._lwa.secrets[self._index]

    @property
    def is_refused(self) -> bool:
        """True while LWA has refused every configured secret."""
        with self._lock:
            return self._failure is not None

    def refused_fingerprints(self) -> frozenset[str]:
        """Return the fingerprints of the secrets LWA rejected, as seen by this process."""
        with self._lock:
            return frozenset(self._refused_fingerprints)

    def replace(self, lwa: LwaClient) -> None:
        """Use new settings (a reload); a remembered refusal ends when anything changed.

        Requests already sent finish with the secret they carry.
        """
        with self._lock:
            if lwa == self._lwa:
                return
            same_secrets = lwa.secrets == self._lwa.secrets
            in_use = self._lwa.secrets[self._index]
            self._lwa = lwa
            self._failure = None
            self._index = (
                lwa.secrets.index(in_use)
                if same_secrets and in_use in lwa.secrets
                else self._first_usable(lwa)
            )

    def raise_if_refused(self) -> None:
        """Raise the application's remembered ``invalid_client`` until it is due a check.

        Raises:
            errors.InvalidClientError: LWA refused every secret less than
                ``failure_recheck`` seconds ago.
        """
        with self._lock:
            if self._failure is None:
                return
            failure, since = self._failure
            if self._monotonic() - since < self._failure_recheck:
                raise failure

    def is_remembered(self, error: errors.AuthError) -> bool:
        """Return True when ``error`` is the remembered rejection raised again, not a new one."""
        with self._lock:
            return self._failure is not None and self._failure[0] is error

    def choose(self) -> tuple[LwaClient, SecretStr]:
        """Return the settings and the secret for one token request.

        After ``failure_recheck`` seconds, one caller checks a refused application again
        while the others keep getting the remembered error.

        Raises:
            errors.InvalidClientError: the application is refused and another caller checks.
        """
        with self._lock:
            if self._failure is not None:
                failure, since = self._failure
                now = self._monotonic()
                if now - since < self._failure_recheck:
                    raise failure
                self._failure = (failure, now)
            return self._lwa, self._lwa.secrets[self._index]

    def accept(self, secret: SecretStr) -> None:
        """Note that LWA issued a token with ``secret``."""
        with self._lock:
            if self._failure is not None and secret == self._lwa.secrets[self._index]:
                self._failure = None
                log.info("lwa_client_accepted", fingerprint=_shown(secret))
        if self._on_used is not None:
            self._on_used(fingerprint(secret))

    def refuse(self, secret: SecretStr, error: errors.InvalidClientError) -> bool:
        """Note that LWA refused ``secret`` and switch to the next one if there is one.

        Returns:
            True when the caller should send its request again at once, with the secret
            :meth:`choose` returns now; False when no secret is left to try.
        """
        refused = fingerprint(secret)
        with self._lock:
            self._refused_fingerprints.add(refused)
            secrets = self._lwa.secrets
            if secrets[self._index] != secret:
                # Another thread switched already, or a reload brought other secrets.
                return True
            if self._index + 1 < len(secrets):
                self._index += 1
                log.warning("lwa_client_secret_refused", fingerprint=refused[:FINGERPRINT_SHOWN])
                log.warning(
                    "lwa_client_secret_next_in_use", fingerprint=_shown(secrets[self._index])
                )
                switched = True
            else:
                if self._failure is None:
                    log.error(
                        "lwa_client_invalid",
                        client_id=self._lwa.client_id,
                        fingerprint=refused[:FINGERPRINT_SHOWN],
                        secrets_tried=len(secrets),
                        status_code=error.status_code,
                        recheck_seconds=self._failure_recheck,
                    )
                self._failure = (error, self._monotonic())
                switched = False
        if self._on_refused is not None:
            self._on_refused(refused)
        return switched

    def _first_usable(self, lwa: LwaClient) -> int:
        """Return the index of the first secret not known to be refused (0 if all are)."""
        for index, secret in enumerate(lwa.secrets):
            if fingerprint(secret) not in self._refused_fingerprints:
                return index
        return 0


def _shown(secret: SecretStr) -> str:
    return fingerprint(secret)[:FINGERPRINT_SHOWN]


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
        lwa: LwaClient | ClientCredentials,
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
        self._credentials = (
            lwa
            if isinstance(lwa, ClientCredentials)
            else ClientCredentials(
                lwa, failure_recheck=failure_recheck, monotonic_clock=monotonic_clock
            )
        )
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
            self._credentials.raise_if_refused()
            # A refresh that failed while this thread waited for the lock has just spent the
            # retry budget. Repeating it at once would multiply the load on a failing LWA.
            if self._transient is not None and self._transient[1] > waiting_since:
                raise self._transient[0]
            try:
                self._token = self._refresh()
            except errors.RetryableApiError as exc:
                metrics.count_token_refresh_failure(self.account, None)
                self._transient = (exc, self._monotonic())
                raise
            except errors.AuthError as exc:
                metrics.count_token_refresh_failure(self.account, exc.lwa_error)
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

    def _form(self, client_id: str, secret: SecretStr) -> dict[str, str]:
        form = {"client_id": client_id, "client_secret": secret.get_secret_value()}
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
                if self._credentials.is_remembered(exc):
                    raise  # another provider found and logged it
                if not isinstance(exc, errors.InvalidClientError):
                    # invalid_client concerns the application: the shared credentials keep it.
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
        while True:
            lwa, secret = self._credentials.choose()
            response = self._post(lwa, secret)
            body = _json_object(response)
            if response.status_code == 200 and isinstance(body.get("access_token"), str):
                self._credentials.accept(secret)
                return self._accept(body, sent_at)
            error = body.get("error")
            if isinstance(error, str) and not _is_transient(response.status_code, error):
                # LWA's own verdict on the request: it stays the same until a person acts,
                # except that a refused client secret may have a successor to try at once.
                failure = _auth_error(response.status_code, body, self.account)
                if isinstance(failure, errors.InvalidClientError) and self._credentials.refuse(
                    secret, failure
                ):
                    sent_at = self._monotonic()
                    continue
                raise failure
            raise _transient_error(response, body)

    def _post(self, lwa: LwaClient, secret: SecretStr) -> httpx.Response:
        try:
            response = self._http.post(lwa.token_url, data=self._form(lwa.client_id, secret))
        except httpx.TransportError as exc:
            raise errors.RetryableApiError(
                _LWA_OPERATION.name,
                None,
                None,
                f"{type(exc).__name__} from {lwa.token_url}: {exc}",
            ) from exc
        if self._clock is not None:
            # LWA's clock is Amazon's too, but only a first guess until SP-API responses replace it.
            self._clock.observe_date_header(response.headers.get("date"), provisional=True)
        return response

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


def _transient_error(response: httpx.Response, body: dict[str, Any]) -> errors.RetryableApiError:
    """Return the error for a token response that may succeed when sent again."""
    error = body.get("error")
    if isinstance(error, str):
        return errors.RetryableApiError(
            _LWA_OPERATION.name,
            response.status_code,
            error,
            str(body.get("error_description") or error),
        )
    # Anything else came from something between us and LWA, such as a proxy's error page,
    # a captive portal or an overloaded gateway. It may pass, so it is retried.
    return errors.RetryableApiError(
        _LWA_OPERATION.name, response.status_code, None, _text_excerpt(response)
    )


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
