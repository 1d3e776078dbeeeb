"""Commands ``syncd bridge`` and ``syncd once bridge``, which check and run the ERP mapping."""

from __future__ import annotations

import threading
from datetime import datetime

import click
from rich.markup import escape
from rich.table import Table
from sqlalchemy import Connection, update

from syncd import cli_base
from syncd.bridge import examples
from syncd.bridge.check import inspect_bridge
from syncd.cli_orders import _context, _stop_on_signals, once_group
from syncd.cli_support import create_console, format_duration, format_time, load_settings
from syncd.config import Settings
from syncd.db import accounts, bridge_state
from syncd.db.models import ErpOrder, table_of
from syncd.i18n import gettext as _
from syncd.i18n import ngettext
from syncd.jobs.bridge import Bridge, BridgeSummary


@click.group(
    "bridge",
    cls=cli_base.Group,
    help=_("Check the mapping onto your ERP's tables, and run the bridge by hand."),
)
def bridge_group() -> None:
    """Group of the bridge commands."""


@bridge_group.command(
    "check",
    help=_(
        "Check the mapping file against the real ERP and WMS tables; exit 1 when anything "
        "would stop the bridge."
    ),
)
@click.pass_context
def check_mapping(ctx: click.Context) -> None:
    settings = load_settings(ctx)
    _require_mapping(settings)
    problems = inspect_bridge(settings)
    failures = [problem for problem in problems if not problem.warning]
    for problem in problems:
        shown = _("warning: {problem}") if problem.warning else _("error: {problem}")
        click.echo(shown.format(problem=problem))
    if failures:
        click.echo(
            ngettext(
                "{count} error: the bridge does not write anything until it is fixed.",
                "{count} errors: the bridge does not write anything until they are fixed.",
                len(failures),
            ).format(count=len(failures)),
            err=True,
        )
        ctx.exit(1)
    click.echo(_("The mapping {path} fits the tables.").format(path=settings.mapping_file))


@bridge_group.command(
    "reproject",
    help=_(
        "Write every order into the ERP again at the next bridge pass, for example after "
        "the mapping changed."
    ),
)
@click.pass_context
def reproject(ctx: click.Context) -> None:
    from syncd.cli_support import open_database  # noqa: PLC0415

    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        count = _forget_all(connection)
    click.echo(
        ngettext(
            "{count} order is written into the ERP again at the next bridge pass.",
            "{count} orders are written into the ERP again at the next bridge pass.",
            count,
        ).format(count=count)
    )


@bridge_group.command(
    "example",
    help=_(
        "Print the example mapping file for a domestic ERP on MariaDB/MySQL, to start your "
        "own: syncd bridge example > mapping.toml. Replace ACCOUNT and SHOPCODE in it."
    ),
)
@click.option(
    "--schema",
    is_flag=True,
    help=_("Print the example's CREATE TABLE statements (MariaDB/MySQL) instead."),
)
def print_example(schema: bool) -> None:
    name = examples.SCHEMA_FILE if schema else examples.MAPPING_FILE
    click.echo(examples.read_example(name), nl=False)


def _forget_all(connection: Connection) -> int:
    table = table_of(ErpOrder)
    return int(connection.execute(update(table).values(content_hash=None)).rowcount)


@once_group.command(
    "bridge",
    help=_(
        "Run one bridge pass: orders into the ERP, WMS shipments into the intake, states "
        "written back."
    ),
)
@click.pass_context
def once_bridge(ctx: click.Context) -> None:
    stop = threading.Event()
    settings = load_settings(ctx)
    _require_mapping(settings)
    with _stop_on_signals(stop), _context(ctx, stop) as job:
        bridge = Bridge(job)
        try:
            summary = bridge.run()
        finally:
            bridge.close()
    if not summary.ran and summary.error is None:
        click.echo(_("Another syncd process is running the bridge; nothing done."), err=True)
        ctx.exit(1)
    _echo_summary(summary)
    if summary.error is not None:
        click.echo(summary.error, err=True)
        ctx.exit(1)


