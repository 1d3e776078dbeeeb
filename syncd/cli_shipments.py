"""``syncd ship``, ``syncd outbox …`` and ``syncd once shipments``."""

from __future__ import annotations

import hashlib
import threading
from datetime import UTC, datetime, timedelta

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection

from syncd import cli_base
from syncd.amazon.clock import utc_now
from syncd.amazon.shipments import package_reference
from syncd.cli_orders import _context, _stop_on_signals, each_held_account, once_group
from syncd.cli_support import (
    create_console,
    format_duration,
    format_time,
    load_settings,
    open_database,
)
from syncd.db import accounts, intake, outbox
from syncd.i18n import gettext as _
from syncd.i18n import ngettext
from syncd.jobs.shipments import (
    ShipmentsSummary,
    accounts_with_shipments,
    run_shipments,
    warn_near_deadlines,
)
from syncd.shipping.submit import submit_shipment
from syncd.status import ShipmentFigures

CLI_SOURCE = "cli"
SOURCE_KEY_LENGTH = 128  # the length of syncd_shipment_requests.source_key
REFERENCE_LENGTH = 32  # the length of syncd_outbox.package_reference_id
ORDER_ID_LENGTH = 64  # the length of syncd_shipment_requests.amazon_order_id
REJECTED_SHOWN_DAYS = 7  # the default of "outbox rejected --days"


def _state_label(state: str) -> str:
    labels = {
        outbox.PENDING: _("pending"),
        outbox.SENDING: _("sending"),
        outbox.DELIVERED: _("delivered"),
        outbox.DEAD: _("dead"),
        outbox.CONFLICT: _("conflict"),
        outbox.CANCELLED: _("cancelled"),
    }
    return labels.get(state, state)


def _parse_items(values: tuple[str, ...], key: str) -> list[dict[str, object]]:
    items: list[dict[str, object]] = []
    for value in values:
        name, sep, count = value.rpartition("=")
        if not sep or not name.strip() or not count.strip().isdigit() or int(count) < 1:
            raise click.BadParameter(
                _("{value!r} is not NAME=QUANTITY with a quantity of 1 or more").format(
                    value=value
                ),
                param_hint="--items" if key == "sku" else "--item-id",
            )
        items.append({key: name.strip(), "quantity": int(count)})
    return items


# The default ship time lies this far back, so that a server clock a little ahead of
# Amazon's does not make it a future date, which Amazon rejects.
DEFAULT_SHIP_TIME_AGO = timedelta(minutes=2)


def _parse_ship_date(value: str | None) -> datetime:
    if value is None:
        return utc_now() - DEFAULT_SHIP_TIME_AGO
    try:
        parsed = datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        parsed = None
    if parsed is None or parsed.utcoffset() is None:
        raise click.BadParameter(
            _(
                "{value!r} is not a time with its zone; write it as 2026-12-04T15:30:00+08:00 "
                "or 2026-12-04T07:30:00Z"
            ).format(value=value),
            param_hint="--ship-date",
        )
    return parsed


