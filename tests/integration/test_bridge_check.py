"""The mapping checks behind ``syncd doctor``: one mapping mistake per test, on every backend.

Each test starts from the domestic sample (tests/erp_samples.py), which checks clean apart
from warnings, changes one thing in the schema or in the mapping file, and expects one
problem that names where it is and says how to fix it. Mistakes in the file itself stop
:func:`load_mapping`; mistakes that need the tables are found by :func:`check_tables`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from syncd import cli, config
from syncd.bridge.check import check_tables, inspect_bridge
from syncd.bridge.mapping import MappingError, Problem, load_mapping
from syncd.crypto import generate_key
from syncd.db.engine import create_db_engine
from syncd.sandbox.server import SandboxServer
from tests.erp_samples import (
    DOMESTIC_TABLES,
    MODERN_TABLES,
    backend_of,
    create_tables,
    domestic_ddl,
    domestic_mapping,
    drop_tables,
    modern_ddl,
    modern_mapping,
    write_mapping,
)

ACCOUNT = "acme-na"
GOOD_MAPPING = domestic_mapping(ACCOUNT)
ORDER_TIME = 'order_time = { field = "purchase_time", zone = "Asia/Shanghai" }'
ORDER_ID_COLUMN = "platform_order_no VARCHAR(64) NOT NULL"
WRITE_BACK_VALUES = (
    "values = { queued = 1, sending = 2, confirmed = 3, rejected = 8, failed = 9, cancelled = 7 }"
)


def _edit(original: str, old: str, new: str) -> str:
    """Replace the first ``old``, and fail when the sample no longer contains it."""
    assert old in original, f"the sample no longer contains {old!r}"
    return original.replace(old, new, 1)


def _mapping(old: str, new: str) -> str:
    return _edit(GOOD_MAPPING, old, new)


def _only(problems: Sequence[Problem], where: str, *, warning: bool = False) -> Problem:
    """Return the one problem (or warning) at ``where``, and fail with all of them otherwise."""
    found = [p for p in problems if p.where == where and p.warning == warning]
    assert len(found) == 1, [str(p) for p in problems]
    return found[0]


def _errors(problems: Sequence[Problem]) -> list[str]:
    return [str(problem) for problem in problems if not problem.warning]


def _load_problems(tmp_path: Path, mapping: str) -> list[Problem]:
    """Return the problems that stop loading a mapping file, which needs no database."""
    path = write_mapping(tmp_path, mapping)
    with pytest.raises(MappingError) as caught:
        load_mapping(path)
    assert str(path) in str(caught.value)
    return list(caught.value.problems)


@dataclass
class Erp:
    """The domestic sample's tables on one backend, created anew by each check."""

    url: str
    backend: str
    folder: Path

    def ddl(self, table: str, old: str, new: str) -> list[str]:
        """Return the sample schema with one change in the CREATE TABLE of ``table``."""
        statements = domestic_ddl(self.backend)
        if self.backend == "postgresql":
            old = old.replace("DATETIME", "TIMESTAMP")  # as domestic_ddl writes it there
        index = next(i for i, s in enumerate(statements) if f"CREATE TABLE {table} (" in s)
        statements[index] = _edit(statements[index], old, new)
        return statements

    def check(self, mapping: str = GOOD_MAPPING, ddl: Sequence[str] | None = None) -> list[Problem]:
        """Create the tables, load the mapping file and check it against them."""
        statements = list(ddl) if ddl is not None else domestic_ddl(self.backend)
        create_tables(self.url, statements, DOMESTIC_TABLES)
        path = write_mapping(self.folder, mapping)
        engine = create_db_engine(self.url)
        try:
            problems, _tables = check_tables(load_mapping(path), engine)
        finally:
            engine.dispose()
        return problems


@pytest.fixture
def erp(database_url: str, tmp_path: Path) -> Iterator[Erp]:
    """The sample ERP in the backend's test database, whose tables are dropped afterwards."""
    yield Erp(database_url, backend_of(database_url), tmp_path)
    drop_tables(database_url, DOMESTIC_TABLES)


def _require(erp: Erp, *backends: str, reason: str) -> None:
    if erp.backend not in backends:
        pytest.skip(f"{reason}, not on {erp.backend}")


