"""Short messages for invalid fault rules and settings, built from pydantic's errors.

pydantic's own text names its error types and links to its website, which helps the author
of a model but not someone who mistyped a fault kind. :func:`describe` writes one message
per problem that names the field, the value given and what the field accepts. The templates
are English message ids: the control API returns them as they are, and the CLI passes its
``gettext`` as ``translate`` to show them in the operator's language.

Validators of the sandbox's models raise :func:`invalid_field` so that their problems get
the same form.
"""

from __future__ import annotations

import json
import types
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, Union, get_args, get_origin

import annotated_types
from pydantic import BaseModel, ValidationError
from pydantic.fields import FieldInfo
from pydantic_core import ErrorDetails, PydanticCustomError

from syncd.i18n import gettext_noop as N_

Translate = Callable[[str], str]

# Error type of the problems raised by invalid_field().
FIELD_ERROR = "sandbox_field"
_MAX_VALUE_LENGTH = 80  # characters of a value shown in a message

_INVALID = N_("{field} {value} is not valid: expected {expected}")
_INVALID_WHOLE = N_("{value} is not valid: expected {expected}")
_MISSING = N_("missing field {field}: expected {expected}")
_MISSING_PLAIN = N_("missing field {field}")
_UNKNOWN_FIELD = N_("unknown field {field}: the known fields are {allowed}")
_OTHER = N_("{field} {value} is not valid: {reason}")
_ONE_OF = N_("one of {values}")
_WHOLE_NUMBER = N_("a whole number")
_NUMBER = N_("a number")

# The accepted values of each type, by the prefix of pydantic's error type.
_TYPE_EXPECTED = (
    ("int_", _WHOLE_NUMBER),
    ("float_", _NUMBER),
    ("bool_", N_("true or false")),
    ("string_", N_("a string")),
    ("tuple_", N_("a list")),
    ("list_", N_("a list")),
    ("datetime_", N_("a date and time with a UTC offset, such as 2026-01-01T00:00:00Z")),
    ("timezone_", N_("a date and time with a UTC offset, such as 2026-01-01T00:00:00Z")),
    ("model_", N_("a JSON object")),
    ("dict_", N_("a JSON object")),
)

# Range phrases by (lower bound, upper bound) kind; {noun} is "a number" or "a whole number".
_RANGES = {
    ("ge", "le"): N_("{noun} from {low} to {high}"),
    ("gt", "le"): N_("{noun} above {low} and at most {high}"),
    ("ge", "lt"): N_("{noun} of at least {low} and below {high}"),
    ("gt", "lt"): N_("{noun} above {low} and below {high}"),
    ("ge", None): N_("{noun} of at least {low}"),
    ("gt", None): N_("{noun} above {low}"),
    (None, "le"): N_("{noun} of at most {high}"),
    (None, "lt"): N_("{noun} below {high}"),
}
_RANGE_ERRORS = frozenset({"greater_than", "greater_than_equal", "less_than", "less_than_equal"})


def invalid_field(
    field: str,
    message: str,
    *,
    value: Any = None,
    missing: bool = False,
    allowed: Sequence[str] = (),
    expected: str = "",
) -> PydanticCustomError:
    """Return the error a model validator raises for one invalid field.

    Args:
        field: the field at fault; empty in a field validator, whose error location names it.
        message: the English text ``str()`` of the validation error shows.
        value: the value given; ignored when ``missing``.
        missing: the field is required in this case but was not given.
        allowed: the values the field accepts, when they are a list.
        expected: otherwise, a message id (marked with ``N_``) that describes what it accepts.
    """
    context: dict[str, Any] = {"message": message, "field": field}
    if not missing:
        context["value"] = value
    if allowed:
        context["allowed"] = list(allowed)
    if expected:
        context["expected_id"] = expected
    return PydanticCustomError(FIELD_ERROR, "{message}", context)


def describe(
    error: ValidationError,
    model: type[BaseModel],
    translate: Translate | None = None,
    labels: Mapping[str, str] | None = None,
) -> list[str]:
    """Return one message per problem of a validation error of ``model``.

    Args:
        error: raised by validating ``model``.
        model: the model validated; its fields give the allowed values and ranges.
        translate: translates a message id; English when None.
        labels: names to show instead of field paths, such as ``--marketplace`` for
            ``marketplace_ids`` on the command line.
    """
    writer = _Writer(model, translate or _english, labels or {})
    return [writer.message(details) for details in error.errors(include_url=False)]


def _english(message: str) -> str:
    return message


