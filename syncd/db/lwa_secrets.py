"""The LWA client secrets syncd has used, by fingerprint, and how close each is to expiry.

Amazon expires an application's client secret 180 days after it was made and requires a new
one before that. syncd never stores a secret: each row is the SHA-256 fingerprint of one,
with the first time a process was configured with it, the last time LWA issued a token with
it and the time LWA refused it (``invalid_client``).

A secret's age counts from ``SYNCD_LWA_CLIENT_SECRET_CREATED`` when it is set, else from the
day syncd first saw the secret, which is the latest day it can have been made. Warnings start
:data:`WARNING_DAYS` days before the expiry. The age is judged only when the token URL is
Amazon's: a vendor's token service keeps the real secret, and what syncd sends it is the
vendor's own credential, which Amazon's 180 days do not govern.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import httpx
from sqlalchemy import Connection, insert, select, update
from sqlalchemy.exc import IntegrityError

from syncd.amazon.auth import FINGERPRINT_SHOWN, fingerprint
from syncd.config import AMAZON_LWA_TOKEN_URL, Settings
from syncd.db.models import LwaSecret, table_of
from syncd.i18n import gettext as _
from syncd.i18n import ngettext

_TABLE = table_of(LwaSecret)

LIFETIME_DAYS = 180  # Amazon expires a client secret this many days after it was made
WARNING_DAYS = 30  # warnings start this many days before the expiry


@dataclass(frozen=True)
class SecretRecord:
    """One stored fingerprint and its times."""

    fingerprint: str
    first_seen_at: datetime
    last_used_at: datetime | None
    refused_at: datetime | None


def record_secrets(connection: Connection, fingerprints: Iterable[str], now: datetime) -> None:
    """Store the fingerprints not stored yet, first seen ``now``.

    Several nodes may record the same new secret at once; the first row wins.
    """
    for value in fingerprints:
        found = connection.execute(
            select(_TABLE.c.fingerprint).where(_TABLE.c.fingerprint == value)
        ).first()
        if found is not None:
            continue
        savepoint = connection.begin_nested()
        try:
            connection.execute(insert(_TABLE).values(fingerprint=value, first_seen_at=now))
            savepoint.commit()
        except IntegrityError:
            savepoint.rollback()


def mark_used(connection: Connection, value: str, now: datetime) -> None:
    """Record that LWA issued a token with the secret of this fingerprint.

    An earlier refusal no longer holds: it came from a fault that has passed, such as a wrong
    client id or a token service's error, and the secret must not be skipped or reported as
    refused any more.
    """
    connection.execute(
        update(_TABLE)
        .where(_TABLE.c.fingerprint == value)
        .values(last_used_at=now, refused_at=None)
    )


def mark_refused(connection: Connection, value: str, now: datetime) -> None:
    """Record that LWA refused the secret of this fingerprint (``invalid_client``)."""
    record_secrets(connection, [value], now)
    connection.execute(update(_TABLE).where(_TABLE.c.fingerprint == value).values(refused_at=now))


def load_secrets(connection: Connection, fingerprints: Iterable[str]) -> dict[str, SecretRecord]:
    """Return the stored rows of these fingerprints, by fingerprint."""
    requested = list(fingerprints)
    if not requested:
        return {}
    rows = connection.execute(select(_TABLE).where(_TABLE.c.fingerprint.in_(requested)))
    return {
        row.fingerprint: SecretRecord(
            row.fingerprint, row.first_seen_at, row.last_used_at, row.refused_at
        )
        for row in rows
    }


def configured_fingerprints(settings: Settings) -> list[str]:
    """Return the fingerprints of the current and the next secret, those that are set."""
    return [
        fingerprint(secret)
        for secret in (settings.lwa_client_secret, settings.lwa_client_secret_next)
        if secret is not None and secret.get_secret_value()
    ]


class SecretState(enum.StrEnum):
    """The state of the current client secret."""

    OK = "ok"
    EXPIRING = "expiring"  # within WARNING_DAYS of the expiry
    EXPIRED = "expired"  # past the expiry by its age
    SWITCHED = "switched"  # LWA refused it and the next secret is in use
    REFUSED = "refused"  # LWA refused it and no next secret is left
    UNKNOWN = "unknown"  # no creation date and never seen by a running syncd
    NOT_TRACKED = "not_tracked"  # the token URL is not Amazon's


@dataclass(frozen=True)
class SecretAge:
    """The age and state of the current client secret, as status, doctor and logs show it."""

    state: SecretState
    fingerprint: str
    since: date | None  # the day the age counts from
    from_setting: bool  # since comes from SYNCD_LWA_CLIENT_SECRET_CREATED
    age_days: int | None
    days_left: int | None  # days until Amazon's expiry; 0 or less when past it
    has_next: bool  # SYNCD_LWA_CLIENT_SECRET_NEXT is set
    token_host: str

    @property
    def needs_attention(self) -> bool:
        """True for the states that status and the daemon's log report."""
        return self.state not in (SecretState.OK, SecretState.UNKNOWN, SecretState.NOT_TRACKED)


def is_amazon_token_url(settings: Settings) -> bool:
    """True when the token URL is Amazon's LWA, where the 180-day expiry applies."""
    return httpx.URL(str(settings.lwa_token_url)).host == httpx.URL(AMAZON_LWA_TOKEN_URL).host