# -- the sample itself -------------------------------------------------------------------------


def test_good_mapping_has_no_errors(erp: Erp) -> None:
    problems = erp.check()

    assert _errors(problems) == []
    # The text columns shorter than Amazon's longest values are only warnings.
    assert _only(problems, "table oms_order, column receiver_name", warning=True).fix


def test_inspect_bridge_reads_settings(
    erp: Erp, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    path = write_mapping(tmp_path, _mapping('receiver_zip = "postal_code"', 'zip = "postal_code"'))
    create_tables(erp.url, domestic_ddl(erp.backend), DOMESTIC_TABLES)
    monkeypatch.setenv("SYNCD_DATABASE_URL", erp.url)
    monkeypatch.setenv("SYNCD_MAPPING_FILE", str(path))

    problems = inspect_bridge(config.load_settings())

    problem = _only(problems, "table oms_order, column zip")
    assert "does not exist" in problem.problem
    assert problem.fix


def test_inspect_bridge_without_mapping_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNCD_DATABASE_URL", "sqlite:///unused.sqlite3")

    assert inspect_bridge(config.load_settings()) == []


# -- mistakes found against the tables ---------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ('table = "oms_order"\n', 'table = "oms_orders"\n'),
        ('table = "wms_delivery"', 'table = "wms_deliveries"'),
    ],
    ids=["orders", "shipments"],
)
def test_missing_table_named(erp: Erp, old: str, new: str) -> None:
    missing = new.split('"')[1]

    problems = erp.check(_mapping(old, new))

    problem = _only(problems, f"table {missing}")
    assert "does not exist" in problem.problem
    assert "SYNCD_ERP_DATABASE_URL" in problem.fix


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (
            'receiver_zip = "postal_code"',
            'receiver_postcode = "postal_code"',
            "table oms_order, column receiver_postcode",
        ),
        (
            'qty = "quantity_ordered"',
            'quantity = "quantity_ordered"',
            "table oms_order_item, column quantity",
        ),
        (
            'tracking_number = "tracking_no"',
            'tracking_number = "tracking_number"',
            "table wms_delivery, column tracking_number",
        ),
    ],
    ids=["orders", "lines", "shipments"],
)
def test_missing_column_named(erp: Erp, old: str, new: str, where: str) -> None:
    problems = erp.check(_mapping(old, new))

    problem = _only(problems, where)
    assert "does not exist" in problem.problem
    assert "correct the name" in problem.fix


@pytest.mark.parametrize("numeric", ["INTEGER", "BIGINT"])
@pytest.mark.parametrize("table", ["oms_order", "wms_delivery"])
def test_numeric_order_id_column(erp: Erp, table: str, numeric: str) -> None:
    ddl = erp.ddl(table, ORDER_ID_COLUMN, f"platform_order_no {numeric} NOT NULL")

    problems = erp.check(ddl=ddl)

    problem = _only(problems, f"table {table}, column platform_order_no")
    assert "text" in problem.problem
    assert numeric in problem.problem
    assert problem.fix == "make it VARCHAR(50)."


@pytest.mark.parametrize(("length", "warning"), [(16, False), (32, True)])
def test_short_order_id_column(erp: Erp, length: int, warning: bool) -> None:
    ddl = erp.ddl("oms_order", ORDER_ID_COLUMN, f"platform_order_no VARCHAR({length}) NOT NULL")

    problems = erp.check(ddl=ddl)

    problem = _only(problems, "table oms_order, column platform_order_no", warning=warning)
    assert f"VARCHAR({length})" in problem.problem
    assert problem.fix == "make it VARCHAR(50)."
    assert _errors(problems) == ([] if warning else [str(problem)])


@pytest.mark.parametrize("charset", ["latin1", "gbk", "utf8mb3"])
def test_column_charset_not_utf8mb4(erp: Erp, charset: str) -> None:
    _require(erp, "mariadb", reason="columns have character sets of their own on MariaDB/MySQL")
    ddl = erp.ddl(
        "oms_order",
        "receiver_name VARCHAR(128)",
        f"receiver_name VARCHAR(128) CHARACTER SET {charset}",
    )

    problems = erp.check(ddl=ddl)

    problem = _only(problems, "table oms_order, column receiver_name")
    assert charset in problem.problem
    assert "MODIFY receiver_name" in problem.fix
    assert "CHARACTER SET utf8mb4" in problem.fix


