"""Operator language: locale choice, complete Chinese catalog, compiled files up to date."""

from __future__ import annotations

import gettext
import os
import re
import subprocess
import sys
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.extract import extract_from_dir
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

from syncd import i18n

PACKAGE = Path(i18n.__file__).parent
ZH_PO = PACKAGE / "locale" / "zh_CN" / "LC_MESSAGES" / "syncd.po"
ZH_MO = ZH_PO.with_suffix(".mo")
PLACEHOLDER = re.compile(r"\{[^{}]*\}|%\([a-z]+\)s")


@pytest.mark.parametrize(
    ("setting", "environ", "expected"),
    [
        pytest.param(None, {"LANG": "zh_CN.UTF-8"}, "zh_CN", id="lang-zh"),
        pytest.param(None, {"LANG": "C.UTF-8"}, "en", id="lang-c"),
        pytest.param(None, {"LANG": "de_DE.UTF-8"}, "en", id="lang-other"),
        pytest.param(None, {}, "en", id="nothing-set"),
        pytest.param(None, {"LC_ALL": "zh_TW.UTF-8", "LANG": "en_US"}, "zh_CN", id="lc-all-wins"),
        pytest.param(None, {"LANGUAGE": "zh_CN:en", "LANG": "C"}, "zh_CN", id="language-list"),
        pytest.param("en", {"LANG": "zh_CN.UTF-8"}, "en", id="setting-wins"),
        pytest.param("zh-Hans", {"LANG": "C"}, "zh_CN", id="setting-zh-hans"),
    ],
)
def test_language_choice(setting: str | None, environ: dict[str, str], expected: str) -> None:
    assert i18n.resolve_language(setting, environ) == expected


def _source_messages() -> set[str]:
    found: set[str] = set()
    keywords = {"_": None, "N_": None, "gettext": None, "ngettext": (1, 2), "gettext_noop": None}
    for _file, _line, message, _comments, _context in extract_from_dir(
        str(PACKAGE), method_map=[("**.py", "python")], keywords=keywords
    ):
        found.add(message if isinstance(message, str) else message[0])
    return found


def _catalog() -> dict[str, str]:
    return {key: value for key, (_plural, value) in _entries().items()}


def _entries() -> dict[str, tuple[str | None, str]]:
    """Map each message id to its plural id (if any) and its Chinese text."""
    with ZH_PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    result: dict[str, tuple[str | None, str]] = {}
    for message in catalog:
        if not message.id or message.fuzzy:
            continue
        if isinstance(message.id, str):
            result[message.id] = (None, str(message.string))
        else:
            result[message.id[0]] = (message.id[1], message.string[0])
    return result


def test_every_operator_message_has_a_chinese_translation() -> None:
    catalog = _catalog()

    missing = sorted(message for message in _source_messages() if not catalog.get(message))

    assert missing == [], "run python tools/catalogs.py update and translate these"


def test_translations_keep_every_placeholder() -> None:
    for message, (plural, translation) in _entries().items():
        used = set(PLACEHOLDER.findall(translation))
        if plural is None:
            assert used == set(PLACEHOLDER.findall(message)), message
        else:
            # Chinese has one plural form, so its text serves both forms and may use the
            # placeholders of either; click passes the values of both.
            assert used <= set(PLACEHOLDER.findall(message)) | set(PLACEHOLDER.findall(plural))


def test_compiled_catalog_matches_the_po_file() -> None:
    with ZH_PO.open("rb") as handle:
        catalog = read_po(handle, locale="zh_CN")
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    fresh = gettext.GNUTranslations(compiled)
    with ZH_MO.open("rb") as handle:
        shipped = gettext.GNUTranslations(handle)

    assert shipped._catalog == fresh._catalog, "run python tools/catalogs.py compile"  # type: ignore[attr-defined]


def test_chinese_active_translates_messages() -> None:
    i18n.activate("zh_CN")

    assert i18n.gettext("Usage:") == "用法:"
    assert i18n.active_language() == "zh_CN"
    i18n.activate("en")
    assert i18n.gettext("Usage:") == "Usage:"


@pytest.mark.parametrize(
    ("lang", "expected", "unexpected"),
    [("zh_CN.UTF-8", "用法", "Usage:"), ("C.UTF-8", "Usage:", "用法")],
    ids=["zh_CN", "C"],
)
def test_help_follows_lang(lang: str, expected: str, unexpected: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SYNCD_", "LC_", "LANGUAGE"))}
    env["LANG"] = lang

    result = subprocess.run(
        [sys.executable, "-m", "syncd", "--help"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )

    assert expected in result.stdout
    assert unexpected not in result.stdout
