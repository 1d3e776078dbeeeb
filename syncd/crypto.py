"""Encryption at rest for refresh tokens and buyer data (Fernet from cryptography).

The key comes from ``SYNCD_ENCRYPTION_KEY`` or the systemd credential of that name. It may
list several keys separated by commas: the first encrypts, every one decrypts, so a key can
be rotated by putting the new one first and re-saving the data.
"""

from __future__ import annotations

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from pydantic import SecretStr

from syncd import errors
from syncd.i18n import gettext as _

KEY_VARIABLE = "SYNCD_ENCRYPTION_KEY"


def generate_key() -> str:
    """Return a new random key in the form ``SYNCD_ENCRYPTION_KEY`` takes."""
    return Fernet.generate_key().decode("ascii")


class Vault:
    """Encrypts and decrypts short texts with the configured keys."""

    def __init__(self, keys: SecretStr | None) -> None:
        self._fernet: MultiFernet | None = None
        if keys is None or not keys.get_secret_value().strip():
            return
        try:
            fernets = [Fernet(key.strip()) for key in keys.get_secret_value().split(",")]
        except ValueError:
            raise errors.SettingsError(
                [
                    errors.SettingProblem(
                        KEY_VARIABLE,
                        _("(hidden)"),
                        _("one or more keys made by 'syncd key generate', separated by commas"),
                    )
                ]
            ) from None
        self._fernet = MultiFernet(fernets)

    @property
    def is_configured(self) -> bool:
        """True when a key is set."""
        return self._fernet is not None

    def _require(self) -> MultiFernet:
        if self._fernet is None:
            raise errors.SettingsError(
                [
                    errors.SettingProblem(
                        KEY_VARIABLE,
                        None,
                        _(
                            "a key to encrypt refresh tokens and buyer data; create one with "
                            "'syncd key generate' and keep a copy: data encrypted with a lost "
                            "key cannot be read"
                        ),
                    )
                ]
            )
        return self._fernet

    def encrypt(self, text: str) -> str:
        """Encrypt ``text``; raises :class:`errors.SettingsError` when no key is set."""
        return self._require().encrypt(text.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str, what: str) -> str:
        """Decrypt a value encrypted by :meth:`encrypt`.

        Args:
            token: the stored ciphertext.
            what: names the value in the error, for example "refresh token of account acme".

        Raises:
            errors.SettingsError: no key is set, or none of the keys opens the value.
        """
        try:
            return self._require().decrypt(token.encode("ascii")).decode("utf-8")
        except (InvalidToken, ValueError):
            raise errors.SettingsError(
                [
                    errors.SettingProblem(
                        KEY_VARIABLE,
                        _("(hidden)"),
                        _(
                            "the key that encrypted the {what}; list the old key after a new one"
                        ).format(what=what),
                    )
                ]
            ) from None