def _require_mapping(settings: Settings) -> None:
    if settings.mapping_file is None:
        raise click.UsageError(
            _("No mapping file is set; set SYNCD_MAPPING_FILE (see docs/mapping.md).")
        )


def _echo_summary(summary: BridgeSummary) -> None:
    if summary.projection is not None:
        projection = summary.projection
        click.echo(
            _(
                "ERP orders: written {projected}, skipped {skipped}, quarantined {quarantined}; "
                "PII cleared {purged}."
            ).format(
                projected=projection.projected,
                skipped=projection.skipped,
                quarantined=projection.quarantined,
                purged=projection.pii_purged,
            )
        )
        if projection.unmapped_accounts:
            click.echo(
                _("Not in the mapping's [accounts], so not written: {names}.").format(
                    names=", ".join(projection.unmapped_accounts)
                ),
                err=True,
            )
    if summary.feed is not None:
        feed = summary.feed
        click.echo(
            _(
                "WMS shipments: rows read {read}, new requests {new}, sent again after a fix "
                "{redriven}, corrected at Amazon {amended}, changed after acceptance {changed}; "
                "rows written back {written}."
            ).format(
                read=feed.read,
                new=feed.new,
                redriven=feed.redriven,
                amended=feed.amended,
                changed=feed.changed_after_acceptance,
                written=summary.written_back,
            )
        )


def print_bridge_status(connection: Connection, settings: Settings, now: datetime) -> None:
    """Print the bridge part of ``syncd status``: projection lag and WMS positions."""
    if settings.mapping_file is None:
        return
    from syncd.bridge.mapping import MappingError, load_mapping  # noqa: PLC0415
    from syncd.bridge.projection import POSITION, unlisted_accounts  # noqa: PLC0415

    try:
        mapping = load_mapping(settings.mapping_file)
    except MappingError as exc:
        mapping = None
        problems = len(exc.problems)
    records = accounts.list_accounts(connection)
    left_out = [] if mapping is None else unlisted_accounts(mapping, [a.name for a in records])
    covered = [a.id for a in records if a.name not in left_out]
    positions = bridge_state.list_positions(connection)
    since_text = positions.get(POSITION, ({}, None))[0].get("since")
    since = datetime.fromisoformat(since_text) if since_text else None
    waiting, oldest = bridge_state.count_to_project(connection, since, covered)
    states = bridge_state.count_states(connection)
    table = Table(
        _("Part"),
        _("Position"),
        _("Last pass"),
        _("Waiting"),
        _("Lag"),
        title=_("Bridge to the ERP"),
    )
    projection_at = positions.get(POSITION, ({}, None))[1]
    table.add_row(
        _("orders into the ERP"),
        _("written {written}, quarantined {quarantined}, skipped {skipped}").format(
            written=states.get(bridge_state.PROJECTED, 0),
            quarantined=states.get(bridge_state.QUARANTINED, 0),
            skipped=states.get(bridge_state.SKIPPED, 0),
        ),
        format_time(projection_at, short=True),
        str(waiting),
        format_duration(None if oldest is None else now - oldest),
    )
    for name, (position, updated) in sorted(positions.items()):
        if not name.startswith("wms:"):
            continue
        table.add_row(
            _("WMS shipments ({source})").format(source=escape(name[4:])),
            escape(str(position.get("after", "-"))),
            format_time(updated, short=True),
            "-",
            "-",
        )
    create_console().print(table)
    if mapping is None:
        click.echo(
            ngettext(
                "The mapping file has {count} problem, so the bridge writes nothing; see "
                "'syncd bridge check'.",
                "The mapping file has {count} problems, so the bridge writes nothing; see "
                "'syncd bridge check'.",
                problems,
            ).format(count=problems)
        )
    elif left_out:
        click.echo(
            _("Not in the mapping's [accounts], so not written: {names}.").format(
                names=", ".join(left_out)
            )
        )
