"""Maintain the gettext catalogs: extract operator text, update the .po files, compile .mo.

Usage: python tools/catalogs.py [update|compile]

``update`` extracts every ``_()``, ``N_()`` and ``ngettext()`` string from syncd/ into
syncd/locale/syncd.pot, merges it into the zh_CN and en catalogs and compiles them. Translate
the new or fuzzy entries of syncd/locale/zh_CN/LC_MESSAGES/syncd.po, then run ``compile``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LOCALE = ROOT / "syncd" / "locale"
POT = LOCALE / "syncd.pot"
LANGUAGES = ("zh_CN", "en")


def _pybabel(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "babel.messages.frontend", *args], check=True, cwd=ROOT)


def extract() -> None:
    """Write the template of every translatable string, click's own words included.

    click translates its help words ("Usage:", "Options") and errors through gettext, so
    they are extracted from the installed click and translated in syncd's catalog.
    """
    import click  # noqa: PLC0415 - only this step needs it

    _pybabel(
        "extract",
        "-F",
        "babel.cfg",
        "-k",
        "N_",
        "-k",
        "gettext_noop",
        "--no-location",
        "--sort-output",
        "--project",
        "syncd",
        "-o",
        str(POT),
        "syncd",
        str(Path(click.__file__).parent),
    )


def update() -> None:
    """Merge the template into each language's catalog, creating missing ones."""
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "syncd.po"
        if po.exists():
            _pybabel(
                "update",
                "-i",
                str(POT),
                "-o",
                str(po),
                "-l",
                language,
                "--no-fuzzy-matching",
                "--ignore-obsolete",
            )
        else:
            _pybabel("init", "-i", str(POT), "-o", str(po), "-l", language)


def compile_catalogs() -> None:
    """Compile every .po file to the .mo file gettext reads."""
    for language in LANGUAGES:
        po = LOCALE / language / "LC_MESSAGES" / "syncd.po"
        _pybabel("compile", "-i", str(po), "-o", str(po.with_suffix(".mo")), "-l", language)


def main(argv: list[str]) -> int:
    """Run the step named on the command line."""
    step = argv[1] if len(argv) > 1 else "update"
    if step == "update":
        extract()
        update()
        compile_catalogs()
    elif step == "compile":
        compile_catalogs()
    else:
        print(__doc__)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
