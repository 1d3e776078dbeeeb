"""The checks behind ``syncd doctor``: settings, databases, accounts, LWA, endpoints, mapping.

Every check returns :class:`CheckResult` values instead of printing, so the command renders
them and tests inspect them. A check that depends on an earlier one (valid settings, a
reachable and current database, an account whose token decrypts) is reported as skipped
when that earlier check failed. The database checks live in :mod:`syncd.doctor_database`.

Doctor changes nothing in the database except one thing: when LWA rotates a refresh token
during the token exchange, the new token is stored, as the daemon does, because the old one
may stop working.
"""

from __future__ import annotations

import enum
import shlex
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from email.utils import parsedate_to_datetime
from pathlib import Path

import httpx
from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd import config, crypto, errors
from syncd.amazon import marketplaces
from syncd.amazon.client import AMAZON_LWA_HOST, SellerAccount, SpApiClient, build_http_client
from syncd.amazon.clock import utc_now
from syncd.amazon.marketplaces import Region
from syncd.amazon.retry import RetryPolicy
from syncd.db import accounts, lwa_secrets
from syncd.db.engine import create_db_engine, database_error_reason
from syncd.i18n import gettext as _


class Status(enum.StrEnum):
    """The verdict of one check. Only ``FAIL`` makes ``syncd doctor`` exit with 1."""

    PASS = "pass"
    WARN = "warn"
    FAIL = "fail"
    SKIP = "skip"


@dataclass(frozen=True)
class CheckResult:
    """One line of the report: the check's short name, its verdict, what it found, the fix.

    All text is in the operator's language and never contains a token or a secret.
    """

    name: str
    status: Status
    detail: str
    fix: str = ""


def any_failed(results: Iterable[CheckResult]) -> bool:
    """Return whether any of the results is a failure."""
    return any(result.status is Status.FAIL for result in results)


# The token exchange retries a 5xx or a network error once, so doctor finishes in seconds
# where the daemon's policy may retry for minutes.
_EXCHANGE_RETRY = RetryPolicy(max_attempts=2, max_seconds=10.0, base_delay=1.0, max_delay=2.0)
# A clock synchronized by NTP is within a fraction of a second, so a skew above this is a
# warning even below SYNCD_CLOCK_SKEW_MARGIN.
SKEW_WARNING = 5.0  # seconds
# The Date header has whole seconds, so a reading can be up to one second off.
_DATE_RESOLUTION = 1.0  # seconds


def run_checks(env_file: Path | None = None, *, account: str | None = None) -> list[CheckResult]:
    """Run every check in order and return their results.

    Args:
        env_file: the env file given with ``--env-file`` or ``SYNCD_ENV_FILE``, if any.
        account: check only this account, and the SP-API endpoint of its region.

    Returns:
        The results in the order they are shown, skipped checks included.
    """
    from syncd import doctor_database  # noqa: PLC0415 - it imports this module

    settings, results = check_settings(env_file)
    if settings is None:
        results.append(
            CheckResult(_("other checks"), Status.SKIP, _("not run: the settings are invalid"))
        )
        return results

    upgrade = upgrade_command(env_file)
    database = doctor_database.check_database(settings.database_url, upgrade=upgrade)
    results += database
    schema_current = False
    if any_failed(database[:1]):
        results.append(
            CheckResult(_("migrations"), Status.SKIP, _("not run: no connection to the database"))
        )
    else:
        migration = doctor_database.check_migrations(settings.database_url, upgrade)
        results.append(migration)
        schema_current = migration.status is Status.PASS
    if settings.erp_database_url is not None:
        results += doctor_database.check_database(settings.erp_database_url, erp=True)

    with build_http_client(settings) as http:
        results += _check_amazon(settings, http, schema_current=schema_current, account=account)
    results += check_mapping(settings)
    return results


def _check_amazon(
    settings: config.Settings, http: httpx.Client, *, schema_current: bool, account: str | None
) -> list[CheckResult]:
    """Check the accounts, their LWA tokens, the endpoints of their regions and the clock."""
    results: list[CheckResult] = []
    if not schema_current:
        reason = _("not run: the database is unreachable or its schema is not current")
        results.append(CheckResult(_("accounts"), Status.SKIP, reason))
        results += check_endpoints(settings, http, regions=())
        return results

    engine = create_db_engine(settings.database_url)
    try:
        account_results, sellers = check_accounts(settings, engine, account)
        results += account_results
        results += check_credentials(settings, engine, http, sellers)
        results += check_lwa_secret(settings, engine)
    finally:
        engine.dispose()
    regions = sorted({seller.region for seller in sellers})
    results += check_endpoints(settings, http, regions=regions)
    return results


