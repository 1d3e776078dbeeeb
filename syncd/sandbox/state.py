"""The sandbox's in-memory world and its configuration.

:class:`SandboxState` is shared by the three regional apps and by the test code that
drives them. Every method takes one lock, so tests may call it from any thread while the
servers run. Operation handlers use the component attributes (``orderbook``, ``tokens``,
``pages``, ``throttle``, ``fault_book``, ``call_log``) while they hold
:attr:`SandboxState.lock`.

Defaults of :class:`SandboxConfig` worth knowing: the LWA client id is
``amzn1.application-oa2-client.syncdsandbox`` and the secret ``syncd-sandbox-secret``.
They are checked unless ``check_client`` is False. Any refresh token is accepted until it
is revoked. To play Amazon's rotation of the client secret, set ``client_secret`` to the new
secret and list the old one in ``retiring_client_secrets`` while both work, then empty that
list to retire it: LWA then returns ``invalid_client`` for the old secret.
"""

from __future__ import annotations

import json
import threading
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from syncd.i18n import gettext_noop as N_
from syncd.sandbox import lifecycle, marketplaces, orderbook, pagination, throttle, tokens
from syncd.sandbox.calls import CallLog, CallRecord
from syncd.sandbox.clock import SandboxClock
from syncd.sandbox.faults import FaultBook, FaultRule
from syncd.sandbox.generator import GeneratorSettings, OrderGenerator
from syncd.sandbox.problems import invalid_field

DEFAULT_CLIENT_ID = "amzn1.application-oa2-client.syncdsandbox"
DEFAULT_CLIENT_SECRET = "syncd-sandbox-secret"  # a public test value, printed by the CLI

PiiRoles = Literal["granted", "omitted", "forbidden"]

# Settings that may change while the sandbox runs; the others need a reset.
RUNTIME_SETTINGS = frozenset(
    {
        "speed",
        "quotas",
        "token_lifetime",
        "pii_roles",
        "check_client",
        "client_secret",
        "retiring_client_secrets",
        "expired_token_field",
    }
)


