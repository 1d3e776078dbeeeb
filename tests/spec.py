"""Contract checks against Amazon's API models, as vendored in ``syncd/sandbox/spec/``.

Three checks, usable from any test:

- :func:`validate_response` validates a JSON body against the model's schema for that
  operation and status. Swagger 2.0 definitions serve as JSON Schema draft 4 with ``$ref``
  resolved. Required fields are enforced and extra properties allowed. ``date-time`` must be
  RFC 3339 and ``date`` must be ``YYYY-MM-DD``.
- :func:`check_request` checks a request's path and raw query string. Every parameter must
  be declared for the operation, sent once and percent-encoded. Date-times must be RFC 3339
  in UTC and integers plain digits. An array is one comma-separated value whose items are in
  the enum and within ``maxItems``. Every path parameter must be present.

- :func:`validate_request_body` validates a JSON request body, such as confirmShipment's,
  against the schema of the operation's body parameter, the same way.

All three raise AssertionError listing every problem found.
"""

from __future__ import annotations

import calendar
import functools
import json
import re
from dataclasses import dataclass
from importlib import resources
from typing import Any
from urllib.parse import unquote

import jsonschema  # type: ignore[import-untyped]  # NOTE: no stubs installed; see the report

MODEL_NAMES = ("orders_2026-01-01", "ordersV0")

_RFC3339 = re.compile(
    r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})[Tt]"
    r"(?P<hour>\d{2}):(?P<minute>\d{2}):(?P<second>\d{2})(?:\.\d+)?"
    r"(?P<zone>[Zz]|[+-](?P<zone_hour>\d{2}):(?P<zone_minute>\d{2}))"
)
_DATE = re.compile(r"(?P<year>\d{4})-(?P<month>\d{2})-(?P<day>\d{2})")
_INTEGER = re.compile(r"-?[0-9]+")
# Characters that reach Amazon changed unless percent-encoded: "+" reads as a space, and
# "/" and "=" occur in page tokens, which must be encoded exactly once.
_MUST_BE_ENCODED = ("+", "/", "=", " ")
_UTC_SUFFIXES = ("Z", "z", "+00:00")


@dataclass(frozen=True)
class ModelOperation:
    """One operation of a vendored model."""

    model_name: str
    path: str
    method: str
    definition: dict[str, Any]

    def parameters(self, location: str) -> dict[str, dict[str, Any]]:
        """Return the operation's parameters declared ``in`` a location, by name."""
        return {
            parameter["name"]: parameter
            for parameter in self.definition.get("parameters", [])
            if parameter.get("in") == location
        }


@functools.cache
def load_model(name: str) -> dict[str, Any]:
    """Return a vendored model by file name without ``.json``, e.g. ``orders_2026-01-01``."""
    spec_folder = resources.files("syncd.sandbox").joinpath("spec")
    model: dict[str, Any] = json.loads(spec_folder.joinpath(f"{name}.json").read_text("utf-8"))
    return model


@functools.cache
def find_operation(operation_id: str) -> ModelOperation:
    """Return an operation of any vendored model by its operation id.

    Raises:
        AssertionError: no vendored model has the operation.
    """
    for model_name in MODEL_NAMES:
        for path, methods in load_model(model_name)["paths"].items():
            for method, definition in methods.items():
                if isinstance(definition, dict) and definition.get("operationId") == operation_id:
                    return ModelOperation(model_name, path, method.upper(), definition)
    raise AssertionError(f"no vendored model declares operation {operation_id!r}")


# -- responses -----------------------------------------------------------------------------------


def is_rfc3339_date_time(value: object) -> bool:
    """Return whether a value is an RFC 3339 date-time with valid calendar fields."""
    if not isinstance(value, str):
        return True  # formats only constrain strings
    match = _RFC3339.fullmatch(value)
    if match is None:
        return False
    fields = {
        name: int(text) for name, text in match.groupdict().items() if text and text.isdigit()
    }
    return (
        _is_valid_day(fields["year"], fields["month"], fields["day"])
        and fields["hour"] <= 23
        and fields["minute"] <= 59
        and fields["second"] <= 60  # a leap second
        and fields.get("zone_hour", 0) <= 23
        and fields.get("zone_minute", 0) <= 59
    )


