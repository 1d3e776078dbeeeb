"""Settings: one validated object built from ``SYNCD_*`` variables, an env file and credentials.

This module is the only one that reads syncd's settings from the environment, and it does so
only when :func:`load_settings` is called, never at import time.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Mapping
from datetime import date
from pathlib import Path
from typing import Literal

import pydantic
from dotenv import dotenv_values
from pydantic import AnyHttpUrl, Field, SecretStr, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from syncd import errors, systemd
from syncd.i18n import gettext as _
from syncd.i18n import gettext_noop as N_
from syncd.i18n import normalize_language

ENV_PREFIX = "SYNCD_"
ENV_FILE_VARIABLE = "SYNCD_ENV_FILE"
# Variables with the prefix that are not settings: the env file's own path and test wiring.
_NOT_SETTINGS = (ENV_FILE_VARIABLE, "SYNCD_TEST_")
_PROCESS_VARIABLES = ("LANG", "LANGUAGE", "LC_", "TZ", "PYTHON")

AMAZON_LWA_TOKEN_URL = "https://api.amazon.com/auth/o2/token"

Environment = Literal["production", "sandbox"]
Region = Literal["na", "eu", "fe"]


class Settings(BaseSettings):
    """Every setting of syncd; each field is read from ``SYNCD_<FIELD NAME>``."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_file_encoding="utf-8",
        case_sensitive=False,
        extra="ignore",
        frozen=True,
        # An empty line such as "SYNCD_LWA_CLIENT_SECRET=" in the env file means "not set", so
        # it does not hide the systemd credential of that name or a setting's default.
        env_ignore_empty=True,
    )

    database_url: str = Field(default="sqlite:///syncd.db", repr=False)  # may hold a password
    environment: Environment = "production"

    lwa_client_id: str | None = None
    lwa_client_secret: SecretStr | None = None
    # The secret Amazon issued to replace the current one. It is tried when LWA rejects the
    # current one.
    lwa_client_secret_next: SecretStr | None = None
    # The day the current secret was made, as Seller Central shows it. Without it, the age
    # counts from syncd's first use of the secret.
    lwa_client_secret_created: date | None = None
    lwa_token_url: AnyHttpUrl = AnyHttpUrl(AMAZON_LWA_TOKEN_URL)

    spapi_endpoint_na: AnyHttpUrl | None = None
    spapi_endpoint_eu: AnyHttpUrl | None = None
    spapi_endpoint_fe: AnyHttpUrl | None = None

    encryption_key: SecretStr | None = None

    orders_interval: float = Field(default=300.0, ge=60, le=86_400)  # seconds between runs
    orders_lookback: float = Field(default=900.0, ge=0, le=86_400)  # seconds re-read each run
    orders_backfill_days: int = Field(default=30, ge=1, le=730)
    orders_window_days: float = Field(default=7.0, gt=0, le=30)  # size of a backfill window
    # Pages in a row that bring no new order before paging stops as a loop.
    orders_max_stale_pages: int = Field(default=10, ge=2, le=1_000)
    max_workers: int = Field(default=4, ge=1, le=64)  # accounts served at the same time
    lease_seconds: float = Field(default=300.0, ge=30, le=3_600)
    dispatch_interval: float = Field(default=10.0, ge=1, le=300)  # seconds

    shipments_interval: float = Field(default=10.0, ge=1, le=3_600)  # seconds between looks
    shipment_workers: int = Field(default=2, ge=1, le=64)  # accounts shipping at the same time
    # How long a row being sent stays claimed by one worker before another may take it.
    shipment_claim_seconds: float = Field(default=600.0, ge=30, le=86_400)
    shipment_retry_base_delay: float = Field(default=30.0, gt=0, le=3_600)  # seconds
    shipment_retry_max_delay: float = Field(default=1_800.0, gt=0, le=86_400)  # seconds
    shipment_deadline_warning: float = Field(default=12.0, gt=0, le=240)  # hours
    # Amazon carrier codes to accept beyond syncd's own list (Amazon adds carriers).
    carrier_codes: list[str] = Field(default_factory=list)
    # Extra carrier names (as the WMS writes them) and the Amazon carrier code of each.
    carrier_map: dict[str, str] = Field(default_factory=dict)

    # The bridge to the seller's own ERP/WMS tables (docs/mapping.md).
    mapping_file: Path | None = None
    erp_database_url: str | None = Field(default=None, repr=False)  # may hold a password
    bridge_interval: float = Field(default=30.0, ge=1, le=3_600)  # seconds between passes
    bridge_batch_size: int = Field(default=200, ge=1, le=5_000)  # rows per transaction
    # Days after delivery (or cancellation) that buyer PII is kept; Amazon allows at most 30.
    pii_retention_days: int = Field(default=30, ge=0, le=30)

    # Seconds between two purges of expired buyer PII from syncd's own tables.
    pii_purge_interval: float = Field(default=3_600.0, ge=60, le=86_400)

    # Prometheus metrics are off unless a port is set, and bound to loopback by default.
    metrics_port: int | None = Field(default=None, ge=1, le=65_535)
    metrics_host: str = "127.0.0.1"

    # Seconds between two heartbeats of a node, at which it also balances accounts with others.
    node_heartbeat: float = Field(default=15.0, ge=1, le=600)
    # Calls per second that all accounts of the application may spend together, per operation,
    # for operations whose application-wide limit Amazon does not report.
    application_budget: dict[str, float] = Field(default_factory=dict)
    # Maximum pause in seconds between attempts to reach a database that stopped responding.
    database_retry_max_delay: float = Field(default=300.0, ge=1, le=3_600)

    https_proxy: AnyHttpUrl | None = Field(default=None, repr=False)  # may hold a password
    http_connect_timeout: float = Field(default=10.0, gt=0, le=300)  # seconds
    http_read_timeout: float = Field(default=60.0, gt=0, le=600)  # seconds
    http_write_timeout: float = Field(default=30.0, gt=0, le=600)  # seconds
    http_pool_timeout: float = Field(default=10.0, gt=0, le=300)  # seconds

    retry_max_attempts: int = Field(default=5, ge=1, le=20)
    retry_max_seconds: float = Field(default=600.0, gt=0, le=86_400)
    retry_base_delay: float = Field(default=1.0, gt=0, le=600)  # seconds
    retry_max_delay: float = Field(default=60.0, gt=0, le=3_600)  # seconds

    clock_skew_margin: float = Field(default=60.0, ge=0, le=3_600)  # seconds
    token_refresh_margin: float = Field(default=300.0, ge=0, le=3_000)  # seconds
    auth_failure_recheck: float = Field(default=3_600.0, ge=60, le=86_400 * 7)  # seconds

    language: Literal["zh_CN", "en"] | None = None  # zh, zh-CN, zh_CN.UTF-8 … are accepted
    log_format: Literal["auto", "json", "console"] = "auto"
    log_level: Literal["debug", "info", "warning", "error"] = "info"

    @field_validator("database_url")
    @classmethod
    def _check_database_url(cls, value: str) -> str:
        return _checked_database_url(value)

    @field_validator("erp_database_url")
    @classmethod
    def _check_erp_database_url(cls, value: str | None) -> str | None:
        if value is None or not value.strip():
            return None
        return _checked_database_url(value)

    @field_validator("carrier_map")
    @classmethod
    def _check_carrier_map(cls, value: dict[str, str], info: ValidationInfo) -> dict[str, str]:
        from syncd.shipping.carriers import unknown_codes  # noqa: PLC0415

        unknown = unknown_codes(value.values(), info.data.get("carrier_codes", ()))
        if unknown:
            raise ValueError(
                _("not Amazon carrier codes: {codes}; add them to SYNCD_CARRIER_CODES").format(
                    codes=", ".join(unknown)
                )
            )
        return value

    @field_validator("application_budget")
    @classmethod
    def _check_application_budget(cls, value: dict[str, float]) -> dict[str, float]:
        from syncd.amazon.throttle import DEFAULT_PLANS  # noqa: PLC0415

        unknown = sorted(name for name in value if name not in DEFAULT_PLANS)
        if unknown:
            raise ValueError(
                _("unknown operations: {names}; known: {known}").format(
                    names=", ".join(unknown), known=", ".join(sorted(DEFAULT_PLANS))
                )
            )
        bad = sorted(name for name, rate in value.items() if not rate > 0)
        if bad:
            raise ValueError(
                _("calls per second must be above 0 for: {names}").format(names=", ".join(bad))
            )
        return value

    @field_validator("language", mode="before")
    @classmethod
    def _normalize_language(cls, value: object) -> object:
        if isinstance(value, str) and value.strip():
            return normalize_language(value) or value
        return value

    def endpoint_override(self, region: Region) -> str | None:
        """Return the configured base URL for ``region``, or None to use Amazon's host."""
        value: AnyHttpUrl | None = getattr(self, f"spapi_endpoint_{region}")
        return None if value is None else str(value).rstrip("/")

    @property
    def erp_url(self) -> str:
        """The ERP database's URL: its own setting, else syncd's database."""
        return self.erp_database_url or self.database_url

    def require_lwa_credentials(self) -> tuple[str, SecretStr]:
        """Return the LWA client id and secret, or raise naming the ones that are missing.

        Raises:
            errors.SettingsError: the client id or the secret is not set.
        """
        problems = self._missing_lwa_credentials()
        if problems:
            raise errors.SettingsError(problems)
        assert self.lwa_client_id is not None
        assert self.lwa_client_secret is not None
        return self.lwa_client_id, self.lwa_client_secret

    def require_job_settings(self) -> None:
        """Check, before a job starts, the settings that every account's run needs.

        Raises:
            errors.SettingsError: naming the LWA credentials and the encryption key if missing.
        """
        problems = self._missing_lwa_credentials()
        if self.encryption_key is None or not self.encryption_key.get_secret_value():
            problems.append(_problem("encryption_key", None))
        if problems:
            raise errors.SettingsError(problems)

    def _missing_lwa_credentials(self) -> list[errors.SettingProblem]:
        problems = []
        if not self.lwa_client_id:
            problems.append(_problem("lwa_client_id", None))
        if self.lwa_client_secret is None or not self.lwa_client_secret.get_secret_value():
            problems.append(_problem("lwa_client_secret", None))
        return problems


