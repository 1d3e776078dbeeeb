"""The ``syncd sandbox`` command group: run the local SP-API sandbox from the command line."""

from __future__ import annotations

import errno
import json
import socket
import sys

import click
from pydantic import ValidationError

from syncd import cli_base, logs
from syncd.i18n import gettext as _
from syncd.sandbox import problems, server
from syncd.sandbox.faults import FaultRule
from syncd.sandbox.state import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, SandboxConfig

# The option that sets each SandboxConfig field, named in messages about invalid values.
_OPTION_OF_FIELD = {
    "seed": "--seed",
    "speed": "--speed",
    "token_lifetime": "--token-lifetime",
    "orders_per_marketplace": "--orders-per-marketplace",
    "history_days": "--history-days",
    "marketplace_ids": "--marketplace",
    "pii_roles": "--pii-roles",
    "client_id": "--client-id",
    "client_secret": "--client-secret",
    "clock_offset": "--clock-offset",
    "expired_token_field": "--expired-token-field",
}


@click.group(
    "sandbox",
    cls=cli_base.Group,
    help=_("Run the local SP-API sandbox, a fake Amazon for tests and demos."),
)
def sandbox() -> None:
    """Group of the sandbox commands."""


@sandbox.command(
    "serve",
    help=_(
        "Serve the SP-API sandbox until Ctrl+C: the NA host and the LWA token endpoint on "
        "PORT, the EU host on PORT+1 and the FE host on PORT+2."
    ),
)
@click.option(
    "--port",
    type=cli_base.IntRange(0, 65533),
    default=server.DEFAULT_PORT,
    show_default=True,
    metavar=_("PORT"),
    help=_("First of the three ports; 0 picks three free ports."),
)
@click.option(
    "--host",
    default=server.DEFAULT_HOST,
    show_default=True,
    metavar=_("HOST"),
    help=_(
        "Address to listen on. Keep the loopback address unless other machines must "
        "reach the sandbox."
    ),
)
@click.option(
    "--seed",
    type=cli_base.Integer(),
    default=1,
    show_default=True,
    metavar=_("SEED"),
    help=_("Seed of the generated data: the same seed and refresh token give the same orders."),
)
@click.option(
    "--speed",
    type=cli_base.FloatRange(min=0, min_open=True, max=1_000_000),
    default=1.0,
    show_default=True,
    metavar=_("FACTOR"),
    help=_(
        "Quota speed factor: multiplies every quota refill rate (60 turns an hour of quota "
        "into a minute)."
    ),
)
@click.option(
    "--no-quotas",
    is_flag=True,
    help=_("Throttle nothing; x-amzn-RateLimit-Limit then reports 1000.0."),
)
@click.option(
    "--token-lifetime",
    type=cli_base.IntRange(min=1),
    default=3600,
    show_default=True,
    metavar=_("SECONDS"),
    help=_("Lifetime of the access tokens the LWA endpoint issues, in seconds."),
)
@click.option(
    "--orders-per-marketplace",
    type=cli_base.IntRange(0, 20_000),
    default=120,
    show_default=True,
    metavar=_("N"),
    help=_("Number of generated orders per seller and marketplace."),
)
@click.option(
    "--history-days",
    type=cli_base.IntRange(1, 3650),
    default=30,
    show_default=True,
    metavar=_("DAYS"),
    help=_("Generated orders are spread over this many days before the start."),
)
@click.option(
    "--marketplace",
    "marketplace_ids",
    multiple=True,
    metavar=_("MARKETPLACE"),
    help=_("Marketplace id the sellers sell in; repeat for several (default: every marketplace)."),
)
@click.option(
    "--pii-roles",
    type=click.Choice(["granted", "omitted", "forbidden"]),
    default="granted",
    show_default=True,
    help=_(
        "Buyer and recipient data: granted returns them, omitted leaves them out, "
        "forbidden returns 403."
    ),
)
@click.option(
    "--client-id",
    default=DEFAULT_CLIENT_ID,
    show_default=True,
    metavar=_("CLIENT_ID"),
    help=_("LWA client id the token endpoint accepts."),
)
@click.option(
    "--client-secret",
    default=DEFAULT_CLIENT_SECRET,
    show_default=True,
    metavar=_("CLIENT_SECRET"),
    help=_("LWA client secret the token endpoint accepts."),
)
@click.option("--no-client-check", is_flag=True, help=_("Accept any LWA client id and secret."))
@click.option(
    "--clock-offset",
    type=cli_base.Number(),
    default=0.0,
    show_default=True,
    metavar=_("SECONDS"),
    help=_(
        "Run the sandbox clock this many seconds ahead of this machine's clock (negative: behind)."
    ),
)
@click.option(
    "--expired-token-field",
    type=click.Choice(["details", "message"]),
    default="details",
    show_default=True,
    help=_("Field of the expired-token 403 response that carries the expiry text."),
)
@click.option(
    "--fault",
    "fault_rules",
    multiple=True,
    metavar=_("RULE"),
    help=_(
        "Fault rule as a JSON object, for example "
        '{"kind": "throttle", "operation": "searchOrders", "count": 3}; repeat for several.'
    ),
)
@click.option(
    "--log-level",
    type=click.Choice(["debug", "info", "warning", "error"]),
    default="info",
    show_default=True,
    help=_("Lowest level of the log lines written to standard error."),
)
def serve(
    *,
    port: int,
    host: str,
    seed: int,
    speed: float,
    no_quotas: bool,
    token_lifetime: int,
    orders_per_marketplace: int,
    history_days: int,
    marketplace_ids: tuple[str, ...],
    pii_roles: str,
    client_id: str,
    client_secret: str,
    no_client_check: bool,
    clock_offset: float,
    expired_token_field: str,
    fault_rules: tuple[str, ...],
    log_level: str,
) -> None:
    """Build the configuration, start the servers and print the settings lines."""
    logs.configure_logging(level=log_level)
    try:
        config = SandboxConfig(
            seed=seed,
            speed=speed,
            quotas=not no_quotas,
            token_lifetime=token_lifetime,
            orders_per_marketplace=orders_per_marketplace,
            history_days=history_days,
            marketplace_ids=marketplace_ids or None,
            pii_roles=pii_roles,
            client_id=client_id,
            client_secret=client_secret,
            check_client=not no_client_check,
            clock_offset=clock_offset,
            expired_token_field=expired_token_field,
            faults=tuple(_parse_fault(rule) for rule in fault_rules),
        )
    except ValidationError as exc:
        found = problems.describe(exc, SandboxConfig, translate=_, labels=_OPTION_OF_FIELD)
        raise click.UsageError("\n".join(found)) from exc

    try:
        server.serve_forever(config, host=host, port=port, on_ready=print_settings)
    except server.SandboxStartError as exc:
        raise click.ClickException(_start_error_message(exc)) from exc


