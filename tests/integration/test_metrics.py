"""The metrics endpoint over real HTTP on 127.0.0.1, against ``syncd status``'s figures."""

from __future__ import annotations

import dataclasses
import socket
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import update
from structlog.testing import capture_logs

from syncd import config, errors, metrics
from syncd.amazon.shipments import PackageItem
from syncd.db import accounts, outbox, quarantine, runs
from syncd.db.engine import create_db_engine
from syncd.jobs.context import JobContext
from syncd.jobs.orders import run_orders
from syncd.status import gather_shipments, gather_status
from tests.integration.orders_support import CHECKPOINTS, DE, FR, JP, US, JobWorld
from tests.integration.shipments_support import OUTBOX

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]
LAG_TOLERANCE = 30.0  # seconds between the scrape and the status read in a loaded test run


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _with_metrics(ctx: JobContext, port: int, **settings: object) -> JobContext:
    chosen = ctx.settings.model_copy(update={"metrics_port": port, **settings})
    return dataclasses.replace(ctx, settings=chosen)


@pytest.fixture
def endpoint(world: JobWorld) -> Iterator[metrics.MetricsEndpoint]:
    """The metrics endpoint of the world's context on a free loopback port."""
    started = metrics.start_metrics(_with_metrics(world.ctx, _free_port()))
    yield started
    started.stop()


def _scrape(endpoint: metrics.MetricsEndpoint) -> Samples:
    assert endpoint.address is not None
    host, port = endpoint.address
    response = httpx.get(f"http://{host}:{port}/metrics", timeout=10)
    assert response.status_code == 200
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, frozenset(sample.labels.items()))] = sample.value
    return found


def _value(samples: Samples, name: str, **labels: str) -> float | None:
    return samples.get((name, frozenset(labels.items())))


def _enqueue(
    ctx: JobContext,
    account: accounts.AccountRecord,
    order_id: str,
    *,
    state: str,
    age: timedelta = timedelta(0),
    deadline: datetime | None = None,
) -> None:
    now = ctx.now()
    shipment = outbox.NewShipment(
        account_id=account.id,
        marketplace_id=account.marketplace_ids[0],
        order_id=order_id,
        package_reference_id="1",
        carrier_code="UPS",
        carrier_name=None,
        shipping_method=None,
        tracking_number=f"1Z{order_id[-6:]}",
        ship_date=now - timedelta(hours=1),
        items=(PackageItem("1", 1),),
        deadline=deadline,
    )
    with ctx.engine.begin() as connection:
        row_id = outbox.enqueue(connection, shipment, now)
        connection.execute(
            update(OUTBOX)
            .where(OUTBOX.c.id == row_id)
            .values(state=state, created_at=now - age, updated_at=now - age)
        )


def _set_up_every_figure(world: JobWorld) -> tuple[accounts.AccountRecord, ...]:
    """Accounts in two states, orders, a lagging watermark, quarantine and outbox rows."""
    ctx = world.ctx
    us = world.add_account("acme-us", "na", US)
    eu = world.add_account("acme-eu", "eu", DE, FR)
    jp = world.add_account("acme-jp", "fe", JP)
    for account in (us, eu):
        assert run_orders(ctx, account).result == runs.SUCCEEDED

    # One account needs authorization again; the other's watermark is three hours old.
    now = ctx.now()
    with ctx.engine.begin() as connection:
        accounts.set_status(connection, jp.id, accounts.REAUTH_REQUIRED, "invalid_grant", now)
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == eu.id)
            .values(watermark=now - timedelta(hours=3))
        )

        # Two open entries of the orders stream and one of another stream.
        for order_id in ("111-0000000-0000001", "111-0000000-0000002"):
            quarantine.quarantine_record(
                connection,
                account_id=us.id,
                stream="orders",
                record_id=order_id,
                reason="unparsable",
                payload="{}",
                now=now,
            )
        quarantine.quarantine_record(
            connection,
            account_id=eu.id,
            stream="shipments",
            record_id="row-1",
            reason="no tracking number",
            payload="{}",
            now=now,
        )

    # Outbox rows: dead, conflict, waiting for five hours, near its deadline, delivered.
    _enqueue(ctx, us, "111-0000001-000001", state=outbox.DEAD)
    _enqueue(ctx, us, "111-0000001-000002", state=outbox.CONFLICT)
    _enqueue(ctx, us, "111-0000001-000003", state=outbox.PENDING, age=timedelta(hours=5))
    _enqueue(
        ctx,
        us,
        "111-0000001-000004",
        state=outbox.PENDING,
        deadline=now + timedelta(hours=2),
    )
    _enqueue(ctx, eu, "302-0000001-000005", state=outbox.DELIVERED)
    return us, eu, jp


