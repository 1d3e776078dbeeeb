"""The pii_purge job: clear buyer PII from syncd's tables when its retention period ends.

Each pass selects, page by page, the orders that hold PII past ``SYNCD_PII_RETENTION_DAYS``
(the rule is in :mod:`syncd.db.retention`). It sets their buyer, recipient and tax
registration columns and their items' gift messages to NULL and records ``pii_purged_at``,
one small transaction per page. A later fetch of a purged order stores no PII again.

The daemon runs a pass every ``SYNCD_PII_PURGE_INTERVAL`` seconds. The ERP's PII columns are
cleared by the bridge pass when the mapping's ``[pii] purge`` is true; ``syncd once
pii-purge`` runs both. Only counts are logged, never a value.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy.exc import SQLAlchemyError

from syncd.bridge.mapping import MappingError
from syncd.bridge.projection import Projector
from syncd.db import bridge_state, retention
from syncd.db.engine import database_error_reason
from syncd.jobs.bridge import LEASE as BRIDGE_LEASE
from syncd.jobs.bridge import Bridge
from syncd.jobs.context import JobContext
from syncd.logs import get_logger

log = get_logger(__name__)

JOB = "pii_purge"
PAGE_SIZE = 200  # orders per transaction, so a purge never holds many row locks for long


@dataclass
class PurgeSummary:
    """Counts of one purge pass, and the error that stopped it."""

    orders: int = 0  # orders whose PII columns were cleared
    gift_messages: int = 0
    erp_orders: int | None = None  # orders cleared in the ERP; None when that part did not run
    erp_busy: bool = False  # another process holds the bridge lease; its pass clears the ERP
    error: str | None = None


def run_pii_purge(ctx: JobContext) -> PurgeSummary:
    """Clear the PII of every order past its retention period in syncd's tables.

    A database error does not raise: the pass is logged as failed, and the next pass
    continues where this one stopped, because purged orders no longer match.
    """
    summary = PurgeSummary()
    started = time.monotonic()
    now = ctx.now()
    cutoff = now - timedelta(days=ctx.settings.pii_retention_days)
    try:
        while not ctx.stop.is_set():
            with ctx.engine.begin() as connection:
                pks = retention.expired_order_pks(connection, cutoff, PAGE_SIZE)
                orders, messages = retention.clear_pii(connection, pks, cutoff, now)
            summary.orders += orders
            summary.gift_messages += messages
            # A full page that cleared nothing was purged by another process meanwhile, and
            # stopping there keeps two processes from chasing each other.
            if len(pks) < PAGE_SIZE or orders == 0:
                break
    except SQLAlchemyError as exc:
        summary.error = database_error_reason(exc)
        log.error("pii_purge_failed", job=JOB, orders=summary.orders, error=summary.error)
        return summary
    log.info(
        "pii_purged",
        job=JOB,
        orders=summary.orders,
        gift_messages=summary.gift_messages,
        retention_days=ctx.settings.pii_retention_days,
        duration_ms=round((time.monotonic() - started) * 1000),
    )
    return summary


def purge_erp_pii(ctx: JobContext, summary: PurgeSummary) -> None:
    """Clear the mapped ERP PII columns of expired orders, through the bridge's own purge.

    Runs only when a mapping file is set, its ``[pii] purge`` is true and it maps PII
    columns. It takes the bridge's lease, so it never runs beside a bridge pass. When another
    process holds that lease, ``summary.erp_busy`` is set, and that process's pass clears
    the ERP.
    The count goes to ``summary.erp_orders``, a failure to ``summary.error``.
    """
    if ctx.settings.mapping_file is None:
        return
    bridge = Bridge(ctx)
    try:
        mapping, tables = bridge.prepare()
        if not mapping.spec.pii.purge or mapping.spec.orders is None:
            return
        if not (mapping.pii_columns or mapping.line_pii_columns):
            return
        with ctx.engine.begin() as connection:
            leased = bridge_state.take_lease(
                connection, BRIDGE_LEASE, ctx.owner, ctx.now(), ctx.settings.lease_seconds
            )
        if not leased:
            summary.erp_busy = True
            return
        try:
            projector = Projector(
                mapping,
                tables,
                engine=ctx.engine,
                erp_engine=bridge.erp_engine,
                vault=ctx.vault,
                batch_size=ctx.settings.bridge_batch_size,
                retention_days=ctx.settings.pii_retention_days,
                now=ctx.now,
                stop=ctx.stop,
            )
            summary.erp_orders = projector.purge_pii()
        finally:
            with ctx.engine.begin() as connection:
                bridge_state.give_back_lease(connection, BRIDGE_LEASE, ctx.owner, ctx.now())
    except MappingError as exc:
        summary.error = str(exc)
    except SQLAlchemyError as exc:
        summary.error = database_error_reason(exc)
        log.error("pii_purge_erp_failed", job=JOB, error=summary.error)
    finally:
        bridge.close()
