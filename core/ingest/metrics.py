"""What the ingest observes per committed batch (histograms): its size, its transaction's duration and the
lag from the broker's delivery of its oldest message to its commit. Counts the ingest keeps anyway
(`IngestTotals`) are read at scrape time (core.metrics)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from prometheus_client import CollectorRegistry, Histogram

from core.ingest.plan import Incoming
from kernel.metrics import SECONDS_BUCKETS

BATCH_BUCKETS = (1, 2, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000)


class IngestMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self.batch_messages = Histogram("mes_ingest_batch_messages", "Messages per committed ingest batch",
                                        registry=registry, buckets=BATCH_BUCKETS)
        self.commit_seconds = Histogram("mes_ingest_commit_seconds",
                                        "Duration of one ingest batch's transaction (load, plan, write, commit)",
                                        registry=registry, buckets=SECONDS_BUCKETS)
        self.lag_seconds = Histogram("mes_ingest_lag_seconds",
                                     "From the delivery of a batch's oldest message by the broker to the batch's commit",
                                     registry=registry, buckets=SECONDS_BUCKETS)

    def committed(self, batch: Sequence[Incoming], transaction_s: float, committed_at: datetime) -> None:
        self.batch_messages.observe(len(batch))
        self.commit_seconds.observe(transaction_s)
        oldest = min(incoming.received_at for incoming in batch)
        self.lag_seconds.observe(max(0.0, (committed_at - oldest).total_seconds()))
