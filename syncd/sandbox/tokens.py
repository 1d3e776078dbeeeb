"""Access tokens issued by the sandbox's LWA endpoint, and revoked refresh tokens.

An access token is ``Atza|`` followed by URL-safe random text (no ``+`` or ``/``), valid
for the token lifetime in force when it was issued, counted on the sandbox clock. A token
from the refresh_token grant acts for that refresh token's seller. A token from the
client_credentials grant (grantless) acts for no seller and carries its scope.

Revoking a refresh token makes LWA return ``invalid_grant`` for it. Access tokens already
issued for it stay valid until they expire.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

ACCESS_TOKEN_PREFIX = "Atza|"
# Expired grants are forgotten this long after expiry, so the registry does not grow forever.
_FORGET_AFTER = timedelta(days=2)


@dataclass(frozen=True)
class AccessGrant:
    """Rights of an access token. ``refresh_token`` is secret: never log it."""

    refresh_token: str | None  # None for a grantless token
    seller_id: str | None
    scope: str | None
    issued_at: datetime
    expires_at: datetime

    @property
    def is_grantless(self) -> bool:
        """Whether the token came from the client_credentials grant."""
        return self.refresh_token is None

    def is_expired(self, now: datetime) -> bool:
        """Return whether the token has expired at ``now`` (sandbox time)."""
        return now >= self.expires_at


class TokenRegistry:
    """Issued access tokens and revoked refresh tokens. Callers hold the state lock."""

    def __init__(self) -> None:
        self._grants: dict[str, AccessGrant] = {}
        self._revoked: set[str] = set()

    def issue(
        self,
        now: datetime,
        lifetime_seconds: int,
        *,
        refresh_token: str | None = None,
        seller_id: str | None = None,
        scope: str | None = None,
    ) -> str:
        """Issue a new access token and return it."""
        self._forget_expired(now)
        token = ACCESS_TOKEN_PREFIX + secrets.token_urlsafe(48)
        self._grants[token] = AccessGrant(
            refresh_token=refresh_token,
            seller_id=seller_id,
            scope=scope,
            issued_at=now,
            expires_at=now + timedelta(seconds=lifetime_seconds),
        )
        return token

    def lookup(self, access_token: str) -> AccessGrant | None:
        """Return the grant of an access token, expired or not, or None if never issued."""
        return self._grants.get(access_token)

    def revoke(self, refresh_token: str) -> None:
        """Make LWA reject this refresh token from now on."""
        self._revoked.add(refresh_token)

    def restore(self, refresh_token: str) -> None:
        """Undo a revocation."""
        self._revoked.discard(refresh_token)

    def is_revoked(self, refresh_token: str) -> bool:
        """Return whether the refresh token was revoked."""
        return refresh_token in self._revoked

    def revoked_count(self) -> int:
        """Number of revoked refresh tokens."""
        return len(self._revoked)

    def clear(self) -> None:
        """Forget every access token and every revocation."""
        self._grants.clear()
        self._revoked.clear()

    def _forget_expired(self, now: datetime) -> None:
        stale = [
            token for token, grant in self._grants.items() if now - grant.expires_at > _FORGET_AFTER
        ]
        for token in stale:
            del self._grants[token]
