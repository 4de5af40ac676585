"""Ingest service: one transaction a batch: load what the plan needs, plan, write; then swap state in.

Failure rules: a lost database connection means retry the same batch (the one reconnect policy,
kernel/reconnect.py; nothing was acknowledged, so nothing is lost); a batch the database refuses is
retried message by message so that only the offending message goes to the dead letters, with the
database's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from sqlalchemy.engine import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from core.ingest import store
from core.ingest.metrics import IngestMetrics
from core.ingest.plan import UNKNOWN_MACHINE, BatchPlan, Incoming, IngestLimits, parse_batch, plan_batch
from core.ingest.rows import DeadLetterRow
from kernel.db.models import make_engine
from kernel.logs import get_logger
from kernel.payload import EdgeAck
from kernel.reconnect import retry_sync

log = get_logger("core.ingest")

# Run first in a batch's transaction (and in a reload's): with several cores, core.ingest.partition's
# `EdgeLeases.guard` for the batch's edges; it raises to keep the batch from being written.
Guard = Callable[[Connection], None]


@dataclass
class IngestTotals:
    batches: int = 0
    messages: int = 0
    samples: int = 0
    intervals: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    held: int = 0
    quarantined_events: int = 0

    def add(self, plan: BatchPlan) -> None:
        self.batches += 1
        self.messages += len(plan.messages)
        self.samples += len(plan.samples)
        self.intervals += len(plan.intervals)
        self.dead_letters += len(plan.dead_letters)
        self.duplicates += plan.duplicates
        self.held += sum(plan.held.values())
        self.quarantined_events += plan.quarantined_events()


class IngestService:
    def __init__(self, database_url: str, on_commit: Callable[[BatchPlan, datetime], None] | None = None,
                 limits: IngestLimits = IngestLimits(), metrics: IngestMetrics | None = None):
        """`on_commit(plan, committed_at)` runs after each commit (latency measurement in tests and the bench);
        `limits`: what the core takes from a publisher; `metrics`: told of each committed batch."""
        self.database_url = database_url
        self.limits = limits
        self.on_commit = on_commit
        self.metrics = metrics
        self.totals = IngestTotals()
        self._acknowledgments: dict[str, EdgeAck] = {}
        # no pre-ping: a lost connection fails the batch, which is retried on a new one (a round trip a batch saved)
        self.engine = make_engine(database_url, pre_ping=False)
        self.reload()

    def reload(self, guard: Guard | None = None) -> None:
        """Re-read registry and state from the database (start-up, after any failed write, and when this core
        takes over an edge: under that edge's `guard`)."""
        with self.engine.begin() as connection:
            if guard is not None:
                guard(connection)
            self.registry = store.load_registry(connection)
            self.state = store.load_state(connection)

    def reload_registry(self) -> None:
        """Re-read the machines (some may have been registered or moved to another edge since)."""
        with self.engine.connect() as connection:
            self.registry = store.load_registry(connection)

    def close(self) -> None:
        self.engine.dispose()

    def ingest(self, batch: list[Incoming], guard: Guard | None = None) -> None:
        """Commit the batch (`guard` first in its transaction): retried while the database is unavailable (nothing was acknowledged, so
        nothing is lost); a batch it refuses is retried message by message, so that only the offending
        message goes to the dead letters with the database's reason."""
        try:
            retry_sync(lambda: self._ingest_once(batch, guard), what="commit a batch", on=OperationalError,
                       before_retry=self._reload_when_reachable)
        except DBAPIError as error:
            self.reload()
            if len(batch) == 1:
                self._dead_letter(batch[0], f"database refused the message: {error.orig}")
                return
            log.warning("database refused a batch; retrying message by message", error=str(error.orig), size=len(batch))
            for incoming in batch:
                self.ingest([incoming], guard)

    def _ingest_once(self, batch: list[Incoming], guard: Guard | None) -> BatchPlan:
        parsed = parse_batch(batch, self.registry, self.limits)
        if any(reason.startswith(UNKNOWN_MACHINE) for reason in parsed.refusals()):
            # a machine registered since start-up is not unknown: look again before refusing
            self.reload_registry()
            parsed = parse_batch(batch, self.registry, self.limits)
        started = time.monotonic()
        with self.engine.begin() as connection:
            if guard is not None:
                guard(connection)
            state = store.with_machines_locked(connection, self.state, parsed.machines())
            context = store.load_context(connection, parsed, state)
            plan = plan_batch(parsed, state, self.registry, context=context, now=datetime.now(UTC),
                              limits=self.limits)
            store.write_plan(connection, plan)
        transaction_s = time.monotonic() - started
        self.state = plan.state
        self.totals.add(plan)
        for ack in plan.acknowledgments():
            # a resend asked for earlier in this round stands until the edge has been told
            earlier = self._acknowledgments.get(ack.edge_id)
            self._acknowledgments[ack.edge_id] = ack.model_copy(update={"resend": True}) if earlier and earlier.resend else ack
        if plan.held:
            log.info("messages held until their edge publishes again", held=plan.held)
        committed_at = datetime.now(UTC)
        if self.metrics is not None:
            self.metrics.committed(batch, transaction_s, committed_at)
        if self.on_commit is not None:
            self.on_commit(plan, committed_at)
        return plan


    def take_acknowledgments(self) -> list[EdgeAck]:
        """The acknowledgments of everything committed since the last call, one per edge: the newest."""
        acks, self._acknowledgments = list(self._acknowledgments.values()), {}
        return acks

    def _dead_letter(self, incoming: Incoming, reason: str) -> None:
        plan = BatchPlan(state=self.state, dead_letters=[DeadLetterRow.of(incoming.received_at, incoming.topic, incoming.payload, reason)])
        with self.engine.begin() as connection:
            store.write_plan(connection, plan)
        self.totals.add(plan)

    def _reload_when_reachable(self) -> None:
        try:
            self.reload()
        except OperationalError:
            pass