def upgrade_command(env_file: Path | None) -> str:
    """Return the fix for a database without current tables, naming the env file if any."""
    if env_file is None:
        return _("Run 'syncd db upgrade'.")
    command = f"syncd --env-file {shlex.quote(str(env_file))} db upgrade"
    return _("Run: {command}").format(command=command)


# -- settings --------------------------------------------------------------------------------------


def check_settings(env_file: Path | None) -> tuple[config.Settings | None, list[CheckResult]]:
    """Load the settings and check the ones every job needs: LWA client and encryption key.

    Returns:
        The settings (None when they are invalid) and one result per problem, or one pass.
    """
    name = _("settings")
    try:
        settings = config.load_settings(env_file)
    except errors.SettingsError as exc:
        return None, [_setting_failure(name, problem) for problem in exc.problems]

    problems: list[errors.SettingProblem] = []
    try:
        settings.require_job_settings()
    except errors.SettingsError as exc:
        problems += exc.problems
    try:
        crypto.Vault(settings.encryption_key)
    except errors.SettingsError as exc:
        problems += exc.problems
    if problems:
        return settings, [_setting_failure(name, problem) for problem in problems]

    source = (
        _("read from the environment and {file}").format(file=env_file)
        if env_file is not None
        else _("read from the environment (no env file)")
    )
    detail = _("{source}; environment {environment}").format(
        source=source, environment=settings.environment
    )
    return settings, [CheckResult(name, Status.PASS, detail)]


def _setting_failure(name: str, problem: errors.SettingProblem) -> CheckResult:
    if problem.value is None:
        detail = _("{variable} is not set").format(variable=problem.variable)
    else:
        detail = _("{variable} = {value} is invalid").format(
            variable=problem.variable, value=problem.value
        )
    return CheckResult(
        name, Status.FAIL, detail, _("Expected {expected}.").format(expected=problem.expected)
    )


# -- accounts and LWA ------------------------------------------------------------------------------


def check_accounts(
    settings: config.Settings, engine: Engine, only: str | None = None
) -> tuple[list[CheckResult], list[SellerAccount]]:
    """Check each account's status and decrypt its refresh token.

    Args:
        settings: the settings, for the encryption key.
        engine: syncd's database, at the newest schema.
        only: the name of the one account to check; None checks every account.

    Returns:
        One result per account, and the accounts whose refresh token decrypted.
    """
    try:
        with engine.begin() as connection:
            records = (
                [accounts.get_account(connection, only)]
                if only
                else accounts.list_accounts(connection)
            )
    except errors.AccountError as exc:
        return [CheckResult(_("accounts"), Status.FAIL, str(exc))], []
    except SQLAlchemyError as exc:
        detail = _("cannot read the accounts ({error})").format(error=database_error_reason(exc))
        return [CheckResult(_("accounts"), Status.FAIL, detail)], []
    if not records:
        fix = _("Add one with 'syncd account add'.")
        return [CheckResult(_("accounts"), Status.WARN, _("no accounts yet"), fix)], []

    try:
        vault: crypto.Vault | None = crypto.Vault(settings.encryption_key)
    except errors.SettingsError:
        vault = None  # The settings check has reported the invalid key.
    results = []
    sellers = []
    for record in records:
        result, seller = _check_account(engine, vault, record)
        results.append(result)
        if seller is not None:
            sellers.append(seller)
    return results, sellers


def _check_account(
    engine: Engine, vault: crypto.Vault | None, record: accounts.AccountRecord
) -> tuple[CheckResult, SellerAccount | None]:
    name = _("account {name}").format(name=record.name)
    codes = _(", ").join(_marketplace_code(mid) for mid in record.marketplace_ids)
    scope = f"{record.region.upper()} {codes}"
    key_fix = _(
        "Set SYNCD_ENCRYPTION_KEY to the key that encrypted the token; after a key change, "
        "list the old key after the new one, separated by a comma."
    )
    if vault is None or not vault.is_configured:
        detail = _("{scope}: the refresh token cannot be decrypted without a valid key").format(
            scope=scope
        )
        return CheckResult(name, Status.FAIL, detail, key_fix), None
    try:
        with engine.begin() as connection:
            seller = accounts.seller_account(connection, vault, record)
    except errors.SettingsError:
        detail = _("{scope}: SYNCD_ENCRYPTION_KEY does not decrypt the refresh token").format(
            scope=scope
        )
        return CheckResult(name, Status.FAIL, detail, key_fix), None

    status, label, fix = _account_state(record)
    detail = _("{scope}: {state}").format(scope=scope, state=label)
    if record.status_reason and status is not Status.PASS:
        detail = _("{detail} ({reason})").format(detail=detail, reason=record.status_reason)
    return CheckResult(name, status, detail, fix), seller


