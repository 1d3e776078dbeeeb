"""Code hooks for the bridge tests: functions a mapping names with ``code = …``."""

from __future__ import annotations

from syncd.bridge.fields import CanonicalOrder


def remark(order: CanonicalOrder) -> str:
    """A remark as an ERP might want it: the marketplace and the number of items."""
    return f"{order.marketplace_country}/{order.item_count}"


def broken(order: CanonicalOrder) -> str:
    """A hook with a bug that shows for one kind of order only."""
    if order.item_count > 1:
        raise KeyError("gift_wrap")
    return "ok"
