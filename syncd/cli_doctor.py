"""``syncd doctor``: run every check and print one line per result, with the fix."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click
from rich.cells import cell_len
from rich.text import Text

from syncd import cli_base, doctor, logs
from syncd.cli_base import wrap_cells
from syncd.cli_support import create_console
from syncd.i18n import gettext as _
from syncd.i18n import ngettext

# Mark and colour of each verdict. The word next to the mark is translated.
_MARKS = {
    doctor.Status.PASS: ("✔", "green"),
    doctor.Status.WARN: ("!", "yellow"),
    doctor.Status.FAIL: ("✘", "bold red"),
    doctor.Status.SKIP: ("-", "dim"),
}
_NAME_MAX = 28  # terminal cells; a longer check name pushes its own detail to the right
_TEXT_MIN = 30  # terminal cells for the detail, however narrow the terminal is


@click.command(
    "doctor",
    cls=cli_base.Command,
    short_help=_("Check the settings, databases, accounts, LWA, Amazon's endpoints and clock."),
    help=_(
        "Check the settings, the database (character set, strict mode, time zone, migrations), "
        "the ERP database, each account and its LWA token exchange, the reachability of LWA "
        "and of the SP-API hosts with the clock skew, and the mapping file. Each check prints "
        "a line with its result and, for a failure or a warning, the fix. The exit code is 1 "
        "when a check failed and 0 otherwise; warnings do not count as failures."
    ),
)
@click.option("--account", "account_name", metavar=_("NAME"), help=_("Check only this account."))
@click.option("--json", "as_json", is_flag=True, help=_("Print the results as JSON."))
@click.option("--verbose", is_flag=True, help=_("Also print the log lines of the checks."))
@click.pass_context
def doctor_command(
    ctx: click.Context, account_name: str | None, as_json: bool, verbose: bool
) -> None:
    env_file: Path | None = (ctx.find_root().obj or {}).get("env_file")
    # Every check reports its own failure, so the log lines would only repeat them.
    logs.configure_logging("auto", "info" if verbose else "critical")
    results = doctor.run_checks(env_file, account=account_name)
    if as_json:
        click.echo(json.dumps([asdict(result) for result in results], ensure_ascii=False, indent=2))
    else:
        _print_report(results)
    if doctor.any_failed(results):
        ctx.exit(1)


def _print_report(results: list[doctor.CheckResult]) -> None:
    """Print one line per result, the detail and fix wrapped under the detail's column.

    Lines are wrapped by terminal cells rather than characters, so Chinese text lines up.
    """
    words = {
        doctor.Status.PASS: _("PASS"),
        doctor.Status.WARN: _("WARN"),
        doctor.Status.FAIL: _("FAIL"),
        doctor.Status.SKIP: _("SKIP"),
    }
    word_width = max(cell_len(word) for word in words.values())
    name_width = min(max((cell_len(result.name) for result in results), default=0), _NAME_MAX)
    indent = 2 + word_width + 1 + name_width + 2
    console = create_console()
    text_width = max(console.width - indent, _TEXT_MIN)
    for result in results:
        mark, style = _MARKS[result.status]
        word = words[result.status]
        line = Text(f"{mark} {word}{' ' * (word_width - cell_len(word))} ", style=style)
        line.append(result.name + " " * max(name_width - cell_len(result.name), 0) + "  ")
        detail = wrap_cells(result.detail, text_width) or [""]
        line.append(detail[0])
        for more in detail[1:]:
            line.append("\n" + " " * indent + more)
        if result.fix:
            for fix in wrap_cells(_("Fix: {fix}").format(fix=result.fix), text_width):
                line.append("\n" + " " * indent + fix, style="cyan")
        console.print(line, soft_wrap=True)
    console.print(Text(_summary(results)), soft_wrap=True)


def _summary(results: list[doctor.CheckResult]) -> str:
    counts = dict.fromkeys(doctor.Status, 0)
    for result in results:
        counts[result.status] += 1
    failed = counts[doctor.Status.FAIL]
    # "label count" pairs read right in both languages for any count, without plurals.
    tally = _("passed {passed}, warnings {warnings}, failed {failed}, skipped {skipped}").format(
        passed=counts[doctor.Status.PASS],
        warnings=counts[doctor.Status.WARN],
        failed=failed,
        skipped=counts[doctor.Status.SKIP],
    )
    if failed:
        verdict = ngettext(
            "{count} check failed; fix it and run 'syncd doctor' again.",
            "{count} checks failed; fix them and run 'syncd doctor' again.",
            failed,
        ).format(count=failed)
    else:
        verdict = _("No check failed.")
    return _("{tally}. {verdict}").format(tally=tally, verdict=verdict)
