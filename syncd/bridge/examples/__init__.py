"""The shipped example of a domestic ERP: its MariaDB/MySQL tables and its mapping file.

``syncd bridge example`` prints both, and ``syncd demo`` creates the tables in its SQLite
database and maps its sellers onto them. The bridge tests build their sample ERP from the
same two files.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from importlib import resources

MAPPING_FILE = "domestic.toml"
SCHEMA_FILE = "domestic.sql"
# The example mapping's only [accounts.NAME] table, with the placeholders a seller replaces.
ACCOUNT_TABLE = '[accounts.ACCOUNT]\nshop_code = "SHOPCODE"\n'

_COMMENT = re.compile(r"[ \t]*--[^\n]*")


def read_example(name: str) -> str:
    """Return the text of one example file, ``MAPPING_FILE`` or ``SCHEMA_FILE``."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


def example_mapping(shop_codes: Mapping[str, str]) -> str:
    """Return the example mapping with one ``[accounts.NAME]`` table per syncd account.

    Args:
        shop_codes: the ERP's shop code of each syncd account, by account name.

    Raises:
        ValueError: the example no longer contains the placeholder accounts table.
    """
    text = read_example(MAPPING_FILE)
    if ACCOUNT_TABLE not in text:
        raise ValueError(f"{MAPPING_FILE} no longer contains {ACCOUNT_TABLE!r}")
    tables = "\n".join(
        f'[accounts."{name}"]\nshop_code = "{code}"\n' for name, code in shop_codes.items()
    )
    return text.replace(ACCOUNT_TABLE, tables, 1)


def example_schema(dialect: str) -> list[str]:
    """Return the example's CREATE TABLE statements, without comments, for one database.

    MariaDB and MySQL get the file's statements. SQLite and PostgreSQL get the same columns
    in their own types: auto-incrementing integer primary keys, SMALLINT for TINYINT,
    TIMESTAMP for DATETIME on PostgreSQL, no ``ON UPDATE`` clause and unnamed unique
    constraints.

    Args:
        dialect: ``mariadb``, ``mysql``, ``sqlite`` or ``postgresql``.

    Raises:
        ValueError: the dialect is not one of these four.
    """
    if dialect not in ("mariadb", "mysql", "sqlite", "postgresql"):
        raise ValueError(
            f"unknown database {dialect!r} for the example schema; expected mariadb, mysql, "
            "sqlite or postgresql"
        )
    text = _COMMENT.sub("", read_example(SCHEMA_FILE))
    statements = [part.strip() for part in text.split(";") if part.strip()]
    if dialect in ("mariadb", "mysql"):
        return statements
    return [_portable(statement, dialect) for statement in statements]


def _portable(statement: str, dialect: str) -> str:
    sql = statement.partition(") ENGINE")[0] + ")"
    sql = sql.replace(" ON UPDATE CURRENT_TIMESTAMP", "").replace("TINYINT", "SMALLINT")
    if dialect == "sqlite":
        sql = sql.replace("BIGINT AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY")
        sql = sql.replace("INT AUTO_INCREMENT PRIMARY KEY", "INTEGER PRIMARY KEY")
    else:
        sql = sql.replace("BIGINT AUTO_INCREMENT PRIMARY KEY", "BIGSERIAL PRIMARY KEY")
        sql = sql.replace("INT AUTO_INCREMENT PRIMARY KEY", "SERIAL PRIMARY KEY")
        sql = sql.replace("DATETIME", "TIMESTAMP")
    return re.sub(r"UNIQUE KEY \w+ ", "UNIQUE ", sql)
