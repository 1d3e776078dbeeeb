"""``syncd account …`` and ``syncd key generate``: seller accounts and the encryption key."""

from __future__ import annotations

import sys
from datetime import datetime

import click
from pydantic import SecretStr
from rich.table import Table
from sqlalchemy import Connection

from syncd import cli_base, crypto, errors
from syncd.amazon import marketplaces
from syncd.amazon.clock import utc_now
from syncd.amazon.orders import INCLUDED_DATA, PII_DATASETS
from syncd.cli_support import create_console, load_settings, marketplace_label, open_database
from syncd.config import Settings
from syncd.crypto import Vault
from syncd.db import accounts, lwa_secrets
from syncd.i18n import gettext as _

# The datasets an account requests by default: status and shipping, money, promotions,
# cancellations and packages. Buyer data needs Amazon's restricted roles.
DEFAULT_INCLUDED_DATA = ("FULFILLMENT", "PROCEEDS", "PROMOTION", "CANCELLATION", "PACKAGES")
# LWA refresh tokens start with this; access tokens start with "Atza|".
REFRESH_TOKEN_PREFIX = "Atzr|"
# How much of a rejected token an error message shows: enough to tell an access token or a
# client secret apart, too little to use.
_SHOWN_TOKEN_CHARACTERS = 5


@click.group(
    "account", cls=cli_base.Group, help=_("Manage seller accounts (one per seller and region).")
)
def account_group() -> None:
    """Group of the account commands."""


def _marketplace_ids(values: tuple[str, ...], region: marketplaces.Region) -> tuple[str, ...]:
    """Resolve ids and country codes; a bad one is named as the operator typed it."""
    ids: list[str] = []
    for value in values:
        for part in filter(None, (piece.strip() for piece in value.split(","))):
            found = marketplaces.find_by_country(part)
            marketplace_id = found.marketplace_id if found is not None else part
            try:
                marketplaces.check_region([marketplace_id], region)
            except errors.MarketplaceError as exc:
                raise click.BadParameter(
                    _marketplace_problem(part, marketplace_id, region, exc),
                    param_hint="--marketplace",
                ) from exc
            ids.append(marketplace_id)
    return tuple(dict.fromkeys(ids))


def _marketplace_problem(
    typed: str, marketplace_id: str, region: str, error: errors.MarketplaceError
) -> str:
    if error.expected_region is None:
        return _(
            "{value!r} is neither a marketplace id nor a country code of Amazon; "
            "'syncd marketplaces' lists both"
        ).format(value=typed)
    shown = typed if typed == marketplace_id else f"{typed} ({marketplace_id})"
    return _(
        "{marketplace} belongs to region {expected}, not {region}: add it to an account of "
        "region {expected} (--region {option})"
    ).format(
        marketplace=shown,
        expected=error.expected_region.upper(),
        region=region.upper(),
        option=error.expected_region,
    )


def _included_data(value: str, with_pii: bool) -> tuple[str, ...]:
    chosen = [part.strip().upper() for part in value.split(",") if part.strip()]
    unknown = sorted(set(chosen) - INCLUDED_DATA)
    if unknown:
        raise click.BadParameter(
            _("unknown values {values}; use some of {known}").format(
                values=", ".join(unknown), known=", ".join(sorted(INCLUDED_DATA))
            ),
            param_hint="--included-data",
        )
    if with_pii:
        chosen.extend(sorted(PII_DATASETS))
    return tuple(dict.fromkeys(chosen))


def _token_source(path: str) -> str:
    """Name where the refresh token was read from, for error messages."""
    return _("standard input") if path == "-" else _("file '{path}'").format(path=path)


def _read_token_text(path: str, name: str) -> str:
    """Return the text of the refresh token file, or of standard input for ``-``.

    The option's type has already checked that the file exists, is no directory and is
    readable. Opening it can still fail if the file changes in between. On a terminal, ``-``
    prompts for the token without echo, so it stays off the screen and the scrollback.
    """
    if path == "-" and sys.stdin.isatty():
        answer: str = click.prompt(
            _("Paste the refresh token (Atzr|…) and press Enter; it is not shown"),
            hide_input=True,
            err=True,
        )
        return answer
    try:
        # utf-8-sig drops the byte order mark that some Windows editors write.
        with click.open_file(path, encoding="utf-8-sig") as stream:
            text: str = stream.read()
    except UnicodeDecodeError as exc:
        raise errors.AccountError(
            name,
            _("{source} is not UTF-8 text, so it holds no refresh token").format(
                source=_token_source(path)
            ),
        ) from exc
    except OSError as exc:
        raise click.BadParameter(
            _("cannot read file '{file}': {reason}").format(
                file=path,
                reason=exc.strerror or exc,  # the operating system's text
            ),
            param_hint="--refresh-token-file",
        ) from exc
    return text


