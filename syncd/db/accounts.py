"""Seller accounts: one authorization of one seller in one region, its token encrypted.

An account's status decides whether the daemon works on it:

- ``active``: due runs happen;
- ``reauth_required``: LWA rejected the refresh token (``invalid_grant``); nothing runs until
  the seller authorizes again and ``syncd account set-token`` stores the new token;
- ``access_denied``: Amazon returned 403 to the orders job (a missing role), so its runs are
  tried again hourly;
- ``dataset_unavailable``: Amazon refused one includedData set, so the search is sent again
  every 30 minutes;
- ``shipments_denied``: Amazon returned 403 to confirmShipment; orders still sync, and the
  account's shipments wait an hour at a time until a confirmation succeeds.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from pydantic import SecretStr
from sqlalchemy import Connection, delete, func, insert, or_, select, update

from syncd import errors
from syncd.amazon import marketplaces
from syncd.amazon.client import SellerAccount
from syncd.crypto import Vault
from syncd.db import cursors
from syncd.db.leases import ensure_lease
from syncd.db.models import Account, Order, table_of
from syncd.i18n import gettext as _

_TABLE = table_of(Account)

ACTIVE = "active"
REAUTH_REQUIRED = "reauth_required"
ACCESS_DENIED = "access_denied"
# Amazon refuses one of the account's includedData sets that it took before.
DATASET_UNAVAILABLE = "dataset_unavailable"
# Amazon refused confirmShipment (403) while orders may still be read; set and cleared by
# the shipments job only, so a successful orders run does not hide it.
SHIPMENTS_DENIED = "shipments_denied"
STATUSES = (ACTIVE, REAUTH_REQUIRED, ACCESS_DENIED, DATASET_UNAVAILABLE, SHIPMENTS_DENIED)


@dataclass(frozen=True)
class AccountRecord:
    """An account as stored, without its refresh token."""

    id: int
    name: str
    region: marketplaces.Region
    marketplace_ids: tuple[str, ...]
    included_data: tuple[str, ...]
    status: str
    status_reason: str | None
    next_run_at: datetime | None
    created_at: datetime


def _record(row: object) -> AccountRecord:
    mapping = row._mapping  # type: ignore[attr-defined]
    return AccountRecord(
        id=mapping["id"],
        name=mapping["name"],
        region=mapping["region"],
        marketplace_ids=tuple(filter(None, mapping["marketplace_ids"].split(","))),
        included_data=tuple(filter(None, mapping["included_data"].split(","))),
        status=mapping["status"],
        status_reason=mapping["status_reason"],
        next_run_at=mapping["next_run_at"],
        created_at=mapping["created_at"],
    )


_COLUMNS = (
    _TABLE.c.id,
    _TABLE.c.name,
    _TABLE.c.region,
    _TABLE.c.marketplace_ids,
    _TABLE.c.included_data,
    _TABLE.c.status,
    _TABLE.c.status_reason,
    _TABLE.c.next_run_at,
    _TABLE.c.created_at,
)


def save_account(
    connection: Connection,
    vault: Vault,
    *,
    name: str,
    region: marketplaces.Region,
    marketplace_ids: tuple[str, ...],
    included_data: tuple[str, ...],
    refresh_token: SecretStr,
    now: datetime,
    replace: bool = False,
) -> AccountRecord:
    """Store a new account, or with ``replace`` a new token and settings for an existing one.

    Replacing keeps the account's orders and makes it active again. It keeps the checkpoints
    too, unless the region, the marketplaces or the datasets change. The watermark covers
    only what was requested, so the next run then starts again with the backfill.

    Raises:
        errors.MarketplaceError: a marketplace is unknown or of another region.
        errors.AccountError: the name is taken (without ``replace``) or invalid.
    """
    marketplaces.check_region(marketplace_ids, region)
    name = normalize_name(name)
    if not name or len(name) > 64 or not name.replace("-", "").replace("_", "").isalnum():
        raise errors.AccountError(
            name, _("use 1 to 64 letters, digits, '-' or '_' for an account name")
        )
    values = {
        "region": region,
        "marketplace_ids": ",".join(marketplace_ids),
        "included_data": ",".join(included_data),
        "refresh_token_encrypted": vault.encrypt(refresh_token.get_secret_value()),
        "status": ACTIVE,
        "status_reason": None,
        "next_run_at": None,
        "updated_at": now,
    }
    existing = find_account(connection, name)
    if existing is not None and not replace:
        raise errors.AccountError(
            name,
            _("an account with this name exists; add --replace to store a new token for it"),
        )
    if existing is None:
        connection.execute(insert(_TABLE).values(name=name, created_at=now, **values))
    else:
        connection.execute(update(_TABLE).where(_TABLE.c.id == existing.id).values(**values))
    stored = find_account(connection, name)
    assert stored is not None
    if existing is not None and scope_changed(existing, stored):
        cursors.reset_cursors(connection, stored.id)
    ensure_lease(connection, stored.id)
    return stored


def scope_changed(old: AccountRecord, new: AccountRecord) -> bool:
    """True when two versions of an account ask Amazon for different orders or fields."""
    return (
        old.region != new.region
        or set(old.marketplace_ids) != set(new.marketplace_ids)
        or set(old.included_data) != set(new.included_data)
    )


def normalize_name(name: str) -> str:
    """Return an account name in lower case.

    MariaDB/MySQL compare names without case and PostgreSQL and SQLite with it; storing lower
    case makes ``Acme`` and ``acme`` one account everywhere.
    """
    return name.strip().lower()


def find_account(connection: Connection, name: str) -> AccountRecord | None:
    """Return the account with this name (in any case), or None."""
    row = connection.execute(select(*_COLUMNS).where(_TABLE.c.name == normalize_name(name))).first()
    return None if row is None else _record(row)


def get_account(connection: Connection, name: str) -> AccountRecord:
    """Return the account with this name.

    Raises:
        errors.AccountError: no account has this name.
    """
    found = find_account(connection, name)
    if found is None:
        raise errors.AccountError(name, _("no such account; 'syncd account list' shows them"))
    return found


def list_accounts(connection: Connection) -> list[AccountRecord]:
    """Return every account, by name."""
    return [_record(row) for row in connection.execute(select(*_COLUMNS).order_by(_TABLE.c.name))]


def remove_account(connection: Connection, name: str) -> int:
    """Delete the account with its checkpoints, orders and runs; return the orders deleted."""
    account = get_account(connection, name)
    orders = connection.execute(
        select(func.count())
        .select_from(Order.__table__)
        .where(Order.__table__.c.account_id == account.id)
    ).scalar_one()
    connection.execute(delete(_TABLE).where(_TABLE.c.id == account.id))
    return int(orders)


def seller_account(connection: Connection, vault: Vault, account: AccountRecord) -> SellerAccount:
    """Return the account with its decrypted refresh token, for the SP-API client."""
    encrypted = connection.execute(
        select(_TABLE.c.refresh_token_encrypted).where(_TABLE.c.id == account.id)
    ).scalar_one()
    token = vault.decrypt(encrypted, _("refresh token of account {name}").format(name=account.name))
    return SellerAccount(account.name, account.region, SecretStr(token), account.marketplace_ids)


def store_refresh_token(
    connection: Connection,
    vault: Vault,
    *,
    name: str,
    region: str,
    token: SecretStr,
    now: datetime,
) -> None:
    """Keep a refresh token that LWA rotated."""
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.name == name, _TABLE.c.region == region)
        .values(refresh_token_encrypted=vault.encrypt(token.get_secret_value()), updated_at=now)
    )


def replace_refresh_token(
    connection: Connection, vault: Vault, *, name: str, token: SecretStr, now: datetime
) -> AccountRecord:
    """Store a new refresh token from the seller's new authorization and make the account due.

    The account becomes ``active`` and its next run is due at once, so a running daemon
    starts it at its next dispatch. The daemon's client sees that the stored token changed
    and drops the old token's ``invalid_grant``. Region, marketplaces, datasets and
    checkpoints stay as they were.

    Raises:
        errors.AccountError: no account has this name.
        errors.SettingsError: no encryption key is set.
    """
    account = get_account(connection, name)
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.id == account.id)
        .values(
            refresh_token_encrypted=vault.encrypt(token.get_secret_value()),
            status=ACTIVE,
            status_reason=None,
            next_run_at=None,
            updated_at=now,
        )
    )
    return get_account(connection, name)


def reauthorize_command(name: str) -> str:
    """Return the command that stores a seller's new refresh token, for fix messages."""
    return f"syncd account set-token {name} --refresh-token-file FILE"


def set_status(
    connection: Connection, account_id: int, status: str, reason: str | None, now: datetime
) -> None:
    """Record why an account runs or does not run."""
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.id == account_id)
        .values(status=status, status_reason=reason, updated_at=now)
    )


def schedule_next(connection: Connection, account_id: int, at: datetime) -> None:
    """Set when the account's next run is due."""
    connection.execute(update(_TABLE).where(_TABLE.c.id == account_id).values(next_run_at=at))


def due_accounts(connection: Connection, now: datetime) -> list[AccountRecord]:
    """Return the accounts whose next run is due, oldest due first.

    ``reauth_required`` accounts are never due; ``access_denied`` ones are retried when
    their next run comes.
    """
    query = (
        select(*_COLUMNS)
        .where(
            _TABLE.c.status != REAUTH_REQUIRED,
            or_(_TABLE.c.next_run_at.is_(None), _TABLE.c.next_run_at <= now),
        )
        .order_by(_TABLE.c.next_run_at.is_not(None), _TABLE.c.next_run_at, _TABLE.c.id)
    )
    return [_record(row) for row in connection.execute(query)]