class SandboxConfig(BaseModel):
    """Everything that shapes a sandbox; validated, immutable."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    seed: int = 1
    speed: float = Field(default=1.0, gt=0.0, le=1_000_000.0)  # multiplies quota refill rates
    quotas: bool = True
    token_lifetime: int = Field(default=3600, ge=1)  # seconds
    orders_per_marketplace: int = Field(default=120, ge=0, le=20_000)
    history_days: int = Field(default=30, ge=1, le=3650)
    anchor: datetime | None = None  # generated orders end here; None: sandbox now at start
    marketplace_ids: tuple[str, ...] | None = None  # where sellers sell; None: everywhere
    pii_roles: PiiRoles = "granted"
    client_id: str = DEFAULT_CLIENT_ID
    client_secret: str = DEFAULT_CLIENT_SECRET
    # Older secrets LWA still accepts after a rotation, until they are retired.
    retiring_client_secrets: tuple[str, ...] = ()
    check_client: bool = True
    expired_token_field: Literal["details", "message"] = "details"
    clock_offset: float = 0.0  # seconds the sandbox clock runs ahead of the host clock
    strict_parameters: bool = True  # reject query parameters the model does not declare
    faults: tuple[FaultRule, ...] = ()

    @field_validator("marketplace_ids")
    @classmethod
    def _check_marketplaces(cls, value: tuple[str, ...] | None) -> tuple[str, ...] | None:
        unknown = [mid for mid in value or () if marketplaces.find_marketplace(mid) is None]
        if unknown:
            raise invalid_field(
                "",
                f"unknown marketplace ids: {', '.join(unknown)}",
                value=unknown if len(unknown) > 1 else unknown[0],
                allowed=[m.marketplace_id for m in marketplaces.MARKETPLACES],
            )
        return value

    @field_validator("anchor")
    @classmethod
    def _check_anchor(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise invalid_field(
                "",
                "anchor must be timezone-aware",
                value=value.isoformat(),
                expected=N_("a date and time with a UTC offset, such as 2026-01-01T00:00:00Z"),
            )
        return value


class SandboxState:
    """The live world of one sandbox: config, clock, orders, tokens, faults and call log."""

    _config: SandboxConfig
    _initial_config: SandboxConfig
    _anchor: datetime
    orderbook: orderbook.OrderBook
    tokens: tokens.TokenRegistry
    pages: pagination.PageTokens
    throttle: throttle.Throttle
    call_log: CallLog
    fault_book: FaultBook

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.lock = threading.RLock()
        self.clock = SandboxClock()
        self._build(config or SandboxConfig())

    # -- configuration -------------------------------------------------------------------------

    @property
    def config(self) -> SandboxConfig:
        """The configuration in force, including runtime changes."""
        with self.lock:
            return self._config

    @property
    def anchor(self) -> datetime:
        """The time generated order histories end and scheduled changes start from."""
        with self.lock:
            return self._anchor

    def update_settings(self, /, **changes: Any) -> SandboxConfig:
        """Change runtime settings (speed, quotas, token_lifetime, pii_roles, ...).

        Raises:
            ValueError: a setting is unknown or needs a reset (see :meth:`reset`).
            pydantic.ValidationError: a setting has an invalid value.
        """
        unknown = [name for name in changes if name not in SandboxConfig.model_fields]
        if unknown:
            raise ValueError(_unknown_settings_message(unknown))
        needs_reset = [name for name in changes if name not in RUNTIME_SETTINGS]
        if needs_reset:
            raise ValueError(_reset_needed_message(needs_reset, changes))
        with self.lock:
            self._config = SandboxConfig.model_validate({**self._config.model_dump(), **changes})
            return self._config

    def set_token_lifetime(self, seconds: int) -> None:
        """Set the lifetime of access tokens issued from now on."""
        self.update_settings(token_lifetime=seconds)

    def reset(self, config: SandboxConfig | None = None, /, **changes: Any) -> SandboxConfig:
        """Return to a fresh world and return the configuration it was built from.

        The world is built from ``config``, or else from the configuration of the last reset
        (at first, the one the state started with), with ``changes`` applied over it. Runtime
        changes made since are dropped. Later resets without arguments keep the result. The
        fresh world has no calls, tokens or revocations, only the configuration's fault rules,
        the configuration's clock offset, and orders generated anew up to now.

        Raises:
            pydantic.ValidationError: a change is unknown or has an invalid value.
        """
        with self.lock:
            chosen = config or self._initial_config
            if changes:
                chosen = SandboxConfig.model_validate({**chosen.model_dump(), **changes})
            self._build(chosen)
            return chosen

    # -- clock ---------------------------------------------------------------------------------

    def now(self) -> datetime:
        """Return the sandbox's current time."""
        return self.clock.now()

    def set_clock_offset(self, seconds: float) -> None:
        """Make the sandbox clock run ``seconds`` ahead of the host clock (behind if negative)."""
        self.clock.set_offset(seconds)

    def advance_clock(self, seconds: float) -> datetime:
        """Move the sandbox clock forward by ``seconds`` and return the new sandbox time."""
        return self.clock.advance(seconds)

    # -- faults --------------------------------------------------------------------------------

    def add_fault(self, rule: FaultRule | dict[str, Any]) -> str:
        """Put a fault rule in force and return its id.

        Raises:
            pydantic.ValidationError: a dict that is not a valid rule.
        """
        parsed = rule if isinstance(rule, FaultRule) else FaultRule.model_validate(rule)
        with self.lock:
            return self.fault_book.add(parsed).fault_id

    def faults(self) -> list[dict[str, Any]]:
        """Return the rules in force with their ids and counters."""
        with self.lock:
            return [fault.to_json() for fault in self.fault_book.active()]

    def remove_fault(self, fault_id: str) -> bool:
        """Remove one rule; return False when no rule has that id."""
        with self.lock:
            return self.fault_book.remove(fault_id)

    def clear_faults(self) -> None:
        """Remove every fault rule."""
        with self.lock:
            self.fault_book.clear()

    # -- tokens --------------------------------------------------------------------------------

    def revoke(self, refresh_token: str) -> None:
        """Revoke a refresh token: LWA returns ``invalid_grant`` for it from now on."""
        with self.lock:
            self.tokens.revoke(refresh_token)

    def restore(self, refresh_token: str) -> None:
        """Undo the revocation of a refresh token."""
        with self.lock:
            self.tokens.restore(refresh_token)

    def issue_access_token(self, refresh_token: str, lifetime: int | None = None) -> str:
        """Issue an access token for a refresh token's seller without an LWA call."""
        with self.lock:
            seller = self.orderbook.seller(refresh_token)
            return self.tokens.issue(
                self.now(),
                lifetime or self._config.token_lifetime,
                refresh_token=refresh_token,
                seller_id=seller.seller_id,
            )

    # -- orders --------------------------------------------------------------------------------

    def seller_id(self, refresh_token: str) -> str:
        """Return the seller id the sandbox derives from a refresh token."""
        with self.lock:
            return self.orderbook.seller(refresh_token).seller_id

    def orders(
        self,
        refresh_token: str,
        region: str | None = None,
        marketplace_ids: list[str] | None = None,
    ) -> list[dict[str, Any]]:
        """Return copies of a seller's orders with every dataset, as of the sandbox's now.

        Without ``marketplace_ids`` the orders of every marketplace of ``region`` (of every
        region when None) are returned. Tests compare a local database against this.
        """
        ids = marketplace_ids or _region_marketplace_ids(region)
        with self.lock:
            found = self.orderbook.orders(refresh_token, ids, self.now())
            return [lifecycle.copy_document(order.document) for order in found]

    def order(self, refresh_token: str, order_id: str) -> dict[str, Any] | None:
        """Return a copy of one of a seller's orders with every dataset, or None."""
        with self.lock:
            for region in marketplaces.REGIONS:
                found = self.orderbook.find(refresh_token, order_id, region, self.now())
                if found is not None:
                    return lifecycle.copy_document(found.document)
        return None

    def create_order(
        self, refresh_token: str, marketplace_id: str, order: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Create an order now from a partial Amazon-shaped body; return the full document.

        Raises:
            ValueError: unknown marketplace or an unusable partial body.
        """
        marketplace = marketplaces.find_marketplace(marketplace_id)
        if marketplace is None:
            raise ValueError(f"unknown marketplace id {marketplace_id!r}")
        with self.lock:
            created = self.orderbook.create(refresh_token, marketplace, order or {}, self.now())
            return lifecycle.copy_document(created.document)

    def patch_order(
        self,
        refresh_token: str,
        order_id: str,
        status: str | None = None,
        changes: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """Change an order's status and/or fields now; return the full document.

        Raises:
            orderbook.OrderNotFoundError: the seller has no such order.
            ValueError: an unknown status.
        """
        with self.lock:
            patched = self.orderbook.patch(
                refresh_token, order_id, self.now(), status=status, changes=changes
            )
            return lifecycle.copy_document(patched.document)

    def packages(self, refresh_token: str, order_id: str) -> list[dict[str, Any]]:
        """Return copies of an order's packages, oldest first; ``[]`` when it has none.

        Raises:
            orderbook.OrderNotFoundError: the seller has no such order.
        """
        with self.lock:
            order = self.orderbook.existing_order(refresh_token, order_id, self.now())
            return lifecycle.copy_document(order.document.get("packages", []))

    def add_package(
        self, refresh_token: str, order_id: str, package: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        """Record a package as if confirmed by hand in Seller Central; return the package.

        No quota is taken and no call is logged. ``package`` may set ``packageReferenceId``,
        ``carrier``, ``trackingNumber``, ``shipTime``, ``shippingService``, ``packageStatus``
        and ``packageItems``. The sandbox fills in the rest, and by default the package
        contains every unit not yet shipped. A ``packageReferenceId`` the order has replaces
        that package.

        Raises:
            orderbook.OrderNotFoundError: the seller has no such order.
            ValueError: the order is not a shippable merchant order, or ``package`` is
                invalid for it.
            TypeError: an entry of ``packageItems`` is not an object.
        """
        with self.lock:
            added = self.orderbook.add_manual_package(
                refresh_token, order_id, package or {}, self.now()
            )
            return lifecycle.copy_document(added)

    def evolve(
        self,
        refresh_token: str,
        count: int = 1,
        region: str | None = None,
        marketplace_ids: list[str] | None = None,
        ago: float = 0.0,
    ) -> list[dict[str, Any]]:
        """Apply ``count`` realistic order changes and return what changed.

        The changes happen ``ago`` seconds before the sandbox's now (only orders last updated
        before then change), so they fall inside a client window that ends two minutes back.
        """
        if ago < 0:
            raise ValueError("ago must be zero or positive")
        ids = marketplace_ids or _region_marketplace_ids(region)
        with self.lock:
            at = self.now() - timedelta(seconds=ago)
            changes = self.orderbook.evolve(refresh_token, ids, count, at)
            return [change.to_json() for change in changes]

    # -- call log ------------------------------------------------------------------------------

    def calls(
        self,
        operation: str | None = None,
        region: str | None = None,
        status: int | None = None,
        seller_id: str | None = None,
    ) -> list[CallRecord]:
        """Return the recorded calls that match every filter given, oldest first."""
        with self.lock:
            return self.call_log.select(operation, region, status, seller_id)

    def call_count(
        self, operation: str | None = None, region: str | None = None, status: int | None = None
    ) -> int:
        """Return how many recorded calls match every filter given."""
        return len(self.calls(operation=operation, region=region, status=status))

    def clear_calls(self) -> None:
        """Empty the call log."""
        with self.lock:
            self.call_log.clear()

    # -- internals -----------------------------------------------------------------------------

    def _build(self, config: SandboxConfig) -> None:
        self._initial_config = config
        self._config = config
        self.clock.set_offset(config.clock_offset)
        self._anchor = config.anchor or self.clock.now().replace(microsecond=0)
        settings = GeneratorSettings(
            seed=config.seed,
            anchor=self._anchor,
            history_days=config.history_days,
            orders_per_marketplace=config.orders_per_marketplace,
        )
        selling_in = frozenset(config.marketplace_ids) if config.marketplace_ids else None
        self.orderbook = orderbook.OrderBook(config.seed, OrderGenerator(settings), selling_in)
        self.tokens = tokens.TokenRegistry()
        self.pages = pagination.PageTokens()
        self.throttle = throttle.Throttle()
        self.call_log = CallLog()
        self.fault_book = FaultBook()
        for rule in config.faults:
            self.fault_book.add(rule)


def _unknown_settings_message(unknown: list[str]) -> str:
    runtime = [name for name in SandboxConfig.model_fields if name in RUNTIME_SETTINGS]
    others = [name for name in SandboxConfig.model_fields if name not in RUNTIME_SETTINGS]
    noun = "setting" if len(unknown) == 1 else "settings"
    return (
        f"unknown {noun}: {', '.join(unknown)}. "
        f"Settings that change while the sandbox runs: {', '.join(runtime)}. "
        f"Settings that need a reset: {', '.join(others)}."
    )


def _reset_needed_message(names: list[str], changes: dict[str, Any]) -> str:
    body = json.dumps(changes, default=str)
    return (
        f"{', '.join(names)} cannot change while the sandbox runs. "
        f"POST /_sandbox/reset with the body {body} starts a fresh world with these settings: "
        "orders generated anew, and no calls, tokens, revocations or added fault rules."
    )


def _region_marketplace_ids(region: str | None) -> list[str]:
    chosen = marketplaces.MARKETPLACES
    if region is not None:
        chosen = marketplaces.marketplaces_of(region)
    return [marketplace.marketplace_id for marketplace in chosen]
