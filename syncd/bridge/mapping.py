"""The mapping file: how syncd's orders land in the ERP's tables and where the WMS's
shipments come from.

The file is TOML (docs/mapping.md describes every key). Loading it checks everything that can
be checked without the database: the structure, field and map names, time zone names, code
hooks and per-account constants. :mod:`syncd.bridge.check` then compares it with the real
tables. Every problem found is reported at once, each with where it is and how to fix it.
"""

from __future__ import annotations

import importlib
import tomllib
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import pydantic
from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd import errors
from syncd.bridge import fields
from syncd.i18n import gettext as _
from syncd.i18n import ngettext

Scalar = str | int | float | bool
_STRICT = ConfigDict(extra="forbid", frozen=True)


@dataclass(frozen=True)
class Problem:
    """One mistake in the mapping: where it is, what is wrong, how to fix it.

    A warning is shown by ``syncd doctor`` but does not stop the bridge.
    """

    where: str
    problem: str
    fix: str
    warning: bool = False

    def __str__(self) -> str:
        return _("{where}: {problem} Fix: {fix}").format(
            where=self.where, problem=self.problem, fix=self.fix
        )


class MappingError(errors.ConfigError):
    """Error for a mapping file that is missing, unreadable or invalid, listing every problem."""

    def __init__(self, path: Path | str, problems: Iterable[Problem]) -> None:
        self.path = str(path)
        self.problems = tuple(problems)
        lines = [
            ngettext(
                "The mapping file {path} has {count} problem:",
                "The mapping file {path} has {count} problems:",
                len(self.problems),
            ).format(path=self.path, count=len(self.problems))
        ]
        lines.extend(f"  - {problem}" for problem in self.problems)
        super().__init__("\n".join(lines))


class ColumnSpec(BaseModel):
    """Source of one ERP column's value: exactly one source, then optional steps.

    Sources: ``field`` (a canonical field), ``value`` (a constant), ``account`` (a constant
    of the order's account), ``code`` (a function), ``parent`` (a column of the order row the
    line belongs to). Steps: ``map`` (a value map), ``translate = "sku"``, ``zone`` (for a
    column without time zone), ``default`` (when the source is empty).
    """

    model_config = _STRICT

    field: str | None = None
    value: Scalar | None = None
    account: str | None = None
    code: str | None = None
    parent: str | None = None
    map: str | None = None
    translate: Literal["sku"] | None = None
    zone: str | None = None
    default: Scalar | None = None
    on: Literal["always", "insert"] = "always"
    truncate: bool = False

    @pydantic.model_validator(mode="before")
    @classmethod
    def _from_shorthand(cls, data: object) -> object:
        # `order_no = "order_id"` is short for `order_no = { field = "order_id" }`.
        return {"field": data} if isinstance(data, str) else data

    @property
    def source(self) -> str | None:
        """The one source key given, or None when there is none or more than one."""
        given = [
            name for name in ("field", "value", "account", "code", "parent") if self._given(name)
        ]
        return given[0] if len(given) == 1 else None

    def _given(self, name: str) -> bool:
        return name in self.model_fields_set and (name == "value" or getattr(self, name))

    @property
    def sources(self) -> list[str]:
        """Every source key given, for the error when there is not exactly one."""
        return [n for n in ("field", "value", "account", "code", "parent") if self._given(n)]


class LinesSpec(BaseModel):
    """The order line table: one row per order item."""

    model_config = _STRICT

    table: str
    key: list[str] = Field(min_length=1)
    columns: dict[str, ColumnSpec]


class OrdersSpec(BaseModel):
    """The order table and its line table."""

    model_config = _STRICT

    table: str
    key: list[str] = Field(min_length=1)
    columns: dict[str, ColumnSpec]
    lines: LinesSpec | None = None
    multichannel: Literal["skip", "include"] = "skip"


class ValueMap(BaseModel):
    """Map of Amazon's values to the ERP's codes, with a default for values not listed."""

    model_config = _STRICT

    values: dict[str, Scalar]
    default: Scalar | None = None


