"""Help text wrapped by terminal cells, so Chinese help stays inside its columns."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest
from rich.cells import cell_len

from syncd.cli_base import wrap_cells


def test_chinese_wraps_by_cells() -> None:
    text = (
        "运行 SP-API 沙箱直到按下 Ctrl+C：北美站点和 LWA 令牌接口在 PORT 端口，欧洲站点在 PORT+1。"
    )

    lines = wrap_cells(text, 30)

    assert all(cell_len(line) <= 30 for line in lines)
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")


def test_punctuation_never_starts_a_line() -> None:
    lines = wrap_cells("甲乙丙丁戊己庚辛，壬癸。子丑寅卯，辰巳。", 8)

    assert all(line[0] not in "，。" for line in lines)


def test_english_breaks_between_words() -> None:
    assert wrap_cells("Read settings from this env file", 12) == [
        "Read",
        "settings",
        "from this",
        "env file",
    ]


def test_long_word_gets_its_own_line() -> None:
    assert wrap_cells("see https://sellingpartnerapi-eu.amazon.com now", 20) == [
        "see",
        "https://sellingpartnerapi-eu.amazon.com",
        "now",
    ]


@pytest.mark.parametrize(
    "command", [["--help"], ["sandbox", "serve", "--help"], ["demo", "--help"]]
)
def test_chinese_help_fits_80_columns(command: list[str]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "LC_", "LANGUAGE"))}
    env.update({"LANG": "zh_CN.UTF-8", "COLUMNS": "80"})

    result = subprocess.run(
        [sys.executable, "-m", "syncd", *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )

    too_wide = [line for line in result.stdout.splitlines() if cell_len(line) > 80]
    assert too_wide == []
