"""The SP-API client: one place where every request is paced, authorized, sent and judged.

For each call, :meth:`SpApiClient.call`:

1. checks that every marketplace id in the request belongs to the account's region;
2. takes a token from the (account, region, operation) bucket, waiting if it is empty;
3. sends the request with the account's LWA token, which refreshes and replays itself once
   on an expired-token 403;
4. learns Amazon's clock from ``Date`` and the usage plan from ``x-amzn-RateLimit-Limit``;
5. classifies the outcome with :mod:`syncd.amazon.outcomes` and returns, retries with
   backoff, or raises the exception the table names.

No request is signed and no AWS credential is used: SP-API has not required SigV4 since
October 2023.
"""

from __future__ import annotations

import platform
import socket
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
from pydantic import SecretStr

from syncd import __version__, errors, metrics
from syncd.amazon import marketplaces, outcomes
from syncd.amazon.auth import (
    OPERATION_EXTENSION,
    ClientCredentials,
    LwaAuth,
    LwaClient,
    TokenProvider,
)
from syncd.amazon.clock import AmazonClock, monotonic
from syncd.amazon.marketplaces import Region
from syncd.amazon.operations import Operation
from syncd.amazon.query import Query
from syncd.amazon.retry import RetryPolicy
from syncd.amazon.throttle import BucketRegistry
from syncd.config import Settings
from syncd.logs import get_logger

log = get_logger(__name__)

USER_AGENT = f"syncd/{__version__} (Language=Python/{platform.python_version()})"
AMAZON_LWA_HOST = "api.amazon.com"
GRANTLESS_ACCOUNT = "(grantless)"


@dataclass(frozen=True)
class SellerAccount:
    """One seller authorization in one region; ``repr`` never shows the refresh token."""

    name: str
    region: Region
    refresh_token: SecretStr = field(repr=False)
    marketplace_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class ApiResponse:
    """A successful SP-API response."""

    operation: str
    status_code: int
    body: Any  # parsed JSON; None for an empty body (204)
    headers: httpx.Headers
    request_id: str | None
    attempts: int


@dataclass(frozen=True)
class CallRecord:
    """One attempt of one call, as reported to listeners (run summaries, metrics)."""

    account: str
    region: str
    operation: str
    status_code: int | None
    failure: str | None
    action: str
    attempt: int
    duration_ms: float
    quota_wait_seconds: float
    request_id: str | None

    @property
    def throttled(self) -> bool:
        """True for a 429 response."""
        return self.status_code == 429


def lwa_client(settings: Settings) -> LwaClient:
    """Return the application's LWA client from the settings.

    Raises:
        errors.SettingsError: the LWA client id or secret is not set.
    """
    client_id, secret = settings.require_lwa_credentials()
    return LwaClient(
        client_id, secret, str(settings.lwa_token_url), settings.lwa_client_secret_next
    )


def build_http_client(settings: Settings) -> httpx.Client:
    """Create the process's HTTP client: explicit timeouts and the proxy for every host.

    The proxy in ``SYNCD_HTTPS_PROXY`` covers SP-API, LWA and presigned document hosts alike.
    The standard ``HTTPS_PROXY`` variables are not read: a proxy meant for a shell session
    would otherwise also catch requests to a sandbox on 127.0.0.1.
    """
    timeout = httpx.Timeout(
        connect=settings.http_connect_timeout,
        read=settings.http_read_timeout,
        write=settings.http_write_timeout,
        pool=settings.http_pool_timeout,
    )
    proxy = None if settings.https_proxy is None else str(settings.https_proxy)
    transport = httpx.HTTPTransport(
        proxy=proxy,
        limits=httpx.Limits(max_connections=50, max_keepalive_connections=20),
        # Headers and body of a POST go out in two writes; without TCP_NODELAY the body can
        # wait for the peer's delayed ACK.
        socket_options=[(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)],
    )
    return httpx.Client(
        timeout=timeout,
        transport=transport,
        headers={"user-agent": USER_AGENT},
        follow_redirects=False,
        trust_env=False,
    )


