"""Job context: settings, the database, the SP-API client, the vault and a stop flag.

:meth:`JobContext.reload` swaps in new settings while jobs run (``systemctl reload`` sends
SIGHUP for it). A call in flight finishes with the settings it started with, and the next one
uses the new ones. Settings that shape what was built at start (the database, the worker
pools, the HTTP client, logging, the schedule) need a restart and are reported as such.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date, datetime

from pydantic import SecretStr
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd.amazon.auth import FINGERPRINT_SHOWN, ClientCredentials
from syncd.amazon.client import SpApiClient, lwa_client
from syncd.amazon.clock import utc_now
from syncd.amazon.marketplaces import Region
from syncd.config import Settings
from syncd.crypto import Vault
from syncd.db import accounts, lwa_secrets
from syncd.db.engine import create_db_engine
from syncd.logs import get_logger

log = get_logger(__name__)

# Settings that only take effect at the next start: they shape the engine, the worker pools,
# the HTTP client and its retry policy, the quota buckets, the schedule or the logging.
RESTART_SETTINGS = frozenset(
    {
        "database_url",
        "erp_database_url",
        "max_workers",
        "shipment_workers",
        "dispatch_interval",
        "shipments_interval",
        "bridge_interval",
        "pii_purge_interval",
        "node_heartbeat",
        # A daemon node renews its leases with the lifetime and on the schedule set at start.
        "lease_seconds",
        "database_retry_max_delay",
        "application_budget",
        "metrics_port",
        "metrics_host",
        "https_proxy",
        "http_connect_timeout",
        "http_read_timeout",
        "http_write_timeout",
        "http_pool_timeout",
        "retry_max_attempts",
        "retry_max_seconds",
        "retry_base_delay",
        "retry_max_delay",
        "language",
        "log_format",
        "log_level",
    }
)
# How often the last use of a client secret is written to the database, at most (seconds).
_USE_RECORD_INTERVAL = 3600.0


def new_owner_id() -> str:
    """Return a lease owner id naming this host and process, unique per start."""
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


@dataclass
class JobContext:
    """The shared, thread-safe resources of one process."""

    settings: Settings
    engine: Engine
    client: SpApiClient
    vault: Vault
    stop: threading.Event
    owner: str = field(default_factory=new_owner_id)
    now: Callable[[], datetime] = utc_now
    # How many reloads swapped in new settings; the bridge reads its mapping again when the
    # count changes, even if the file's modification time did not.
    reloads: int = 0
    secrets: SecretLedger | None = None

    def close(self) -> None:
        """Close the HTTP client and the database pool."""
        self.client.close()
        self.engine.dispose()

    def reload(self, settings: Settings) -> list[str]:
        """Use new settings from now on, without stopping the jobs that run.

        The vault takes the new encryption keys, the SP-API client the new LWA client id,
        secrets and token URL, and the bridge reads its mapping file again at its next pass.
        Accounts are read from the database at each dispatch anyway; token providers of
        accounts that were removed are dropped. Settings in :data:`RESTART_SETTINGS` keep
        their old values until the next start and are logged as ``settings_need_restart``.

        Returns:
            The names of the settings that changed and took effect.

        Raises:
            errors.SettingsError: the new encryption key is invalid; nothing changed.
        """
        old = self.settings
        changed = [
            name for name in Settings.model_fields if getattr(old, name) != getattr(settings, name)
        ]
        restart_only = [name for name in changed if _needs_restart(name, old, settings)]
        settings = settings.model_copy(update={name: getattr(old, name) for name in restart_only})
        applied = [name for name in changed if name not in restart_only]
        vault = Vault(settings.encryption_key) if "encryption_key" in applied else self.vault

        self.settings = settings
        self.vault = vault
        self.client.reload(settings)
        self.reloads += 1
        self._forget_removed_accounts()
        if self.secrets is not None:
            self.secrets.configure(settings)

        if restart_only:
            log.warning("settings_need_restart", settings=restart_only)
        log.info("settings_reloaded", settings=applied)
        return applied

    def _forget_removed_accounts(self) -> None:
        try:
            with self.engine.begin() as connection:
                records = accounts.list_accounts(connection)
        except SQLAlchemyError as exc:
            # The providers are only a cache; the next reload drops them instead.
            log.warning("reload_accounts_unread", error=type(exc).__name__)
            return
        dropped = self.client.forget_accounts({(record.name, record.region) for record in records})
        if dropped:
            log.info("token_providers_dropped", count=dropped)


def _needs_restart(name: str, old: Settings, new: Settings) -> bool:
    if name == "mapping_file":
        # The bridge's job is scheduled at start only when a mapping file is set.
        return (old.mapping_file is None) != (new.mapping_file is None)
    return name in RESTART_SETTINGS


class SecretLedger:
    """Records the LWA client secrets in use and warns once a day when the current one ages.

    Each configured secret's fingerprint is stored when a process is first configured with
    it. LWA's verdicts (a token issued, ``invalid_client``) are written as they come, the uses
    at most hourly. A failing database write is logged and never stops a token request.

    The age is checked at start, at each reload, when LWA issues a token, and hourly by the
    daemon's scheduler, so a daemon whose accounts all wait still warns.
    """

    def __init__(self, engine: Engine, now: Callable[[], datetime] = utc_now) -> None:
        self._engine = engine
        self._now = now
        self._settings: Settings | None = None
        self._lock = threading.Lock()
        self._last_use_written: dict[str, float] = {}
        self._warned_on: date | None = None

    def configure(self, settings: Settings) -> frozenset[str]:
        """Store the fingerprints of the configured secrets and check the current one's age.

        Returns:
            The fingerprints among them that LWA refused earlier.
        """
        with self._lock:
            self._settings = settings
            self._warned_on = None
        fingerprints = lwa_secrets.configured_fingerprints(settings)
        try:
            with self._engine.begin() as connection:
                lwa_secrets.record_secrets(connection, fingerprints, self._now())
                stored = lwa_secrets.load_secrets(connection, fingerprints)
        except SQLAlchemyError as exc:
            log.warning("lwa_secret_record_failed", error=type(exc).__name__)
            return frozenset()
        self.check_age()
        return frozenset(value for value, row in stored.items() if row.refused_at is not None)

    def used(self, fingerprint: str) -> None:
        """Note a token LWA issued with this secret; checks the age once a day."""
        now = time.monotonic()
        with self._lock:
            last = self._last_use_written.get(fingerprint)
            due = last is None or now - last >= _USE_RECORD_INTERVAL
            if due:
                self._last_use_written[fingerprint] = now
        if due:
            self._write(lwa_secrets.mark_used, fingerprint)
        self.check_age()

    def refused(self, fingerprint: str) -> None:
        """Note that LWA refused this secret."""
        with self._lock:
            # The next token issued with it is written at once and ends the refusal.
            self._last_use_written.pop(fingerprint, None)
        self._write(lwa_secrets.mark_refused, fingerprint)

    def check_age(self) -> lwa_secrets.SecretAge | None:
        """Log ``lwa_client_secret_expiring`` if the current secret needs attention.

        Logs at most once per UTC day, and again after :meth:`configure`.
        """
        today = self._now().date()
        with self._lock:
            settings = self._settings
            if settings is None or self._warned_on == today:
                return None
            self._warned_on = today
        try:
            with self._engine.begin() as connection:
                age = lwa_secrets.read_secret_age(connection, settings, today)
        except SQLAlchemyError as exc:
            log.warning("lwa_secret_record_failed", error=type(exc).__name__)
            return None
        if age is not None and age.state in _WARNED_STATES:
            event = log.error if age.state is lwa_secrets.SecretState.EXPIRED else log.warning
            event(
                "lwa_client_secret_expiring",
                fingerprint=age.fingerprint[:FINGERPRINT_SHOWN],
                days_left=age.days_left,
                age_days=age.age_days,
                next_configured=age.has_next,
            )
        return age

    def _write(self, action: Callable[..., None], fingerprint: str) -> None:
        try:
            with self._engine.begin() as connection:
                action(connection, fingerprint, self._now())
        except SQLAlchemyError as exc:
            log.warning(
                "lwa_secret_record_failed",
                fingerprint=fingerprint[:FINGERPRINT_SHOWN],
                error=type(exc).__name__,
            )


_WARNED_STATES = (lwa_secrets.SecretState.EXPIRING, lwa_secrets.SecretState.EXPIRED)


def build_context(settings: Settings, stop: threading.Event | None = None) -> JobContext:
    """Create the process's engine, client and vault from the settings.

    With LWA credentials set, their fingerprints are recorded in the database, and a secret
    LWA refused in an earlier run is skipped when a next one is configured.
    """
    stop = stop or threading.Event()
    engine = create_db_engine(settings.database_url)
    vault = Vault(settings.encryption_key)
    holder: list[JobContext] = []

    def keep_rotated_token(name: str, region: Region, token: SecretStr) -> None:
        # The context's vault, which a reload may have replaced since the client was built.
        current_vault = holder[0].vault if holder else vault
        with engine.begin() as connection:
            accounts.store_refresh_token(
                connection, current_vault, name=name, region=region, token=token, now=utc_now()
            )
        log.info("refresh_token_stored", account=name, region=region)

    ledger = SecretLedger(engine)
    credentials = None
    if settings.lwa_client_id and settings.lwa_client_secret:
        refused = ledger.configure(settings)
        credentials = ClientCredentials(
            lwa_client(settings),
            failure_recheck=settings.auth_failure_recheck,
            refused=refused,
            on_refused=ledger.refused,
            on_used=ledger.used,
        )
    client = SpApiClient(
        settings,
        stop=stop,
        on_refresh_token_rotated=keep_rotated_token,
        credentials=credentials,
    )
    ctx = JobContext(
        settings=settings,
        engine=engine,
        client=client,
        vault=vault,
        stop=stop,
        secrets=ledger,
    )
    holder.append(ctx)
    return ctx