def _read_token(path: str, name: str) -> SecretStr:
    """Read and check the refresh token. Error messages never show more than its start.

    Raises:
        errors.AccountError: the input is empty, contains more than one word, or contains no
            LWA refresh token.
    """
    from_stdin = path == "-"
    token = _read_token_text(path, name).lstrip("\ufeff").strip()
    if not token:
        reason = (
            _("standard input is empty") if from_stdin else _("the refresh token file is empty")
        )
        raise errors.AccountError(name, reason)
    if any(char.isspace() for char in token):
        reason = (
            _("standard input must hold the refresh token alone, on one line")
            if from_stdin
            else _("the refresh token file must hold the token alone, on one line")
        )
        raise errors.AccountError(name, reason)
    if not token.startswith(REFRESH_TOKEN_PREFIX):
        raise errors.AccountError(
            name,
            _(
                "the text read from {source} starts with {start!r} and is {length} characters "
                "long, but an LWA refresh token starts with Atzr|. Paste the refresh token of "
                "the app authorization in Seller Central, not the access token (Atza|…) or the "
                "LWA client secret"
            ).format(
                source=_token_source(path),
                start=token[:_SHOWN_TOKEN_CHARACTERS],
                length=len(token),
            ),
        )
    return SecretStr(token)


@account_group.command(
    "add",
    help=_(
        "Add a seller account, or with --replace store a new refresh token for it. The token is "
        "read from a file or standard input, never from the command line, where other users "
        "could see it."
    ),
)
@click.argument("name", metavar=_("NAME"))
@click.option(
    "--region",
    # syncd prints regions in capitals (EU), so it accepts them so too.
    type=click.Choice(["na", "eu", "fe"], case_sensitive=False),
    required=True,
    help=_("Amazon region of the authorization: na, eu or fe."),
)
@click.option(
    "--marketplace",
    "marketplace_values",
    multiple=True,
    required=True,
    metavar=_("MARKETPLACE"),
    help=_("Marketplace id or country code (such as DE); repeat for several."),
)
@click.option(
    "--refresh-token-file",
    # The type reports a missing, unreadable or directory path in the operator's language,
    # where click.File would pass on the operating system's English text.
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    required=True,
    metavar=_("FILE"),
    help=_("File holding the LWA refresh token; - reads standard input."),
)
@click.option(
    "--included-data",
    default=",".join(DEFAULT_INCLUDED_DATA),
    show_default=True,
    metavar=_("LIST"),
    help=_("Datasets each search asks Amazon for, separated by commas."),
)
@click.option(
    "--with-pii",
    is_flag=True,
    help=_(
        "Also ask for buyer and recipient data. Only for applications that hold Amazon's "
        "restricted roles; the data is stored encrypted."
    ),
)
@click.option(
    "--replace", is_flag=True, help=_("Replace the token and settings of an existing account.")
)
@click.pass_context
def add_account(  # noqa: PLR0917 - click passes every option as an argument
    ctx: click.Context,
    name: str,
    region: marketplaces.Region,
    marketplace_values: tuple[str, ...],
    refresh_token_file: str,
    included_data: str,
    with_pii: bool,
    replace: bool,
) -> None:
    settings = load_settings(ctx)
    ids = _marketplace_ids(marketplace_values, region)
    datasets = _included_data(included_data, with_pii)
    token = _read_token(refresh_token_file, name)
    vault = Vault(settings.encryption_key)
    with open_database(settings) as engine, engine.begin() as connection:
        before = accounts.find_account(connection, name)
        record = accounts.save_account(
            connection,
            vault,
            name=name,
            region=region,
            marketplace_ids=ids,
            included_data=datasets,
            refresh_token=token,
            now=utc_now(),
            replace=replace,
        )
    click.echo(
        _("Account {name} saved: region {region}, marketplaces {marketplaces}.").format(
            name=record.name,
            region=record.region.upper(),
            marketplaces=cli_base.join_list(marketplace_label(m) for m in record.marketplace_ids),
        )
    )
    if before is not None and accounts.scope_changed(before, record):
        click.echo(
            _(
                "The region, marketplaces or datasets changed, so the next run reads the last "
                "{days} days again (SYNCD_ORDERS_BACKFILL_DAYS); stored orders are kept."
            ).format(days=settings.orders_backfill_days)
        )