def _marketplace_code(marketplace_id: str) -> str:
    try:
        return marketplaces.get_marketplace(marketplace_id).country_code
    except errors.MarketplaceError:
        return marketplace_id


def _account_state(record: accounts.AccountRecord) -> tuple[Status, str, str]:
    """Return the verdict, the label and the fix for an account's stored status."""
    if record.status == accounts.REAUTH_REQUIRED:
        fix = _(
            "Have the seller authorize the application again in Seller Central, then store "
            "the new refresh token with '{command}'."
        ).format(command=accounts.reauthorize_command(record.name))
        return Status.FAIL, _("needs re-authorization"), fix
    if record.status == accounts.ACCESS_DENIED:
        fix = _(
            "Check the application's roles and the seller's authorization in Seller Central; "
            "syncd tries the account again every hour."
        )
        return Status.WARN, _("access denied (retried hourly)"), fix
    if record.status == accounts.DATASET_UNAVAILABLE:
        fix = _(
            "syncd tries again every 30 minutes; if this lasts for days, open a case with "
            "Amazon and quote the request id in the reason."
        )
        return Status.WARN, _("data set refused by Amazon (retried every 30 minutes)"), fix
    if record.status == accounts.SHIPMENTS_DENIED:
        fix = _(
            "Check that the application may confirm shipments for this seller (its roles in "
            "Seller Central); syncd tries again every hour."
        )
        return Status.WARN, _("shipment confirmations refused (retried hourly)"), fix
    return Status.PASS, _("active"), ""


def check_credentials(
    settings: config.Settings, engine: Engine, http: httpx.Client, sellers: list[SellerAccount]
) -> list[CheckResult]:
    """Exchange each account's refresh token for an access token at LWA, once.

    The exchange goes through syncd's own :class:`~syncd.amazon.auth.TokenProvider`, with the
    proxy and timeouts of the settings. A refresh token that LWA rotates is stored.

    Returns:
        One result per account. After an ``invalid_client`` response the remaining accounts
        are skipped.
    """
    if not sellers:
        return []
    try:
        settings.require_lwa_credentials()
    except errors.SettingsError:
        reason = _("not run: SYNCD_LWA_CLIENT_ID or SYNCD_LWA_CLIENT_SECRET is not set")
        return [CheckResult(_lwa_name(seller), Status.SKIP, reason) for seller in sellers]

    vault = crypto.Vault(settings.encryption_key)

    def keep_rotated_token(name: str, region: Region, token: SecretStr) -> None:
        with engine.begin() as connection:
            accounts.store_refresh_token(
                connection, vault, name=name, region=region, token=token, now=utc_now()
            )

    client = SpApiClient(
        settings, http=http, retry=_EXCHANGE_RETRY, on_refresh_token_rotated=keep_rotated_token
    )
    results: list[CheckResult] = []
    client_rejected = False
    for seller in sellers:
        if client_rejected:
            # Every exchange would fail the same way, so LWA is not asked again.
            reason = _("not run: LWA rejected the client id or secret above")
            results.append(CheckResult(_lwa_name(seller), Status.SKIP, reason))
            continue
        try:
            results.append(_exchange_token(client, seller))
        except errors.InvalidClientError:
            detail = _("LWA rejected the client id or secret (invalid_client)")
            fix = _(
                "SYNCD_LWA_CLIENT_ID and SYNCD_LWA_CLIENT_SECRET must be the application's "
                "current values in Developer Central; a client secret expires after 180 days."
            )
            results.append(CheckResult(_lwa_name(seller), Status.FAIL, detail, fix))
            client_rejected = True
    return results


def check_lwa_secret(settings: config.Settings, engine: Engine) -> list[CheckResult]:
    """Judge the LWA client secret's age against Amazon's 180-day expiry, and any refusal."""
    name = _("LWA client secret")
    try:
        with engine.begin() as connection:
            age = lwa_secrets.read_secret_age(connection, settings, utc_now().date())
    except SQLAlchemyError as exc:
        detail = _("cannot read the secret's age ({error})").format(
            error=database_error_reason(exc)
        )
        return [CheckResult(name, Status.FAIL, detail)]
    if age is None:
        return []  # the settings check reports the missing secret
    detail, fix = lwa_secrets.describe_secret_age(age)
    return [CheckResult(name, _SECRET_VERDICTS[age.state], detail, fix)]