def test_scrape_tells_the_status_story(world: JobWorld, endpoint: metrics.MetricsEndpoint) -> None:
    us, eu, jp = _set_up_every_figure(world)

    samples = _scrape(endpoint)
    now = world.ctx.now()
    warning = timedelta(hours=world.ctx.settings.shipment_deadline_warning)
    with world.ctx.engine.begin() as connection:
        statuses = {status.account.name: status for status in gather_status(connection, now)}
        shipments = gather_shipments(connection, now, warning)

    assert _value(samples, "syncd_database_up") == 1
    # Accounts by status, and the status of each account.
    assert _value(samples, "syncd_accounts", status="active") == 2
    assert _value(samples, "syncd_accounts", status="reauth_required") == 1
    for name, status in statuses.items():
        assert (
            _value(samples, "syncd_account_status_info", account=name, status=status.account.status)
            == 1
        )
    # Orders and watermark lag per account and marketplace.
    for name, status in statuses.items():
        for marketplace in status.marketplaces:
            labels = {"account": name, "marketplace": marketplace.marketplace_id}
            assert _value(samples, "syncd_orders_stored", **labels) == marketplace.orders
            lag = _value(samples, "syncd_watermark_lag_seconds", **labels)
            if status.lag is None:
                assert lag is None
            else:
                assert lag is not None
                assert abs(lag - status.lag.total_seconds()) < LAG_TOLERANCE
    assert statuses["acme-eu"].lag is not None
    assert statuses["acme-eu"].lag >= timedelta(hours=3)
    assert statuses["acme-jp"].lag is None
    assert sum(m.orders for m in statuses["acme-us"].marketplaces) > 0
    # Open quarantine entries per stream, adding up to the status column.
    assert _value(samples, "syncd_quarantined_records", account="acme-us", stream="orders") == 2
    assert _value(samples, "syncd_quarantined_records", account="acme-eu", stream="shipments") == 1
    for name, status in statuses.items():
        scraped = sum(
            value
            for (metric, labels), value in samples.items()
            if metric == "syncd_quarantined_records" and ("account", name) in labels
        )
        assert scraped == status.quarantined
    # The outbox: rows by state, depth, oldest waiting, near the deadline.
    for account in (us, eu, jp):
        entry = shipments.outbox.get(account.id, outbox.OutboxSummary())
        for state in outbox.STATES:
            assert _value(
                samples, "syncd_outbox_rows", account=account.name, state=state
            ) == entry.by_state.get(state, 0)
        assert _value(samples, "syncd_outbox_depth", account=account.name) == entry.depth
        assert (
            _value(samples, "syncd_outbox_near_deadline", account=account.name)
            == entry.near_deadline
        )
        age = _value(samples, "syncd_outbox_oldest_pending_age_seconds", account=account.name)
        assert age is not None
        if entry.oldest_pending is None:
            assert age == 0
        else:
            assert abs(age - (now - entry.oldest_pending).total_seconds()) < LAG_TOLERANCE
    assert _value(samples, "syncd_outbox_rows", account="acme-us", state="dead") == 1
    assert _value(samples, "syncd_outbox_rows", account="acme-us", state="conflict") == 1
    assert _value(samples, "syncd_outbox_depth", account="acme-us") == 2
    assert _value(samples, "syncd_outbox_near_deadline", account="acme-us") == 1
    oldest = _value(samples, "syncd_outbox_oldest_pending_age_seconds", account="acme-us")
    assert oldest is not None
    assert oldest >= 5 * 3600
    # Process facts.
    assert _value(samples, "syncd_build_info", version=metrics.__version__) == 1
    assert _value(samples, "process_resident_memory_bytes") is not None


def test_orders_job_counts_stored_orders(world: JobWorld) -> None:
    account = world.add_account("acme-counted", "na", US)
    before = metrics.REGISTRY.get_sample_value(
        "syncd_orders_synced_total", {"account": "acme-counted"}
    )

    summary = run_orders(world.ctx, account)

    after = metrics.REGISTRY.get_sample_value(
        "syncd_orders_synced_total", {"account": "acme-counted"}
    )
    assert summary.orders_new > 0
    assert (after or 0) - (before or 0) == summary.orders_new + summary.orders_updated


def test_endpoint_binds_loopback_by_default(world: JobWorld) -> None:
    port = _free_port()
    ctx = _with_metrics(world.ctx, port)

    with capture_logs() as logs:
        endpoint = metrics.start_metrics(ctx)
    try:
        assert ctx.settings.metrics_host == "127.0.0.1"
        assert endpoint.address == ("127.0.0.1", port)
        assert _value(_scrape(endpoint), "syncd_database_up") == 1
    finally:
        endpoint.stop()

    started = [entry for entry in logs if entry["event"] == "metrics_started"]
    assert len(started) == 1
    assert (started[0]["host"], started[0]["port"]) == ("127.0.0.1", port)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=2)


