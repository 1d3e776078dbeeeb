"""The ``syncd`` command line: one group per concern, each subcommand a thin wrapper."""

from __future__ import annotations

import sys
from pathlib import Path

import click
from rich.console import Console
from rich.table import Table

from syncd import __version__, config, errors, logs
from syncd.amazon import marketplaces
from syncd.i18n import gettext as _
from syncd.sandbox.cli import sandbox as sandbox_group

_CONTEXT_SETTINGS = {"help_option_names": ["-h", "--help"], "max_content_width": 100}


@click.group(
    context_settings=_CONTEXT_SETTINGS,
    help=_("Keep your own database in step with Amazon's Selling Partner API."),
)
@click.version_option(__version__, prog_name="syncd")
@click.option(
    "--env-file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar=config.ENV_FILE_VARIABLE,
    help=_("Read settings from this env file (default: the SYNCD_ENV_FILE variable)."),
)
@click.pass_context
def app(ctx: click.Context, env_file: Path | None) -> None:
    ctx.obj = {"env_file": env_file}


@app.command("marketplaces", help=_("List Amazon's marketplaces with their region and currency."))
def list_marketplaces() -> None:
    table = Table(_("Marketplace id"), _("Country"), _("Region"), _("Currency"))
    for marketplace in marketplaces.MARKETPLACES:
        table.add_row(
            marketplace.marketplace_id,
            f"{marketplace.country_code} {marketplace.country}",
            marketplace.region.upper(),
            marketplace.currency,
        )
    Console().print(table)


@app.group("db", help=_("Manage syncd's own tables."))
def db_group() -> None:
    pass


@db_group.command("upgrade", help=_("Create or upgrade syncd's tables to the current version."))
@click.pass_context
def db_upgrade(ctx: click.Context) -> None:
    from syncd.db import migrate  # noqa: PLC0415 - alembic loads only when needed

    settings = load_settings(ctx)
    migrate.upgrade(settings.database_url)
    click.echo(
        _("Database is at revision {revision}.").format(
            revision=migrate.head_revision(settings.database_url)
        )
    )


app.add_command(sandbox_group)


@app.command(
    "demo",
    short_help=_("Fetch demo sellers' orders from the local sandbox."),
    help=_(
        "Start the local sandbox and fetch three demo sellers' orders (US; DE, FR, IT; JP) "
        "through syncd's SP-API client. Needs no settings and no network."
    ),
)
@click.option("--verbose", is_flag=True, help=_("Also print the log lines of the run."))
@click.pass_context
def demo(ctx: click.Context, verbose: bool) -> None:
    from syncd import demo as demo_module  # noqa: PLC0415 - starts the sandbox only when asked

    settings = load_settings(ctx)
    if not verbose:
        logs.configure_logging(settings.log_format, "warning")
    demo_module.run_demo(Console())


def load_settings(ctx: click.Context) -> config.Settings:
    """Load and validate the settings for a command, configuring logging from them."""
    settings = config.load_settings(ctx.obj.get("env_file") if ctx.obj else None)
    logs.configure_logging(settings.log_format, settings.log_level)
    return settings


def run(argv: list[str] | None = None) -> int:
    """Run the CLI and turn syncd's errors into one clear message and exit code 2."""
    try:
        app.main(args=argv, prog_name="syncd", standalone_mode=False)
    except click.exceptions.Abort:
        click.echo(_("Aborted."), err=True)
        return 130
    except click.ClickException as exc:
        exc.show()
        return exc.exit_code
    except errors.ConfigError as exc:
        click.echo(str(exc), err=True)
        return 2
    except errors.SyncdError as exc:
        click.echo(_("Error: {message}").format(message=exc), err=True)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(run())