@account_group.command(
    "set-token",
    help=_(
        "Store a new refresh token for an account after the seller authorized the app again, "
        "and make the account active. A running daemon uses the token at the account's next "
        "run, without a restart. The token is read from a file or standard input."
    ),
)
@click.argument("name", metavar=_("NAME"))
@click.option(
    "--refresh-token-file",
    type=click.Path(exists=True, dir_okay=False, allow_dash=True),
    required=True,
    metavar=_("FILE"),
    help=_("File holding the LWA refresh token; - reads standard input."),
)
@click.pass_context
def set_token(ctx: click.Context, name: str, refresh_token_file: str) -> None:
    settings = load_settings(ctx)
    vault = Vault(settings.encryption_key)
    with open_database(settings) as engine:
        with engine.begin() as connection:
            before = accounts.get_account(connection, name)
        token = _read_token(refresh_token_file, before.name)
        with engine.begin() as connection:
            record = accounts.replace_refresh_token(
                connection, vault, name=name, token=token, now=utc_now()
            )
    click.echo(
        _(
            "Account {name}: new refresh token stored; the account is active and runs at the "
            "daemon's next dispatch, without a restart."
        ).format(name=record.name)
    )
    if before.status != accounts.ACTIVE:
        click.echo(
            _("Its state was: {state}.").format(state=account_state_label(before.status)),
            err=True,
        )


def reauthorize_hint(record: accounts.AccountRecord) -> str | None:
    """Return the fix ``syncd status`` prints for an account that needs re-authorization."""
    if record.status != accounts.REAUTH_REQUIRED:
        return None
    return _(
        "{account}: needs re-authorization. Have the seller authorize the app again in Seller "
        "Central, then run: {command}"
    ).format(account=record.name, command=accounts.reauthorize_command(record.name))


def print_lwa_secret_status(connection: Connection, settings: Settings, now: datetime) -> None:
    """Print the line of ``syncd status`` about the LWA client secret's age, if it is known."""
    age = lwa_secrets.read_secret_age(connection, settings, now.date())
    quiet = (lwa_secrets.SecretState.UNKNOWN, lwa_secrets.SecretState.NOT_TRACKED)
    if age is None or age.state in quiet:
        return
    detail, fix = lwa_secrets.describe_secret_age(age)
    line = _("LWA client secret: {detail}.").format(detail=detail)
    if age.needs_attention and fix:
        line = f"{line} {fix}"
    click.echo(line)


@account_group.command("list", help=_("List the accounts; tokens are never shown."))
@click.pass_context
def list_accounts(ctx: click.Context) -> None:
    settings = load_settings(ctx)
    with open_database(settings) as engine, engine.begin() as connection:
        records = accounts.list_accounts(connection)
    if not records:
        click.echo(_("No accounts yet; add one with 'syncd account add'."))
        return
    table = Table(_("Account"), _("Region"), _("Marketplaces"), _("Datasets"), _("State"))
    for record in records:
        table.add_row(
            record.name,
            record.region.upper(),
            ", ".join(marketplace_label(m) for m in record.marketplace_ids),
            ", ".join(record.included_data),
            account_state_label(record.status),
        )
    create_console().print(table)


@account_group.command("remove", help=_("Remove an account with its checkpoints and orders."))
@click.argument("name", metavar=_("NAME"))
@click.option("--yes", is_flag=True, help=_("Do not ask for confirmation."))
@click.pass_context
def remove_account(ctx: click.Context, name: str, yes: bool) -> None:
    settings = load_settings(ctx)
    with open_database(settings) as engine:
        with engine.begin() as connection:
            accounts.get_account(connection, name)
        question = _("Remove account {name} and every order syncd stored for it?")
        if not yes and not click.confirm(question.format(name=name)):
            click.echo(_("Nothing removed: account {name} is kept.").format(name=name), err=True)
            ctx.exit(1)
        with engine.begin() as connection:
            removed = accounts.remove_account(connection, name)
    click.echo(_("Account {name} removed, with {count} orders.").format(name=name, count=removed))


def account_state_label(status: str) -> str:
    """Return an account status in the operator's words."""
    labels = {
        accounts.ACTIVE: _("active"),
        accounts.REAUTH_REQUIRED: _("needs re-authorization"),
        accounts.ACCESS_DENIED: _("access denied (retried hourly)"),
        accounts.DATASET_UNAVAILABLE: _("data set refused by Amazon (retried every 30 minutes)"),
        accounts.SHIPMENTS_DENIED: _("shipment confirmations refused (retried hourly)"),
    }
    return labels.get(status, status)


@click.group(
    "key", cls=cli_base.Group, help=_("Manage the key that encrypts tokens and buyer data.")
)
def key_group() -> None:
    """Group of the key commands."""


@key_group.command("generate", help=_("Print a new encryption key for SYNCD_ENCRYPTION_KEY."))
def generate_key() -> None:
    click.echo(crypto.generate_key())
    click.echo(
        _(
            "Put this key into SYNCD_ENCRYPTION_KEY (or the systemd credential of that name) "
            "and keep a copy in a safe place: data encrypted with a lost key cannot be read."
        ),
        err=True,
    )