def _checked_database_url(value: str) -> str:
    from sqlalchemy.engine import make_url  # noqa: PLC0415 - keep SQLAlchemy off the CLI's fast path
    from sqlalchemy.exc import ArgumentError  # noqa: PLC0415

    from syncd.db.engine import check_database_url  # noqa: PLC0415

    try:
        make_url(value)
    except ArgumentError as exc:
        raise ValueError(str(exc)) from exc
    check_database_url(value)
    return value


# The expected form of each setting, shown when its value is invalid.
_EXPECTED: dict[str, str] = {
    "database_url": N_(
        "an SQLAlchemy URL such as sqlite:///syncd.db, "
        "postgresql+psycopg://user@host/db or mysql+pymysql://user@host/db"
    ),
    "environment": N_("production or sandbox"),
    "lwa_client_id": N_("the LWA client id of the application (amzn1.application-oa2-client.…)"),
    "lwa_client_secret": N_("the LWA client secret of the application"),
    "lwa_client_secret_next": N_(
        "the new LWA client secret Amazon issued, while the current one still works"
    ),
    "lwa_client_secret_created": N_(
        "the day the current LWA client secret was made, as YYYY-MM-DD (Seller Central, "
        "Developer Central, the app's LWA credentials)"
    ),
    "lwa_token_url": N_("an http(s) URL, by default https://api.amazon.com/auth/o2/token"),
    "spapi_endpoint_na": N_("an http(s) base URL such as https://sellingpartnerapi-na.amazon.com"),
    "spapi_endpoint_eu": N_("an http(s) base URL such as https://sellingpartnerapi-eu.amazon.com"),
    "spapi_endpoint_fe": N_("an http(s) base URL such as https://sellingpartnerapi-fe.amazon.com"),
    "https_proxy": N_("a proxy URL such as http://proxy.example.cn:3128"),
    "encryption_key": N_("one or more keys made by 'syncd key generate', separated by commas"),
    "orders_interval": N_("seconds, a number from 60 to 86400"),
    "orders_lookback": N_("seconds, a number from 0 to 86400"),
    "orders_backfill_days": N_("days, a whole number from 1 to 730"),
    "orders_window_days": N_("days, a number above 0 and at most 30"),
    "orders_max_stale_pages": N_("a whole number from 2 to 1000"),
    "max_workers": N_("a whole number from 1 to 64"),
    "lease_seconds": N_("seconds, a number from 30 to 3600"),
    "dispatch_interval": N_("seconds, a number from 1 to 300"),
    "shipments_interval": N_("seconds, a number from 1 to 3600"),
    "shipment_workers": N_("a whole number from 1 to 64"),
    "shipment_claim_seconds": N_("seconds, a number from 30 to 86400"),
    "shipment_retry_base_delay": N_("seconds, a number above 0 and at most 3600"),
    "shipment_retry_max_delay": N_("seconds, a number above 0 and at most 86400"),
    "shipment_deadline_warning": N_("hours, a number above 0 and at most 240"),
    "mapping_file": N_("the path of the mapping file (TOML), see docs/mapping.md"),
    "erp_database_url": N_(
        "an SQLAlchemy URL of the ERP database; leave it unset when the ERP tables are in "
        "SYNCD_DATABASE_URL's database"
    ),
    "bridge_interval": N_("seconds, a number from 1 to 3600"),
    "bridge_batch_size": N_("a whole number from 1 to 5000"),
    "pii_retention_days": N_("days, a whole number from 0 to 30 (Amazon allows at most 30)"),
    "pii_purge_interval": N_("seconds, a number from 60 to 86400"),
    "metrics_port": N_("a TCP port from 1 to 65535; leave it unset to turn metrics off"),
    "metrics_host": N_("the address the metrics endpoint listens on, by default 127.0.0.1"),
    "node_heartbeat": N_("seconds, a number from 1 to 600"),
    "application_budget": N_(
        "a JSON object from SP-API operation to calls per second for the whole application, "
        'such as {"getOrder": 20}'
    ),
    "database_retry_max_delay": N_("seconds, a number from 1 to 3600"),
    "carrier_map": N_(
        'a JSON object from carrier name to Amazon carrier code, such as {"YW": "Yanwen"}'
    ),
    "carrier_codes": N_('a JSON list of Amazon carrier codes, such as ["Yodel", "Evri"]'),
    "http_connect_timeout": N_("seconds, a number above 0 and at most 300"),
    "http_read_timeout": N_("seconds, a number above 0 and at most 600"),
    "http_write_timeout": N_("seconds, a number above 0 and at most 600"),
    "http_pool_timeout": N_("seconds, a number above 0 and at most 300"),
    "retry_max_attempts": N_("a whole number from 1 to 20"),
    "retry_max_seconds": N_("seconds, a number above 0 and at most 86400"),
    "retry_base_delay": N_("seconds, a number above 0 and at most 600"),
    "retry_max_delay": N_("seconds, a number above 0 and at most 3600"),
    "clock_skew_margin": N_("seconds, a number from 0 to 3600"),
    "token_refresh_margin": N_("seconds, a number from 0 to 3000"),
    "auth_failure_recheck": N_("seconds, a number from 60 to 604800"),
    "language": N_("zh_CN or en"),
    "log_format": N_("auto, json or console"),
    "log_level": N_("debug, info, warning or error"),
}
_SECRET_FIELDS = frozenset({"lwa_client_secret", "lwa_client_secret_next", "encryption_key"})


