"""The bridge job: project orders into the ERP, feed the intake from the WMS, write back.

One process at a time runs the bridge, under the lease named ``bridge``, because a natural
key without a unique index in the ERP cannot stop two writers from inserting the same order.
The mapping file is read again when it changes on disk or the settings are reloaded, and
each pass checks it against freshly reflected tables before it writes. A mapping with errors
stops the bridge and leaves the rest of syncd running. Its problems are logged again only
when the file or the problems change.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from syncd import errors
from syncd.bridge.check import ErpTables, prepare_tables
from syncd.bridge.feeder import FeedSummary, WmsFeeder
from syncd.bridge.mapping import LoadedMapping, MappingError, load_mapping
from syncd.bridge.projection import ProjectionSummary, Projector
from syncd.db import bridge_state
from syncd.db.engine import create_db_engine, database_error_reason, safe_url
from syncd.jobs.context import JobContext
from syncd.jobs.shipments import carrier_map
from syncd.logs import get_logger

log = get_logger(__name__)

LEASE = "bridge"


@dataclass
class BridgeSummary:
    """Summary of one bridge pass: its counts, and the error that stopped it."""

    ran: bool = False
    projection: ProjectionSummary | None = None
    feed: FeedSummary | None = None
    written_back: int = 0
    error: str | None = None
    warnings: list[str] = field(default_factory=list)


class Bridge:
    """The bridge of one process: the loaded mapping, its reflected tables, the ERP engine."""

    def __init__(self, ctx: JobContext) -> None:
        self.ctx = ctx
        self._lock = threading.Lock()
        # The file's modification time and the context's reload count it was read at.
        self._loaded: tuple[tuple[float, int], LoadedMapping] | None = None
        self._reported: tuple[float, tuple[str, ...]] | None = None
        self._erp_engine: Engine | None = None

    @property
    def erp_engine(self) -> Engine:
        """Engine of the ERP database, which is syncd's own when both URLs are the same."""
        settings = self.ctx.settings
        if settings.erp_url == settings.database_url:
            return self.ctx.engine
        if self._erp_engine is None:
            self._erp_engine = create_db_engine(settings.erp_url)
        return self._erp_engine

    def close(self) -> None:
        """Close the ERP engine when it is not syncd's own."""
        if self._erp_engine is not None:
            self._erp_engine.dispose()
            self._erp_engine = None

    def run(self) -> BridgeSummary:
        """Run one pass if this process gets the bridge lease."""
        summary = BridgeSummary()
        if self.ctx.settings.mapping_file is None or self.ctx.stop.is_set():
            return summary
        with self._lock:
            try:
                if not self._take_lease():
                    log.debug("bridge_lease_busy")
                    return summary
                self._run(summary)
            except MappingError as exc:
                summary.error = str(exc)
            except errors.LeaseLostError as exc:
                summary.error = str(exc)
                log.warning("bridge_lease_lost", owner=self.ctx.owner)
            except SQLAlchemyError as exc:
                summary.error = database_error_reason(exc)
                log.warning(
                    "bridge_pass_failed",
                    database=safe_url(self.ctx.settings.erp_url),
                    error=summary.error,
                )
            finally:
                self._give_back_lease()
        return summary

    def _run(self, summary: BridgeSummary) -> None:
        mapping, tables = self.prepare()
        summary.ran = True
        settings = self.ctx.settings
        if mapping.spec.orders is not None:
            projector = Projector(
                mapping,
                tables,
                engine=self.ctx.engine,
                erp_engine=self.erp_engine,
                vault=self.ctx.vault,
                batch_size=settings.bridge_batch_size,
                retention_days=settings.pii_retention_days,
                now=self.ctx.now,
                stop=self.ctx.stop,
                heartbeat=self._renew,
            )
            summary.projection = projector.run()
        if mapping.spec.shipments is not None:
            # NOTE: only the projector renews the lease. A feed and write-back that take
            # longer than lease_seconds can overlap another process's pass.
            feeder = WmsFeeder(
                mapping,
                tables,
                engine=self.ctx.engine,
                erp_engine=self.erp_engine,
                batch_size=settings.bridge_batch_size,
                now=self.ctx.now,
                carriers=carrier_map(self.ctx),
            )
            self._renew()
            summary.feed = feeder.feed()
            self._renew()
            summary.written_back = feeder.write_back()
        _log_summary(summary)

    def prepare(self) -> tuple[LoadedMapping, ErpTables]:
        """Return the mapping and its checked tables.

        The file is read again when it changed on disk. The tables are reflected on every
        pass, so a column the operator widened for a quarantined order counts at once.

        Raises:
            MappingError: the file or its tables have errors (logged once until they change).
        """
        path = self.ctx.settings.mapping_file
        assert path is not None
        try:
            mtime = path.stat().st_mtime
        except OSError:
            mtime = -1.0
        # A reload (SIGHUP) reads the file again even when its time did not change.
        version = (mtime, self.ctx.reloads)
        try:
            if self._loaded is None or self._loaded[0] != version:
                self._loaded = None
                self._loaded = (version, load_mapping(path))
                log.info("bridge_mapping_loaded", path=str(path))
            mapping = self._loaded[1]
            tables = prepare_tables(mapping, self.erp_engine)
        except MappingError as exc:
            problems = tuple(str(problem) for problem in exc.problems)
            if self._reported != (mtime, problems):
                self._reported = (mtime, problems)
                log.error("bridge_mapping_invalid", path=str(path), problems=list(problems))
            raise
        return mapping, tables

    def _take_lease(self) -> bool:
        with self.ctx.engine.begin() as connection:
            return bridge_state.take_lease(
                connection, LEASE, self.ctx.owner, self.ctx.now(), self.ctx.settings.lease_seconds
            )

    def _renew(self) -> None:
        if not self._take_lease():
            raise errors.LeaseLostError(LEASE)

    def _give_back_lease(self) -> None:
        try:
            with self.ctx.engine.begin() as connection:
                bridge_state.give_back_lease(connection, LEASE, self.ctx.owner, self.ctx.now())
        except SQLAlchemyError:
            log.warning("bridge_lease_release_failed")  # the lease expires by itself


def _log_summary(summary: BridgeSummary) -> None:
    fields: dict[str, Any] = {}
    if summary.projection is not None:
        projection = summary.projection
        fields.update(
            orders_projected=projection.projected,
            orders_skipped=projection.skipped,
            orders_quarantined=projection.quarantined,
            pii_purged=projection.pii_purged,
        )
        if projection.unmapped_accounts:
            fields["unmapped_accounts"] = projection.unmapped_accounts
    if summary.feed is not None:
        fields.update(
            wms_rows_read=summary.feed.read,
            requests_new=summary.feed.new,
            requests_redriven=summary.feed.redriven,
            shipments_amended=summary.feed.amended,
            changed_after_acceptance=summary.feed.changed_after_acceptance,
        )
    fields["written_back"] = summary.written_back
    log.info("bridge_pass_finished", **fields)