class AccountMatch(BaseModel):
    """Account rule of a WMS or SKU row: a fixed account, or a column matched to a
    per-account constant."""

    model_config = _STRICT

    name: str | None = None
    column: str | None = None
    constant: str | None = None


class SkuMapSpec(BaseModel):
    """The seller's SKU map: a table (or a column of the product table) from Amazon's SKU to
    the ERP's."""

    model_config = _STRICT

    table: str
    amazon_sku: str
    erp_sku: str
    where: dict[str, Scalar] = {}
    account: AccountMatch | None = None
    missing: Literal["keep", "quarantine"] = "keep"


class ShipmentItemsSpec(BaseModel):
    """Optional item rows of a WMS shipment; without them every unshipped item ships."""

    model_config = _STRICT

    table: str
    link: str  # the item table's column that contains the shipment row's key
    sku: str | None = None
    order_item_id: str | None = None
    quantity: str


class WriteBackSpec(BaseModel):
    """WMS columns where syncd records the state of each shipment request."""

    model_config = _STRICT

    status: str | None = None
    message: str | None = None
    time: str | None = None
    zone: str | None = None  # of the time column, when it has no time zone
    values: dict[str, Scalar] = {}


class ShipmentsSpec(BaseModel):
    """The WMS table syncd reads shipments from."""

    model_config = _STRICT

    source: str = Field(default="wms", min_length=1, max_length=64)
    table: str
    key: str
    changes: str
    changes_zone: str | None = None
    where: dict[str, Scalar | list[Scalar]] = {}
    account: AccountMatch
    order_id: str
    carrier: str
    carrier_name: str | None = None
    shipping_method: str | None = None
    tracking_number: str
    shipped_at: str
    shipped_at_zone: str | None = None
    items: ShipmentItemsSpec | None = None
    write_back: WriteBackSpec | None = None


class PiiSpec(BaseModel):
    """Policy for PII copied into ERP columns: cleared after the retention period or kept."""

    model_config = _STRICT

    purge: bool = True


class MappingSpec(BaseModel):
    """The whole mapping file."""

    model_config = _STRICT

    version: Literal[1]
    accounts: dict[str, dict[str, Scalar]] = {}
    maps: dict[str, ValueMap] = {}
    skus: SkuMapSpec | None = None
    orders: OrdersSpec | None = None
    shipments: ShipmentsSpec | None = None
    pii: PiiSpec = PiiSpec()

    @field_validator("accounts")
    @classmethod
    def _lower_accounts(cls, value: dict[str, dict[str, Scalar]]) -> dict[str, dict[str, Scalar]]:
        # Lower-case the names because syncd matches account names without regard to case.
        return {name.strip().lower(): constants for name, constants in value.items()}


# The states written back to the WMS, in the WMS's words when `values` gives them.
WRITE_BACK_STATES = ("queued", "sending", "confirmed", "rejected", "failed", "cancelled")

CodeHook = Callable[..., Any]


@dataclass(frozen=True)
class LoadedMapping:
    """A loaded mapping: the checked spec, its path, and the imported code hooks."""

    path: Path
    spec: MappingSpec
    hooks: Mapping[str, CodeHook]

    @property
    def pii_columns(self) -> tuple[str, ...]:
        """The order table's columns filled from PII fields."""
        orders = self.spec.orders
        if orders is None:
            return ()
        return tuple(
            column
            for column, spec in orders.columns.items()
            if spec.field in fields.ORDER_PII_FIELDS
        )

    @property
    def line_pii_columns(self) -> tuple[str, ...]:
        """The line table's columns filled from PII fields."""
        lines = self.spec.orders.lines if self.spec.orders is not None else None
        if lines is None:
            return ()
        return tuple(
            column
            for column, spec in lines.columns.items()
            if spec.field in fields.LINE_PII_FIELDS or spec.field in fields.ORDER_PII_FIELDS
        )


