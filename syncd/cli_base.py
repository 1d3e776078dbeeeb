"""click building blocks shared by every syncd command group.

click measures help text in characters, but a Chinese character takes two terminal cells, so
Chinese help overflowed its columns. :class:`HelpFormatter` wraps and aligns by display
cells instead, and writes the usage line and headings with the language's colon.
:class:`Command` and :class:`Group` use it, translate the placeholders click writes into
usage lines, build the ``[default: …; required]`` tag of each option from translated words
and show each subcommand's whole first sentence in a group's command list. The number types
translate their names, because click shows them in error messages. :func:`show_error`
prints click's usage errors with the language's punctuation.
"""

from __future__ import annotations

import inspect
import re
import unicodedata
from collections.abc import Iterable
from typing import Any

import click
from rich.cells import cell_len

from syncd.i18n import gettext as _

# Punctuation that must not start a line in Chinese text (a minimal line-breaking rule).
_NO_LINE_START = frozenset("，。、；：？！）】」』》,.;:?!)]")
# Opening brackets that must not end a line.
_NO_LINE_END = "（【「『《(["
# The end of a sentence: Chinese full stops end one wherever they stand, and an English
# period ends one when a word that does not start in lowercase follows (so "vs. x" does
# not), as in click's own short help.
_SENTENCE_END = re.compile(r"[。！？]|[.!?](?=\s+[^\sa-z]|$)")
# Pieces of an option's tag that a line may break after: the text up to a separator.
_TAG_PIECE = re.compile(r"[^;；:：,，、]*[;；:：,，、]?\s*")


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


def _is_wide_punctuation(char: str) -> bool:
    """Return whether ``char`` is full-width punctuation, which carries its own spacing."""
    return _is_wide(char) and unicodedata.category(char).startswith("P")


def _chunks(text: str) -> list[str]:
    """Split text into pieces a line may break between: words, wide characters, spaces.

    Closing punctuation joins the piece before it and opening brackets the piece after it,
    so that neither ends up alone at the edge of a line.
    """
    pieces: list[str] = []
    word = ""
    opening = ""
    for char in text:
        if char.isspace() or _is_wide(char):
            if word.strip(_NO_LINE_END) == "" and word:
                opening, word = opening + word, ""
            if word:
                pieces.append(opening + word)
                opening, word = "", ""
            if char in _NO_LINE_START and pieces:
                pieces[-1] += char
            elif char.isspace():
                pieces.append(" ")
            elif char in _NO_LINE_END:
                opening += char
            else:
                pieces.append(opening + char)
                opening = ""
        elif char in _NO_LINE_START and not word and pieces and pieces[-1] != " ":
            pieces[-1] += char
        else:
            word += char
    if word or opening:
        pieces.append(opening + word)
    return pieces


def wrap_cells(text: str, width: int) -> list[str]:
    """Wrap one paragraph to ``width`` terminal cells; a too-long word gets its own line."""
    lines: list[str] = []
    line = ""
    for piece in _chunks(" ".join(text.split())):
        if piece == " ":
            if line:
                line += " "
            continue
        if line and cell_len(line + piece) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _wrap_tag(tag: str, width: int) -> list[str]:
    """Wrap an option's tag only after its separators, so no word or value is cut."""
    lines: list[str] = []
    line = ""
    for piece in _TAG_PIECE.findall(tag):
        if line and cell_len((line + piece).rstrip()) > width:
            lines.append(line.rstrip())
            line = ""
        line += piece
    if line.strip():
        lines.append(line.rstrip())
    return lines


def _append_tag(lines: list[str], tag: str, width: int) -> list[str]:
    """Put the tag after the last help line when it fits there whole, else on lines of its own."""
    if not tag:
        return lines
    if lines:
        last = lines[-1]
        gap = "" if _is_wide_punctuation(last[-1]) else " "
        if cell_len(last + gap + tag) <= width:
            return [*lines[:-1], last + gap + tag]
    return [*lines, *_wrap_tag(tag, width)]


def first_sentence(text: str) -> str:
    """Return the first sentence of the first paragraph of a help text, whole."""
    paragraph = " ".join(text.partition("\n\n")[0].split())
    found = _SENTENCE_END.search(paragraph)
    return paragraph[: found.end()] if found else paragraph