@click.command(
    "ship",
    cls=cli_base.Command,
    short_help=_("Send a tracking number to Amazon (through the shipment intake)."),
    help=_(
        "Ask syncd to confirm a shipment to Amazon: writes one request into the shipment "
        "intake, which the shipments job checks and sends."
    ),
)
@click.argument("order_id", metavar=_("ORDER_ID"))
@click.option("--account", "account_name", metavar=_("NAME"), help=_("The account of the order."))
@click.option(
    "--carrier",
    required=True,
    metavar=_("CARRIER"),
    help=_("Carrier as your warehouse names it (云途, 4PX, UPS …) or an Amazon carrier code."),
)
@click.option("--tracking", required=True, metavar=_("NUMBER"), help=_("Tracking number."))
@click.option(
    "--carrier-name",
    metavar=_("NAME"),
    help=_("Carrier name Amazon shows when the carrier is Other."),
)
@click.option("--method", "shipping_method", metavar=_("TEXT"), help=_("Shipping method."))
@click.option(
    "--ship-date",
    metavar=_("TIME"),
    help=_(
        "When the parcel left, with its time zone, such as 2026-12-04T15:30:00+08:00. "
        "Default: two minutes ago."
    ),
)
@click.option(
    "--items",
    "sku_items",
    multiple=True,
    metavar="SKU=QTY",
    help=_("Items by SKU; repeat for several. Default: every item left to ship."),
)
@click.option(
    "--item-id",
    "id_items",
    multiple=True,
    metavar="ID=QTY",
    help=_("Items by Amazon order item id; repeat for several."),
)
@click.option(
    "--source-key",
    metavar=_("KEY"),
    help=_("Key that makes a repeated command one request. Default: order id and tracking."),
)
@click.pass_context
def ship(
    ctx: click.Context,
    *,
    order_id: str,
    account_name: str | None,
    carrier: str,
    tracking: str,
    carrier_name: str | None,
    shipping_method: str | None,
    ship_date: str | None,
    sku_items: tuple[str, ...],
    id_items: tuple[str, ...],
    source_key: str | None,
) -> None:
    items = _parse_items(sku_items, "sku") + _parse_items(id_items, "order_item_id")
    shipped_at = _parse_ship_date(ship_date)
    order_id = order_id.strip()
    if not order_id or len(order_id) > ORDER_ID_LENGTH:
        raise click.BadParameter(
            _("{value!r} is not an Amazon order id such as 113-0000000-0000036").format(
                value=order_id
            ),
            param_hint="ORDER_ID",
        )
    settings = load_settings(ctx)
    with open_database(settings) as engine:
        with engine.begin() as connection:
            account = _choose_account(connection, account_name)
        try:
            submitted = submit_shipment(
                engine,
                account=account.name,
                order_id=order_id.strip(),
                carrier=carrier,
                carrier_name=carrier_name,
                shipping_method=shipping_method,
                tracking_number=tracking,
                shipped_at=shipped_at,
                items=items or None,
                source_system=CLI_SOURCE,
                source_key=source_key or _default_key(order_id, tracking),
            )
        except ValueError as exc:
            raise click.UsageError(str(exc)) from None
    request = submitted.request
    if submitted.created:
        click.echo(
            _(
                "Request {id} received for order {order}. The shipments job of 'syncd run' "
                "sends it; 'syncd once shipments' sends it now."
            ).format(id=request.id, order=request.amazon_order_id)
        )
    else:
        click.echo(
            _(
                "Request {id} with the same source key exists already ({status}); nothing added."
            ).format(id=request.id, status=_request_status_label(request.status))
        )


def _default_key(order_id: str, tracking: str) -> str:
    """Return order id and tracking number; a digest of the tracking number when too long."""
    key = f"{order_id.strip()}:{tracking.strip()}"
    if len(key) <= SOURCE_KEY_LENGTH:
        return key
    digest = hashlib.sha256(tracking.strip().encode()).hexdigest()[:32]
    return f"{order_id.strip()}:{digest}"


def _request_status_label(status: str) -> str:
    labels = {
        intake.NEW: _("waiting to be checked"),
        intake.ACCEPTED: _("in the outbox"),
        intake.REJECTED: _("rejected"),
    }
    return labels.get(status, status)


def _choose_account(connection: Connection, name: str | None) -> accounts.AccountRecord:
    if name is not None:
        return accounts.get_account(connection, name)
    found = accounts.list_accounts(connection)
    if len(found) == 1:
        return found[0]
    if not found:
        raise click.UsageError(_("No accounts yet; add one with 'syncd account add'."))
    raise click.UsageError(
        _("Several accounts exist; name one with --account ({names}).").format(
            names=", ".join(account.name for account in found)
        )
    )


@once_group.command(
    "shipments",
    help=_(
        "Check new shipment requests and send every due outbox row once; exit 0 when nothing "
        "failed."
    ),
)
@click.option("--account", "account_name", metavar=_("NAME"), help=_("Only this account."))
@click.pass_context
def once_shipments(ctx: click.Context, account_name: str | None) -> None:
    stop = threading.Event()
    failures = 0
    with _stop_on_signals(stop), _context(ctx, stop) as job:
        chosen = accounts_with_shipments(job)
        if account_name is not None:
            wanted = accounts.normalize_name(account_name)
            chosen = [account for account in chosen if account.name == wanted]
        if not chosen:
            warn_near_deadlines(job)
            click.echo(_("No shipment is waiting."))
            return
        skipped: list[str] = []
        for account in each_held_account(job, chosen, stop, skipped):
            summary = run_shipments(job, account)
            _echo_summary(summary)
            failures += summary.error is not None or summary.dead > 0 or summary.conflicts > 0
        failures += len(skipped)
        warn_near_deadlines(job)
    if failures:
        ctx.exit(1)


def _echo_summary(summary: ShipmentsSummary) -> None:
    click.echo(
        _(
            "{account}: requests accepted {accepted}, rejected {rejected}, waiting for Amazon "
            "{deferred}; shipments delivered {delivered}, retry later {retried}, dead {dead}, "
            "conflict {conflicts}; verified {verified}; API calls {calls}."
        ).format(
            account=summary.account,
            accepted=summary.accepted,
            rejected=summary.rejected,
            deferred=summary.deferred,
            delivered=summary.delivered,
            retried=summary.retried,
            dead=summary.dead,
            conflicts=summary.conflicts,
            verified=summary.verified,
            calls=summary.api_calls,
        )
    )
    if summary.error is not None:
        click.echo(
            _("{account}: stopped early: {error}").format(
                account=summary.account, error=summary.error
            ),
            err=True,
        )
    if summary.rejected:
        click.echo(_("See why with 'syncd outbox rejected'."), err=True)
    if summary.dead or summary.conflicts:
        click.echo(
            _("See the failed ones with 'syncd outbox list --state dead --state conflict'."),
            err=True,
        )


