"""Ingest service: load state, plan a batch, commit it in one transaction, then swap state in.

Failure rules: a lost database connection means retry the same batch (nothing was acknowledged,
so nothing is lost); a batch the database refuses is retried message by message so that only the
offending message goes to the dead letters, with the database's reason.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg
from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.ingest import store
from core.ingest.plan import UNKNOWN_MACHINE, BatchPlan, Incoming, parse_batch, plan_batch
from kernel.logs import get_logger
from kernel.db.models import make_engine
from mes.rules.alerts import Transition
from mes.services import alert_engine, alerts

log = get_logger("core.ingest")


@dataclass
class IngestTotals:
    batches: int = 0
    messages: int = 0
    samples: int = 0
    intervals: int = 0
    dead_letters: int = 0
    duplicates: int = 0
    quarantined_events: int = 0

    def add(self, plan: BatchPlan) -> None:
        self.batches += 1
        self.messages += len(plan.messages)
        self.samples += len(plan.samples)
        self.intervals += len(plan.intervals)
        self.dead_letters += len(plan.dead_letters)
        self.duplicates += plan.duplicates
        self.quarantined_events += sum(1 for event in plan.events if event[7])


class IngestService:
    def __init__(self, database_url: str, on_commit: Callable[[BatchPlan, datetime], None] | None = None):
        """`on_commit(plan, committed_at)` runs after each commit (metrics, latency measurement)."""
        self.database_url = database_url
        self.on_commit = on_commit
        self.totals = IngestTotals()
        self._conn = store.connect(database_url)
        self._sqlalchemy: Engine | None = None  # for the services housekeeping calls
        self.reload()

    def reload(self) -> None:
        """Re-read registry and state from the database (start-up, and after any failed write)."""
        self.registry = store.load_registry(self._conn)
        self.state = store.load_state(self._conn)

    def close(self) -> None:
        self._conn.close()
        if self._sqlalchemy is not None:
            self._sqlalchemy.dispose()

    def ingest(self, batch: list[Incoming]) -> None:
        """Commit the batch. Retries until the database takes it."""
        delay = 0.5
        while True:
            try:
                plan = self._ingest_once(batch)
                self._complete_reached_work_orders(plan)
                return
            except psycopg.OperationalError as error:
                log.warning("database unavailable; batch will be retried", error=str(error), retry_in_s=delay)
                time.sleep(delay)
                delay = min(delay * 2, 10)
                self._reconnect()
            except psycopg.Error as error:
                self._conn.rollback()
                self.reload()
                if len(batch) == 1:
                    self._dead_letter(batch[0], f"database refused the message: {error}")
                    return
                log.warning("database refused a batch; retrying message by message", error=str(error), size=len(batch))
                for incoming in batch:
                    self.ingest([incoming])
                return

    def _ingest_once(self, batch: list[Incoming]) -> BatchPlan:
        parsed = parse_batch(batch, self.registry)
        if any(reason.startswith(UNKNOWN_MACHINE) for *_, reason in parsed.dead_letters):
            # a machine registered since start-up is not unknown: look again before refusing
            self.registry = store.load_registry(self._conn)
            parsed = parse_batch(batch, self.registry)
        already = store.find_ingested(self._conn, parsed.positions_to_look_up(self.state.cursors))
        windows = store.load_dispatch_windows(self._conn, parsed.earliest_sample())
        orders = store.load_order_statuses(self._conn, parsed.reported_orders())
        plan = plan_batch(parsed, self.state, self.registry, already, windows, orders)
        plan.backflush = store.backflush(self._conn, plan.attributions)
        store.write_plan(self._conn, plan)
        self.state = plan.state
        self.totals.add(plan)
        if self.on_commit is not None:
            self.on_commit(plan, datetime.now(UTC))
        return plan

    def _complete_reached_work_orders(self, plan: BatchPlan) -> None:
        """After the batch's commit, in a transaction of its own: a failure here must never send the
        committed batch back through the retry path. The next batch of the order checks again."""
        try:
            for work_order in store.complete_reached_work_orders(self._conn, plan.attributions):
                log.info("work order reached its quantity and was completed", work_order=work_order)
        except psycopg.Error as error:
            self._conn.rollback()
            log.warning("auto-complete check failed; retried with the order's next counts", error=str(error))

    def housekeeping(self) -> None:
        """Between batches, every few seconds: evaluate the inventory alerts. A failure is logged and
        tried again next time; ingest goes on."""
        try:
            with Session(self._engine()) as session:
                _log_transitions(alerts.evaluate_inventory(session))
        except (psycopg.Error, SQLAlchemyError) as error:
            self._conn.rollback()
            log.warning("housekeeping failed; tried again later", error=str(error))

    def evaluate_alerts(self, offline_after_s: int, listening_since: datetime) -> None:
        """Between batches, every few seconds: one round of the machine alerts (`alert_engine`). A failure,
        whatever it is, is logged and the next round tries again; ingest goes on."""
        try:
            with Session(self._engine()) as session:
                _log_transitions(alert_engine.evaluate_machines(session, offline_after_s=offline_after_s,
                                                              listening_since=listening_since))
        except Exception:
            log.exception("alert round failed; tried again next round")

    def _engine(self) -> Engine:
        if self._sqlalchemy is None:
            self._sqlalchemy = make_engine(self.database_url)
        return self._sqlalchemy

    def _dead_letter(self, incoming: Incoming, reason: str) -> None:
        plan = BatchPlan(state=self.state, dead_letters=[(incoming.received_at, incoming.topic, incoming.payload, reason)])
        store.write_plan(self._conn, plan)
        self.totals.add(plan)

    def _reconnect(self) -> None:
        try:
            self._conn.close()
            self._conn = store.connect(self.database_url)
            self.reload()
        except psycopg.OperationalError:
            pass


def _log_transitions(transitions: list[Transition]) -> None:
    for transition in transitions:
        log.info(f"alert {transition.event.value}", kind=transition.alert.kind.value, subject=transition.alert.subject,
                 detail=transition.alert.detail)
