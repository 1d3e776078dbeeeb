"""``syncd once``, ``syncd run``, ``syncd status`` and ``syncd quarantine``."""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import partial
from types import FrameType

import click
from rich.table import Table
from sqlalchemy import Connection
from sqlalchemy.exc import SQLAlchemyError

from syncd import cli_base, config, daemon, errors, systemd
from syncd.amazon.clock import utc_now
from syncd.bridge.projection import STREAM as ERP_STREAM
from syncd.cli_accounts import account_state_label, print_lwa_secret_status, reauthorize_hint
from syncd.cli_support import (
    create_console,
    format_duration,
    format_time,
    load_settings,
    marketplace_label,
    open_database,
)
from syncd.config import Settings
from syncd.db import accounts, leases, nodes, quarantine, runs
from syncd.db.engine import database_error_reason
from syncd.i18n import gettext as _
from syncd.i18n import ngettext
from syncd.jobs.context import JobContext, build_context
from syncd.jobs.leasing import LeaseBook
from syncd.jobs.orders import STREAM, run_orders, store_fetched_order
from syncd.logs import get_logger
from syncd.status import AccountStatus, ShipmentFigures, gather_shipments, gather_status

log = get_logger(__name__)


@contextmanager
def _context(ctx: click.Context, stop: threading.Event | None = None) -> Iterator[JobContext]:
    settings = load_settings(ctx)
    settings.require_job_settings()
    with open_database(settings):
        pass  # checks the schema before anything runs
    job_context = build_context(settings, stop)
    try:
        yield job_context
    finally:
        job_context.close()


@contextmanager
def _stop_on_signals(stop: threading.Event) -> Iterator[None]:
    """Set ``stop`` on SIGTERM or SIGINT; the handlers only set the event."""

    def request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop_requested", signal=signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, request_stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


@click.group("once", cls=cli_base.Group, help=_("Run one pass of a job and exit."))
def once_group() -> None:
    """Group of the one-pass commands."""


@once_group.command(
    "orders", help=_("Fetch the orders of every account (or one) once; exit 0 when all succeed.")
)
@click.option("--account", "account_name", metavar=_("NAME"), help=_("Only this account."))
@click.pass_context
def once_orders(ctx: click.Context, account_name: str | None) -> None:
    stop = threading.Event()
    failures = 0
    with _stop_on_signals(stop), _context(ctx, stop) as job:
        with job.engine.begin() as connection:
            chosen = (
                [accounts.get_account(connection, account_name)]
                if account_name
                else accounts.list_accounts(connection)
            )
        if not chosen:
            click.echo(_("No accounts yet; add one with 'syncd account add'."))
            return
        skipped: list[str] = []
        for account in each_held_account(job, chosen, stop, skipped):
            summary = run_orders(job, account)
            _echo_summary(account.name, summary)
            failures += summary.result != runs.SUCCEEDED
        failures += len(skipped)
    if failures:
        ctx.exit(1)


def each_held_account(
    job: JobContext,
    chosen: list[accounts.AccountRecord],
    stop: threading.Event,
    skipped: list[str],
) -> Iterator[accounts.AccountRecord]:
    """Yield each account while this process holds its lease, until ``stop`` is set.

    An account that another process holds is named on standard error and in ``skipped``.
    """
    book = LeaseBook(job)
    for account in chosen:
        if stop.is_set():
            return
        with book.holding(account) as held:
            if not held:
                with job.engine.begin() as connection:
                    holder = leases.lease_owner(connection, account.id)
                click.echo(
                    _(
                        "{account}: skipped, the syncd process {holder} holds it. A running "
                        "'syncd run' keeps the accounts it serves and syncs them itself; stop "
                        "it first to run this command on them."
                    ).format(account=account.name, holder=holder or "?"),
                    err=True,
                )
                skipped.append(account.name)
                continue
            yield account