_SECRET_VERDICTS = {
    lwa_secrets.SecretState.OK: Status.PASS,
    lwa_secrets.SecretState.UNKNOWN: Status.PASS,
    lwa_secrets.SecretState.NOT_TRACKED: Status.PASS,
    lwa_secrets.SecretState.EXPIRING: Status.WARN,
    lwa_secrets.SecretState.SWITCHED: Status.WARN,
    lwa_secrets.SecretState.EXPIRED: Status.FAIL,
    lwa_secrets.SecretState.REFUSED: Status.FAIL,
}


def _lwa_name(seller: SellerAccount) -> str:
    return _("LWA token {name}").format(name=seller.name)


def _exchange_token(client: SpApiClient, seller: SellerAccount) -> CheckResult:
    """Get one access token for the account.

    Raises:
        errors.InvalidClientError: LWA rejected the application, not this account.
    """
    name = _lwa_name(seller)
    started = time.monotonic()
    try:
        client.token_provider(seller).get()
    except errors.InvalidGrantError:
        detail = _("LWA rejected the refresh token (invalid_grant)")
        fix = _(
            "Have the seller authorize the application again in Seller Central, then store "
            "the new refresh token with '{command}'."
        ).format(command=accounts.reauthorize_command(seller.name))
        return CheckResult(name, Status.FAIL, detail, fix)
    except errors.InvalidClientError:
        raise
    except errors.AuthError as exc:
        fix = _("Check SYNCD_LWA_TOKEN_URL, SYNCD_LWA_CLIENT_ID and SYNCD_LWA_CLIENT_SECRET.")
        return CheckResult(name, Status.FAIL, str(exc), fix)
    except errors.RetryableApiError as exc:
        if exc.status_code is None:
            detail = _("no access token from LWA: {error}").format(error=exc.error_message)
            return CheckResult(name, Status.FAIL, detail, _network_fix())
        # A 5xx or 429 from LWA itself, or an error page of a proxy on the way.
        detail = _("no access token from LWA (HTTP {status}): {error}").format(
            status=exc.status_code, error=exc.error_message or "-"
        )
        fix = _(
            "Run 'syncd doctor' again later. If this persists, check SYNCD_LWA_TOKEN_URL and "
            "the proxy in SYNCD_HTTPS_PROXY."
        )
        return CheckResult(name, Status.FAIL, detail, fix)
    seconds = time.monotonic() - started
    detail = _("LWA issued an access token in {seconds} s").format(seconds=f"{seconds:.2f}")
    return CheckResult(name, Status.PASS, detail)


def _network_fix() -> str:
    return _(
        "Check this server's network, DNS and firewall, and the proxy in SYNCD_HTTPS_PROXY; "
        "from mainland China, Amazon's hosts often need a proxy."
    )


# -- endpoints and clock ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Probe:
    """The outcome of one plain GET to an endpoint."""

    status_code: int | None  # None when no HTTP response arrived
    error: str  # the transport error when no response arrived, else empty
    date_header: str | None
    sent_at: datetime
    received_at: datetime

    @property
    def round_trip(self) -> float:
        """Seconds between sending the request and reading the response."""
        return (self.received_at - self.sent_at).total_seconds()


def probe(http: httpx.Client, url: str) -> Probe:
    """Send one GET without credentials. Any HTTP response, even 403 or 404, means reachable."""
    sent_at = utc_now()
    try:
        response = http.get(url)
    except httpx.TransportError as exc:
        error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        return Probe(None, error, None, sent_at, utc_now())
    return Probe(response.status_code, "", response.headers.get("date"), sent_at, utc_now())


