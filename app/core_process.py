"""The core process (`mes core`): the ingest consumer, and beside it the core's jobs, registered with one
supervisor (`kernel.jobs`) so that ingest never runs them and they start and stop together.

| job                  | every             | where            | work                                           |
| -------------------- | ----------------- | ---------------- | ---------------------------------------------- |
| mes-alerts           | `alert_every_s`   | thread           | machine alerts (`mes.services.alert_engine`)   |
| mes-inventory-alerts | 30 s              | thread           | inventory alerts (`mes.services.alerts`)       |
| mes-review-alerts    | 30 s              | thread           | review_waiting (`mes.services.review_waiting`) |
| planning-shortages   | 60 s              | thread           | planned_shortage (`planning.services.shortage_alerts`) |
| mes-notifications    | 0.5 s             | thread           | the alert outbox (`mes.services.notifications`) |
| mes-valuation        | 1 s               | thread           | stock valuation (`inventory.services.valuation`) |
| mes-rollups          | `rollup_every_s`  | child process    | board rollups (`mes.services.rollups`)         |
| mes-planner          | `plan_every_s`    | child process    | the live plan: net change, and a regeneration every `plan_regenerate_every_s` (`planning.services.live`) |
| mes-retention        | `retention_every_s` | thread         | day partitions ahead, old samples and message keys dropped (`core.services.retention`) |
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from urllib.parse import urlsplit

from sqlalchemy.exc import OperationalError

from inventory.services.valuation import ValuationWorker
from kernel.db.advisory import AdvisoryLock, LockHeld
from kernel.jobs import Jobs, OnRound
from kernel.logs import get_logger
from kernel.metrics import MetricsServer
from kernel.settings import Settings
from core.ingest.consumer import CoreConsumer
from core.ingest.partition import EdgeLeases
from core.ingest.plan import IngestLimits
from core.metrics import CoreMetrics
from core.rules.sequencing import Plausible
from core.services.retention import Retention, RetentionDays
from mes.services.alert_engine import MachineAlerts
from mes.services.alerts import InventoryAlerts
from mes.services.costing import running_cost
from mes.services.notifications import NotificationSender
from mes.services.review_waiting import ReviewAlerts
from mes.rules.webhooks import Network, networks
from mes.services.rollups import Rollups
from planning.services.live import LivePlanner
from planning.services.shortage_alerts import ShortageAlerts

log = get_logger("mes.core")
_DEFAULTS = Settings.model_fields
JOBS_LEADER_EVERY_S = 5.0  # how often a core of several that does not run the jobs asks whether it may
INVENTORY_ALERTS_EVERY_S = 30.0
REVIEW_ALERTS_EVERY_S = 30.0
SHORTAGE_ALERTS_EVERY_S = 60.0  # a whole live plan each round
NOTIFICATIONS_EVERY_S = 0.5
VALUATION_EVERY_S = 1.0
DEFAULT_RETENTION = RetentionDays(_DEFAULTS["retention_samples_days"].default, _DEFAULTS["retention_messages_days"].default)


class AnotherCoreRuns(RuntimeError):
    """A second core with the same MQTT client id: it would take the first one's broker session."""


def default_client_id(database_url: str) -> str:
    """`mes-core-<database>-<hash>`: one per database the core writes to (host, port, socket and name; never
    the credentials), so the cores of two plants never share a broker session, and two cores of one plant
    get the same id, which the second is refused (`CoreProcess.run`)."""
    parts = urlsplit(database_url)
    where = f"{parts.hostname}:{parts.port}{parts.path}?{parts.query}"
    database = parts.path.strip("/")[:24] or "mes"
    return f"mes-core-{database}-{hashlib.sha256(where.encode()).hexdigest()[:10]}"