def _with_colon(label: str) -> str:
    """Append the language's colon to a heading such as "Options"."""
    return _("{heading}:").format(heading=label)


class HelpFormatter(click.HelpFormatter):
    """click's help formatter, measuring text in terminal cells rather than characters."""

    def write_usage(self, prog: str, args: str = "", prefix: str | None = None) -> None:
        if prefix is None:
            label = _with_colon(_("Usage"))
            # A full-width colon already leaves room after it.
            prefix = label if _is_wide_punctuation(label[-1]) else f"{label} "
        head = f"{' ' * self.current_indent}{prefix}{prog}"
        if not args:
            self.write(f"{head}\n")
            return

        indent = cell_len(head) + 1
        if self.width - indent >= 20:
            lines = wrap_cells(args, self.width - indent) or [""]
            self.write(f"{head} {lines[0]}\n")
        else:
            # The command path is too long: the arguments go on the lines below it.
            indent = self.current_indent + 4
            lines = ["", *wrap_cells(args, max(self.width - indent, 20))]
            self.write(f"{head}\n")
        for line in lines[1:]:
            self.write(f"{' ' * indent}{line}\n")

    def write_heading(self, heading: str) -> None:
        self.write(f"{' ' * self.current_indent}{_with_colon(heading)}\n")

    def write_text(self, text: str) -> None:
        indent = " " * self.current_indent
        width = max(self.width - self.current_indent, 11)
        for number, paragraph in enumerate(text.split("\n\n")):
            if number:
                self.write("\n")
            for line in wrap_cells(paragraph, width):
                self.write(f"{indent}{line}\n")

    def write_dl(
        self, rows: Iterable[tuple[str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        self.write_tagged_dl(((first, second, "") for first, second in rows), col_max, col_spacing)

    def write_tagged_dl(
        self, rows: Iterable[tuple[str, str, str]], col_max: int = 30, col_spacing: int = 2
    ) -> None:
        """Write a definition list whose entries may end in a tag such as ``[required]``.

        The tag follows the text on its last line when it fits there whole. Otherwise it
        starts a line of its own and breaks only after its separators.
        """
        rows = list(rows)
        first_width = min(max((cell_len(first) for first, *_rest in rows), default=0), col_max)
        first_col = first_width + col_spacing
        text_width = max(self.width - first_col - self.current_indent - 2, 10)
        for first, second, tag in rows:
            self.write(" " * self.current_indent + first)
            if not second and not tag:
                self.write("\n")
                continue
            if cell_len(first) <= first_width:
                self.write(" " * (first_col - cell_len(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = _append_tag(wrap_cells(second, text_width), tag, text_width) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(" " * (first_col + self.current_indent) + line + "\n")


class Context(click.Context):
    """A click context whose help output uses :class:`HelpFormatter`."""

    formatter_class = HelpFormatter


def _option_tag(option: click.Option, ctx: click.Context) -> str:
    """Build the ``[default: …; required]`` tag of an option's help from translated words."""
    extra = option.get_help_extra(ctx)
    items: list[str] = []
    if "envvars" in extra:
        items.append(_("env var: {var}").format(var=", ".join(extra["envvars"])))
    if "default" in extra:
        items.append(_("default: {default}").format(default=extra["default"]))
    if "range" in extra:
        items.append(extra["range"])
    if "required" in extra:
        items.append(_("required"))
    return f"[{_('; ').join(items)}]" if items else ""


def _format_options(command: click.Command, ctx: click.Context, formatter: HelpFormatter) -> None:
    """Write the options section, with each option's tag kept apart from its help text."""
    rows: list[tuple[str, str, str]] = []
    for param in command.get_params(ctx):
        if not isinstance(param, click.Option):
            continue
        record = param.get_help_record(ctx)
        if record is not None:
            rows.append((record[0], param.help or "", _option_tag(param, ctx)))
    if rows:
        with formatter.section(_("Options")):
            formatter.write_tagged_dl(rows)


def _short_help(command: click.Command) -> str:
    """Return the description of a command in its group's list: its whole first sentence."""
    if command.short_help:
        return inspect.cleandoc(command.short_help)
    return first_sentence(command.help or "")


class Command(click.Command):
    """A command with syncd's help formatter and a translated options placeholder."""

    context_class = Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", _("[OPTIONS]"))
        super().__init__(*args, **kwargs)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        assert isinstance(formatter, HelpFormatter)
        _format_options(self, ctx, formatter)


class Group(click.Group):
    """A command group whose commands and subgroups are syncd's own classes."""

    context_class = Context
    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", _("[OPTIONS]"))
        kwargs.setdefault("subcommand_metavar", _("COMMAND [ARGS]..."))
        super().__init__(*args, **kwargs)

    def format_options(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        assert isinstance(formatter, HelpFormatter)
        _format_options(self, ctx, formatter)
        self.format_commands(ctx, formatter)

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        """List the subcommands, each with its whole first sentence.

        click cuts each description to fit one line and ends it with "...". Here the
        formatter wraps a long sentence onto more lines instead, at the help width that
        click takes from the terminal.
        """
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, _short_help(command)))
        if rows:
            with formatter.section(_("Commands")):
                formatter.write_dl(rows)


Group.group_class = Group


class Integer(click.types.IntParamType):
    """click's integer type with a translated name; use :class:`IntRange` for bounds."""

    def __init__(self) -> None:
        self.name = _("integer")


class Number(click.types.FloatParamType):
    """click's float type with a translated name; use :class:`FloatRange` for bounds."""

    def __init__(self) -> None:
        self.name = _("number")


class IntRange(click.IntRange):
    """click.IntRange with a translated type name (shown in errors and placeholders)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = _("integer")


class FloatRange(click.FloatRange):
    """click.FloatRange with a translated type name (shown in errors and placeholders)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.name = _("number")


def join_list(items: Iterable[str]) -> str:
    """Join names for operator text with the language's list separator."""
    return _(", ").join(items)


def _join_sentences(message: str, detail: str) -> str:
    """Join a message and the sentence after it; Chinese needs no space between them."""
    return _("{message} {detail}").format(message=message, detail=detail)


def _parameter_hint(error: click.MissingParameter) -> str:
    if isinstance(error.param_hint, str):
        return error.param_hint
    if error.param_hint is not None:
        return " / ".join(f"'{hint}'" for hint in error.param_hint)
    return error.param.get_error_hint(error.ctx) if error.param is not None else ""


def _missing_parameter_message(error: click.MissingParameter) -> str:
    """Rebuild click's "Missing option '--x'." with the language's full stop."""
    hint = _parameter_hint(error)
    kind = error.param_type or (error.param.param_type_name if error.param else "parameter")
    if kind == "option":
        message = _("Missing option {name}.").format(name=hint)
    elif kind == "argument":
        message = _("Missing argument {name}.").format(name=hint)
    else:
        message = _("Missing parameter {name}.").format(name=hint)
    details: list[str | None] = [error.message]
    if error.param is not None:
        details.append(error.param.type.get_missing_message(param=error.param, ctx=error.ctx))
    for detail in details:
        if detail:
            message = _join_sentences(message, detail)
    return message


def error_message(error: click.ClickException) -> str:
    """Return the text of a click error, joined with the language's punctuation.

    click glues some of its translated pieces together with English punctuation: an ASCII
    full stop after the name of a missing option, and a space before the "did you mean"
    hint of an unknown command or option. Other errors keep click's own text.
    """
    if isinstance(error, click.MissingParameter) and _parameter_hint(error):
        return _missing_parameter_message(error)
    if getattr(error, "possibilities", None):
        # NoSuchCommand and NoSuchOption append their hint to the message after a space.
        hint = error.format_message().removeprefix(error.message).strip()
        return _join_sentences(error.message, hint)
    return error.format_message()


def show_error(error: click.ClickException) -> None:
    """Print a click error on standard error the way click does, with :func:`error_message`."""
    if type(error).show not in (click.ClickException.show, click.UsageError.show):
        # An error that prints itself, such as the help of a group called without a command.
        error.show()
        return

    ctx = error.ctx if isinstance(error, click.UsageError) else None
    if ctx is not None:
        hint = ""
        if ctx.command.get_help_option(ctx) is not None:
            names = ctx.command.get_help_option_names(ctx)
            hint = _("Try '{command} {option}' for help.").format(
                command=ctx.command_path, option=max(names, key=len)
            )
            hint += "\n"
        click.echo(f"{ctx.get_usage()}\n{hint}", err=True, color=ctx.color)
    click.echo(_("Error: {message}").format(message=error_message(error)), err=True)