def test_naive_datetime_without_zone(erp: Erp) -> None:
    mapping = _mapping(ORDER_TIME, 'order_time = "purchase_time"')

    problems = erp.check(mapping)

    problem = _only(problems, "table oms_order, column order_time")
    assert "without a time zone" in problem.problem
    assert 'zone = "Asia/Shanghai"' in problem.fix


def test_naive_ship_time_without_zone(erp: Erp) -> None:
    mapping = _mapping('shipped_at_zone = "Asia/Shanghai"\n', "")

    problems = erp.check(mapping)

    problem = _only(problems, "shipments.shipped_at")
    assert "delivery_time" in problem.problem
    assert "shipped_at_zone" in problem.fix


def test_small_decimal_amount_column(erp: Erp) -> None:
    ddl = erp.ddl("oms_order", "total_amount DECIMAL(14, 2)", "total_amount DECIMAL(8, 2)")

    problems = erp.check(ddl=ddl)

    problem = _only(problems, "table oms_order, column total_amount")
    assert "DECIMAL(8, 2)" in problem.problem
    assert problem.fix == "make it DECIMAL(18, 4)."


def test_unmapped_not_null_column(erp: Erp) -> None:
    ddl = erp.ddl(
        "oms_order",
        "remark VARCHAR(255),",
        "remark VARCHAR(255), biz_type VARCHAR(8) NOT NULL, "
        "biz_flag VARCHAR(8) NOT NULL DEFAULT 'B2C',",
    )

    problems = erp.check(ddl=ddl)

    problem = _only(problems, "table oms_order, column biz_type")
    assert "NOT NULL" in problem.problem
    assert "give the column a default" in problem.fix
    # A column with a default is filled by the database.
    assert not [p for p in problems if "biz_flag" in p.where]


def test_key_without_unique_index(erp: Erp) -> None:
    unique = (
        "UNIQUE KEY uk_platform_order (platform, shop_code, platform_order_no)"
        if erp.backend == "mariadb"
        else "UNIQUE (platform, shop_code, platform_order_no)"
    )
    ddl = erp.ddl("oms_order", unique, "CHECK (platform <> '')")

    problems = erp.check(ddl=ddl)

    problem = _only(problems, "orders.key", warning=True)
    assert "oms_order" in problem.problem
    assert "platform, shop_code, platform_order_no" in problem.problem
    assert problem.fix.startswith("CREATE UNIQUE INDEX uq_oms_order_syncd ON oms_order")
    assert _errors(problems) == []


def test_numeric_write_back_needs_numbers(erp: Erp) -> None:
    mapping = _mapping(WRITE_BACK_VALUES, WRITE_BACK_VALUES.replace(", cancelled = 7", ""))

    problems = erp.check(mapping)

    problem = _only(problems, "shipments.write_back.status")
    assert "numeric" in problem.problem
    assert problem.problem.endswith("missing: cancelled.")
    assert "[shipments.write_back.values]" in problem.fix


# -- mistakes the check misses or reports wrongly ----------------------------------------------


def test_date_column_without_zone(erp: Erp) -> None:
    ddl = erp.ddl("oms_order", "remark VARCHAR(255),", "remark VARCHAR(255), order_date DATE,")
    mapping = _mapping("pick_status =", 'order_date = "purchase_time"\npick_status =')

    problems = erp.check(mapping, ddl)

    problem = _only(problems, "table oms_order, column order_date")
    assert "without a time zone" in problem.problem


def test_text_ship_time_without_zone(erp: Erp) -> None:
    ddl = erp.ddl("wms_delivery", "delivery_time DATETIME,", "delivery_time VARCHAR(32),")
    mapping = _mapping('shipped_at_zone = "Asia/Shanghai"\n', "")

    problems = erp.check(mapping, ddl)

    problem = _only(problems, "shipments.shipped_at")
    assert "shipped_at_zone" in problem.fix