def assess_secret(
    settings: Settings, stored: dict[str, SecretRecord], today: date
) -> SecretAge | None:
    """Judge the current client secret; None when no secret is set.

    Args:
        settings: the secrets, their creation date and the token URL.
        stored: the rows of :func:`load_secrets` for :func:`configured_fingerprints`.
        today: the UTC date to count the age to.
    """
    if settings.lwa_client_secret is None or not settings.lwa_client_secret.get_secret_value():
        return None
    current = fingerprint(settings.lwa_client_secret)
    fingerprints = configured_fingerprints(settings)
    next_print = fingerprints[1] if len(fingerprints) > 1 else None
    row = stored.get(current)
    since = settings.lwa_client_secret_created
    if since is None and row is not None:
        since = row.first_seen_at.date()
    age = None if since is None else (today - since).days
    days_left = None if age is None else LIFETIME_DAYS - age
    next_row = stored.get(next_print) if next_print is not None else None

    if row is not None and row.refused_at is not None:
        next_usable = next_print is not None and (next_row is None or next_row.refused_at is None)
        state = SecretState.SWITCHED if next_usable else SecretState.REFUSED
    elif not is_amazon_token_url(settings):
        state = SecretState.NOT_TRACKED
    elif days_left is None:
        state = SecretState.UNKNOWN
    elif days_left <= 0:
        state = SecretState.EXPIRED
    elif days_left <= WARNING_DAYS:
        state = SecretState.EXPIRING
    else:
        state = SecretState.OK
    return SecretAge(
        state=state,
        fingerprint=current,
        since=since,
        from_setting=settings.lwa_client_secret_created is not None,
        age_days=age,
        days_left=days_left,
        has_next=next_print is not None,
        token_host=httpx.URL(str(settings.lwa_token_url)).host,
    )


def read_secret_age(connection: Connection, settings: Settings, today: date) -> SecretAge | None:
    """Load the stored rows and judge the current client secret (see :func:`assess_secret`)."""
    stored = load_secrets(connection, configured_fingerprints(settings))
    return assess_secret(settings, stored, today)


def describe_secret_age(age: SecretAge) -> tuple[str, str]:
    """Return the finding and the fix that ``status`` and ``doctor`` print for the secret."""
    prefix = age.fingerprint[:FINGERPRINT_SHOWN]
    rotate = _(
        "Rotate the secret where Amazon shows the app's LWA credentials (Solution Provider "
        "Portal, or Seller Central: Apps and Services, Develop Apps) and put the new one into "
        "SYNCD_LWA_CLIENT_SECRET_NEXT."
    )
    waiting = _(
        "The next secret is configured (SYNCD_LWA_CLIENT_SECRET_NEXT): syncd switches to it "
        "when Amazon retires the old one. Then make it SYNCD_LWA_CLIENT_SECRET."
    )
    promote = _(
        "Move the new secret from SYNCD_LWA_CLIENT_SECRET_NEXT to SYNCD_LWA_CLIENT_SECRET and "
        "set SYNCD_LWA_CLIENT_SECRET_CREATED to the day Amazon made it."
    )
    # systemd copies LoadCredential= files only when the service starts, so a reload does
    # not see a changed credential file.
    apply = _(
        "Then run 'systemctl reload syncd' after a change of the env file, or "
        "'systemctl restart syncd' after a change of a credential file."
    )
    rotate, promote = f"{rotate} {apply}", f"{promote} {apply}"
    if age.state is SecretState.REFUSED:
        detail = _("LWA refused the client secret {secret} (invalid_client)").format(secret=prefix)
        if age.has_next:
            detail = _("LWA refused the client secret {secret} and the next one").format(
                secret=prefix
            )
        fix = _("Every account waits. Put the app's current secret into SYNCD_LWA_CLIENT_SECRET.")
        return detail, f"{fix} {apply}"
    if age.state is SecretState.SWITCHED:
        detail = _("LWA refused the client secret {secret}; syncd uses the next one").format(
            secret=prefix
        )
        return detail, promote
    if age.state is SecretState.NOT_TRACKED:
        detail = _(
            "SYNCD_LWA_TOKEN_URL points at {host}, which keeps the client secret; its age is "
            "tracked there"
        ).format(host=age.token_host)
        return detail, ""
    if age.state is SecretState.UNKNOWN or age.age_days is None or age.days_left is None:
        detail = _("the age of the client secret {secret} is not known yet").format(secret=prefix)
        fix = _(
            "Set SYNCD_LWA_CLIENT_SECRET_CREATED to the day Amazon made the secret; otherwise "
            "syncd counts from the day 'syncd run' first uses it."
        )
        return detail, fix

    source = (
        _("made on {day} (SYNCD_LWA_CLIENT_SECRET_CREATED)")
        if age.from_setting
        else _("first used by syncd on {day}")
    ).format(day=age.since)
    if age.state is SecretState.EXPIRED:
        detail = ngettext(
            "the client secret {secret} is {age} day old, past Amazon's {lifetime}-day expiry "
            "({source})",
            "the client secret {secret} is {age} days old, past Amazon's {lifetime}-day expiry "
            "({source})",
            age.age_days,
        )
    elif age.state is SecretState.EXPIRING:
        detail = ngettext(
            "the client secret {secret} expires in {left} day: Amazon expires secrets after "
            "{lifetime} days ({source})",
            "the client secret {secret} expires in {left} days: Amazon expires secrets after "
            "{lifetime} days ({source})",
            age.days_left,
        )
    else:
        detail = ngettext(
            "the client secret {secret} is {age} day old, {left} days before Amazon's "
            "{lifetime}-day expiry ({source})",
            "the client secret {secret} is {age} days old, {left} days before Amazon's "
            "{lifetime}-day expiry ({source})",
            age.age_days,
        )
    detail = detail.format(
        secret=prefix,
        age=age.age_days,
        left=age.days_left,
        lifetime=LIFETIME_DAYS,
        source=source,
    )
    if age.state is SecretState.OK:
        return detail, waiting if age.has_next else ""
    return detail, waiting if age.has_next else rotate