_URL_PASSWORD = re.compile(r"(//[^/:@\s]*:)[^@/\s]*@")


def _shown(value: object) -> str:
    """Return a value for an error message, with any password in a URL masked."""
    return _URL_PASSWORD.sub(r"\1***@", str(value))


def _problem(field: str, value: object, detail: object = None) -> errors.SettingProblem:
    shown: str | None
    if value is None:
        shown = None
    elif field in _SECRET_FIELDS:
        shown = _("(hidden)")
    else:
        shown = _shown(value)
    expected = _(_EXPECTED[field])
    if detail and field not in _SECRET_FIELDS:
        # What exactly a validator found wrong, such as a database driver that is missing.
        expected = _("{expected} ({detail})").format(expected=expected, detail=_shown(detail))
    return errors.SettingProblem(
        variable=ENV_PREFIX + field.upper(), value=shown, expected=expected
    )


def _unknown_variables(
    variables: Mapping[str, str | None], env_file: Path | None = None
) -> list[errors.SettingProblem]:
    """Report ``SYNCD_`` names that are no setting, and env-file lines without the prefix."""
    known = [ENV_PREFIX + field.upper() for field in Settings.model_fields]
    problems = []
    for name in variables:
        upper = name.upper()
        if upper in known or any(upper.startswith(prefix) for prefix in _NOT_SETTINGS):
            continue
        if not upper.startswith(ENV_PREFIX):
            # An env file may also set the process's locale or time zone for systemd.
            if env_file is not None and not upper.startswith(_PROCESS_VARIABLES):
                close = difflib.get_close_matches(ENV_PREFIX + upper, known, n=1, cutoff=0.8)
                hint = (
                    _("a setting name starting with SYNCD_, such as {name} (in {file})")
                    if close
                    else _("a setting name starting with SYNCD_ (in {file})")
                ).format(name=close[0] if close else "", file=env_file)
                problems.append(errors.SettingProblem(name, _("(not shown)"), hint))
            continue
        close = difflib.get_close_matches(upper, known, n=1, cutoff=0.8)
        hint = (
            _("a known setting; did you mean {name}?").format(name=close[0])
            if close
            else _("a known setting (see settings.example.env)")
        )
        if env_file is not None:
            hint = _("{hint} (in {file})").format(hint=hint, file=env_file)
        # The value of an unknown name is never shown: it may be a misspelt secret.
        problems.append(errors.SettingProblem(upper, _("(not shown)"), hint))
    return problems