def test_map_value_beyond_integer_column(erp: Erp) -> None:
    _require(erp, "mariadb", "postgresql", reason="SQLite's integer columns take any size")
    mapping = _mapping("CANCELLED = 90", "CANCELLED = 70000")

    problems = erp.check(mapping)

    problem = _only(problems, "table oms_order, column order_status")
    assert "70000" in problem.problem


def test_mariadb_timestamp_needs_no_zone(erp: Erp) -> None:
    _require(erp, "mariadb", reason="TIMESTAMP converts through the session zone on MariaDB")
    ddl = erp.ddl(
        "oms_order", "remark VARCHAR(255),", "remark VARCHAR(255), paid_at TIMESTAMP NULL,"
    )
    mapping = _mapping("pick_status =", 'paid_at = "purchase_time"\npick_status =')

    problems = erp.check(mapping, ddl)

    assert _errors(problems) == []


def test_modern_sample_has_no_errors(erp: Erp) -> None:
    _require(erp, "postgresql", reason="the modern sample uses PostgreSQL's types")
    create_tables(erp.url, modern_ddl(), MODERN_TABLES)
    path = write_mapping(erp.folder, modern_mapping(ACCOUNT))
    engine = create_db_engine(erp.url)
    try:
        problems, _tables = check_tables(load_mapping(path), engine)
    finally:
        engine.dispose()
        drop_tables(erp.url, MODERN_TABLES)

    assert _errors(problems) == []


# -- mistakes in the file itself (no database needed) ------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "where"),
    [
        (ORDER_TIME, ORDER_TIME.replace("Shanghai", "Beijing"), "orders.columns.order_time.zone"),
        (
            'shipped_at_zone = "Asia/Shanghai"',
            'shipped_at_zone = "Asia/Beijing"',
            "shipments.shipped_at_zone",
        ),
    ],
    ids=["order-column", "ship-time"],
)
def test_unknown_time_zone_name(tmp_path: Path, old: str, new: str, where: str) -> None:
    problems = _load_problems(tmp_path, _mapping(old, new))

    problem = _only(problems, where)
    assert "Asia/Beijing is not a time zone name" in problem.problem
    assert "Asia/Shanghai" in problem.fix


def test_status_map_missing_value(tmp_path: Path) -> None:
    mapping = _mapping(", UNFULFILLABLE = 91", "")

    problems = _load_problems(tmp_path, mapping)

    problem = _only(problems, "maps.order_status")
    assert problem.problem.endswith("values the map does not list: UNFULFILLABLE.")
    assert "default" in problem.fix


def test_status_map_default_suffices(tmp_path: Path) -> None:
    mapping = _mapping(", UNFULFILLABLE = 91 }", " }\ndefault = 99")

    loaded = load_mapping(write_mapping(tmp_path, mapping))

    assert loaded.spec.maps["order_status"].default == 99


def test_unknown_field_name(tmp_path: Path) -> None:
    mapping = _mapping('receiver_name = "recipient_name"', 'receiver_name = "receiver"')

    problems = _load_problems(tmp_path, mapping)

    problem = _only(problems, "orders.columns.receiver_name")
    assert problem.problem == "unknown field receiver."
    assert "recipient_name" in problem.fix


def test_unknown_map_name(tmp_path: Path) -> None:
    mapping = _mapping('map = "order_status"', 'map = "order_state"')

    problems = _load_problems(tmp_path, mapping)

    problem = _only(problems, "orders.columns.order_status.map")
    assert "order_state" in problem.problem
    assert problem.fix == "add [maps.order_state] or correct the name."


@pytest.mark.parametrize(
    ("hook", "error"),
    [
        ("erp_hooks_missing.remark", "ModuleNotFoundError"),
        ("json.no_such_function", "AttributeError"),
        ("json.decoder", "TypeError"),
    ],
    ids=["no-module", "no-function", "not-callable"],
)
def test_code_hook_not_importable(tmp_path: Path, hook: str, error: str) -> None:
    mapping = _mapping("pick_status =", f'remark = {{ code = "{hook}" }}\npick_status =')

    problems = _load_problems(tmp_path, mapping)

    problem = _only(problems, "orders.columns.remark.code")
    assert hook in problem.problem
    assert error in problem.problem
    assert "package.module.function" in problem.fix


