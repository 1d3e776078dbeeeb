"""click building blocks shared by every syncd command group.

click measures help text in characters, but a Chinese character takes two terminal cells, so
Chinese help overflowed its columns. :class:`HelpFormatter` wraps and aligns by display
cells instead. :class:`Command` and :class:`Group` use it and translate the placeholders
click writes into usage lines. The number types translate their names, because click shows
them in error messages.
"""

from __future__ import annotations

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


def _is_wide(char: str) -> bool:
    return unicodedata.east_asian_width(char) in ("W", "F")


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


class HelpFormatter(click.HelpFormatter):
    """click's help formatter, measuring text in terminal cells rather than characters."""

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
        rows = list(rows)
        first_width = min(max((cell_len(first) for first, _second in rows), default=0), col_max)
        first_col = first_width + col_spacing
        text_width = max(self.width - first_col - self.current_indent - 2, 10)
        for first, second in rows:
            self.write(" " * self.current_indent + first)
            if not second:
                self.write("\n")
                continue
            if cell_len(first) <= first_width:
                self.write(" " * (first_col - cell_len(first)))
            else:
                self.write("\n" + " " * (first_col + self.current_indent))
            lines = wrap_cells(second, text_width) or [""]
            self.write(lines[0] + "\n")
            for line in lines[1:]:
                self.write(" " * (first_col + self.current_indent) + line + "\n")


class Context(click.Context):
    """A click context whose help output uses :class:`HelpFormatter`."""

    formatter_class = HelpFormatter


class Command(click.Command):
    """A command with syncd's help formatter and a translated options placeholder."""

    context_class = Context

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", _("[OPTIONS]"))
        super().__init__(*args, **kwargs)


class Group(click.Group):
    """A command group whose commands and subgroups are syncd's own classes."""

    context_class = Context
    command_class = Command

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("options_metavar", _("[OPTIONS]"))
        kwargs.setdefault("subcommand_metavar", _("COMMAND [ARGS]..."))
        super().__init__(*args, **kwargs)


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