def is_full_date(value: object) -> bool:
    """Return whether a value is an RFC 3339 full-date (``YYYY-MM-DD``)."""
    if not isinstance(value, str):
        return True
    match = _DATE.fullmatch(value)
    if match is None:
        return False
    return _is_valid_day(int(match["year"]), int(match["month"]), int(match["day"]))


def _is_valid_day(year: int, month: int, day: int) -> bool:
    return 1 <= month <= 12 and 1 <= day <= calendar.monthrange(year, month)[1]


FORMAT_CHECKER = jsonschema.FormatChecker(formats=())
FORMAT_CHECKER.checks("date-time")(is_rfc3339_date_time)
FORMAT_CHECKER.checks("date")(is_full_date)


def response_schema(operation_id: str, status_code: int) -> dict[str, Any] | None:
    """Return the JSON Schema of an operation's response body, or None if it has no body.

    Raises:
        AssertionError: the model declares no response with that status.
    """
    operation = find_operation(operation_id)
    responses = operation.definition.get("responses", {})
    response = responses.get(str(status_code))
    if response is None:
        raise AssertionError(
            f"{operation_id} declares no response {status_code}; it declares "
            f"{', '.join(sorted(responses))}"
        )
    schema = response.get("schema")
    if schema is None:
        return None
    definitions = load_model(operation.model_name).get("definitions", {})
    return {**schema, "definitions": definitions}


@functools.cache
def _response_validator(operation_id: str, status_code: int) -> jsonschema.Draft4Validator | None:
    schema = response_schema(operation_id, status_code)
    if schema is None:
        return None
    return jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER)


def validate_response(operation_id: str, status_code: int, body: Any) -> None:
    """Validate a decoded JSON body against the model's response schema for the status.

    Raises:
        AssertionError: the status is not declared or the body breaks the schema; the
            message lists every violation with its JSON path.
    """
    validator = _response_validator(operation_id, status_code)
    if validator is None:
        assert body in (None, b"", ""), f"{operation_id} {status_code} has no body in the model"
        return
    problems = [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(body), key=lambda error: error.json_path)
    ]
    if problems:
        raise AssertionError(
            f"{operation_id} {status_code} body breaks the model:\n  " + "\n  ".join(problems)
        )


# -- requests ------------------------------------------------------------------------------------


@functools.cache
def _body_validator(operation_id: str) -> jsonschema.Draft4Validator:
    operation = find_operation(operation_id)
    bodies = operation.parameters("body")
    if not bodies:
        raise AssertionError(f"{operation_id} takes no request body")
    (parameter,) = bodies.values()
    definitions = load_model(operation.model_name).get("definitions", {})
    schema = {**parameter["schema"], "definitions": definitions}
    return jsonschema.Draft4Validator(schema, format_checker=FORMAT_CHECKER)


def validate_request_body(operation_id: str, body: Any) -> None:
    """Validate a decoded JSON request body against the model's body parameter schema.

    Raises:
        AssertionError: the operation takes no body or the body breaks the schema; the
            message lists every violation with its JSON path.
    """
    validator = _body_validator(operation_id)
    problems = [
        f"{error.json_path}: {error.message}"
        for error in sorted(validator.iter_errors(body), key=lambda error: error.json_path)
    ]
    if problems:
        raise AssertionError(
            f"{operation_id} request body breaks the model:\n  " + "\n  ".join(problems)
        )


