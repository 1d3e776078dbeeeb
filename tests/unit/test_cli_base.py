"""Help output in both languages: wrapped by terminal cells, translated, punctuated."""

from __future__ import annotations

import io
import os
import re
import subprocess
import sys
from datetime import timedelta

import pytest
from rich.cells import cell_len

from syncd import i18n
from syncd.cli_base import HelpFormatter, first_sentence, wrap_cells
from syncd.cli_support import PIPE_WIDTH, create_console, format_duration


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


def _syncd_output(lang: str, *command: str) -> str:
    """Run ``python -m syncd COMMAND`` under ``LANG=lang`` in an 80-column terminal."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "LC_", "LANGUAGE"))}
    env.update({"LANG": lang, "COLUMNS": "80"})
    result = subprocess.run(
        [sys.executable, "-m", "syncd", *command],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    return result.stdout


def _unwrapped(text: str) -> str:
    """Join the wrapped lines of help output, so that a test can look for whole sentences."""
    return "".join(line.strip() for line in text.splitlines())


@pytest.mark.parametrize(
    "command",
    [
        ["--help"],
        ["sandbox", "serve", "--help"],
        ["demo", "--help"],
        ["account", "add", "--help"],
    ],
)
def test_chinese_help_fits_80_columns(command: list[str]) -> None:
    out = _syncd_output("zh_CN.UTF-8", *command)

    too_wide = [line for line in out.splitlines() if cell_len(line) > 80]
    assert too_wide == []


def test_chinese_help_uses_full_width_colons() -> None:
    out = _syncd_output("zh_CN.UTF-8", "--help")

    assert out.startswith("用法：syncd [选项] 命令 [参数]...\n")
    assert "\n选项：\n" in out
    assert "\n命令：\n" in out


def test_english_help_keeps_ascii_colons() -> None:
    out = _syncd_output("C.UTF-8", "--help")

    assert out.startswith("Usage: syncd [OPTIONS] COMMAND [ARGS]...\n")
    assert "\nOptions:\n" in out
    assert "\nCommands:\n" in out


def test_chinese_option_tags_are_translated() -> None:
    out = _syncd_output("zh_CN.UTF-8", "account", "add", "--help")

    assert "[必填]" in out
    assert "[required]" not in out
    assert "[默认：FULFILLMENT,PROCEEDS,PROMOTION,CANCELLATION,PACKAGES]" in _unwrapped(out)
    assert "默认 " not in out


def test_default_tag_breaks_only_after_separators() -> None:
    out = _syncd_output("zh_CN.UTF-8", "account", "add", "--help")

    tag_lines = [line.strip() for line in out.splitlines() if "FULFILLMENT" in line]
    assert tag_lines == ["[默认：FULFILLMENT,PROCEEDS,PROMOTION,"]
    assert "[默\n" not in out


def test_english_option_tags() -> None:
    out = _unwrapped(_syncd_output("C.UTF-8", "account", "add", "--help"))

    assert "repeat for several. [required]" in out
    assert "[default: FULFILLMENT,PROCEEDS,PROMOTION,CANCELLATION,PACKAGES]" in out


@pytest.mark.parametrize(
    "command", [["account", "add", "--help"], ["sandbox", "serve", "--help"], ["--help"]]
)
def test_chinese_placeholders_are_all_chinese(command: list[str]) -> None:
    out = _syncd_output("zh_CN.UTF-8", *command)

    # An option's placeholder follows its name after one space; its help after two or more.
    placeholders = re.findall(r"^ {2}(?:-\w, )?--[\w-]+ (\S+)", out, re.MULTILINE)
    usage = out.splitlines()[0]
    assert placeholders
    assert [word for word in placeholders if re.fullmatch(r"[A-Z_]+", word)] == []
    assert re.search(r"\b[A-Z]{2,}\b", usage) is None


def test_account_add_usage_names_the_argument_in_chinese() -> None:
    out = _syncd_output("zh_CN.UTF-8", "account", "add", "--help")

    assert out.splitlines()[0] == "用法：syncd account add [选项] 名称"
    assert "--marketplace 站点" in out
    assert "--refresh-token-file 文件" in out


def test_chinese_client_secret_term() -> None:
    out = _syncd_output("zh_CN.UTF-8", "sandbox", "serve", "--help")

    assert "--client-secret 客户端密钥" in out
    assert "密钥" not in out.replace("客户端密钥", "")


@pytest.mark.parametrize(
    ("lang", "sentences"),
    [
        (
            "zh_CN.UTF-8",
            [
                "最近一小时的 API 调用和限流次数、时钟偏差。",
                "直到收到 SIGTERM 或按下 Ctrl+C。",
            ],
        ),
        (
            "C.UTF-8",
            [
                "API calls and throttling in the last hour, clock skew.",
                "the bridge to the ERP, until SIGTERM or Ctrl+C.",
                "a fake Amazon for tests and demos.",
            ],
        ),
    ],
    ids=["zh_CN", "C"],
)
def test_command_list_shows_whole_first_sentences(lang: str, sentences: list[str]) -> None:
    out = _syncd_output(lang, "--help")
    commands = out.partition("\n命令：\n" if lang.startswith("zh") else "\nCommands:\n")[2]

    assert "..." not in commands
    for sentence in sentences:
        assert sentence.replace(" ", "") in _unwrapped(commands).replace(" ", "")


def test_command_list_stops_after_the_first_sentence() -> None:
    out = _syncd_output("zh_CN.UTF-8", "account", "--help")

    assert "添加卖家账号，或用 --replace 为已有账号保存新的刷新令牌。" in _unwrapped(out)
    assert "令牌从文件" not in _unwrapped(out)


@pytest.mark.parametrize(
    ("lang", "expected"),
    [
        ("zh_CN.UTF-8", ["syncd-demo.sqlite3", "三个演示卖家", "耗时"]),
        ("C.UTF-8", ["syncd-demo.sqlite3", "three demo sellers", "time taken"]),
    ],
    ids=["zh_CN", "C"],
)
def test_demo_help_describes_what_the_demo_does(lang: str, expected: list[str]) -> None:
    out = _unwrapped(_syncd_output(lang, "demo", "--help"))

    for words in expected:
        assert words.replace(" ", "") in out.replace(" ", "")
    assert "SP-API client" not in out
    assert "SP-API 客户端" not in out


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("Add an account. The token is read from a file.", "Add an account."),
        (
            "Throttle nothing; the limit reports 1000.0 then.",
            "Throttle nothing; the limit reports 1000.0 then.",
        ),
        ("Compare this vs. that. Then stop.", "Compare this vs. that."),
        ("添加卖家账号。令牌从文件读取。", "添加卖家账号。"),
        ("One paragraph.\n\nAnother one.", "One paragraph."),
    ],
    ids=["english", "decimal", "abbreviation", "chinese", "paragraphs"],
)
def test_first_sentence(text: str, expected: str) -> None:
    assert first_sentence(text) == expected


def test_tag_follows_the_text_when_it_fits() -> None:
    formatter = HelpFormatter(width=60)

    formatter.write_tagged_dl([("--seed 种子", "生成数据的随机种子。", "[默认：1]")])

    assert formatter.getvalue() == "--seed 种子  生成数据的随机种子。[默认：1]\n"


def test_long_tag_starts_its_own_line() -> None:
    formatter = HelpFormatter(width=40)

    formatter.write_tagged_dl(
        [("--data", "Datasets to ask for.", "[default: FULFILLMENT,PROCEEDS,PROMOTION]")]
    )

    assert formatter.getvalue().splitlines() == [
        "--data  Datasets to ask for.",
        "        [default: FULFILLMENT,",
        "        PROCEEDS,PROMOTION]",
    ]


def test_pipe_console_is_wide(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("COLUMNS", raising=False)
    monkeypatch.setattr(sys, "stdout", io.StringIO())

    assert create_console().width == PIPE_WIDTH


def test_pipe_console_honours_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "120")
    monkeypatch.setattr(sys, "stdout", io.StringIO())

    assert create_console().width == 120


@pytest.mark.parametrize(
    ("language", "value", "expected"),
    [
        ("zh_CN", timedelta(minutes=3), "3 分钟"),
        ("zh_CN", timedelta(seconds=5), "5 秒"),
        ("zh_CN", timedelta(hours=26), "26 小时"),
        ("en", timedelta(minutes=3), "3 minutes"),
        ("en", timedelta(seconds=5), "5 seconds"),
    ],
)
def test_duration_has_a_space_before_the_unit(
    language: str, value: timedelta, expected: str
) -> None:
    i18n.activate(language)

    assert format_duration(value) == expected
