"""Operator language: gettext catalogs for Simplified Chinese and English.

Message ids are English. The language comes from the ``SYNCD_LANGUAGE`` setting when given,
otherwise from the POSIX locale variables. This module is the only place that reads the
locale variables.
"""

from __future__ import annotations

import gettext as _gettext
import os
from collections.abc import Mapping
from pathlib import Path

DOMAIN = "syncd"
LOCALE_DIR = Path(__file__).parent / "locale"
SUPPORTED_LANGUAGES = ("zh_CN", "en")
DEFAULT_LANGUAGE = "en"

# Checked in this order, like GNU gettext; the first non-empty one decides.
_LOCALE_VARIABLES = ("LANGUAGE", "LC_ALL", "LC_MESSAGES", "LANG")

_active: _gettext.NullTranslations = _gettext.NullTranslations()
_active_language = DEFAULT_LANGUAGE


def normalize_language(value: str) -> str | None:
    """Map a locale name such as ``zh_CN.UTF-8``, ``zh-Hans`` or ``C.UTF-8`` to a catalog.

    Returns:
        ``"zh_CN"`` or ``"en"``, or None when the value names neither language.
    """
    name = value.strip().split(":")[0].split(".")[0].split("@")[0].replace("-", "_").lower()
    if name.startswith("zh"):
        # Only Simplified Chinese is translated; it serves zh_TW readers better than English.
        return "zh_CN"
    if name in ("c", "posix") or name.startswith("en"):
        return "en"
    return None


def resolve_language(setting: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """Choose the operator language from the setting, else from the locale variables."""
    if setting:
        chosen = normalize_language(setting)
        if chosen is not None:
            return chosen
    env = os.environ if environ is None else environ
    for variable in _LOCALE_VARIABLES:
        value = env.get(variable, "")
        if value:
            return normalize_language(value) or DEFAULT_LANGUAGE
    return DEFAULT_LANGUAGE


def activate(language: str) -> None:
    """Switch every later translation, including click's own help words, to ``language``."""
    global _active, _active_language  # noqa: PLW0603 - one process-wide language by design
    _active = _gettext.translation(
        DOMAIN, localedir=LOCALE_DIR, languages=[language], fallback=True
    )
    _active_language = language

    # click translates its own words ("Usage:", "Options") through the stdlib's global gettext
    # domain, which only reads the locale variables; point both at our catalog and language.
    _gettext.bindtextdomain(DOMAIN, str(LOCALE_DIR))
    _gettext.textdomain(DOMAIN)
    os.environ["LANGUAGE"] = language


def active_language() -> str:
    """Return the language chosen by the last :func:`activate` call."""
    return _active_language


def gettext(message: str) -> str:
    """Translate ``message`` into the active language."""
    return _active.gettext(message)


def ngettext(singular: str, plural: str, count: int) -> str:
    """Translate a message whose wording depends on ``count``."""
    return _active.ngettext(singular, plural, count)


def gettext_noop(message: str) -> str:
    """Mark ``message`` for extraction without translating it yet."""
    return message
