"""List the log events syncd emits, with their level and keys, read from the source code.

The operator docs keep a table of the events worth an alert. ``tests/unit/test_log_events.py``
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

# Event names that the code builds at run time, by their constant prefix: each completion
# with the level it is logged at. The shipments job logs "shipment_" + the outbox row's final
# state. find_events raises on any other built name, so this table cannot fall behind.
DYNAMIC_EVENTS: dict[str, dict[str, str]] = {
    "shipment_": {"delivered": "info", "dead": "error", "conflict": "error"},
}

_Function = ast.FunctionDef | ast.AsyncFunctionDef


@dataclass
class Event:
    """One event name with the highest level it is logged at and every key it carries."""

    name: str
    level: str
    keys: set[str] = field(default_factory=set)
    modules: set[str] = field(default_factory=set)


def _is_event_name(text: str) -> bool:
    return text.replace("_", "").isalnum() and text.islower()


def _own_nodes(scope: ast.AST) -> Iterator[ast.AST]:
    """Yield the nodes of ``scope`` outside the functions nested in it."""
    pending = list(ast.iter_child_nodes(scope))
    while pending:
        node = pending.pop()
        yield node
        if not isinstance(node, _Function | ast.Lambda):
            pending.extend(ast.iter_child_nodes(node))


def _bound_keys(tree: ast.AST) -> dict[str, set[str]]:
    """Map ``self.<attribute>`` to the keys bound by ``self.<attribute> = ….bind(key=…)``."""
    bound: dict[str, set[str]] = {}
    for node in ast.walk(tree):
        if not isinstance(node, ast.Assign) or not isinstance(node.value, ast.Call):
            continue
        call = node.value
        if not isinstance(call.func, ast.Attribute) or call.func.attr != "bind":
            continue
        for target in node.targets:
            if isinstance(target, ast.Attribute) and isinstance(target.value, ast.Name):
                keys = {keyword.arg for keyword in call.keywords if keyword.arg}
                bound.setdefault(target.attr, set()).update(keys)
    return bound


def _logger_method(node: ast.expr, bound: dict[str, set[str]]) -> tuple[str, set[str]] | None:
    """Return the level and the bound keys of ``log.warning`` or ``self.log.warning``."""
    if not isinstance(node, ast.Attribute) or node.attr not in _RANK:
        return None
    receiver = node.value
    if isinstance(receiver, ast.Attribute) and isinstance(receiver.value, ast.Name):
        return node.attr, bound.get(receiver.attr, set())
    return node.attr, set()


def _aliases(function: ast.AST, bound: dict[str, set[str]]) -> dict[str, tuple[set[str], set[str]]]:
    """Map local names such as ``event = log.error if failed else log.info`` to their levels."""
    aliases: dict[str, tuple[set[str], set[str]]] = {}
    for node in _own_nodes(function):
        if not isinstance(node, ast.Assign):
            continue
        choices = [node.value]
        if isinstance(node.value, ast.IfExp):
            choices = [node.value.body, node.value.orelse]
        methods = [_logger_method(choice, bound) for choice in choices]
        if not methods or any(method is None for method in methods):
            continue
        for target in node.targets:
            if isinstance(target, ast.Name):
                levels, keys = aliases.setdefault(target.id, (set(), set()))
                for method in methods:
                    assert method is not None
                    levels.add(method[0])
                    keys.update(method[1])
    return aliases


def _dict_keys(function: ast.AST) -> dict[str, set[str]]:
    """Map local names assigned a dict literal to its constant keys, for ``**fields``."""
    found: dict[str, set[str]] = {}
    for node in _own_nodes(function):
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Dict):
            keys = {
                key.value
                for key in node.value.keys
                if isinstance(key, ast.Constant) and isinstance(key.value, str)
            }
            for target in node.targets:
                if isinstance(target, ast.Name):
                    found.setdefault(target.id, set()).update(keys)
    return found


def _built_prefix(node: ast.expr) -> str | None:
    """Return the constant start of a name built as ``"prefix_" + x`` or ``f"prefix_{x}"``."""
    first: ast.expr | None = None
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        first = node.left
    elif isinstance(node, ast.JoinedStr) and node.values:
        first = node.values[0]
    if isinstance(first, ast.Constant) and isinstance(first.value, str):
        prefix = first.value
        if prefix.endswith("_") and _is_event_name(prefix):
            return prefix
    return None


def _names(node: ast.expr, level: str, where: str) -> Iterator[tuple[str, str]]:
    """Yield each event name, with its level, that the first argument of a log call gives."""
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        if _is_event_name(node.value):
            yield node.value, level
        return
    prefix = _built_prefix(node)
    if prefix is None:
        return
    if prefix not in DYNAMIC_EVENTS:
        raise ValueError(
            f"{where}: an event name built from {prefix!r} at run time; "
            "list its completions in DYNAMIC_EVENTS of tools/log_events.py"
        )
    for suffix, suffix_level in DYNAMIC_EVENTS[prefix].items():
        yield prefix + suffix, suffix_level


def _calls(tree: ast.AST, module: str) -> Iterator[tuple[str, str, set[str]]]:
    bound = _bound_keys(tree)
    scopes = [tree, *(node for node in ast.walk(tree) if isinstance(node, _Function))]
    for scope in scopes:
        aliases = _aliases(scope, bound)
        dicts = _dict_keys(scope)
        for node in _own_nodes(scope):
            if not isinstance(node, ast.Call) or not node.args:
                continue
            method = _logger_method(node.func, bound)
            if method is not None:
                levels, keys = {method[0]}, set(method[1])
            elif isinstance(node.func, ast.Name) and node.func.id in aliases:
                levels, keys = (set(part) for part in aliases[node.func.id])
            else:
                continue
            for keyword in node.keywords:
                if keyword.arg:
                    keys.add(keyword.arg)
                elif isinstance(keyword.value, ast.Name):
                    keys.update(dicts.get(keyword.value.id, set()))
            level = max(levels, key=_RANK.__getitem__)
            for name, name_level in _names(node.args[0], level, f"{module}:{node.lineno}"):
                yield name_level, name, keys


def find_events(package: Path = ROOT / "syncd") -> dict[str, Event]:
    """Return every event logged under ``package``, the sandbox excluded (it is not syncd).

    Raises:
        ValueError: a log call builds its event name from a prefix that DYNAMIC_EVENTS lacks.
    """
    events: dict[str, Event] = {}
    for path in sorted(package.rglob("*.py")):
        if "sandbox" in path.relative_to(package).parts:
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        module = str(path.relative_to(package.parent))
        for level, name, keys in _calls(tree, module):
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
