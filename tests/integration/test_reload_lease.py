"""A reload keeps the settings that a daemon node's lease heartbeat was built with."""

from __future__ import annotations

from datetime import timedelta

from structlog.testing import capture_logs

from syncd.jobs.leasing import NodeLeases
from tests.integration.orders_support import JobWorld


def test_lease_lifetime_needs_restart(world: JobWorld) -> None:
    node = NodeLeases(world.ctx)  # built at start, with the heartbeat's schedule
    before = world.ctx.settings.lease_seconds

    with capture_logs() as logs:
        changed = world.ctx.reload(world.ctx.settings.model_copy(update={"lease_seconds": 60.0}))

    assert "lease_seconds" not in changed
    assert world.ctx.settings.lease_seconds == before
    assert node.ttl == timedelta(seconds=world.ctx.settings.lease_seconds)
    restart = [entry for entry in logs if entry["event"] == "settings_need_restart"]
    assert restart[0]["settings"] == ["lease_seconds"]