@click.group(
    "outbox",
    cls=cli_base.Group,
    help=_("List, retry and cancel shipments that wait for Amazon or failed."),
)
def outbox_group() -> None:
    """Group of the outbox commands."""


@outbox_group.command("list", help=_("List outbox rows, earliest ship-by deadline first."))
@click.option(
    "--state",
    "states",
    multiple=True,
    type=click.Choice(outbox.STATES),
    help=_("Only rows in this state; repeat for several. Default: every state."),
)
@click.option("--account", "account_name", metavar=_("NAME"), help=_("Only this account."))
@click.option(
    "--limit",
    default=100,
    show_default=True,
    type=click.IntRange(1, 10_000),
    help=_("Show at most this many rows."),
)
@click.pass_context
def list_outbox(
    ctx: click.Context, states: tuple[str, ...], account_name: str | None, limit: int
) -> None:
    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        name = None if account_name is None else accounts.normalize_name(account_name)
        rows = outbox.list_rows(connection, states=states, account=name, limit=limit)
    if not rows:
        click.echo(_("The outbox has no such rows."))
        return
    table = Table(
        "ID",
        _("Account"),
        _("Order"),
        _("Package"),
        _("Carrier"),
        _("Tracking"),
        _("State"),
        _("Attempts"),
        _("Deadline"),
        _("Last error"),
        title=_("Outbox (times in UTC)"),
    )
    table.columns[2].no_wrap = True
    table.columns[2].min_width = 19
    for row in rows:
        carrier = row.carrier_code if row.carrier_name is None else f"Other: {row.carrier_name}"
        error = row.last_error_message or ""
        if row.last_error_code:
            error = f"{row.last_error_code}: {error}"
        # Values an ERP wrote may hold rich markup such as "[b]"; they are shown as written.
        table.add_row(
            str(row.id),
            row.account,
            escape(row.order_id),
            escape(row.package_reference_id),
            escape(carrier),
            escape(row.tracking_number),
            _state_label(row.state),
            str(row.attempts),
            format_time(row.deadline, short=True),
            escape(error or "-"),
        )
    create_console().print(table)


@outbox_group.command(
    "retry",
    help=_(
        "Send dead, conflict or never-verified rows again; give an ID or --all-dead. "
        "--replace-package sends the row as an edit of that Amazon package."
    ),
)
@click.argument("row_id", required=False, type=int, metavar="[ID]")
@click.option("--all-dead", is_flag=True, help=_("Retry every dead row."))
@click.option(
    "--replace-package",
    "reference",
    metavar=_("REF"),
    help=_(
        "Send the row with this packageReferenceId, so Amazon replaces that package's "
        "carrier, tracking number and items (see the conflict's message for the references)."
    ),
)
@click.pass_context
def retry_outbox(
    ctx: click.Context, row_id: int | None, all_dead: bool, reference: str | None
) -> None:
    if (row_id is None) == (not all_dead):
        raise click.UsageError(_("Give one row ID or --all-dead."))
    if reference is not None:
        if all_dead:
            raise click.UsageError(_("--replace-package takes one row ID, not --all-dead."))
        given = reference
        try:
            reference = package_reference(given)
        except ValueError:
            reference = ""
        if not reference or len(reference) > REFERENCE_LENGTH:
            raise click.BadParameter(
                _("{value!r} is not a positive whole number of at most {digits} digits").format(
                    value=given, digits=REFERENCE_LENGTH
                ),
                param_hint="--replace-package",
            )
    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        if all_dead:
            ids = outbox.dead_ids(connection)
        else:
            assert row_id is not None
            row = _require_row(connection, row_id)
            ids = [row_id]
            if reference is not None and outbox.reference_taken(connection, row, reference):
                raise click.UsageError(
                    _(
                        "Outbox row of order {order} already uses package {reference}; "
                        "retry or cancel that row instead."
                    ).format(order=row.order_id, reference=reference)
                )
        changed = outbox.retry_rows(connection, ids, utc_now(), reference)
    if not all_dead and not changed:
        raise click.UsageError(
            _("Row {id} is not dead, in conflict or unverified; only those can be retried.").format(
                id=row_id
            )
        )
    message = ngettext(
        "{count} row is pending again; the shipments job sends it.",
        "{count} rows are pending again; the shipments job sends them.",
        changed,
    )
    click.echo(message.format(count=changed))