def check_endpoints(
    settings: config.Settings, http: httpx.Client, *, regions: Sequence[Region]
) -> list[CheckResult]:
    """Reach the LWA token URL and each region's SP-API host, and measure Amazon's clock.

    Returns:
        A reachability result per endpoint, and a clock result for each SP-API host (and for
        LWA when it is Amazon's own host, since a vendor's token service may run on any clock).
    """
    lwa_url = str(settings.lwa_token_url)
    client = SpApiClient(settings, http=http)
    endpoints = [
        (_("LWA endpoint"), lwa_url, httpx.URL(lwa_url).host == AMAZON_LWA_HOST),
        *(
            (_("SP-API {region}").format(region=region.upper()), client.endpoint(region), True)
            for region in regions
        ),
    ]

    results = []
    for name, url, judge_clock in endpoints:
        found = probe(http, url)
        origin = _origin(url)
        if found.status_code is None:
            detail = _("{url} is unreachable ({error})").format(url=origin, error=found.error)
            results.append(CheckResult(name, Status.FAIL, detail, _network_fix()))
            continue
        detail = _("{url} answered HTTP {status} in {seconds} s").format(
            url=origin, status=found.status_code, seconds=f"{found.round_trip:.2f}"
        )
        results.append(CheckResult(name, Status.PASS, detail))
        if judge_clock:
            clock_name = _("clock ({endpoint})").format(endpoint=name)
            results.append(judge_clock_skew(clock_name, found, settings.clock_skew_margin))
    if not regions:
        reason = _("no accounts to check, so no SP-API host was tried")
        results.append(CheckResult(_("SP-API endpoints"), Status.SKIP, reason))
    return results


def clock_skew(date_header: str | None, sent_at: datetime, received_at: datetime) -> float | None:
    """Return the remote clock minus the local one in seconds, from a ``Date`` header.

    The server wrote the header somewhere between sending and receiving, so the local time
    compared is the midpoint of the two. The header has whole seconds, truncated, so half a
    second is added to the remote time.

    Returns:
        The skew (positive: the remote clock is ahead), or None when the header is missing
        or unreadable.
    """
    if not date_header:
        return None
    try:
        remote = parsedate_to_datetime(date_header)
    except (TypeError, ValueError):
        return None
    if remote.tzinfo is None:
        remote = remote.replace(tzinfo=UTC)
    local = sent_at + (received_at - sent_at) / 2
    return (remote + timedelta(seconds=_DATE_RESOLUTION / 2) - local).total_seconds()


def judge_clock_skew(name: str, found: Probe, margin: float) -> CheckResult:
    """Compare the skew a probe measured with ``margin`` (SYNCD_CLOCK_SKEW_MARGIN, seconds).

    A measurement is uncertain by half the round trip plus half a second of ``Date``
    resolution, so only a skew beyond that uncertainty counts.
    """
    skew = clock_skew(found.date_header, found.sent_at, found.received_at)
    if skew is None:
        return CheckResult(
            name,
            Status.WARN,
            _("the response had no readable Date header, so the skew was not measured"),
        )
    uncertainty = found.round_trip / 2 + _DATE_RESOLUTION / 2
    excess = abs(skew) - uncertainty
    detail = _("Amazon's clock minus this server's: {skew} s").format(skew=f"{skew:+.1f}")
    fix = _(
        "Synchronize this server's clock with NTP (for example: systemctl enable --now "
        "chrony, or timedatectl set-ntp true)."
    )
    if excess > margin:
        detail = _("{detail}, more than SYNCD_CLOCK_SKEW_MARGIN ({margin} s)").format(
            detail=detail, margin=f"{margin:g}"
        )
        return CheckResult(name, Status.FAIL, detail, fix)
    if excess > SKEW_WARNING:
        return CheckResult(name, Status.WARN, detail, fix)
    return CheckResult(name, Status.PASS, detail)


def _origin(url: str) -> str:
    """Return the scheme, host and port of a URL, without its path, user or password."""
    parsed = httpx.URL(url)
    port = f":{parsed.port}" if parsed.port is not None else ""
    return f"{parsed.scheme}://{parsed.host}{port}"


# -- mapping ---------------------------------------------------------------------------------------


def check_mapping(settings: config.Settings) -> list[CheckResult]:
    """Check the mapping file against the ERP tables, when one is configured.

    Returns:
        One result per problem the bridge reports (a warning or a failure), or one pass.
    """
    name = _("mapping")
    if settings.mapping_file is None:
        return [CheckResult(name, Status.SKIP, _("no mapping file, so the bridge is off"))]
    try:
        from syncd.bridge.check import inspect_bridge  # noqa: PLC0415 - the bridge is optional
    except ImportError:
        reason = _("this syncd version cannot check mapping files yet")
        return [CheckResult(name, Status.SKIP, reason)]

    problems = inspect_bridge(settings)
    if not problems:
        detail = _("the mapping file {path} matches the tables").format(path=settings.mapping_file)
        return [CheckResult(name, Status.PASS, detail)]
    return [
        CheckResult(
            name,
            Status.WARN if problem.warning else Status.FAIL,
            _("{where}: {problem}").format(where=problem.where, problem=problem.problem),
            problem.fix,
        )
        for problem in problems
    ]
