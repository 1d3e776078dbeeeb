"""Entry point of the ``syncd`` command."""

from __future__ import annotations

import sys

from syncd import config, i18n


def main(argv: list[str] | None = None) -> int:
    """Run the command line and return its exit code.

    The operator language is chosen before the command modules load, because click's help
    texts are translated when the commands are defined.
    """
    i18n.activate(i18n.resolve_language(config.read_language_setting()))

    from syncd import cli  # noqa: PLC0415 - must follow the language choice above

    return cli.run(argv)


if __name__ == "__main__":
    sys.exit(main())