def load_mapping(path: Path) -> LoadedMapping:
    """Read, parse and check a mapping file.

    Raises:
        MappingError: listing every problem found, with where it is and the fix.
    """
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise MappingError(
            path,
            [Problem(str(path), _("the file does not exist."), _("check SYNCD_MAPPING_FILE."))],
        ) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(
            path,
            [
                Problem(
                    str(path),
                    _("the file cannot be read ({error}).").format(error=type(exc).__name__),
                    _("save it as UTF-8 and let the user running syncd read it."),
                )
            ],
        ) from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise MappingError(
            path,
            [
                Problem(
                    str(path),
                    _("not valid TOML: {error}.").format(error=exc),
                    _("correct the line named; docs/mapping.md shows a complete example."),
                )
            ],
        ) from None
    try:
        spec = MappingSpec.model_validate(data)
    except pydantic.ValidationError as exc:
        raise MappingError(path, [_pydantic_problem(error) for error in exc.errors()]) from None
    problems, hooks = _check_spec(spec)
    failures = [problem for problem in problems if not problem.warning]
    if failures:
        raise MappingError(path, failures)
    return LoadedMapping(path=path, spec=spec, hooks=hooks)


def spec_warnings(mapping: LoadedMapping) -> list[Problem]:
    """Return the warnings of a loaded mapping (its errors stopped the load)."""
    return [problem for problem in _check_spec(mapping.spec)[0] if problem.warning]


def _pydantic_problem(error: Any) -> Problem:
    where = ".".join(str(part) for part in error["loc"]) or _("(top level)")
    kind = error["type"]
    if kind == "extra_forbidden":
        return Problem(
            where, _("unknown key."), _("remove it or correct its spelling (see docs/mapping.md).")
        )
    if kind == "missing":
        return Problem(where, _("this key is required."), _("add it (see docs/mapping.md)."))
    if kind == "literal_error" and error["loc"] == ("version",):
        return Problem(where, _("unknown mapping version."), _("write version = 1."))
    return Problem(
        where,
        _("invalid value {value!r} ({error}).").format(
            value=error.get("input"), error=error["msg"]
        ),
        _("see docs/mapping.md for the allowed values."),
    )


def is_valid_zone(name: str) -> bool:
    """Return whether ``name`` is an IANA time zone such as Asia/Shanghai."""
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return False
    return True


def import_hook(path: str) -> CodeHook:
    """Import a function named ``package.module.function`` or ``package.module:function``.

    Raises:
        ImportError: the module cannot be imported.
        AttributeError: the module has no such function.
        TypeError: the object is not callable.
    """
    module_name, _sep, attribute = path.replace(":", ".").rpartition(".")
    if not module_name:
        raise ImportError(path)
    function = getattr(importlib.import_module(module_name), attribute)
    if not callable(function):
        raise TypeError(path)
    return function  # type: ignore[no-any-return]


def _check_spec(spec: MappingSpec) -> tuple[list[Problem], dict[str, CodeHook]]:
    checker = _SpecChecker(spec)
    checker.run()
    return checker.problems, checker.hooks