def _echo_summary(name: str, summary: runs.RunSummary) -> None:
    if summary.result == runs.SUCCEEDED:
        # "label value" pairs read right in both languages for any count, without plurals.
        line = _(
            "{account}: orders new {new}, updated {updated}; pages {pages}; API calls {calls}; "
            "synced up to {watermark}."
        ).format(
            account=name,
            new=summary.orders_new,
            updated=summary.orders_updated,
            pages=summary.pages,
            calls=summary.api_calls,
            watermark=format_time(summary.watermark_after),
        )
        click.echo(line)
        if summary.orders_quarantined:
            message = ngettext(
                "{account}: {count} order could not be stored and was quarantined; see "
                "'syncd quarantine list'.",
                "{account}: {count} orders could not be stored and were quarantined; see "
                "'syncd quarantine list'.",
                summary.orders_quarantined,
            )
            click.echo(message.format(account=name, count=summary.orders_quarantined), err=True)
    elif summary.result == runs.STOPPED:
        click.echo(
            _("{account}: stopped; the next run resumes where this one ended.").format(account=name)
        )
    else:
        click.echo(
            _("{account}: failed: {error}").format(account=name, error=summary.error), err=True
        )


@click.command(
    "run",
    cls=cli_base.Command,
    help=_(
        "Run the daemon: sync every account's orders and send its shipments continuously, "
        "and with a mapping file run the bridge to the ERP, until SIGTERM or Ctrl+C. Under "
        "systemd (Type=notify) it reports when it is ready, keeps the watchdog fed, and on "
        "SIGHUP ('systemctl reload syncd') reads the env file, the accounts and the mapping "
        "again without stopping its work; see docs/install.md."
    ),
)
@click.pass_context
def run_daemon(ctx: click.Context) -> None:
    stop = threading.Event()
    env_file = (ctx.find_root().obj or {}).get("env_file")
    notifier = systemd.Notifier.from_environment()
    with daemon.handle_signals(stop) as signals:
        settings = load_settings(ctx)
        settings.require_job_settings()
        if not daemon.wait_for_database(
            partial(_check_database, settings), stop, settings.database_retry_max_delay, notifier
        ):
            return  # stopped while the database was away
        with _context(ctx, stop) as job:
            reload_settings = partial(config.load_settings, env_file)
            _run_service(job, daemon.Daemon(job, signals, reload_settings, notifier))


def _check_database(settings: Settings) -> None:
    with open_database(settings):
        pass  # checks that the schema is current


def _run_service(job: JobContext, service: daemon.Daemon) -> None:
    """Start the service, tell the operator what it does, and serve until stopped."""
    with job.engine.begin() as connection:
        records = accounts.list_accounts(connection)
    service.start()
    click.echo(_("syncd is running; stop it with Ctrl+C or SIGTERM."), err=True)
    if not records:
        click.echo(
            _(
                "No accounts yet: syncd waits and starts each account that "
                "'syncd account add' adds."
            ),
            err=True,
        )
    else:
        _say_when_next_due(records)
    service.serve()


def _say_when_next_due(records: list[accounts.AccountRecord]) -> None:
    """Tell the operator when the first run starts, if no account is due now.

    Without this, a daemon started right after 'syncd once orders' prints nothing for minutes.
    """
    now = utc_now()
    if any(record.next_run_at is None or record.next_run_at <= now for record in records):
        return
    due = min(record.next_run_at for record in records if record.next_run_at is not None)
    click.echo(
        ngettext(
            "{count} account, not due yet: the next run starts at {time} (in {wait}).",
            "{count} accounts, none due yet: the next run starts at {time} (in {wait}).",
            len(records),
        ).format(count=len(records), time=format_time(due), wait=format_duration(due - now)),
        err=True,
    )


@click.command(
    "status",
    cls=cli_base.Command,
    help=_(
        "Show each account and marketplace: synced up to, lag, last run, orders, quarantine, "
        "API calls and throttling in the last hour, clock skew."
    ),
)
@click.pass_context
def show_status(ctx: click.Context) -> None:
    settings = load_settings(ctx)
    now = utc_now()
    warning = timedelta(hours=settings.shipment_deadline_warning)
    with open_database(settings) as engine, engine.begin() as connection:
        statuses = gather_status(connection, now)
        shipments = gather_shipments(connection, now, warning)
        if statuses:
            print_status_tables(connection, settings, statuses, shipments, now)
    if not statuses:
        click.echo(_("No accounts yet; add one with 'syncd account add'."))
        return


