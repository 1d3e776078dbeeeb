"""``syncd bridge example``: the shipped example mapping and schema of a domestic ERP."""

from __future__ import annotations

from pathlib import Path

import pytest

from syncd import cli
from syncd.bridge import examples
from syncd.bridge.mapping import load_mapping


def test_example_mapping_loads_once_filled(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    code = cli.run(["bridge", "example"])

    out = capsys.readouterr().out
    assert code == 0
    assert "[accounts.ACCOUNT]" in out
    assert 'shop_code = "SHOPCODE"' in out
    path = tmp_path / "mapping.toml"
    path.write_text(out.replace("ACCOUNT", "acme-us").replace("SHOPCODE", "US01"), "utf-8")
    mapping = load_mapping(path)
    assert mapping.spec.accounts == {"acme-us": {"shop_code": "US01"}}
    assert mapping.spec.orders is not None
    assert mapping.spec.orders.table == "oms_order"
    assert mapping.spec.shipments is not None


def test_example_schema_prints_create_table(capsys: pytest.CaptureFixture[str]) -> None:
    code = cli.run(["bridge", "example", "--schema"])

    out = capsys.readouterr().out
    assert code == 0
    for table in ("oms_order", "oms_order_item", "base_sku_mapping", "wms_delivery"):
        assert f"CREATE TABLE {table} (" in out
    assert "ENGINE=InnoDB" in out


def test_example_mapping_per_account(tmp_path: Path) -> None:
    text = examples.example_mapping({"demo-na": "NA01", "美国店": "US02"})

    path = tmp_path / "mapping.toml"
    path.write_text(text, encoding="utf-8")
    mapping = load_mapping(path)
    assert mapping.spec.accounts == {
        "demo-na": {"shop_code": "NA01"},
        "美国店": {"shop_code": "US02"},
    }


@pytest.mark.parametrize("dialect", ["mariadb", "sqlite", "postgresql"])
def test_example_schema_has_four_tables(dialect: str) -> None:
    statements = examples.example_schema(dialect)

    assert len(statements) == 4
    assert all(statement.startswith("CREATE TABLE ") for statement in statements)
    assert not any("--" in statement for statement in statements)


def test_example_schema_rejects_unknown_database() -> None:
    with pytest.raises(ValueError, match="oracle"):
        examples.example_schema("oracle")
