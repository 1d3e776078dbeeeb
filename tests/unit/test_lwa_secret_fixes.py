"""The fixes that status and doctor print for the LWA client secret name the right command."""

from __future__ import annotations

from datetime import date

import pytest

from syncd.db.lwa_secrets import SecretAge, SecretState, describe_secret_age

# The states whose fix has the operator change SYNCD_LWA_CLIENT_SECRET or its next one.
_CHANGED_SECRET = (SecretState.REFUSED, SecretState.SWITCHED, SecretState.EXPIRING)


def _age(state: SecretState, *, has_next: bool) -> SecretAge:
    return SecretAge(
        state=state,
        fingerprint="ab" * 32,
        since=date(2026, 6, 20),
        from_setting=False,
        age_days=168,
        days_left=12,
        has_next=has_next,
        token_host="api.amazon.com",
    )


@pytest.mark.parametrize("state", _CHANGED_SECRET)
def test_credential_change_asks_restart(state: SecretState) -> None:
    # The unit loads the secret as a credential, which systemd copies only at a start.
    _detail, fix = describe_secret_age(_age(state, has_next=state is SecretState.SWITCHED))

    assert "systemctl reload syncd" in fix
    assert "systemctl restart syncd" in fix