def core_options(settings: Settings) -> dict:
    """The options of a `CoreProcess` that the settings (MES_* variables, the config file) decide."""
    return {"client_id": settings.core_client_id, "partition": settings.core_partition,
            "batch_max_messages": settings.batch_max_messages, "batch_max_wait_ms": settings.batch_max_wait_ms,
            "max_pending": settings.ingest_max_pending, "max_pending_bytes": settings.ingest_max_pending_bytes,
            "limits": IngestLimits(timedelta(seconds=settings.clock_skew_s),
                                   Plausible(settings.seq_max_gap, settings.epoch_max_gap),
                                   settings.max_payload_bytes, settings.max_samples),
            "alert_every_s": settings.alert_every_s, "offline_after_s": settings.offline_after_s,
            "review_alert_after_s": settings.review_alert_after_s,
            "rollup_every_s": settings.rollup_every_s, "rollup_hours": settings.rollup_hours,
            "plan_every_s": settings.plan_every_s, "plan_regenerate_every_s": settings.plan_regenerate_every_s,
            "retention": RetentionDays(settings.retention_samples_days, settings.retention_messages_days),
            "retention_every_s": settings.retention_every_s,
            "webhook_allow_private": networks(settings.webhook_allow_private),
            "metrics_host": settings.metrics_host, "metrics_port": settings.metrics_port}


def core_jobs(database_url: str, mqtt_url: str, *, client_id: str, alert_every_s: float, offline_after_s: int,
              rollup_every_s: float, rollup_hours: int, review_alert_after_s: int,
              webhook_allow_private: tuple[Network, ...] = (),
              plan_every_s: float = _DEFAULTS["plan_every_s"].default,
              plan_regenerate_every_s: float = _DEFAULTS["plan_regenerate_every_s"].default,
              retention: RetentionDays = DEFAULT_RETENTION,
              retention_every_s: float = _DEFAULTS["retention_every_s"].default,
              on_round: OnRound | None = None) -> Jobs:
    jobs = Jobs(on_round)
    jobs.every("mes-review-alerts", REVIEW_ALERTS_EVERY_S, ReviewAlerts(database_url, review_alert_after_s))
    jobs.every("mes-alerts", alert_every_s, MachineAlerts(database_url, offline_after_s))
    jobs.every("mes-inventory-alerts", INVENTORY_ALERTS_EVERY_S, InventoryAlerts(database_url))
    jobs.every("planning-shortages", SHORTAGE_ALERTS_EVERY_S, ShortageAlerts(database_url))
    jobs.every("mes-notifications", NOTIFICATIONS_EVERY_S,
               NotificationSender(database_url, mqtt_url, client_id=f"{client_id}-notifications",
                                  allow_private=webhook_allow_private))
    jobs.every("mes-valuation", VALUATION_EVERY_S, ValuationWorker(database_url, running_cost))
    jobs.every("mes-retention", retention_every_s, Retention(database_url, retention))
    jobs.every_in_process("mes-rollups", rollup_every_s, Rollups, database_url, rollup_hours, rollup_every_s)
    # CPU work (a regeneration nets every item) that in a thread would hold the ingest's GIL
    jobs.every_in_process("mes-planner", plan_every_s, LivePlanner, database_url, plan_regenerate_every_s)
    return jobs