class _Writer:
    """Writer of the messages about one model, in one language."""

    def __init__(self, model: type[BaseModel], translate: Translate, labels: Mapping[str, str]):
        self.model = model
        self.translate = translate
        self.labels = labels

    def message(self, details: ErrorDetails) -> str:
        context = details.get("ctx") or {}
        path = tuple(details["loc"])
        if details["type"] == FIELD_ERROR and context["field"]:
            path = (*path, context["field"])
        label = self._label(path)
        parent, field = _field_at(self.model, path)
        value_text = _format_value(context["value"] if "value" in context else details.get("input"))

        if details["type"] == "extra_forbidden":
            known = list(parent.model_fields) if parent is not None else []
            return self.translate(_UNKNOWN_FIELD).format(field=label, allowed=self._join(known))

        expected = self._expected(details, context, field)
        missing = details["type"] == "missing" or (
            details["type"] == FIELD_ERROR and "value" not in context
        )
        if missing:
            if expected is None:
                return self.translate(_MISSING_PLAIN).format(field=label)
            return self.translate(_MISSING).format(field=label, expected=expected)
        if expected is None:
            reason = str(context.get("error") or details["msg"])
            return self.translate(_OTHER).format(field=label, value=value_text, reason=reason)
        if not label:
            return self.translate(_INVALID_WHOLE).format(value=value_text, expected=expected)
        return self.translate(_INVALID).format(field=label, value=value_text, expected=expected)

    def _expected(
        self, details: ErrorDetails, context: dict[str, Any], field: FieldInfo | None
    ) -> str | None:
        """Return what the field accepts, or None when neither the model nor the error gives it."""
        if context.get("allowed"):
            return self._one_of(context["allowed"])
        if context.get("expected_id"):
            return self.translate(context["expected_id"])
        if field is not None:
            literals = _literal_values(field.annotation)
            if literals:
                return self._one_of(literals)
            if _bounds(field):
                return self._range(_bounds(field), whole=_is_integer_field(field))
        return self._expected_by_error(details, context)

    def _expected_by_error(self, details: ErrorDetails, context: dict[str, Any]) -> str | None:
        """Return what a field accepts from pydantic's error alone."""
        if details["type"] in _RANGE_ERRORS:
            bounds: dict[str, Any] = {
                key: context[key] for key in ("gt", "ge", "lt", "le") if key in context
            }
            return self._range(bounds, whole=False)
        for prefix, expected in _TYPE_EXPECTED:
            if details["type"].startswith(prefix):
                return self.translate(expected)
        if "expected" in context:  # pydantic's own list, e.g. of an enum
            return str(context["expected"])
        return None

    def _range(self, bounds: dict[str, Any], *, whole: bool) -> str:
        lower = next((name for name in ("gt", "ge") if name in bounds), None)
        upper = next((name for name in ("lt", "le") if name in bounds), None)
        noun = self.translate(_WHOLE_NUMBER if whole else _NUMBER)
        return self.translate(_RANGES[lower, upper]).format(
            noun=noun,
            low=_number(bounds.get(lower or "")),
            high=_number(bounds.get(upper or "")),
        )

    def _one_of(self, values: Sequence[Any]) -> str:
        return self.translate(_ONE_OF).format(values=self._join(str(value) for value in values))

    def _join(self, names: Any) -> str:
        return self.translate(", ").join(names)

    def _label(self, path: Sequence[int | str]) -> str:
        text = ""
        for part in path:
            if isinstance(part, int):
                text += f"[{part}]"
            elif text:
                text += f".{part}"
            else:
                text = part
        return self.labels.get(text, text)


def _field_at(
    model: type[BaseModel], path: Sequence[int | str]
) -> tuple[type[BaseModel] | None, FieldInfo | None]:
    """Return the model that contains the last field of ``path``, and that field's info.

    An integer in the path is an index into a list of models, such as ``faults[0]``.
    """
    parent: type[BaseModel] | None = model
    field: FieldInfo | None = None
    for part in path:
        if isinstance(part, int):
            continue
        if field is not None:
            parent = _model_in(field.annotation)
        if parent is None:
            return None, None
        field = parent.model_fields.get(part)
        if field is None:
            return parent, None
    return parent, field


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for argument in get_args(annotation):
        found = _model_in(argument)
        if found is not None:
            return found
    return None


def _literal_values(annotation: Any) -> list[Any]:
    if get_origin(annotation) is Literal:
        return list(get_args(annotation))
    if get_origin(annotation) in (Union, types.UnionType):
        return [value for argument in get_args(annotation) for value in _literal_values(argument)]
    return []


def _bounds(field: FieldInfo) -> dict[str, Any]:
    bounds: dict[str, Any] = {}
    for constraint in field.metadata:
        for name in ("gt", "ge", "lt", "le"):
            limit = getattr(constraint, name, None)
            if isinstance(constraint, annotated_types.BaseMetadata) and limit is not None:
                bounds[name] = limit
    return bounds


def _is_integer_field(field: FieldInfo) -> bool:
    annotation = field.annotation
    return annotation is int or int in get_args(annotation)


def _number(value: Any) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _format_value(value: Any) -> str:
    """Return a value as JSON, shortened, so strings show their quotes and null shows."""
    text = json.dumps(value, ensure_ascii=False, default=str)
    if len(text) > _MAX_VALUE_LENGTH:
        return text[: _MAX_VALUE_LENGTH - 1] + "…"
    return text