@outbox_group.command("cancel", help=_("Do not send this row (pending, dead or conflict)."))
@click.argument("row_id", type=int, metavar="ID")
@click.pass_context
def cancel_outbox(ctx: click.Context, row_id: int) -> None:
    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        row = _require_row(connection, row_id)
        cancelled = outbox.cancel_row(connection, row_id, utc_now())
    if not cancelled:
        raise click.UsageError(
            _(
                "Row {id} is {state}: only pending, dead and conflict rows can be cancelled "
                "(a row being sent can be cancelled after its attempt ends)."
            ).format(id=row_id, state=_state_label(row.state))
        )
    click.echo(_("Row {id} cancelled; it will not be sent.").format(id=row_id))


def _require_row(connection: Connection, row_id: int) -> outbox.OutboxRow:
    row = outbox.get_row(connection, row_id)
    if row is None:
        raise click.BadParameter(
            _("no outbox row {id}; 'syncd outbox list' shows the IDs").format(id=row_id),
            param_hint="ID",
        )
    return row


@outbox_group.command(
    "rejected",
    help=_("List shipment requests of the last days that were rejected, with the reason."),
)
@click.option(
    "--days",
    default=REJECTED_SHOWN_DAYS,
    show_default=True,
    type=click.IntRange(1, 3650),
    help=_("How many days back to look."),
)
@click.pass_context
def list_rejected(ctx: click.Context, days: int) -> None:
    settings = load_settings(ctx)
    since = datetime.now(UTC) - timedelta(days=days)
    with open_database(settings) as engine, engine.begin() as connection:
        rows = intake.rejected_requests(connection, since)
    if not rows:
        click.echo(_("No request was rejected in that time."))
        return
    table = Table(
        "ID", _("Source"), _("Account"), _("Order"), _("Tracking"), _("Code"), _("Reason")
    )
    table.columns[3].no_wrap = True
    for row in rows:
        table.add_row(
            str(row.id),
            escape(f"{row.source_system}:{row.source_key}"),
            escape(row.account),
            escape(row.amazon_order_id),
            escape(row.tracking_number or "-"),
            escape(row.reject_code or "-"),
            escape(row.reject_reason or "-"),
        )
    create_console().print(table)


def print_outbox_status(figures: ShipmentFigures, names: dict[int, str]) -> None:
    """Print the outbox part of ``syncd status``: one line per account with shipments."""
    by_name = {names[key]: value for key, value in figures.outbox.items() if key in names}
    shown = set(by_name) | set(figures.rejected) | set(figures.new_requests)
    if not shown:
        return
    table = Table(
        _("Account"),
        _("New requests"),
        _("Waiting"),
        _("Oldest waiting"),
        _("Dead"),
        _("Conflict"),
        _("Near deadline"),
        _("Unverified"),
        _("Carrier Other (30 d)"),
        _("Rejected (7 d)"),
        title=_("Shipments to Amazon"),
    )
    for name in sorted(shown):
        entry = by_name.get(name, outbox.OutboxSummary())
        oldest = None if entry.oldest_pending is None else figures.now - entry.oldest_pending
        table.add_row(
            escape(name),
            str(figures.new_requests.get(name, 0)),
            str(entry.depth),
            format_duration(oldest),
            str(entry.by_state.get(outbox.DEAD, 0)),
            str(entry.by_state.get(outbox.CONFLICT, 0)),
            str(entry.near_deadline),
            str(entry.unverified),
            str(entry.carrier_other),
            str(figures.rejected.get(name, 0)),
        )
    create_console().print(table)
    hours = f"{figures.warning.total_seconds() / 3600:g}"
    for name in sorted(by_name):
        entry = by_name[name]
        if entry.near_deadline:
            message = ngettext(
                "{account}: {count} shipment is not on Amazon and its ship-by deadline is less "
                "than {hours} hours away; see 'syncd outbox list'.",
                "{account}: {count} shipments are not on Amazon and their ship-by deadline is "
                "less than {hours} hours away; see 'syncd outbox list'.",
                entry.near_deadline,
            )
            click.echo(message.format(account=name, count=entry.near_deadline, hours=hours))
        if entry.carrier_other:
            message = ngettext(
                "{account}: {count} shipment went as carrier Other in 30 days, which earns no "
                "valid-tracking credit; map its carrier with SYNCD_CARRIER_MAP.",
                "{account}: {count} shipments went as carrier Other in 30 days, which earns no "
                "valid-tracking credit; map their carriers with SYNCD_CARRIER_MAP.",
                entry.carrier_other,
            )
            click.echo(message.format(account=name, count=entry.carrier_other))
