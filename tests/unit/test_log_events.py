"""The alert tables of the installation guides list exactly the events the code logs.

``tools/log_events.py`` reads the event names, levels and keys from the source. These tests
hold the guides to it, so a new warning in the code fails here until it is documented.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import textwrap
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
GUIDES = ("docs/install.md", "docs/install.zh-CN.md")
ALERT_LEVELS = ("warning", "error", "exception", "critical")
_BLOCK = re.compile(r"<!-- alert-events -->(.*?)<!-- /alert-events -->", re.DOTALL)
_ROW = re.compile(r"^\|\s*`([a-z0-9_]+)`\s*\|([^|]*)\|([^|]*)\|", re.MULTILINE)


def _load_tool() -> ModuleType:
    spec = importlib.util.spec_from_file_location("log_events", ROOT / "tools" / "log_events.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look the module up while building the class
    spec.loader.exec_module(module)
    return module


log_events = _load_tool()


def _alert_events() -> dict[str, Any]:
    return {
        name: event
        for name, event in log_events.find_events().items()
        if event.level in ALERT_LEVELS
    }


def _documented(guide: str) -> dict[str, tuple[str, set[str]]]:
    """Return each row of the guide's alert tables: event name to (level, keys)."""
    text = (ROOT / guide).read_text(encoding="utf-8")
    blocks = _BLOCK.findall(text)
    assert blocks, f"{guide} has no <!-- alert-events --> block"
    rows: dict[str, tuple[str, set[str]]] = {}
    for block in blocks:
        for name, level, keys in _ROW.findall(block):
            assert name not in rows, f"{guide} lists {name} twice"
            first_word = re.match(r"\s*([a-z]*)", level)
            assert first_word is not None
            rows[name] = (first_word.group(1), set(re.findall(r"`([a-z0-9_]+)`", keys)))
    return rows


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_lists_every_alert_event(guide: str) -> None:
    missing = sorted(set(_alert_events()) - set(_documented(guide)))

    assert missing == [], f"add these events to the alert table of {guide}"


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_lists_no_unknown_event(guide: str) -> None:
    found = log_events.find_events()
    unknown = sorted(name for name in _documented(guide) if name not in found)
    below = sorted(
        name
        for name in _documented(guide)
        if name in found and found[name].level not in ALERT_LEVELS
    )

    assert unknown == [], f"{guide} lists events the code no longer logs"
    assert below == [], f"{guide} lists events logged below warning"


def _logged_level(event: Any) -> str:
    """Return the ``level`` a JSON line carries: structlog writes exception() as error."""
    return "error" if event.level in ("exception", "critical") else str(event.level)


def _logged_keys(event: Any) -> set[str]:
    """Return the event's keys, with the traceback key that exception() adds."""
    keys = set(event.keys)
    if event.level == "exception":
        keys.add("exception")
    return keys


@pytest.mark.parametrize("guide", GUIDES)
def test_guide_levels_and_keys_match(guide: str) -> None:
    events = _alert_events()
    documented = _documented(guide)
    shown = {name: row for name, row in documented.items() if name in events}

    wrong_levels = {
        name: (level, _logged_level(events[name]))
        for name, (level, _keys) in shown.items()
        if level != _logged_level(events[name])
    }
    wrong_keys = {
        name: sorted(keys ^ _logged_keys(events[name]))
        for name, (_level, keys) in shown.items()
        if keys != _logged_keys(events[name])
    }

    assert wrong_levels == {}, f"{guide}: documented level, level in the code"
    assert wrong_keys == {}, f"{guide}: keys documented or logged, not both"


def _events_of(tmp_path: Path, source: str) -> dict[str, Any]:
    package = tmp_path / "pkg"
    package.mkdir()
    (package / "module.py").write_text(textwrap.dedent(source), encoding="utf-8")
    events: dict[str, Any] = log_events.find_events(package)
    return events


def test_level_chosen_at_run_time(tmp_path: Path) -> None:
    events = _events_of(
        tmp_path,
        """
        def finish(log, failed):
            event = log.error if failed else log.info
            event("run_finished", result="x")

        def other(log):
            event = log.debug
            event("run_skipped")
        """,
    )

    assert events["run_finished"].level == "error"
    assert events["run_finished"].keys == {"result"}
    assert events["run_skipped"].level == "debug"


def test_keys_from_bind_and_dict(tmp_path: Path) -> None:
    events = _events_of(
        tmp_path,
        """
        class Job:
            def __init__(self, log):
                self.log = log.bind(account="a", run_id="r")

            def step(self):
                fields = {"source": 1, "outbox_id": 2}
                self.log.warning("row_skipped", reason="x", **fields)
        """,
    )

    assert events["row_skipped"].keys == {"account", "run_id", "reason", "source", "outbox_id"}


def test_event_name_built_from_state(tmp_path: Path) -> None:
    events = _events_of(
        tmp_path,
        """
        def record(log, state):
            event = log.info if state == "delivered" else log.error
            event("shipment_" + state, outbox_id=1)
        """,
    )

    assert events["shipment_delivered"].level == "info"
    assert events["shipment_dead"].level == "error"
    assert events["shipment_dead"].keys == {"outbox_id"}


def test_unknown_built_name_rejected(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="job_"):
        _events_of(
            tmp_path,
            """
            def record(log, state):
                log.error(f"job_{state}")
            """,
        )