class CoreProcess:
    """run() consumes on the calling thread until stop(); the jobs run from its start to its end."""

    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str | None = None,
                 alert_every_s: float = _DEFAULTS["alert_every_s"].default,
                 offline_after_s: int = _DEFAULTS["offline_after_s"].default,
                 rollup_every_s: float = _DEFAULTS["rollup_every_s"].default,
                 rollup_hours: int = _DEFAULTS["rollup_hours"].default,
                 review_alert_after_s: int = _DEFAULTS["review_alert_after_s"].default,
                 webhook_allow_private: tuple[Network, ...] = (),
                 plan_every_s: float = _DEFAULTS["plan_every_s"].default,
                 plan_regenerate_every_s: float = _DEFAULTS["plan_regenerate_every_s"].default,
                 retention: RetentionDays = DEFAULT_RETENTION,
                 retention_every_s: float = _DEFAULTS["retention_every_s"].default,
                 metrics_host: str = _DEFAULTS["metrics_host"].default, metrics_port: int | None = None,
                 partition: str = "plant", **consumer_options):
        """`client_id`: the core's MQTT client id (default `default_client_id`); with `partition="edges"`, the stem
        of its edges' client ids. `partition`: "plant", this core ingests the whole plant; "edges", it shares the
        plant's edges with the other cores of its kind on the database (docs/deploy.md), and the jobs run on one of
        them at a time. `metrics_port`: serve the core's metrics there while it runs (0: a free port,
        `metrics_server.port`; None: not served). `consumer_options`: those of `CoreConsumer` (batch sizes, limits,
        `on_commit`, `status_every_s`, `rebalance_every_s`)."""
        self.database_url = database_url
        self.client_id = client_id = client_id or default_client_id(database_url)
        self.partitioned = partition == "edges"
        self.metrics = CoreMetrics(database_url)
        self.consumer = CoreConsumer(database_url, mqtt_url, client_id=client_id, metrics=self.metrics.ingest,
                                     partition=EdgeLeases(database_url) if self.partitioned else None, **consumer_options)
        self.metrics.watch(self.consumer)
        self.metrics_server = (MetricsServer(self.metrics.registry, metrics_host, metrics_port)
                               if metrics_port is not None else None)
        self.jobs = core_jobs(database_url, mqtt_url, client_id=client_id, alert_every_s=alert_every_s,
                              offline_after_s=offline_after_s, rollup_every_s=rollup_every_s, rollup_hours=rollup_hours,
                              review_alert_after_s=review_alert_after_s, webhook_allow_private=webhook_allow_private,
                              plan_every_s=plan_every_s, plan_regenerate_every_s=plan_regenerate_every_s,
                              retention=retention, retention_every_s=retention_every_s, on_round=self.metrics.jobs)

    def run(self) -> None:
        """Returns after the batch in hand is committed and acknowledged and every job's round in hand is done.
        AnotherCoreRuns, before connecting to the broker, while a core with the same client id runs on this database."""
        with self._sole_core(), self._jobs_running():
            if self.metrics_server is not None:
                self.metrics_server.start()
            try:
                self.consumer.run()
            finally:
                if self.metrics_server is not None:
                    self.metrics_server.stop()
                self.metrics.close()

    @contextmanager
    def _sole_core(self) -> Iterator[None]:
        """For the core's life, a lock per client id in its database: a second core with the id is refused, but for
        cores that share the plant's edges, which hold it shared (and so refuse a whole-plant core beside them)."""
        lock = AdvisoryLock(self.database_url, f"mes core {self.client_id}", shared=self.partitioned)
        try:
            lock.acquire()
        except LockHeld as held:
            raise AnotherCoreRuns(
                f"another core runs with MQTT client id {self.client_id!r} on this database ({held}). Two cores "
                "with one client id take the broker session from each other: stop the other one, give this core "
                "its own database or its own MES_CORE_CLIENT_ID, or run every core of the plant with "
                "MES_CORE_PARTITION=edges.") from None
        try:
            yield
        finally:
            lock.release()

    @contextmanager
    def _jobs_running(self) -> Iterator[None]:
        """The jobs for the core's life; of cores sharing a plant, only on the one holding the jobs lock."""
        if not self.partitioned:
            self.jobs.start()
            try:
                yield
            finally:
                self.jobs.stop()
            return
        leader = _JobsLeader(self.database_url, f"mes core jobs {self.client_id}", self.jobs)
        leader.start()
        try:
            yield
        finally:
            leader.stop()

    def stop(self) -> None:
        """Safe from a signal handler: it only asks."""
        self.consumer.stop()


class _JobsLeader:
    """Runs the jobs once it holds their lock, asking every JOBS_LEADER_EVERY_S; the lock goes with this
    process (a kill -9 included), and another core's leader takes over."""

    def __init__(self, database_url: str, lock_name: str, jobs: Jobs):
        self._lock = AdvisoryLock(database_url, lock_name)
        self._jobs = jobs
        self._stopping = threading.Event()
        self._thread = threading.Thread(target=self._wait_for_lock, name="mes-jobs-leader", daemon=True)
        self._leading = False

    def start(self) -> None:
        self._thread.start()

    def _wait_for_lock(self) -> None:
        while not self._stopping.is_set():
            try:
                self._lock.acquire()
            except LockHeld:
                self._stopping.wait(JOBS_LEADER_EVERY_S)
                continue
            except OperationalError as error:  # the database away: ask again later
                log.warning("could not ask for the jobs lock", error=str(error))
                self._stopping.wait(JOBS_LEADER_EVERY_S)
                continue
            self._leading = True
            log.info("this core runs the jobs")
            self._jobs.start()
            return

    def stop(self) -> None:
        self._stopping.set()
        self._thread.join()
        if self._leading:
            self._jobs.stop()
            self._lock.release()
