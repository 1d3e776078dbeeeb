"""Amazon's static sandbox examples (``x-amzn-api-sandbox``) read from the vendored model.

Amazon's own sandbox responds to a request whose parameters equal one of these examples with
the example's response. The local sandbox does the same before it validates anything else:
a request matches when it sends exactly the example's parameters (no more, no fewer) with
the same values. Array values are compared as lists in the order given. An operation that
takes a JSON body (confirmShipment) has it as the parameter ``body``, compared as decoded
JSON.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from syncd.sandbox import apimodels
from syncd.sandbox.exchange import QueryString


@dataclass(frozen=True)
class StaticExample:
    """One static case: the parameters it expects and the response it returns."""

    status: int
    parameters: dict[str, Any]  # name -> str, or list of str for array parameters
    response: Any


@functools.cache
def static_examples(operation_id: str, model_name: str) -> tuple[StaticExample, ...]:
    """Return every static example of an operation, in the model's order."""
    operation = apimodels.find_operation(operation_id, model_name)
    examples: list[StaticExample] = []
    for status, response in operation.definition.get("responses", {}).items():
        sandbox = response.get("x-amzn-api-sandbox", {})
        for entry in sandbox.get("static", []):
            parameters = {
                name: spec.get("value")
                for name, spec in entry.get("request", {}).get("parameters", {}).items()
            }
            examples.append(StaticExample(int(status), parameters, entry.get("response")))
    return tuple(examples)


def find_static_example(
    operation_id: str,
    model_name: str,
    query: QueryString,
    path_params: dict[str, str],
    body: Any = None,
) -> StaticExample | None:
    """Return the static example a request matches exactly, or None.

    ``body`` is the decoded JSON body, or None when the request has none.
    """
    examples = static_examples(operation_id, model_name)
    if not examples:
        return None
    operation = apimodels.find_operation(operation_id, model_name)
    sent = _request_parameters(operation, query, path_params)
    if body is not None:
        sent["body"] = body
    for example in examples:
        if sent == example.parameters:
            return example
    return None


def _request_parameters(
    operation: apimodels.ModelOperation, query: QueryString, path_params: dict[str, str]
) -> dict[str, Any]:
    sent: dict[str, Any] = dict(path_params)
    for name in query.params:
        definition = operation.parameter(name)
        if definition is not None and definition.get("type") == "array":
            sent[name] = query.get_list(name)
        else:
            sent[name] = query.get(name)
    return sent
