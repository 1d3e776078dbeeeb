"""The vendored models: descriptions removed, data kept, sources recorded."""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

REPOSITORY = Path(__file__).resolve().parents[2]
SPEC_FOLDER = REPOSITORY / "syncd" / "sandbox" / "spec"
SHARED_MODELS = REPOSITORY.parent / "shared" / "sp-api-models"
UPSTREAM = "https://github.com/amzn/selling-partner-api-models"


def _missing_models_reason() -> str:
    """Say which checkout the comparison with tools/vendor_models.py needs, and where."""
    note = (SPEC_FOLDER / "SOURCE.md").read_text(encoding="utf-8")
    found = re.search(r"Upstream commit: `([0-9a-f]{40})`", note)
    commit = found.group(1) if found else "recorded in syncd/sandbox/spec/SOURCE.md"
    return (
        f"needs a checkout of Amazon's models repository {UPSTREAM} at commit {commit} "
        f"(see syncd/sandbox/spec/SOURCE.md), beside this repository at {SHARED_MODELS}, "
        "to compare the vendored files with a fresh run of tools/vendor_models.py"
    )


def _load_tool() -> ModuleType:
    location = REPOSITORY / "tools" / "vendor_models.py"
    module_spec = importlib.util.spec_from_file_location("vendor_models", location)
    assert module_spec is not None
    assert module_spec.loader is not None
    module = importlib.util.module_from_spec(module_spec)
    module_spec.loader.exec_module(module)
    return module


def _description_strings(node: Any, in_data: bool = False) -> list[str]:
    found: list[str] = []
    if isinstance(node, dict):
        for key, value in node.items():
            data = in_data or key in ("example", "examples", "x-example", "x-amzn-api-sandbox")
            if key == "description" and isinstance(value, str) and not in_data:
                found.append(value)
            found.extend(_description_strings(value, data))
    elif isinstance(node, list):
        for value in node:
            found.extend(_description_strings(value, in_data))
    return found


def test_strip_descriptions_keeps_structure_and_data() -> None:
    tool = _load_tool()
    document = {
        "description": "prose",
        "definitions": {
            "Item": {
                "description": "an item",
                "properties": {"description": {"type": "string", "description": "text"}},
                "example": {"description": "sample data"},
            }
        },
        "x-amzn-api-sandbox": {"static": [{"response": {"description": "kept"}}]},
    }

    stripped = tool.strip_descriptions(document)

    assert stripped == {
        "definitions": {
            "Item": {
                "properties": {"description": {"type": "string"}},
                "example": {"description": "sample data"},
            }
        },
        "x-amzn-api-sandbox": {"static": [{"response": {"description": "kept"}}]},
    }


@pytest.mark.parametrize("name", ["orders_2026-01-01.json", "ordersV0.json"])
def test_vendored_model_has_no_prose(name: str) -> None:
    model = json.loads((SPEC_FOLDER / name).read_text(encoding="utf-8"))

    assert _description_strings(model) == []
    assert model["swagger"] == "2.0"
    assert model["definitions"]


def test_vendored_model_keeps_sandbox_examples_and_enums() -> None:
    model = json.loads((SPEC_FOLDER / "orders_2026-01-01.json").read_text(encoding="utf-8"))
    get_order = model["paths"]["/orders/2026-01-01/orders/{orderId}"]["get"]

    assert len(get_order["responses"]["200"]["x-amzn-api-sandbox"]["static"]) == 3
    assert "SHIPPED" in model["definitions"]["FulfillmentStatus"]["enum"]


def test_source_note_and_license_files() -> None:
    note = (SPEC_FOLDER / "SOURCE.md").read_text(encoding="utf-8")

    assert "https://github.com/amzn/selling-partner-api-models" in note
    assert "34dc93fe45f37c9a0b2e56823c808f68b4f81754" in note
    assert "description" in note
    assert "orders_2026-01-01.json" in note
    assert "Apache License" in (SPEC_FOLDER / "LICENSE").read_text(encoding="utf-8")
    assert "Amazon.com" in (SPEC_FOLDER / "NOTICE").read_text(encoding="utf-8")


def test_missing_models_reason_names_source_and_folder() -> None:
    reason = _missing_models_reason()

    assert f"{UPSTREAM} at commit 34dc93fe45f37c9a0b2e56823c808f68b4f81754" in reason
    assert str(SHARED_MODELS) in reason


@pytest.mark.skipif(not SHARED_MODELS.is_dir(), reason=_missing_models_reason())
def test_vendored_files_match_the_tool_output(tmp_path: Path) -> None:
    tool = _load_tool()

    written = tool.vendor_models(SHARED_MODELS, tmp_path)

    assert {path.name for path in written} == {p.name for p in SPEC_FOLDER.iterdir()}
    for path in written:
        assert path.read_bytes() == (SPEC_FOLDER / path.name).read_bytes(), path.name
