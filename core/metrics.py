"""The core's metrics (`mes core --metrics-port`; docs/metrics.md): what the ingest counted (its totals, read
at each scrape), what waits in memory, the broker connection, the histograms of each committed batch
(core.ingest.metrics), what waits for review (read from the database at each scrape: plant-wide, the same
on every core) and the rounds of the core's jobs (kernel.metrics.JobMetrics)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client import CollectorRegistry
from prometheus_client.core import Metric
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from core.ingest.consumer import CoreConsumer
from core.ingest.metrics import IngestMetrics
from kernel.db.models import make_engine
from kernel.logs import get_logger
from kernel.metrics import Collected, JobMetrics, counter, gauge
from mes.services.review_waiting import waiting

log = get_logger(__name__)

# IngestTotals field -> (metric name without _total, what it counts)
INGEST_COUNTERS = {
    "batches": ("mes_ingest_batches", "Ingest batches committed"),
    "messages": ("mes_ingest_messages", "Data messages ingested (duplicates, held messages and dead letters are counted apart)"),
    "samples": ("mes_ingest_samples", "Samples of the messages committed"),
    "intervals": ("mes_ingest_intervals", "Production intervals written"),
    "dead_letters": ("mes_ingest_dead_letters", "Messages set aside as dead letters"),
    "duplicates": ("mes_ingest_duplicates", "Messages skipped as already ingested"),
    "held": ("mes_ingest_held_messages", "Messages held until their edge publishes again from the core's position"),
    "quarantined_events": ("mes_ingest_quarantined_steps", "Counter steps quarantined for review"),
}


def consumer_families(consumer: CoreConsumer) -> Iterator[Metric]:
    totals = consumer.service.totals
    for field, (name, documentation) in INGEST_COUNTERS.items():
        yield counter(name, documentation, getattr(totals, field))
    count, size = consumer.pending
    yield gauge("mes_ingest_pending_messages", "Deliveries held in memory waiting for ingest", count)
    yield gauge("mes_ingest_pending_bytes", "Payload bytes of the deliveries held in memory", size)
    yield gauge("mes_ingest_pending_max_messages", "The bound of deliveries held in memory", consumer.max_pending)
    yield counter("mes_ingest_waited_for_room", "Deliveries that waited for room in memory (ingest was behind)",
                  consumer.waited_for_room)
    yield gauge("mes_core_mqtt_connected", "1 while the core is connected to the broker", int(consumer.connected()))
    yield counter("mes_core_mqtt_reconnects", "Connections to the broker after the first",
                  consumer.reconnects())


class ReviewWaiting:
    """Dead letters and quarantined counter steps waiting for a person, counted at each scrape."""

    def __init__(self, database_url: str) -> None:
        self.engine = make_engine(database_url)

    def families(self) -> Iterator[Metric]:
        try:
            with Session(self.engine) as session:
                found = waiting(session)
        except SQLAlchemyError as error:
            log.warning("metrics: what waits for review could not be counted", error=str(error.orig or error))
            yield gauge("mes_review_up", "1 when the count of what waits for review could be read", 0)
            return
        yield gauge("mes_review_up", "1 when the count of what waits for review could be read", 1)
        yield gauge("mes_review_pending_dead_letters", "Dead letters waiting for review", found["dead_letters"])
        yield gauge("mes_review_pending_steps", "Quarantined counter steps waiting for review", found["quarantined_steps"])

    def close(self) -> None:
        self.engine.dispose()


class CoreMetrics:
    """One core's registry. `watch(consumer)` once the consumer, which takes `ingest`, exists."""

    def __init__(self, database_url: str) -> None:
        self.registry = CollectorRegistry()
        self.ingest = IngestMetrics(self.registry)
        self.jobs = JobMetrics(self.registry)
        self.review = ReviewWaiting(database_url)
        self.registry.register(Collected(self.review.families))

    def watch(self, consumer: CoreConsumer) -> None:
        self.registry.register(Collected(lambda: consumer_families(consumer)))

    def close(self) -> None:
        self.review.close()