def print_status_tables(
    connection: Connection,
    settings: Settings,
    statuses: list[AccountStatus],
    shipments: ShipmentFigures,
    now: datetime,
) -> None:
    """Print every table of ``syncd status``."""
    from syncd.cli_bridge import print_bridge_status  # noqa: PLC0415 - it imports this module
    from syncd.cli_pii import print_pii_status  # noqa: PLC0415
    from syncd.cli_shipments import print_outbox_status  # noqa: PLC0415

    console = create_console()
    accounts_table = Table(
        _("Account"),
        _("State"),
        _("Synced up to"),
        _("Lag"),
        _("Last run"),
        _("Quarantined"),
        _("Calls / 429"),
        _("Clock skew"),
        title=_("Accounts (times in UTC; calls in the last hour)"),
    )
    for status in statuses:
        last = status.last_run
        skew = None if last is None else last.clock_skew_seconds
        last_text = (
            "-"
            if last is None
            else f"{_run_result_label(last.result)} {format_time(last.finished_at, short=True)}"
        )
        accounts_table.add_row(
            status.account.name,
            account_state_label(status.account.status),
            format_time(status.watermark, short=True),
            format_duration(status.lag),
            last_text,
            str(status.quarantined),
            f"{status.calls_last_hour} / {status.throttled_last_hour}",
            _format_skew(skew),
        )
    console.print(accounts_table)

    marketplaces_table = Table(
        _("Account"),
        _("Marketplace"),
        _("Orders"),
        _("Newest update"),
        _("Lag"),
        title=_("Marketplaces"),
    )
    for status in statuses:
        for marketplace in status.marketplaces:
            marketplaces_table.add_row(
                status.account.name,
                marketplace_label(marketplace.marketplace_id),
                str(marketplace.orders),
                format_time(marketplace.newest_update, short=True),
                format_duration(status.lag),
            )
    console.print(marketplaces_table)
    print_node_status(connection, settings)
    print_outbox_status(shipments, {status.account.id: status.account.name for status in statuses})
    print_bridge_status(connection, settings, now)
    print_pii_status(connection, settings, now)
    print_lwa_secret_status(connection, settings, now)
    for status in statuses:
        last = status.last_run
        if status.account.status_reason:
            click.echo(f"{status.account.name}: {status.account.status_reason}")
            hint = reauthorize_hint(status.account)
            if hint is not None:
                click.echo(hint)
        elif last is not None and last.result == runs.FAILED and last.error:
            # The table shows only "failed", and the operator needs the reason next.
            click.echo(
                _("{account}: the last run failed: {error}").format(
                    account=status.account.name, error=last.error
                )
            )


def print_node_status(connection: Connection, settings: Settings) -> None:
    """Print the daemons that share this database, with their heartbeats and accounts."""
    found = nodes.list_nodes(connection)
    if not found:
        return
    now = leases.database_now(connection)
    heartbeat = timedelta(seconds=settings.node_heartbeat)
    table = Table(
        _("Host"),
        _("Process"),
        _("Version"),
        _("Started"),
        _("Last heartbeat"),
        _("State"),
        _("Accounts held"),
        title=_("Daemons (times in UTC)"),
    )
    for node in found:
        live = nodes.is_live(node, now, heartbeat)
        table.add_row(
            node.hostname,
            str(node.pid),
            node.version,
            format_time(node.started_at, short=True),
            _("{duration} ago").format(duration=format_duration(now - node.heartbeat_at)),
            _("running") if live else _("not answering"),
            str(node.accounts_held),
        )
    create_console().print(table)


def _format_skew(seconds: float | None) -> str:
    """Format Amazon's clock minus ours, such as "+1.3 s"; a tenth or less shows as 0."""
    if seconds is None:
        return "-"
    shown = 0.0 if abs(seconds) < 0.05 else seconds
    return _("{seconds} s").format(seconds=f"{shown:+.1f}" if shown else "0.0")


def _run_result_label(result: str) -> str:
    labels = {
        runs.SUCCEEDED: _("succeeded"),
        runs.FAILED: _("failed"),
        runs.STOPPED: _("stopped"),
    }
    return labels.get(result, result)


@click.group(
    "quarantine", cls=cli_base.Group, help=_("List and retry records that could not be stored.")
)
def quarantine_group() -> None:
    """Group of the quarantine commands."""


