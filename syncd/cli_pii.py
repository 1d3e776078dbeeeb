"""``syncd once pii-purge`` and the buyer-data line of ``syncd status``."""

from __future__ import annotations

import threading
from datetime import datetime, timedelta

import click
from sqlalchemy import Connection

from syncd.cli_orders import _stop_on_signals, once_group
from syncd.cli_support import format_duration, format_time, load_settings, open_database
from syncd.config import Settings
from syncd.db import retention
from syncd.i18n import gettext as _
from syncd.i18n import ngettext
from syncd.jobs.context import build_context
from syncd.jobs.pii_purge import PurgeSummary, purge_erp_pii, run_pii_purge


@once_group.command(
    "pii-purge",
    help=_(
        "Clear the buyer data (names, addresses, phones, e-mails, gift messages) of orders "
        "whose retention period (SYNCD_PII_RETENTION_DAYS) has ended: in syncd's tables, and "
        "in the ERP's when the mapping's [pii] purge is true."
    ),
)
@click.pass_context
def once_pii_purge(ctx: click.Context) -> None:
    # No LWA credentials or encryption key are needed: the purge only writes NULLs.
    settings = load_settings(ctx)
    with open_database(settings):
        pass  # checks the schema before anything runs
    stop = threading.Event()
    with _stop_on_signals(stop):
        job = build_context(settings, stop)
        try:
            summary = run_pii_purge(job)
            if summary.error is None:
                purge_erp_pii(job, summary)
        finally:
            job.close()
    _echo_summary(summary)
    if summary.error is not None or summary.erp_busy:
        ctx.exit(1)


def _echo_summary(summary: PurgeSummary) -> None:
    click.echo(
        _("Buyer data cleared: orders {orders}, gift messages {messages}.").format(
            orders=summary.orders, messages=summary.gift_messages
        )
    )
    if summary.erp_orders is not None:
        click.echo(_("ERP orders cleared: {orders}.").format(orders=summary.erp_orders))
    if summary.erp_busy:
        click.echo(
            _(
                "Another syncd process is running the bridge, so the ERP's buyer data was not "
                "cleared now; that bridge pass clears it."
            ),
            err=True,
        )
    if summary.error is not None:
        click.echo(_("The purge failed: {error}").format(error=summary.error), err=True)


def print_pii_status(connection: Connection, settings: Settings, now: datetime) -> None:
    """Print the buyer-data line of ``syncd status``: orders holding PII, the next purge."""
    days = settings.pii_retention_days
    figures = retention.gather_pii_figures(connection, now, days)
    interval = format_duration(timedelta(seconds=settings.pii_purge_interval))
    if figures.holding == 0:
        click.echo(_("Buyer data (PII): no order holds any."))
        return
    holding = ngettext(
        "Buyer data (PII): {count} order holds it",
        "Buyer data (PII): {count} orders hold it",
        figures.holding,
    ).format(count=figures.holding)
    if figures.expired:
        due = ngettext(
            "{count} is past the {days}-day retention and is cleared at the next purge "
            "(every {interval} while 'syncd run' runs)",
            "{count} are past the {days}-day retention and are cleared at the next purge "
            "(every {interval} while 'syncd run' runs)",
            figures.expired,
        ).format(count=figures.expired, days=days, interval=interval)
    elif figures.next_expiry is not None:
        due = _("the next one's retention ends at {time}").format(
            time=format_time(figures.next_expiry)
        )
    else:
        due = _("none is past its retention: the orders are still open")
    click.echo(_("{holding}; {due}.").format(holding=holding, due=due))