def load_settings(env_file: Path | None = None) -> Settings:
    """Build the settings from the environment, the env file and systemd credentials.

    Values in the environment win over the env file, which wins over credential files. A
    secret can come from a file named after its variable (for example
    ``SYNCD_LWA_CLIENT_SECRET``) in systemd's credentials directory.

    Args:
        env_file: an env file to read; defaults to the file named by ``SYNCD_ENV_FILE``.

    Raises:
        errors.SettingsError: naming every invalid or unknown setting at once.
    """
    if env_file is None and os.environ.get(ENV_FILE_VARIABLE):
        env_file = Path(os.environ[ENV_FILE_VARIABLE])
    if env_file is not None and not env_file.is_file():
        raise errors.SettingsError(
            [
                errors.SettingProblem(
                    variable="--env-file / " + ENV_FILE_VARIABLE,
                    value=str(env_file),
                    expected=_("an existing env file; this path was not found"),
                )
            ]
        )

    file_values = _read_env_file(env_file) if env_file is not None else {}
    unknown = _unknown_variables(file_values, env_file) + _unknown_variables(
        {name: value for name, value in os.environ.items() if name not in file_values}
    )
    try:
        settings = Settings(
            _env_file=env_file,
            _secrets_dir=systemd.credentials_directory(),
        )
    except pydantic.ValidationError as exc:
        problems = [
            _problem(str(error["loc"][0]), error.get("input"), error.get("ctx", {}).get("error"))
            for error in exc.errors()
        ]
        raise errors.SettingsError([*problems, *unknown]) from exc
    problems = [*unknown, *_endpoint_problems(settings)]
    if problems:
        raise errors.SettingsError(problems)
    return settings