class _SpecChecker:
    """Checker of what needs no database: names, sources, maps, zones, hooks, constants."""

    def __init__(self, spec: MappingSpec) -> None:
        self.spec = spec
        self.problems: list[Problem] = []
        self.hooks: dict[str, CodeHook] = {}

    def add(self, where: str, problem: str, fix: str, *, warning: bool = False) -> None:
        found = Problem(where, problem, fix, warning)
        # Drop duplicates, so a missing constant used by several columns is one problem.
        if found not in self.problems:
            self.problems.append(found)

    def run(self) -> None:
        spec = self.spec
        if spec.orders is None and spec.shipments is None:
            self.add(
                _("(top level)"),
                _("the mapping has neither [orders] nor [shipments]."),
                _("add at least one of them (see docs/mapping.md)."),
            )
        if spec.orders is not None:
            self._check_table("orders", spec.orders.key, spec.orders.columns, line=False)
            if spec.orders.lines is not None:
                lines = spec.orders.lines
                self._check_table("orders.lines", lines.key, lines.columns, line=True)
        for name, value_map in spec.maps.items():
            if not value_map.values:
                self.add(
                    f"maps.{name}.values",
                    _("the map lists no values."),
                    _("list Amazon's values and the ERP's code for each."),
                )
        if spec.skus is not None:
            self._check_account_match("skus.account", spec.skus.account, optional=True)
        if spec.shipments is not None:
            self._check_shipments(spec.shipments)

    def _check_table(
        self, where: str, key: list[str], columns: dict[str, ColumnSpec], *, line: bool
    ) -> None:
        for column in key:
            if column not in columns:
                self.add(
                    f"{where}.key",
                    _("the key column {column} is not among the columns.").format(column=column),
                    _("add {column} to [{where}.columns] or take it out of the key.").format(
                        column=column, where=where
                    ),
                )
            elif columns[column].on == "insert":
                self.add(
                    f"{where}.columns.{column}",
                    _("a key column cannot be written only on insert."),
                    _('remove on = "insert" from it.'),
                )
        for column, spec in columns.items():
            self._check_column(f"{where}.columns.{column}", spec, line=line)

    def _check_column(self, where: str, spec: ColumnSpec, *, line: bool) -> None:
        sources = spec.sources
        if len(sources) != 1:
            self.add(
                where,
                _(
                    "a column needs exactly one of field, value, account, code or parent; "
                    "found {found}."
                ).format(found=", ".join(sources) or _("none")),
                _("keep exactly one of them."),
            )
            return
        source = sources[0]
        if source == "field":
            assert spec.field is not None
            field_spec = fields.find_field(spec.field, line=line)
            if field_spec is None:
                known = fields.LINE_FIELDS if line else fields.ORDER_FIELDS
                self.add(
                    where,
                    _("unknown field {field}.").format(field=spec.field),
                    _("use one of: {fields}.").format(fields=", ".join(known)),
                )
            elif spec.translate == "sku" and spec.field != "seller_sku":
                self.add(
                    where,
                    _('translate = "sku" applies only to seller_sku.'),
                    _('remove translate or use field = "seller_sku".'),
                )
        elif spec.translate == "sku":
            self.add(
                where,
                _('translate = "sku" applies only to seller_sku.'),
                _('remove translate or use field = "seller_sku".'),
            )
        if source == "parent" and not line:
            self.add(
                where,
                _("parent applies only to [orders.lines.columns]."),
                _("use field, value, account or code."),
            )
        if source == "account":
            assert spec.account is not None
            self._check_constant(where, spec.account)
        if source == "code":
            assert spec.code is not None
            self._check_hook(where, spec.code)
        if spec.map is not None:
            self._check_map_use(where, spec)
        if spec.translate == "sku" and self.spec.skus is None:
            self.add(
                where,
                _('translate = "sku" needs a [skus] table.'),
                _("add [skus] naming the seller's SKU map (see docs/mapping.md)."),
            )
        if spec.zone is not None and not is_valid_zone(spec.zone):
            self._bad_zone(f"{where}.zone", spec.zone)

    def _check_map_use(self, where: str, spec: ColumnSpec) -> None:
        assert spec.map is not None
        value_map = self.spec.maps.get(spec.map)
        if value_map is None:
            self.add(
                f"{where}.map",
                _("there is no map named {name}.").format(name=spec.map),
                _("add [maps.{name}] or correct the name.").format(name=spec.map),
            )
            return
        if value_map.default is not None or spec.default is not None:
            return
        field_spec = fields.find_field(spec.field or "", line=True) if spec.field else None
        if field_spec is None or field_spec.values is None:
            self.add(
                f"maps.{spec.map}",
                _("the column's values can be ones the map does not list, and it has no default.")
                if spec.field is None
                else _(
                    "{field} can take values the map does not list, and it has no default."
                ).format(field=spec.field),
                _("add default = … to [maps.{name}].").format(name=spec.map),
            )
            return
        missing = [str(v) for v in field_spec.values if _map_key(v) not in value_map.values]
        if missing:
            self.add(
                f"maps.{spec.map}",
                _("Amazon can send {field} values the map does not list: {values}.").format(
                    field=spec.field, values=", ".join(missing)
                ),
                _("list them in [maps.{name}.values] or add default = ….").format(name=spec.map),
            )

    def _check_constant(self, where: str, constant: str) -> None:
        if not self.spec.accounts:
            self.add(
                where,
                _("the column takes the account constant {name}, but [accounts] is empty.").format(
                    name=constant
                ),
                _("add [accounts.NAME] with {name} = … for each syncd account.").format(
                    name=constant
                ),
            )
        for account, constants in self.spec.accounts.items():
            if constant not in constants:
                self.add(
                    f"accounts.{account}",
                    _("the constant {name} is missing.").format(name=constant),
                    _("add {name} = … to [accounts.{account}].").format(
                        name=constant, account=account
                    ),
                )

    def _check_hook(self, where: str, path: str) -> None:
        try:
            self.hooks[path] = import_hook(path)
        except (ImportError, AttributeError, TypeError) as exc:
            self.add(
                f"{where}.code",
                _("cannot use the function {path} ({error}).").format(
                    path=path, error=type(exc).__name__
                ),
                _("give package.module.function of a module importable by syncd's Python."),
            )

    def _bad_zone(self, where: str, zone: str) -> None:
        self.add(
            where,
            _("{zone} is not a time zone name.").format(zone=zone),
            _("use an IANA name such as Asia/Shanghai or UTC."),
        )

    def _check_account_match(
        self, where: str, match: AccountMatch | None, *, optional: bool
    ) -> None:
        if match is None:
            return
        if match.name is not None and (match.column or match.constant):
            self.add(
                where,
                _("give either name, or column with constant, not both."),
                _("keep one of the two forms."),
            )
        elif match.name is None and not (match.column and match.constant):
            self.add(
                where,
                _("column and constant go together."),
                _(
                    'write { column = "shop_code", constant = "shop_code" } or '
                    '{ name = "ACCOUNT" }.'
                ),
            )
        elif match.constant is not None:
            self._check_constant(where, match.constant)

    def _check_shipments(self, shipments: ShipmentsSpec) -> None:
        self._check_account_match("shipments.account", shipments.account, optional=False)
        for key in ("shipped_at_zone", "changes_zone"):
            zone = getattr(shipments, key)
            if zone is not None and not is_valid_zone(zone):
                self._bad_zone(f"shipments.{key}", zone)
        write_back = shipments.write_back
        if write_back is None:
            return
        if write_back.zone is not None and not is_valid_zone(write_back.zone):
            self._bad_zone("shipments.write_back.zone", write_back.zone)
        unknown = sorted(set(write_back.values) - set(WRITE_BACK_STATES))
        if unknown:
            self.add(
                "shipments.write_back.values",
                _("unknown states: {states}.").format(states=", ".join(unknown)),
                _("use these states: {states}.").format(states=", ".join(WRITE_BACK_STATES)),
            )
        items = shipments.items
        if items is not None and (items.sku is None) == (items.order_item_id is None):
            self.add(
                "shipments.items",
                _("give exactly one of sku and order_item_id."),
                _("name the column that identifies the item."),
            )


def _map_key(value: object) -> str:
    """Return the TOML key of an Amazon value, where flags are written true and false."""
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def map_value(value_map: ValueMap, value: object) -> tuple[bool, Scalar | None]:
    """Return (found, ERP value) for an Amazon value.

    An unlisted value gets the map's default, and None is never found.
    """
    if value is None:
        return False, None
    key = _map_key(value)
    if key in value_map.values:
        return True, value_map.values[key]
    return value_map.default is not None, value_map.default