def check_request(operation_id: str, path: str, raw_query: str) -> None:
    """Check a request's path and raw (still percent-encoded) query string against the model.

    Raises:
        AssertionError: the message lists every problem found.
    """
    operation = find_operation(operation_id)
    problems = _path_problems(operation, path)

    declared = operation.parameters("query")
    seen: set[str] = set()
    for piece in raw_query.split("&") if raw_query else []:
        raw_name, _, raw_value = piece.partition("=")
        name = unquote(raw_name)
        if name in seen:
            problems.append(f"{name} is repeated; Amazon reads only its first value")
            continue
        seen.add(name)
        parameter = declared.get(name)
        if parameter is None:
            problems.append(f"{name} is not a query parameter of {operation_id}")
            continue
        problems.extend(_value_problems(name, raw_value, parameter))

    for name, parameter in declared.items():
        if parameter.get("required") and name not in seen:
            problems.append(f"required query parameter {name} is missing")
    if problems:
        raise AssertionError(
            f"{operation_id} request breaks the model:\n  " + "\n  ".join(problems)
        )


def _path_problems(operation: ModelOperation, path: str) -> list[str]:
    pattern = re.sub(r"\\\{(\w+)\\\}", r"(?P<\1>[^/]*)", re.escape(operation.path))
    match = re.fullmatch(pattern, path)
    if match is None:
        return [f"path {path!r} does not match {operation.method} {operation.path}"]
    return [
        f"path parameter {name} is empty"
        for name in operation.parameters("path")
        if not match.groupdict().get(name)
    ]


def _value_problems(name: str, raw_value: str, parameter: dict[str, Any]) -> list[str]:
    problems = [
        f"{name} has an unencoded {character!r}; percent-encode the value once"
        for character in _MUST_BE_ENCODED
        if character in raw_value
    ]
    if "%25" in raw_value.upper():
        problems.append(f"{name} contains %25: the value was percent-encoded twice")
    value = unquote(raw_value)

    if parameter.get("type") == "array":
        return problems + _array_problems(name, value, parameter)
    return problems + _scalar_problems(name, value, parameter)


def _scalar_problems(name: str, value: str, parameter: dict[str, Any]) -> list[str]:
    kind = parameter.get("type")
    if kind == "integer":
        return _integer_problems(name, value, parameter)
    if kind == "boolean" and value not in ("true", "false"):
        return [f"{name}={value!r} is not true or false"]
    if parameter.get("format") == "date-time":
        return _date_time_problems(name, value)
    if "enum" in parameter and value not in parameter["enum"]:
        return [f"{name}={value!r} is not one of {', '.join(parameter['enum'])}"]
    if kind == "string" and value == "":
        return [f"{name} is empty"]
    return []


def _integer_problems(name: str, value: str, parameter: dict[str, Any]) -> list[str]:
    if not _INTEGER.fullmatch(value):
        return [f"{name}={value!r} is not an integer"]
    number = int(value)
    if "minimum" in parameter and number < parameter["minimum"]:
        return [f"{name}={number} is below the minimum {parameter['minimum']}"]
    if "maximum" in parameter and number > parameter["maximum"]:
        return [f"{name}={number} is above the maximum {parameter['maximum']}"]
    return []


def _date_time_problems(name: str, value: str) -> list[str]:
    if not is_rfc3339_date_time(value):
        return [f"{name}={value!r} is not an RFC 3339 date-time"]
    if not value.endswith(_UTC_SUFFIXES):
        return [f"{name}={value!r} is not in UTC (end it with Z)"]
    return []


def _array_problems(name: str, value: str, parameter: dict[str, Any]) -> list[str]:
    items = value.split(",") if value else []
    problems: list[str] = []
    if any(item == "" for item in items):
        problems.append(f"{name}={value!r} has an empty item")
    if "maxItems" in parameter and len(items) > parameter["maxItems"]:
        problems.append(f"{name} has {len(items)} items, more than {parameter['maxItems']}")
    allowed = parameter.get("items", {}).get("enum")
    if allowed is not None:
        problems.extend(
            f"{name} item {item!r} is not one of {', '.join(allowed)}"
            for item in items
            if item and item not in allowed
        )
    return problems
