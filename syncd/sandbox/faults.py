"""Fault injection: rules that make the sandbox respond like Amazon on a bad day.

A rule names an operation (``searchOrders``, ``getOrder``, ``confirmShipment``, ``lwa`` or
``*``), optionally a region and a seller (by refresh token), and a kind. The rule counts
every call that matches it and fires on matching calls number ``after + 1`` to
``after + count``, or on every one after ``after`` when ``count`` is unset. Several rules
may fire on one call, and the call log lists each of them as ``<id>:<kind>``.

Kinds:

- ``throttle``: 429 ``QuotaExceeded`` (a run of them is a 429 storm).
- ``server_error``: ``status`` 500 or 503 with an Amazon error body (LWA: a 5xx as well).
- ``slow``: wait ``delay`` seconds, then respond normally (to exceed a client timeout).
- ``expired_token``: 403 expired-token response although the token is valid; ``field`` names
  whether the text is in ``details`` (default) or ``message``.
- ``access_denied``: 403 ``Unauthorized`` as for a seller without the needed role.
- ``revoke``: revoke ``refresh_token`` (or the caller's) before responding, so the next
  token refresh gets ``invalid_grant``.
- ``invalid_client``: LWA returns 401 ``invalid_client``.
- ``malformed_json``: the response keeps its status but its JSON body is cut in half.
- ``repeat_page``: a searchOrders page request gets back the same ``nextToken`` it sent.
- ``duplicate_pages``: searchOrders returns the same orders again with a fresh token.
- ``omit_rate_limit_header``: the response has no ``x-amzn-RateLimit-Limit`` header.
- ``reject_dataset``: 400 ``InvalidInput`` whenever ``includedData`` contains ``dataset``
  (so never on confirmShipment, which has no ``includedData``).
- ``apply_then_slow``: the request takes effect as usual (confirmShipment records its
  package), then the response waits ``delay`` seconds. A client whose read timeout is
  shorter gives up although Amazon has applied the request.
- ``apply_then_server_error``: the request takes effect as usual, then the response is
  ``status`` 500 or 503 (502, 504) with an Amazon error body instead of the real one.

Kinds that replace the response (``throttle``, ``server_error``, ``expired_token``,
``access_denied``, ``reject_dataset``) act before the request takes effect, so a
confirmShipment they fire on records nothing.

The clock skew is not a rule: it is the sandbox clock's offset (see :mod:`clock`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from syncd.i18n import gettext_noop as N_
from syncd.sandbox.datasets import INCLUDED_DATA
from syncd.sandbox.problems import invalid_field

FaultKind = Literal[
    "throttle",
    "server_error",
    "slow",
    "expired_token",
    "access_denied",
    "revoke",
    "invalid_client",
    "malformed_json",
    "repeat_page",
    "duplicate_pages",
    "omit_rate_limit_header",
    "reject_dataset",
    "apply_then_slow",
    "apply_then_server_error",
]

LWA_OPERATION = "lwa"
ANY_OPERATION = "*"
# Every operation the sandbox serves; app.py checks at import that its route table agrees.
FAULTABLE_OPERATIONS: tuple[str, ...] = (
    LWA_OPERATION,
    "searchOrders",
    "getOrder",
    "confirmShipment",
)
# Kinds that wait `delay` seconds, before the request takes effect or after it.
DELAY_KINDS: frozenset[str] = frozenset({"slow", "apply_then_slow"})

# Kinds that only make sense for some operations; a rule for "*" skips the others.
_LWA_ONLY: frozenset[str] = frozenset({"invalid_client"})
_SP_API_ONLY: frozenset[str] = frozenset(
    {
        "expired_token",
        "access_denied",
        "omit_rate_limit_header",
        "reject_dataset",
        "apply_then_slow",
        "apply_then_server_error",
    }
)
_SEARCH_ONLY: frozenset[str] = frozenset({"repeat_page", "duplicate_pages"})
_SEARCH_OPERATION = "searchOrders"


class FaultRule(BaseModel):
    """One fault rule as given in the config, the state API or ``POST /_sandbox/faults``."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    kind: FaultKind
    operation: str = ANY_OPERATION
    region: Literal["na", "eu", "fe"] | None = None
    count: int | None = Field(default=None, ge=1)  # None: every matching call after `after`
    after: int = Field(default=0, ge=0)
    # Limits the rule to the seller of this refresh token. For `revoke` it is instead the
    # token to revoke, and any matching call triggers the revocation.
    refresh_token: str | None = None
    status: Literal[500, 502, 503, 504] = 503  # for `server_error`, `apply_then_server_error`
    delay: float = Field(default=0.0, ge=0.0, le=600.0)  # seconds, for `slow`, `apply_then_slow`
    field: Literal["details", "message"] = "details"  # where `expired_token` puts its text
    dataset: str | None = None  # the includedData value `reject_dataset` refuses

    @model_validator(mode="after")
    def _check_kind_arguments(self) -> Self:
        fields_given = self.model_fields_set
        if self.kind in DELAY_KINDS and self.delay <= 0:
            raise invalid_field(
                "delay",
                f"a {self.kind} fault needs a delay in seconds greater than 0",
                value=self.delay,
                missing="delay" not in fields_given,
                expected=N_("a number of seconds above 0 for a slow fault"),
            )
        if self.kind == "reject_dataset" and not self.dataset:
            raise invalid_field(
                "dataset",
                "a reject_dataset fault needs the includedData value it rejects",
                value=self.dataset,
                missing="dataset" not in fields_given,
                allowed=INCLUDED_DATA,
            )
        if self.dataset is not None and self.dataset not in INCLUDED_DATA:
            raise invalid_field(
                "dataset",
                f"unknown includedData value {self.dataset!r}",
                value=self.dataset,
                allowed=INCLUDED_DATA,
            )
        if self.operation not in (ANY_OPERATION, *FAULTABLE_OPERATIONS):
            raise invalid_field(
                "operation",
                f"unknown operation {self.operation!r} (names are case-sensitive)",
                value=self.operation,
                allowed=(ANY_OPERATION, *FAULTABLE_OPERATIONS),
            )
        if self.operation != ANY_OPERATION and not is_applicable(self.kind, self.operation):
            raise invalid_field(
                "operation",
                f"fault kind {self.kind} does not apply to {self.operation}",
                value=self.operation,
                expected=_applicable_operations(self.kind),
            )
        return self


