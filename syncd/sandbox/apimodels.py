"""Amazon's API models as vendored in ``spec/``: loading, operations and parameter enums.

The files are Amazon's Swagger 2.0 models with their descriptions removed (see
``spec/SOURCE.md``; ``tools/vendor_models.py`` regenerates them). The sandbox reads enums
and static examples from them instead of copying those values into code.
"""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from importlib import resources
from typing import Any

ORDERS_MODEL = "orders_2026-01-01"
ORDERS_V0_MODEL = "ordersV0"


@dataclass(frozen=True)
class ModelOperation:
    """One operation of a model: where it lives and its definition."""

    model_name: str
    path: str  # Swagger path template, e.g. /orders/2026-01-01/orders/{orderId}
    method: str  # upper case
    definition: dict[str, Any]

    def parameter(self, name: str) -> dict[str, Any] | None:
        """Return the parameter definition called ``name``, or None if it is not declared."""
        for parameter in self.definition.get("parameters", []):
            if parameter.get("name") == name:
                return dict(parameter)
        return None


@functools.cache
def load_model(name: str) -> dict[str, Any]:
    """Return a vendored model by file name without ``.json``, e.g. ``orders_2026-01-01``."""
    text = resources.files("syncd.sandbox").joinpath("spec", f"{name}.json").read_text("utf-8")
    model: dict[str, Any] = json.loads(text)
    return model


@functools.cache
def find_operation(operation_id: str, model_name: str = ORDERS_MODEL) -> ModelOperation:
    """Return the operation with this id in a model.

    Raises:
        KeyError: the model has no such operation.
    """
    model = load_model(model_name)
    for path, methods in model["paths"].items():
        for method, definition in methods.items():
            if isinstance(definition, dict) and definition.get("operationId") == operation_id:
                return ModelOperation(model_name, path, method.upper(), definition)
    raise KeyError(f"{model_name} has no operation {operation_id}")


def parameter_enum(operation_id: str, name: str, model_name: str = ORDERS_MODEL) -> tuple[str, ...]:
    """Return the allowed values of an enum parameter (of its items, for an array).

    Raises:
        KeyError: the operation has no such parameter or the parameter has no enum.
    """
    parameter = find_operation(operation_id, model_name).parameter(name)
    if parameter is None:
        raise KeyError(f"{operation_id} has no parameter {name}")
    schema = parameter.get("items", parameter)
    return tuple(schema["enum"])
