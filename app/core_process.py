"""The core process (`mes core`): the ingest consumer, and beside it the core's jobs, registered with one
supervisor (`kernel.jobs`) so that ingest never runs them and they start and stop together.

| job                  | every             | where            | work                                           |
| -------------------- | ----------------- | ---------------- | ---------------------------------------------- |
| mes-alerts           | `alert_every_s`   | thread           | machine alerts (`mes.services.alert_engine`)   |
| mes-inventory-alerts | 30 s              | thread           | inventory alerts (`mes.services.alerts`)       |
| mes-notifications    | 0.5 s             | thread           | the alert outbox (`mes.services.notifications`) |
| mes-valuation        | 1 s               | thread           | stock valuation (`inventory.services.valuation`) |
| mes-rollups          | `rollup_every_s`  | child process    | board rollups (`mes.services.rollups`)         |
"""

from __future__ import annotations

from inventory.services.valuation import ValuationWorker
from kernel.jobs import Jobs
from kernel.settings import Settings
from core.ingest.consumer import CoreConsumer
from mes.services.alert_engine import MachineAlerts
from mes.services.alerts import InventoryAlerts
from mes.services.costing import running_cost
from mes.services.notifications import NotificationSender
from mes.rules.webhooks import Network, networks
from mes.services.rollups import Rollups

_DEFAULTS = Settings.model_fields
INVENTORY_ALERTS_EVERY_S = 30.0
NOTIFICATIONS_EVERY_S = 0.5
VALUATION_EVERY_S = 1.0


def core_options(settings: Settings) -> dict:
    """The options of a `CoreProcess` that the settings (MES_* variables, the config file) decide."""
    return {"batch_max_messages": settings.batch_max_messages, "batch_max_wait_ms": settings.batch_max_wait_ms,
            "alert_every_s": settings.alert_every_s, "offline_after_s": settings.offline_after_s,
            "rollup_every_s": settings.rollup_every_s, "rollup_hours": settings.rollup_hours,
            "webhook_allow_private": networks(settings.webhook_allow_private)}


def core_jobs(database_url: str, mqtt_url: str, *, client_id: str, alert_every_s: float, offline_after_s: int,
              rollup_every_s: float, rollup_hours: int, webhook_allow_private: tuple[Network, ...] = ()) -> Jobs:
    jobs = Jobs()
    jobs.every("mes-alerts", alert_every_s, MachineAlerts(database_url, offline_after_s))
    jobs.every("mes-inventory-alerts", INVENTORY_ALERTS_EVERY_S, InventoryAlerts(database_url))
    jobs.every("mes-notifications", NOTIFICATIONS_EVERY_S,
               NotificationSender(database_url, mqtt_url, client_id=f"{client_id}-notifications",
                                  allow_private=webhook_allow_private))
    jobs.every("mes-valuation", VALUATION_EVERY_S, ValuationWorker(database_url, running_cost))
    jobs.every_in_process("mes-rollups", rollup_every_s, Rollups, database_url, rollup_hours, rollup_every_s)
    return jobs


class CoreProcess:
    """run() consumes on the calling thread until stop(); the jobs run from its start to its end."""

    def __init__(self, database_url: str, mqtt_url: str, *, client_id: str = "mes-core",
                 alert_every_s: float = _DEFAULTS["alert_every_s"].default,
                 offline_after_s: int = _DEFAULTS["offline_after_s"].default,
                 rollup_every_s: float = _DEFAULTS["rollup_every_s"].default,
                 rollup_hours: int = _DEFAULTS["rollup_hours"].default, webhook_allow_private: tuple[Network, ...] = (),
                 **consumer_options):
        """`consumer_options`: those of `CoreConsumer` (batch sizes, `on_commit`, `status_every_s`)."""
        self.consumer = CoreConsumer(database_url, mqtt_url, client_id=client_id, **consumer_options)
        self.jobs = core_jobs(database_url, mqtt_url, client_id=client_id, alert_every_s=alert_every_s,
                              offline_after_s=offline_after_s, rollup_every_s=rollup_every_s, rollup_hours=rollup_hours,
                              webhook_allow_private=webhook_allow_private)

    def run(self) -> None:
        """Returns after the batch in hand is committed and acknowledged and every job's round in hand is done."""
        self.jobs.start()
        try:
            self.consumer.run()
        finally:
            self.jobs.stop()

    def stop(self) -> None:
        """Safe from a signal handler: it only asks."""
        self.consumer.stop()
