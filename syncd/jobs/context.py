"""Job context: settings, the database, the SP-API client, the vault and a stop flag."""

from __future__ import annotations

import os
import socket
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import Engine

from syncd.amazon.client import SpApiClient
from syncd.amazon.clock import utc_now
from syncd.amazon.marketplaces import Region
from syncd.config import Settings
from syncd.crypto import Vault
from syncd.db import accounts
from syncd.db.engine import create_db_engine
from syncd.logs import get_logger

log = get_logger(__name__)


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

    def close(self) -> None:
        """Close the HTTP client and the database pool."""
        self.client.close()
        self.engine.dispose()


def build_context(settings: Settings, stop: threading.Event | None = None) -> JobContext:
    """Create the process's engine, client and vault from the settings."""
    stop = stop or threading.Event()
    engine = create_db_engine(settings.database_url)
    vault = Vault(settings.encryption_key)

    def keep_rotated_token(name: str, region: Region, token: SecretStr) -> None:
        with engine.begin() as connection:
            accounts.store_refresh_token(
                connection, vault, name=name, region=region, token=token, now=utc_now()
            )
        log.info("refresh_token_stored", account=name, region=region)

    client = SpApiClient(settings, stop=stop, on_refresh_token_rotated=keep_rotated_token)
    return JobContext(settings=settings, engine=engine, client=client, vault=vault, stop=stop)
