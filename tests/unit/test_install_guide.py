"""Every syncd command and option that the installation guides show exists in the CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import click
import pytest

from syncd.cli import app

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ("docs/install.md", "docs/install.zh-CN.md")
PROGRAMS = ("syncd", "syncdctl")
_SHELL_BLOCK = re.compile(r"```sh\n(.*?)```", re.DOTALL)
_INLINE = re.compile(r"`((?:syncd|syncdctl) [^`]+)`")
_COMMAND_SEPARATORS = ("&&", "||", ";", "|")
_REDIRECTS = ("<", ">", ">>", "2>")
# Prose such as "every `syncdctl …`" stands for any command.
_PLACEHOLDERS = ("…", "...")


def _shell_commands(text: str) -> list[list[str]]:
    """Return the words of every command in the guide's sh blocks and inline code."""
    commands = []
    for block in _SHELL_BLOCK.findall(text):
        for line in _shell_lines(block):
            words = shlex.split(line, comments=True)
            current: list[str] = []
            for word in [*words, ";"]:
                if word in _COMMAND_SEPARATORS:
                    commands.append(current)
                    current = []
                else:
                    current.append(word)
    commands += [shlex.split(span, comments=True) for span in _INLINE.findall(text)]
    return [words for words in commands if words]


def _shell_lines(block: str) -> list[str]:
    """Split a shell block into lines, keeping a quoted argument that spans lines in one."""
    lines: list[str] = []
    pending = ""
    for line in block.replace("\\\n", " ").splitlines():
        pending = f"{pending}\n{line}" if pending else line
        try:
            shlex.split(pending, comments=True)
        except ValueError:
            continue  # a quote opened on this line closes on a later one
        lines.append(pending)
        pending = ""
    assert pending == "", f"unclosed quote in: {pending}"
    return lines


def _syncd_calls(guide: str) -> list[list[str]]:
    """Return the arguments of each command of the guide that runs syncd or syncdctl."""
    calls = []
    for words in _shell_commands((ROOT / guide).read_text(encoding="utf-8")):
        start = 0
        while start < len(words) and re.fullmatch(r"[A-Z_]+=.*|exec", words[start]):
            start += 1
        if start < len(words) and Path(words[start]).name in PROGRAMS:
            calls.append(words[start + 1 :])
    return calls


def _problem(arguments: list[str]) -> str | None:
    """Walk ``arguments`` through the CLI and return what does not exist, or None."""
    command: click.Command = app
    pending = list(arguments)
    while pending and isinstance(command, click.Group):
        word = pending.pop(0)
        if word in _PLACEHOLDERS:
            return None
        if word == "--env-file":
            pending.pop(0)
        elif word.startswith("-"):
            continue
        elif word not in command.commands:
            return f"no command {word!r} in {arguments}"
        else:
            command = command.commands[word]
    known = {name for param in command.params for name in param.opts} | {"-h", "--help"}
    for word in pending:
        if word in _REDIRECTS:
            break
        option = word.split("=", 1)[0]
        if option.startswith("--") and option not in known:
            return f"no option {option!r} of {command.name!r} in {arguments}"
    return None


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_commands_exist(guide: str) -> None:
    calls = _syncd_calls(guide)
    problems = [problem for problem in map(_problem, calls) if problem is not None]

    assert len(calls) > 20, f"{guide}: the command search found too few calls"
    assert problems == []


def test_unknown_command_reported() -> None:
    assert _problem(["account", "rename", "x"]) is not None
    assert _problem(["account", "add", "x", "--no-such-option"]) is not None
    assert _problem(["--env-file", "/etc/syncd/syncd.env", "doctor", "--json"]) is None