def test_metrics_are_off_by_default(world: JobWorld) -> None:
    assert config.Settings().metrics_port is None

    endpoint = metrics.start_metrics(world.ctx)

    assert world.ctx.settings.metrics_port is None
    assert endpoint.address is None
    endpoint.stop()


def test_busy_port_names_the_setting(world: JobWorld) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = int(taken.getsockname()[1])

        with pytest.raises(errors.ConfigError) as raised:
            metrics.start_metrics(_with_metrics(world.ctx, port))

    message = str(raised.value)
    assert f"127.0.0.1:{port}" in message
    assert "SYNCD_METRICS_PORT" in message
    assert metrics.REGISTRY.get_sample_value("syncd_database_up") is None


def test_host_beyond_loopback_is_logged(world: JobWorld) -> None:
    # 192.0.2.1 is reserved for documentation (RFC 5737), so no interface of this machine has
    # it: the warning is logged, then listening fails without opening any port.
    ctx = _with_metrics(world.ctx, _free_port(), metrics_host="192.0.2.1")

    with capture_logs() as logs, pytest.raises(errors.ConfigError) as raised:
        metrics.start_metrics(ctx)

    warnings = [entry for entry in logs if entry["event"] == "metrics_listening_beyond_loopback"]
    assert len(warnings) == 1
    assert warnings[0]["host"] == "192.0.2.1"
    assert "SYNCD_METRICS_HOST" in str(raised.value)


def test_scrape_survives_unreachable_database(world: JobWorld, tmp_path: Path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'missing' / 'syncd.sqlite3'}")
    ctx = dataclasses.replace(_with_metrics(world.ctx, _free_port()), engine=engine)
    endpoint = metrics.start_metrics(ctx)
    try:
        samples = _scrape(endpoint)
    finally:
        endpoint.stop()
        engine.dispose()

    assert _value(samples, "syncd_database_up") == 0
    assert _value(samples, "syncd_outbox_depth", account="acme-us") is None
    assert _value(samples, "syncd_build_info", version=metrics.__version__) == 1


def test_scrape_time_is_utc(world: JobWorld, endpoint: metrics.MetricsEndpoint) -> None:
    account = world.add_account("acme-utc", "na", US)
    watermark = datetime.now(UTC) - timedelta(minutes=90)
    assert run_orders(world.ctx, account).result == runs.SUCCEEDED
    with world.ctx.engine.begin() as connection:
        connection.execute(
            update(CHECKPOINTS)
            .where(CHECKPOINTS.c.account_id == account.id)
            .values(watermark=watermark)
        )

    lag = _value(
        _scrape(endpoint), "syncd_watermark_lag_seconds", account="acme-utc", marketplace=US
    )

    assert lag is not None
    assert abs(lag - 90 * 60) < LAG_TOLERANCE


def test_order_count_refreshes_after_max_age(world: JobWorld) -> None:
    clock = [1000.0]
    collector = metrics.DatabaseCollector(
        world.ctx.engine, lambda: timedelta(hours=12), world.ctx.now, lambda: clock[0]
    )

    def scraped_orders() -> float:
        families = {family.name: family for family in collector.collect()}
        return sum(sample.value for sample in families["syncd_orders_stored"].samples)

    first = world.add_account("acme-first", "na", US)
    assert run_orders(world.ctx, first).result == runs.SUCCEEDED
    counted = scraped_orders()

    # More orders arrive after the count; the next scrapes reuse it until it is too old.
    second = world.add_account("acme-second", "eu", DE)
    assert run_orders(world.ctx, second).result == runs.SUCCEEDED
    clock[0] += metrics.ORDER_COUNT_MAX_AGE - 1
    within_max_age = scraped_orders()
    clock[0] += 1
    after_max_age = scraped_orders()

    with world.ctx.engine.begin() as connection:
        statuses = gather_status(connection, world.ctx.now())
    total = sum(marketplace.orders for status in statuses for marketplace in status.marketplaces)
    assert counted > 0
    assert within_max_age == counted
    assert after_max_age == total
    assert total > counted


def test_reloaded_warning_applies_next_scrape(world: JobWorld) -> None:
    ctx = _with_metrics(world.ctx, _free_port())
    account = world.add_account("acme-us", "na", US)
    deadline = ctx.now() + timedelta(hours=20)
    _enqueue(ctx, account, "111-0000001-000009", state=outbox.PENDING, deadline=deadline)

    endpoint = metrics.start_metrics(ctx)
    try:
        default_window = _value(_scrape(endpoint), "syncd_outbox_near_deadline", account="acme-us")
        # What a reload does: the context takes new settings while the endpoint keeps running.
        ctx.settings = ctx.settings.model_copy(update={"shipment_deadline_warning": 24.0})
        wider_window = _value(_scrape(endpoint), "syncd_outbox_near_deadline", account="acme-us")
    finally:
        endpoint.stop()

    assert ctx.settings.shipment_deadline_warning == 24.0
    assert default_window == 0
    assert wider_window == 1