def is_applicable(kind: str, operation: str) -> bool:
    """Return whether a fault kind can act on an operation at all."""
    if kind in _LWA_ONLY:
        return operation == LWA_OPERATION
    if kind in _SP_API_ONLY:
        return operation != LWA_OPERATION
    if kind in _SEARCH_ONLY:
        return operation == _SEARCH_OPERATION
    return True


@dataclass(frozen=True)
class FaultCall:
    """Facts about a call that fault rules match against."""

    operation: str
    region: str
    refresh_token: str | None
    has_page_token: bool = False
    included_data: tuple[str, ...] = ()


@dataclass
class ActiveFault:
    """A rule in force with its id and counters."""

    fault_id: str
    rule: FaultRule
    matched: int = 0
    fired: int = 0

    @property
    def is_exhausted(self) -> bool:
        """Whether the rule has fired ``count`` times and will not fire again."""
        return self.rule.count is not None and self.fired >= self.rule.count

    def to_json(self) -> dict[str, Any]:
        """Return the rule with its id and counters, for the control API."""
        return {
            "id": self.fault_id,
            **self.rule.model_dump(),
            "matched": self.matched,
            "fired": self.fired,
            "exhausted": self.is_exhausted,
        }


@dataclass(frozen=True)
class FiredFault:
    """One rule that fired on a call."""

    fault_id: str
    rule: FaultRule

    @property
    def label(self) -> str:
        """The ``<id>:<kind>`` text recorded in the call log."""
        return f"{self.fault_id}:{self.rule.kind}"


class FaultBook:
    """The rules in force. Not thread-safe: callers hold the state lock."""

    def __init__(self) -> None:
        self._faults: list[ActiveFault] = []
        self._next_number = 1

    def add(self, rule: FaultRule) -> ActiveFault:
        """Put a rule in force and return it with its new id."""
        fault = ActiveFault(fault_id=f"f{self._next_number}", rule=rule)
        self._next_number += 1
        self._faults.append(fault)
        return fault

    def remove(self, fault_id: str) -> bool:
        """Remove one rule; return False when no rule has that id."""
        before = len(self._faults)
        self._faults = [fault for fault in self._faults if fault.fault_id != fault_id]
        return len(self._faults) != before

    def clear(self) -> None:
        """Remove every rule."""
        self._faults.clear()

    def active(self) -> list[ActiveFault]:
        """Return the rules in force, oldest first."""
        return list(self._faults)

    def fire(self, call: FaultCall) -> list[FiredFault]:
        """Count the call against every matching rule and return the rules that fire on it."""
        fired: list[FiredFault] = []
        for fault in self._faults:
            if not _matches(fault.rule, call):
                continue
            fault.matched += 1
            if fault.matched <= fault.rule.after or fault.is_exhausted:
                continue
            fault.fired += 1
            fired.append(FiredFault(fault.fault_id, fault.rule))
        return fired


def _applicable_operations(kind: str) -> str:
    """Return a message id that names the operations a fault kind acts on."""
    if kind in _LWA_ONLY:
        return N_("lwa or *, because this fault kind acts on the LWA token endpoint")
    if kind in _SEARCH_ONLY:
        return N_("searchOrders or *, because this fault kind acts on searchOrders pages")
    return N_(
        "an SP-API operation such as getOrder, or *, because this fault kind does not act on LWA"
    )


def _matches(rule: FaultRule, call: FaultCall) -> bool:
    if rule.operation not in (ANY_OPERATION, call.operation):
        return False
    if not is_applicable(rule.kind, call.operation):
        return False
    if rule.region is not None and rule.region != call.region:
        return False
    # For revoke, refresh_token names the token to revoke, not the caller to match.
    seller_bound = rule.refresh_token is not None and rule.kind != "revoke"
    if seller_bound and rule.refresh_token != call.refresh_token:
        return False
    if rule.kind == "repeat_page" and not call.has_page_token:
        return False
    return not (rule.kind == "reject_dataset" and rule.dataset not in call.included_data)
