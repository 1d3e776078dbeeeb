"""The SP-API operations syncd calls: method, path, and what a retry of each would do.

Whether a failed call may be sent again depends on the operation: a read can be repeated
freely; confirmShipment is idempotent because a resend with the same ``packageReferenceId``
edits the same package; createReport and createFeed create a new resource on every call, so
after a timeout their outcome must be looked up instead.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from urllib.parse import quote


@dataclass(frozen=True)
class Operation:
    """One SP-API operation, named by its ``operationId`` in Amazon's model."""

    name: str
    method: str
    path: str  # with {placeholders}, as in the model
    idempotent: bool
    # Query parameters bound by Amazon's two-minute rule (they must lie at least two minutes
    # before Amazon's current time).
    window_bounds: tuple[str, ...] = field(default=())

    def render_path(self, **path_params: str) -> str:
        """Return the path with its placeholders filled in, each value percent-encoded.

        Raises:
            ValueError: a value is empty, ``.`` or ``..``, which URL normalization would turn
                into another path (``get_order(".")`` would call searchOrders).
        """
        for name, value in path_params.items():
            if value in ("", ".", ".."):
                raise ValueError(f"{self.name}: path parameter {name} may not be {value!r}")
        return self.path.format(**{k: quote(v, safe="") for k, v in path_params.items()})


SEARCH_ORDERS = Operation(
    "searchOrders",
    "GET",
    "/orders/2026-01-01/orders",
    idempotent=True,
    window_bounds=("createdBefore", "lastUpdatedBefore"),
)
GET_ORDER = Operation("getOrder", "GET", "/orders/2026-01-01/orders/{orderId}", idempotent=True)
CONFIRM_SHIPMENT = Operation(
    "confirmShipment",
    "POST",
    "/orders/v0/orders/{orderId}/shipmentConfirmation",
    idempotent=True,  # a resend with the same packageReferenceId edits the same package
)