class SpApiClient:
    """Sends SP-API requests for any number of accounts; thread-safe.

    Args:
        settings: endpoints, LWA client, timeouts and retry budget.
        http: the HTTP client to use; built from the settings when omitted.
        clock: Amazon's clock, shared with the callers that compute windows.
        buckets: the quota buckets; one registry per process.
        stop: when set, calls waiting for quota or a retry end with errors.StoppedError
            without sending anything (used on SIGTERM).
        on_refresh_token_rotated: called with the account name, region and new refresh token
            when LWA rotates a refresh token, so the caller can store it.
        credentials: the application's LWA client shared by every provider; built from the
            settings when omitted.

    One process should use one client, because the client keeps the quota buckets.
    """

    def __init__(
        self,
        settings: Settings,
        *,
        http: httpx.Client | None = None,
        clock: AmazonClock | None = None,
        buckets: BucketRegistry | None = None,
        retry: RetryPolicy | None = None,
        sleep: Callable[[float], None] = time.sleep,
        monotonic_clock: Callable[[], float] = monotonic,
        stop: threading.Event | None = None,
        on_refresh_token_rotated: Callable[[str, Region, SecretStr], None] | None = None,
        credentials: ClientCredentials | None = None,
    ) -> None:
        self.settings = settings
        self._credentials = credentials
        self.http = http if http is not None else build_http_client(settings)
        self._owns_http = http is None
        self.clock = clock or AmazonClock()
        self.buckets = buckets or BucketRegistry(application_budget=settings.application_budget)
        self.retry = retry or RetryPolicy.from_settings(settings)
        self._sleep = sleep
        self._monotonic = monotonic_clock
        self._stop = stop
        self._on_rotated = on_refresh_token_rotated
        self._providers: dict[tuple[str, str], TokenProvider] = {}
        self._providers_lock = threading.Lock()
        self._credentials_lock = threading.Lock()
        self._listeners: list[Callable[[CallRecord], None]] = []

    # -- setup ----------------------------------------------------------------------------------

    def close(self) -> None:
        """Close the HTTP client if this object created it."""
        if self._owns_http:
            self.http.close()

    def __enter__(self) -> SpApiClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def add_listener(self, listener: Callable[[CallRecord], None]) -> None:
        """Call ``listener`` after every attempt of every call."""
        self._listeners.append(listener)

    def remove_listener(self, listener: Callable[[CallRecord], None]) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)

    def endpoint(self, region: Region) -> str:
        """Return the base URL for ``region``: the override setting, else Amazon's host."""
        override = self.settings.endpoint_override(region)
        if override is not None:
            return override
        hosts = (
            marketplaces.SANDBOX_HOSTS
            if self.settings.environment == "sandbox"
            else marketplaces.PRODUCTION_HOSTS
        )
        return hosts[region]

    @property
    def credentials(self) -> ClientCredentials:
        """The application's LWA client, which every token provider of this client shares.

        Raises:
            errors.SettingsError: the LWA client id or secret is not set.
        """
        with self._credentials_lock:
            if self._credentials is None:
                self._credentials = ClientCredentials(
                    lwa_client(self.settings),
                    failure_recheck=self.settings.auth_failure_recheck,
                    monotonic_clock=self._monotonic,
                )
            return self._credentials

    def reload(self, settings: Settings) -> None:
        """Use new settings for the next calls; calls in flight finish with the old ones.

        The LWA client (id, secrets, token URL) changes for every provider at its next token
        request. Providers are built anew only when their own settings changed, because a
        new provider has no access token yet and requests one from LWA. The HTTP client, its
        timeouts and proxy, and the retry policy stay as they were built.
        """
        old, self.settings = self.settings, settings
        with self._credentials_lock:
            credentials = self._credentials
        with self._providers_lock:
            if self._provider_settings(old) != self._provider_settings(settings):
                self._providers.clear()
        if credentials is not None and settings.lwa_client_id and settings.lwa_client_secret:
            credentials.replace(lwa_client(settings))

    @staticmethod
    def _provider_settings(settings: Settings) -> tuple[object, ...]:
        return (
            settings.token_refresh_margin,
            settings.auth_failure_recheck,
            httpx.URL(str(settings.lwa_token_url)).host == AMAZON_LWA_HOST,
        )

    def forget_accounts(self, keep: set[tuple[str, str]]) -> int:
        """Drop the providers of accounts not in ``keep`` (name, region); return how many."""
        with self._providers_lock:
            dropped = [
                key
                for key in self._providers
                if key[0] != GRANTLESS_ACCOUNT and (key[0], key[1]) not in keep
            ]
            for key in dropped:
                del self._providers[key]
        return len(dropped)

    def _new_provider(
        self,
        account: str,
        refresh_token: SecretStr | None,
        scope: str | None,
        on_rotated: Callable[[SecretStr], None] | None = None,
    ) -> TokenProvider:
        credentials = self.credentials
        # LWA's Date header is a first guess of Amazon's clock, but only Amazon's own LWA
        # host counts: a vendor's token service may run on any clock.
        is_amazon_lwa = httpx.URL(credentials.lwa.token_url).host == AMAZON_LWA_HOST
        return TokenProvider(
            self.http,
            credentials,
            account=account,
            refresh_token=refresh_token,
            scope=scope,
            refresh_margin=self.settings.token_refresh_margin,
            failure_recheck=self.settings.auth_failure_recheck,
            retry=self.retry,
            clock=self.clock if is_amazon_lwa else None,
            monotonic_clock=self._monotonic,
            sleep=self._sleep,
            on_refresh_token_rotated=on_rotated,
        )

    def token_provider(self, account: SellerAccount) -> TokenProvider:
        """Return the token provider of the account (its name and region).

        The provider is replaced when the account comes with a refresh token that is neither
        the one it was built with nor the one LWA rotated it to: the seller authorized again
        and ``syncd account set-token`` stored the new token. The new provider has forgotten
        the old token's ``invalid_grant``.
        """
        key = (account.name, account.region)
        with self._providers_lock:
            provider = self._providers.get(key)
            if provider is None or account.refresh_token not in (
                provider.initial_refresh_token,
                provider.refresh_token,
            ):
                provider = self._new_provider(
                    account.name, account.refresh_token, None, self._rotation_callback(account)
                )
                self._providers[key] = provider
            return provider

    def _rotation_callback(self, account: SellerAccount) -> Callable[[SecretStr], None] | None:
        on_rotated = self._on_rotated
        if on_rotated is None:
            return None
        return lambda token: on_rotated(account.name, account.region, token)

    def grantless_provider(self, scope: str) -> TokenProvider:
        """Return the provider of grantless tokens for ``scope``."""
        key = (GRANTLESS_ACCOUNT, scope)
        with self._providers_lock:
            provider = self._providers.get(key)
            if provider is None:
                provider = self._new_provider(GRANTLESS_ACCOUNT, None, scope)
                self._providers[key] = provider
            return provider

    # -- calls ----------------------------------------------------------------------------------

    def call(
        self,
        account: SellerAccount,
        operation: Operation,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Query | None = None,
        json_body: Any = None,
        retry: RetryPolicy | None = None,
    ) -> ApiResponse:
        """Send one SP-API request for ``account``, retrying transient failures.

        ``retry`` replaces the client's policy for this call: a job that retries later by
        itself (the shipment outbox) gives up sooner instead of holding its worker.

        Raises:
            errors.MarketplaceError: a marketplace id of the request is in another region.
            errors.AuthError: LWA refused the account's refresh token or the client.
            errors.ApiError: a subclass chosen by :mod:`syncd.amazon.outcomes`.
        """
        target = _Target(account.name, account.region, operation)
        request = self._build_request(target, path_params, query, json_body)
        return self._call(self.token_provider(account), target, request, retry or self.retry)

    def call_grantless(
        self,
        region: Region,
        scope: str,
        operation: Operation,
        *,
        path_params: Mapping[str, str] | None = None,
        query: Query | None = None,
        json_body: Any = None,
    ) -> ApiResponse:
        """Send a grantless request (client_credentials with ``scope``) to ``region``."""
        target = _Target(GRANTLESS_ACCOUNT, region, operation)
        request = self._build_request(target, path_params, query, json_body)
        return self._call(self.grantless_provider(scope), target, request, self.retry)

    def _build_request(
        self,
        target: _Target,
        path_params: Mapping[str, str] | None,
        query: Query | None,
        json_body: Any,
    ) -> httpx.Request:
        # A marketplace of another region is a configuration error: nothing is sent.
        _check_marketplaces(target.region, query, json_body)
        operation = target.operation
        try:
            path = operation.render_path(**(path_params or {}))
        except ValueError as exc:
            raise errors.RequestError(operation.name, str(exc)) from exc
        url = self.endpoint(target.region) + path
        if query is not None and query.params:
            url = f"{url}?{query.encode()}"
        request = self.http.build_request(
            operation.method,
            httpx.URL(url),
            json=json_body,
            extensions={OPERATION_EXTENSION: operation},
        )
        request.headers["accept"] = "application/json"
        return request

    def _call(
        self, provider: TokenProvider, target: _Target, request: httpx.Request, retry: RetryPolicy
    ) -> ApiResponse:
        # The account's bucket, and the application's when a budget caps the operation.
        bucket = self.buckets.pacer(target.account, target.region, target.operation.name)
        # The retry budget starts once the first attempt has its quota token.
        started = self._monotonic()

        def take_replay_token() -> bool:
            # An expired-token replay is one more request to Amazon, so it takes a token too.
            return bucket.acquire(self._stop, started + retry.max_seconds) is not None

        auth = LwaAuth(provider, before_replay=take_replay_token)
        attempt = 0
        last_error: errors.ApiError | None = None
        while True:
            # Pace: the first attempt waits for its token however long that takes; a retry
            # only takes a token that is due within the retry budget.
            attempt += 1
            deadline = None if last_error is None else started + retry.max_seconds
            waited = bucket.acquire(self._stop, deadline)
            if waited is None:
                raise self._not_sent(target, last_error)
            if attempt == 1:
                started = self._monotonic()

            # Send; a request that never reached Amazon gives its token back.
            try:
                outcome, response, body, duration = self._send_once(auth, target.operation, request)
            except errors.SyncdError:
                bucket.refund()  # LWA failed, so nothing went to SP-API
                raise
            if outcome.failure is outcomes.Failure.NOT_SENT:
                bucket.refund()

            # Learn from the response and classify the outcome.
            rule = outcomes.classify(outcome)
            self._observe(target, response)
            self._notify(target, outcome, rule, attempt=attempt, duration=duration, waited=waited)
            if rule.action is outcomes.Action.SUCCESS:
                assert response is not None
                return ApiResponse(
                    target.operation.name,
                    response.status_code,
                    body,
                    response.headers,
                    outcome.request_id,
                    attempt,
                )
            error = outcomes.build_error(rule, outcome)
            if rule.action is outcomes.Action.REFRESH_AND_REPLAY:
                # LwaAuth already refreshed and replayed once in this call.
                raise self._expired_again(target, error)
            if rule.action is not outcomes.Action.RETRY:
                raise error

            # Retry: an empty Amazon bucket empties ours too, then back off.
            if outcome.status == 429:
                bucket.drain()
            self._wait_before_retry(target, rule, error, retry, attempt=attempt, started=started)
            last_error = error

    def _not_sent(self, target: _Target, last_error: errors.ApiError | None) -> errors.SyncdError:
        """Return the error for a call that stops before sending its next attempt."""
        if self._stop is not None and self._stop.is_set():
            return errors.StoppedError(target.operation.name)
        assert last_error is not None
        log.error(
            "retries_exhausted",
            account=target.account,
            operation=target.operation.name,
            reason="the next quota token is due after the retry budget",
            status_code=last_error.status_code,
            request_id=last_error.request_id,
        )
        return last_error

    def _expired_again(self, target: _Target, error: errors.ApiError) -> errors.SyncdError:
        if self._stop is not None and self._stop.is_set():
            return errors.StoppedError(target.operation.name)
        expired = errors.AccessTokenExpiredError(
            target.operation.name,
            error.status_code,
            error.error_code,
            error.error_message,
            error.request_id,
            details=error.details,
        )
        expired.__cause__ = error
        return expired

    def _send_once(
        self, auth: LwaAuth, operation: Operation, request: httpx.Request
    ) -> tuple[outcomes.Outcome, httpx.Response | None, Any, float]:
        sent = self._monotonic()
        try:
            response = self.http.send(request, auth=auth)
        except (httpx.TransportError, httpx.DecodingError) as exc:
            duration = self._monotonic() - sent
            outcome = outcomes.Outcome(
                operation=operation,
                status=None,
                errors=(
                    outcomes.AmazonError(
                        None, f"{type(exc).__name__} from {_origin(request.url)}: {exc}"
                    ),
                ),
                failure=(
                    outcomes.Failure.MALFORMED_BODY
                    if isinstance(exc, httpx.DecodingError)
                    else outcomes.failure_of(exc)
                ),
            )
            return outcome, None, None, duration
        duration = self._monotonic() - sent
        body, body_failure = _parse_body(response)
        return (
            outcomes.outcome_from_response(operation, response, body_failure),
            response,
            body,
            duration,
        )

    def _observe(self, target: _Target, response: httpx.Response | None) -> None:
        if response is None:
            return
        self.clock.observe_date_header(response.headers.get("date"))
        self.buckets.observe_rate_limit(
            target.account,
            target.region,
            target.operation.name,
            response.headers.get("x-amzn-ratelimit-limit"),
        )

    def _notify(
        self,
        target: _Target,
        outcome: outcomes.Outcome,
        rule: outcomes.Rule,
        *,
        attempt: int,
        duration: float,
        waited: float,
    ) -> None:
        record = CallRecord(
            account=target.account,
            region=target.region,
            operation=target.operation.name,
            status_code=outcome.status,
            failure=None if outcome.failure is None else outcome.failure.value,
            action=rule.action.value,
            attempt=attempt,
            duration_ms=round(duration * 1000, 1),
            quota_wait_seconds=round(waited, 3),
            request_id=outcome.request_id,
        )
        log.debug("api_call_finished", **record.__dict__)
        metrics.count_api_call(record.operation, record.status_code)
        for listener in self._listeners:
            listener(record)

    def _wait_before_retry(
        self,
        target: _Target,
        rule: outcomes.Rule,
        error: errors.ApiError,
        retry: RetryPolicy,
        *,
        attempt: int,
        started: float,
    ) -> None:
        delay = retry.delay(attempt, error.retry_after)
        elapsed = self._monotonic() - started
        event_keys = {
            "account": target.account,
            "operation": target.operation.name,
            "attempt": attempt,
            "status_code": error.status_code,
            "error_code": error.error_code,
            "request_id": error.request_id,
            "reason": rule.reason,
        }
        if not retry.allows(attempt, elapsed, delay):
            log.error("retries_exhausted", elapsed_seconds=round(elapsed, 3), **event_keys)
            raise error
        event = "request_throttled" if error.status_code == 429 else "request_retried"
        log.warning(event, delay_seconds=round(delay, 3), **event_keys)
        if self._stop is None:
            self._sleep(delay)
        elif self._stop.wait(delay):
            raise errors.StoppedError(target.operation.name) from error


@dataclass(frozen=True)
class _Target:
    account: str
    region: Region
    operation: Operation


def _parse_body(response: httpx.Response) -> tuple[Any, outcomes.Failure | None]:
    """Parse a successful response's JSON once; an unreadable body is a failure of its own."""
    if not response.is_success or not response.content:
        return None, None
    try:
        return response.json(), None
    except ValueError:
        return None, outcomes.Failure.MALFORMED_BODY


def _check_marketplaces(region: Region, query: Query | None, json_body: Any) -> None:
    ids: list[str] = []
    if query is not None:
        for name in ("marketplaceIds", "marketplaceId", "MarketplaceIds"):
            value = query.get(name)
            if value:
                ids.extend(value.split(","))
    if isinstance(json_body, dict):
        value = json_body.get("marketplaceId")
        if isinstance(value, str):
            ids.append(value)
        listed = json_body.get("marketplaceIds")
        if isinstance(listed, list):
            ids.extend(str(item) for item in listed)
    marketplaces.check_region(ids, region)


def _origin(url: httpx.URL) -> str:
    """Return the scheme, host and port of a URL, for messages about where a call went."""
    port = f":{url.port}" if url.port is not None else ""
    return f"{url.scheme}://{url.host}{port}"