def _parse_fault(text: str) -> FaultRule:
    try:
        rule = json.loads(text)
    except json.JSONDecodeError as exc:
        message = _("Invalid fault rule {rule}: not valid JSON (error at character {position}).")
        raise click.BadParameter(
            message.format(rule=text, position=exc.pos + 1), param_hint="--fault"
        ) from exc
    try:
        return FaultRule.model_validate(rule)
    except ValidationError as exc:
        found = problems.describe(exc, FaultRule, translate=_)
        message = _("Invalid fault rule {rule}: {problems}").format(
            rule=text, problems=_("; ").join(found)
        )
        raise click.BadParameter(message, param_hint="--fault") from exc


def _start_error_message(error: server.SandboxStartError) -> str:
    """Return the operator's message for a sandbox that could not start, with the fix."""
    cause = error.cause
    if error.host is None or error.port is None or cause is None:
        detail = repr(error.__cause__) if error.__cause__ is not None else str(error)
        return _("The sandbox servers did not start: {error}").format(error=detail)

    port_fix = _(
        "Choose another --port (the sandbox also uses the two ports after it), "
        "or --port 0 to pick three free ports."
    )
    host_fix = _("Choose an address of this machine with --host, such as 127.0.0.1.")
    if isinstance(cause, socket.gaierror):
        reason, fix = _("the host name cannot be resolved"), host_fix
    elif cause.errno == errno.EADDRNOTAVAIL:
        reason, fix = _("the address does not belong to this machine"), host_fix
    elif cause.errno == errno.EADDRINUSE:
        reason, fix = _("the port is already in use"), port_fix
    elif cause.errno == errno.EACCES:
        reason, fix = _("permission denied (ports below 1024 need root rights)"), port_fix
    else:
        reason, fix = cause.strerror or str(cause), port_fix  # the operating system's text
    return _("Cannot listen on {host} port {port}: {reason}. {fix}").format(
        host=error.host, port=error.port, reason=reason, fix=fix
    )


def print_settings(sandbox_server: server.SandboxServer) -> None:
    """Print the SYNCD_* lines that point syncd at a running sandbox, and what to do next.

    Only the settings lines go to standard output, so that ``syncd sandbox serve >
    sandbox.env`` writes a valid env file. The sentences around them go to standard error.
    """
    heading = (
        _("The SP-API sandbox is running. These settings point syncd's SP-API client at it:")
        if sys.stdout.isatty() == sys.stderr.isatty()
        else _(
            "The SP-API sandbox is running. The settings that point syncd's SP-API client at "
            "it went to standard output."
        )
    )
    click.echo(heading, err=True)
    for key, value in sandbox_server.settings_env().items():
        click.echo(f"{key}={value}")
    click.echo(
        _(
            "Any refresh token is accepted; each one is a different seller. Control API: {url}"
        ).format(url=sandbox_server.base_urls["na"] + "/_sandbox/"),
        err=True,
    )
    click.echo(_("Press Ctrl+C to stop."), err=True)
