"""List the log events syncd emits, with their level and keys, read from the source code.

The operator docs keep a table of the events worth an alert; ``tests/unit/test_log_events.py``
uses :func:`find_events` to check that every warning and error event is in that table.

Usage: ``python tools/log_events.py [--level warning]`` prints one line per event.
"""

from __future__ import annotations

import argparse
import ast
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEVELS = ("debug", "info", "warning", "error", "exception", "critical")
_RANK = {level: rank for rank, level in enumerate(LEVELS)}


@dataclass
class Event:
    """One event name with the highest level it is logged at and every key it carries."""

    name: str
    level: str
    keys: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)


def _calls(tree: ast.AST) -> Iterator[tuple[str, str, list[str]]]:
    for node in ast.walk(tree):
        if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
            continue
        level = node.func.attr
        if level not in _RANK or not node.args:
            continue
        first = node.args[0]
        if not isinstance(first, ast.Constant) or not isinstance(first.value, str):
            continue
        name = first.value
        if not name.replace("_", "").isalnum() or not name.islower():
            continue
        keys = [keyword.arg for keyword in node.keywords if keyword.arg]
        yield level, name, keys


def find_events(package: Path = ROOT / "syncd") -> dict[str, Event]:
    """Return every event logged under ``package``, the sandbox excluded (it is not syncd)."""
    events: dict[str, Event] = {}
    for path in sorted(package.rglob("*.py")):
        if "sandbox" in path.relative_to(package).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = str(path.relative_to(package.parent))
        for level, name, keys in _calls(tree):
            event = events.setdefault(name, Event(name, level))
            if _RANK[level] > _RANK[event.level]:
                event.level = level
            event.keys.update(keys)
            event.modules.add(module)
    return events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--level", choices=LEVELS, default="debug", help="lowest level shown")
    args = parser.parse_args()
    for event in sorted(find_events().values(), key=lambda e: e.name):
        if _RANK[event.level] >= _RANK[args.level]:
            keys = ", ".join(sorted(event.keys)) or "-"
            print(f"{event.level:9} {event.name:45} {keys}")


if __name__ == "__main__":
    main()
