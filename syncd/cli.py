"""The ``syncd`` command line: one group per concern, each subcommand a thin wrapper."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from babel import Locale
from rich.table import Table

from syncd import __version__, cli_base, config, errors, i18n, logs
from syncd.amazon import marketplaces
from syncd.cli_accounts import account_group, key_group
from syncd.cli_bridge import bridge_group
from syncd.cli_doctor import doctor_command
from syncd.cli_orders import once_group, quarantine_group, run_daemon, show_status
from syncd.cli_pii import once_pii_purge  # noqa: F401 - joins 'syncd once' on import
from syncd.cli_shipments import outbox_group, ship
from syncd.cli_support import create_console, load_settings
from syncd.i18n import gettext as _
from syncd.sandbox.cli import sandbox as sandbox_group

_CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    cls=cli_base.Group,
    context_settings=_CONTEXT_SETTINGS,
    help=_("Keep your own database in step with Amazon's Selling Partner API."),
)
@click.version_option(__version__, prog_name="syncd")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=config.ENV_FILE_VARIABLE,
    metavar=_("FILE"),
    help=_(
        "Read settings from this env file; give it before the command "
        "(default: the SYNCD_ENV_FILE variable)."
    ),
)
@click.pass_context
def app(ctx: click.Context, env_file: Path | None) -> None:
    ctx.obj = {"env_file": env_file}


@app.command("marketplaces", help=_("List Amazon's marketplaces with their region and currency."))
@click.pass_context
def list_marketplaces(ctx: click.Context) -> None:
    load_settings(ctx)
    names = Locale.parse(i18n.active_language()).territories
    table = Table(_("Marketplace id"), _("Country"), _("Region"), _("Currency"))
    for marketplace in marketplaces.MARKETPLACES:
        iso_code = "GB" if marketplace.country_code == "UK" else marketplace.country_code
        table.add_row(
            marketplace.marketplace_id,
            f"{marketplace.country_code} {names.get(iso_code, marketplace.country)}",
            marketplace.region.upper(),
            marketplace.currency,
        )
    create_console().print(table)


@app.group("db", help=_("Manage syncd's own tables."))
def db_group() -> None:
    pass


@db_group.command("upgrade", help=_("Create or upgrade syncd's tables to the current version."))
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    from syncd.db import engine, migrate  # noqa: PLC0415 - alembic loads only when needed

    url = load_settings(ctx).database_url
    before, after = migrate.upgrade(url)
    database = engine.safe_url(url)
    if before == after:
        message = _("Database {database} is already at revision {revision}; nothing to do.")
    elif before is None:
        message = _("Database {database} set up at revision {revision}.")
    else:
        message = _("Database {database} upgraded from revision {old} to {revision}.")
    click.echo(message.format(database=database, old=before, revision=after))


for command in (
    account_group,
    key_group,
    doctor_command,
    once_group,
    run_daemon,
    show_status,
    quarantine_group,
    ship,
    outbox_group,
    bridge_group,
    sandbox_group,
):
    app.add_command(command)


@app.command(
    "demo",
    short_help=_("Try syncd on the local sandbox with three demo sellers."),
    help=_(
        "Try syncd without settings or an Amazon account. The demo starts the local sandbox "
        "on free loopback ports, creates the SQLite database syncd-demo.sqlite3 in the current "
        "folder (anew on every run) and adds three demo sellers: North America (US), Europe "
        "(DE, FR, IT) and the Far East (JP). It runs the orders job, which fetches the last 30 "
        "days, and lets the sandbox create and change orders. Then it runs the job again, "
        "which fetches only what changed, confirms three shipments per seller, and writes the "
        "orders into a sample ERP table (oms_order, described by syncd-demo-mapping.toml "
        "beside the database). It prints the stored orders per marketplace and status, the "
        "API calls used and the time taken."
    ),
)
@click.option("--verbose", is_flag=True, help=_("Also print the log lines of the run."))
@click.pass_context
def demo(ctx: click.Context, verbose: bool) -> None:
    from syncd import demo as demo_module  # noqa: PLC0415 - starts the sandbox only when asked

    settings = load_settings(ctx)
    if not verbose:
        logs.configure_logging(settings.log_format, "warning")
    demo_module.run_demo(create_console(), settings)


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and turn syncd's errors into one clear message and exit code 2."""
    try:
        code = app.main(args=argv, prog_name="syncd", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(_("Aborted."), err=True)
        return 130
    except click.ClickException as exc:
        if isinstance(exc, click.NoSuchOption) and exc.option_name == "--env-file":
            # The option belongs to syncd itself, so it goes before the command.
            exc = click.UsageError(
                _("--env-file goes before the command, as in: syncd --env-file FILE status"),
                ctx=exc.ctx,
            )
        cli_base.show_error(exc)
        return exc.exit_code
    except errors.ConfigError as exc:
        click.echo(str(exc), err=True)
        return 2
    except errors.SyncdError as exc:
        click.echo(_("Error: {message}").format(message=exc), err=True)
        return 1
    # Without standalone mode, click returns the code a command passed to ctx.exit().
    return code if isinstance(code, int) else 0


if __name__ == "__main__":
    sys.exit(run())