@quarantine_group.command("list", help=_("List the quarantined records that are still open."))
@click.option("--all", "show_all", is_flag=True, help=_("Also list resolved entries."))
@click.pass_context
def list_quarantine(ctx: click.Context, show_all: bool) -> None:
    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        entries = quarantine.list_entries(connection, status=None if show_all else quarantine.OPEN)
        names = {record.id: record.name for record in accounts.list_accounts(connection)}
    if not entries:
        click.echo(_("Nothing is quarantined."))
        return
    table = Table(
        "ID", _("Account"), _("Order"), _("Refused by"), _("Attempts"), _("Since"), _("Reason")
    )
    table.columns[2].no_wrap = True  # an order id is copied from here into 'quarantine retry'
    table.columns[2].min_width = 19
    for entry in entries:
        table.add_row(
            str(entry.id),
            names.get(entry.account_id, str(entry.account_id)),
            entry.record_id or "-",
            _("the ERP") if entry.stream == ERP_STREAM else _("syncd"),
            str(entry.attempts),
            format_time(entry.created_at),
            entry.reason if entry.status == quarantine.OPEN else _("(resolved)"),
        )
    create_console().print(table)


@quarantine_group.command(
    "retry",
    help=_("Fetch quarantined orders again with getOrder and store them; give an ID or --all."),
)
@click.argument("entry_id", required=False, type=int, metavar="[ID]")
@click.option("--all", "retry_all", is_flag=True, help=_("Retry every open entry."))
@click.pass_context
def retry_quarantine(ctx: click.Context, entry_id: int | None, retry_all: bool) -> None:
    if (entry_id is None) == (not retry_all):
        raise click.UsageError(_("Give one entry ID or --all."))
    failures = 0
    with _context(ctx) as job:
        with job.engine.begin() as connection:
            if retry_all:
                entries = quarantine.list_entries(connection)
            else:
                assert entry_id is not None
                found = quarantine.get_entry(connection, entry_id)
                if found is None:
                    raise click.BadParameter(
                        _("no quarantine entry {id}; 'syncd quarantine list' shows the IDs").format(
                            id=entry_id
                        ),
                        param_hint="ID",
                    )
                entries = [found]
            by_id = {record.id: record for record in accounts.list_accounts(connection)}
        if not entries:
            click.echo(_("Nothing is quarantined."))
            return
        for entry in entries:
            failures += not _retry_entry(job, entry, by_id[entry.account_id])
    if failures:
        ctx.exit(1)


def _retry_entry(
    job: JobContext, entry: quarantine.QuarantineEntry, account: accounts.AccountRecord
) -> bool:
    from syncd.amazon.orders import OrdersClient  # noqa: PLC0415
    from syncd.db import bridge_state  # noqa: PLC0415

    if entry.stream == ERP_STREAM and entry.record_id is not None:
        # The ERP rejected the order, not Amazon: write it into the ERP again.
        with job.engine.begin() as connection:
            pks = bridge_state.projected_pks(connection, account.id, [entry.record_id])
            bridge_state.forget_outcome(connection, pks)
        click.echo(
            _(
                "Entry {id}: order {order} is written into the ERP again at the next bridge "
                "pass ('syncd once bridge' runs one now)."
            ).format(id=entry.id, order=entry.record_id)
        )
        return True
    if entry.record_id is None:
        click.echo(
            _("Entry {id}: no order id to fetch; it stays open.").format(id=entry.id), err=True
        )
        return False
    try:
        with job.engine.begin() as connection:
            seller = accounts.seller_account(connection, job.vault, account)
        order, raw = OrdersClient(job.client, seller).get_order_with_raw(
            entry.record_id, account.included_data
        )
        result = store_fetched_order(job, account, order, raw, entry.id)
    except (errors.SyncdError, SQLAlchemyError) as exc:
        # The database's own message only: its SQL and parameters would show order data.
        reason = database_error_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        with job.engine.begin() as connection:
            quarantine.quarantine_record(
                connection,
                account_id=account.id,
                stream=STREAM,
                record_id=entry.record_id,
                reason=reason,
                payload=entry.payload,
                now=job.now(),
            )
        click.echo(
            _("Entry {id}: still failing: {error}").format(id=entry.id, error=reason), err=True
        )
        return False
    if result.stored_ids:
        message = _("Entry {id}: order {order} stored.")
    else:
        message = _("Entry {id}: order {order} was already stored in this or a newer version.")
    click.echo(message.format(id=entry.id, order=entry.record_id))
    return True