def _read_env_file(env_file: Path) -> dict[str, str | None]:
    try:
        return dotenv_values(env_file, encoding="utf-8")
    except (UnicodeDecodeError, OSError) as exc:
        problem = errors.SettingProblem(
            variable="--env-file / " + ENV_FILE_VARIABLE,
            value=str(env_file),
            expected=_("a readable file in UTF-8 ({error}); save it as UTF-8").format(
                error=type(exc).__name__
            ),
        )
        raise errors.SettingsError([problem]) from None


_LOOPBACK_HOSTS = frozenset({"127.0.0.1", "::1", "[::1]", "localhost"})
_ENDPOINT_FIELDS = ("lwa_token_url", "spapi_endpoint_na", "spapi_endpoint_eu", "spapi_endpoint_fe")


def _endpoint_problems(settings: Settings) -> list[errors.SettingProblem]:
    """Reject plain-http endpoints off this machine, and URLs that carry a query string.

    Tokens and the client secret travel to these hosts, so only a local sandbox may be
    reached without TLS.
    """
    problems = []
    for field in _ENDPOINT_FIELDS:
        url: AnyHttpUrl | None = getattr(settings, field)
        if url is None:
            continue
        if url.scheme == "http" and url.host not in _LOOPBACK_HOSTS:
            expected = _(
                "an https URL; plain http is allowed only for a sandbox on this machine "
                "(127.0.0.1, ::1 or localhost)"
            )
            problems.append(errors.SettingProblem(ENV_PREFIX + field.upper(), str(url), expected))
        elif url.query or url.fragment:
            expected = _("a URL without a query string or fragment")
            problems.append(errors.SettingProblem(ENV_PREFIX + field.upper(), str(url), expected))
    return problems


def read_language_setting(environ: Mapping[str, str] | None = None) -> str | None:
    """Return ``SYNCD_LANGUAGE`` from the environment or the env file, ignoring other errors.

    The CLI needs the language before it can report any other settings error in it.
    """
    env = os.environ if environ is None else environ
    value = env.get(ENV_PREFIX + "LANGUAGE")
    if value:
        return value
    env_file = env.get(ENV_FILE_VARIABLE)
    if env_file and Path(env_file).is_file():
        return dotenv_values(env_file).get(ENV_PREFIX + "LANGUAGE")
    return None
