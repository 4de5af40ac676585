"""The edge's metrics (`mes edge --metrics-port`; docs/metrics.md), read at each scrape from what the agent
keeps anyway: its `EdgeMetrics`, its disk queue's depth and bytes, and each machine's connection health
(edge/sources/health.py: status, failures, unusable readings). Nothing here counts on its own.

The scrape runs on the metrics server's thread: it reads numbers and copies of small dicts, each read
atomic under the GIL; a scrape may see one flush's changes half applied, never a torn number."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, get_args

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from kernel.metrics import counter, gauge
from kernel.payload import ConnectionStatus

if TYPE_CHECKING:
    from edge.agent import EdgeAgent

# EdgeMetrics field -> (metric name without _total, what it counts)
EDGE_COUNTERS = {
    "readings_total": ("mes_edge_readings", "Readings taken from the PLCs during this run"),
    "enqueued_total": ("mes_edge_enqueued_messages", "Messages written to the disk queue during this run"),
    "published_total": ("mes_edge_published_messages", "Messages the broker acknowledged (PUBACK) during this run"),
    "confirmed_total": ("mes_edge_confirmed_messages", "Messages the core confirmed committed during this run"),
    "dropped_total": ("mes_edge_dropped_messages", "Messages the queue's bound dropped before the broker had them (every run)"),
    "dropped_delivered_total": ("mes_edge_dropped_delivered_messages",
                                "Messages the queue's bound dropped while only the broker held them (every run)"),
    "compacted_total": ("mes_edge_compacted_messages", "Queued messages merged away by compaction at the bound (every run)"),
    "resends": ("mes_edge_resends", "Times the core asked for its messages again from its position"),
    "reconnects_total": ("mes_edge_mqtt_reconnects", "Connections to the broker after the first during this run"),
}
EDGE_GAUGES = {
    "queue_depth": ("mes_edge_queue_messages", "Messages in the disk queue (not yet confirmed by the core)"),
    "queue_bytes": ("mes_edge_queue_bytes", "Bytes of samples in the disk queue"),
    "in_flight": ("mes_edge_in_flight_messages", "Messages handed to the broker, not yet acknowledged"),
    "held_in_memory": ("mes_edge_held_in_memory_messages", "Messages held in memory while the disk refuses writes"),
    "disk_full": ("mes_edge_disk_full", "1 while the disk queue refuses writes"),
    "connected": ("mes_edge_mqtt_connected", "1 while the edge is connected to the broker"),
    "epoch": ("mes_edge_epoch", "The edge's current epoch (one per start)"),
}
STATUSES: tuple[ConnectionStatus, ...] = get_args(ConnectionStatus)
MACHINE_LABELS = ["edge_id", "machine", "protocol"]


def edge_families(agent: EdgeAgent) -> Iterator[Metric]:
    edge_id, metrics = agent.edge_id, agent.metrics
    for field, (name, documentation) in EDGE_COUNTERS.items():
        yield counter(name, documentation, getattr(metrics, field), edge_id=edge_id)
    for field, (name, documentation) in EDGE_GAUGES.items():
        yield gauge(name, documentation, int(getattr(metrics, field)), edge_id=edge_id)
    yield gauge("mes_edge_queue_max_messages", "The disk queue's bound in messages", agent.queue_max, edge_id=edge_id)
    yield gauge("mes_edge_queue_max_bytes", "The disk queue's bound in bytes of samples", agent.queue_max_bytes, edge_id=edge_id)
    yield from machine_families(agent)


def machine_families(agent: EdgeAgent) -> Iterator[Metric]:
    status = GaugeMetricFamily("mes_edge_machine_status", "1 for the machine's current connection status",
                               labels=[*MACHINE_LABELS, "status"])
    faults = CounterMetricFamily("mes_edge_machine_faults", "Failures reported for the machine (connection, read, "
                                 "refused address), by the status they led to; repeats of one failure count once",
                                 labels=[*MACHINE_LABELS, "status"])
    unusable = CounterMetricFamily("mes_edge_unusable_readings", "Readings that could not be used, by reason",
                                   labels=[*MACHINE_LABELS, "reason"])
    for source in list(agent.sources):
        protocols = {machine.id: machine.protocol for machine in source.machines}
        for machine_id, connection in source.health.snapshot(source.stale_after_s()).items():
            labels = [agent.edge_id, machine_id, protocols[machine_id]]
            for each in STATUSES:
                status.add_metric([*labels, each], int(connection.status == each))
            for each, count in source.health.faults(machine_id).items():
                faults.add_metric([*labels, each], count)
            for reason, count in connection.unusable.items():
                unusable.add_metric([*labels, reason], count)
    yield from (status, faults, unusable)