def test_toml_syntax_error_names_line(tmp_path: Path) -> None:
    mapping = _mapping('site = "marketplace_country"', "site = marketplace_country")
    line = mapping.splitlines().index("site = marketplace_country") + 1

    problems = _load_problems(tmp_path, mapping)

    [problem] = problems
    assert problem.where == str(tmp_path / "mapping.toml")
    assert f"line {line}," in problem.problem
    assert "correct the line named" in problem.fix


def test_misspelled_key_is_unknown(tmp_path: Path) -> None:
    mapping = _mapping('table = "oms_order"\n', 'tabel = "oms_order"\n')

    problems = _load_problems(tmp_path, mapping)

    assert _only(problems, "orders.tabel").problem == "unknown key."
    assert _only(problems, "orders.table").problem == "this key is required."
    assert "correct its spelling" in _only(problems, "orders.tabel").fix


def test_account_constant_missing(tmp_path: Path) -> None:
    mapping = GOOD_MAPPING + '\n[accounts.acme-eu]\nwarehouse = "EU01"\n'

    problems = _load_problems(tmp_path, mapping)

    found = [p for p in problems if p.where == "accounts.acme-eu"]
    assert found, [str(p) for p in problems]
    assert all(p.problem == "the constant shop_code is missing." for p in found)
    assert found[0].fix == "add shop_code = … to [accounts.acme-eu]."
    assert not [p for p in problems if p.where == f"accounts.{ACCOUNT}"]


def test_missing_constant_reported_once(tmp_path: Path) -> None:
    mapping = GOOD_MAPPING + '\n[accounts.acme-eu]\nwarehouse = "EU01"\n'

    problems = _load_problems(tmp_path, mapping)

    assert len([p for p in problems if p.where == "accounts.acme-eu"]) == 1


# -- syncd doctor --------------------------------------------------------------------------------


def test_doctor_fails_on_broken_mapping(
    migrated_database_url: str,
    sandbox: SandboxServer,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    env = {
        **sandbox.settings_env(),
        "SYNCD_DATABASE_URL": migrated_database_url,
        "SYNCD_ENCRYPTION_KEY": generate_key(),
        "SYNCD_MAPPING_FILE": str(tmp_path / "mapping.toml"),
        "COLUMNS": "250",  # each result stays on one line
    }
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    backend = backend_of(migrated_database_url)
    create_tables(migrated_database_url, domestic_ddl(backend), DOMESTIC_TABLES)
    try:
        write_mapping(tmp_path, GOOD_MAPPING)
        good_code = cli.run(["doctor"])
        good = capsys.readouterr().out
        write_mapping(tmp_path, _mapping('table = "wms_delivery"', 'table = "wms_deliveries"'))
        broken_code = cli.run(["doctor"])
        broken = capsys.readouterr().out
    finally:
        drop_tables(migrated_database_url, DOMESTIC_TABLES)

    assert good_code == 0, good
    assert "WARN mapping" in good
    assert broken_code == 1, broken
    [line] = [line for line in broken.splitlines() if "FAIL mapping" in line]
    assert "table wms_deliveries: the table does not exist in the ERP database." in line
    assert "Fix: create it, correct the name" in broken


def test_erp_database_unreachable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = write_mapping(tmp_path, GOOD_MAPPING)
    monkeypatch.setenv("SYNCD_DATABASE_URL", f"sqlite:///{tmp_path / 'syncd.sqlite3'}")
    monkeypatch.setenv("SYNCD_ERP_DATABASE_URL", "postgresql+psycopg://erp:secret@127.0.0.1:1/erp")
    monkeypatch.setenv("SYNCD_MAPPING_FILE", str(path))

    [problem] = inspect_bridge(config.load_settings())

    assert problem.where == "postgresql+psycopg://erp:***@127.0.0.1:1/erp"
    assert "cannot read the ERP tables" in problem.problem
    assert "secret" not in str(problem)
    assert "SYNCD_ERP_DATABASE_URL" in problem.fix
