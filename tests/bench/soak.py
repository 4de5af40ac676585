"""Soak: what a 1,000-machine plant leaves in the database per machine and day, and whether ingest keeps its pace.

The workload of benchmark 1 (`build_workload`: M machines, a message of 1 + 3 × S samples per machine and round),
its rounds spread over two simulated days (accelerated time: each message is received at its own simulated
instant), is fed batch by batch to the core's ingest service (`IngestService.ingest`, the transaction `mes core`
commits per batch) — the broker is not what is measured here. The retention job creates the days' partitions
before (as the running core does ahead of time) and, after, drops the first simulated day with 1-day settings.
Sizes are pg_total_relation_size per table (partitions summed), growth since the empty schema.
"""

from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

from core.ingest.plan import Incoming
from core.ingest.service import IngestService
from core.service import prepare_database
from core.services.retention import RetentionDays, apply_retention
from kernel.db.models import make_engine
from tests.bench.infra import Services
from tests.bench.ingest import bench_plant, build_workload

DAY_S = 86_400
SPAN_DAYS = 2  # simulated days the rounds are spread over, so the retention job has a whole day to drop
# what the ingest writes, growing with the messages (the plant's registry and master data are left out)
TABLES = ["samples", "ingested_messages", "production_intervals", "production_attributions", "production_hourly",
          "machine_states", "counter_events", "edge_status_events", "dead_letters", "edge_cursors", "counter_state",
          "machine_live", "machine_connections"]
HOURLY = "production_hourly"
DROPPABLE = {"samples", "ingested_messages"}
# a row per machine, counter or edge, rewritten in place: their size is the plant's, not the day's
BOUNDED = {"edge_cursors", "counter_state", "machine_live", "machine_connections"}  # by age (core.services.retention); the rest is kept forever


@dataclass
class SoakResult:
    machines: int
    messages: int
    samples: int
    seconds_per_message: int
    batch_max_messages: int
    growth: dict[str, int]  # bytes per table after the ingest, less the empty schema's
    after_retention: dict[str, int]  # the same after the job dropped the first simulated day
    rows: dict[str, int]
    batch_seconds: list[float] = field(default_factory=list)
    batch_messages: list[int] = field(default_factory=list)
    dropped: list[str] = field(default_factory=list)

    @property
    def messages_per_machine_day(self) -> float:
        return DAY_S / self.seconds_per_message

    def per_machine_day_mb(self, tables: dict[str, int], only: set[str] | None = None) -> float:
        """Bytes per message × messages per machine and day; `production_hourly` has a row per machine and hour
        however many messages (here each round falls in an hour of its own), so it counts 24 of its rows a day; the
        BOUNDED tables do not grow with the days."""
        total = 0.0
        for table, size in tables.items():
            if (only is None or table in only) and table not in BOUNDED:
                total += (size / max(1, self.rows[table]) * 24 if table == HOURLY
                          else size / self.messages * self.messages_per_machine_day)
        return total / 1e6

    def rate(self, part: slice) -> float:
        """Messages per second of the median batch of a part: a batch that another session of this shared machine
        slowed moves it less than a sum would."""
        return statistics.median(n / s for n, s in zip(self.batch_messages[part], self.batch_seconds[part], strict=True))

    @property
    def thirds(self) -> tuple[slice, slice]:
        """The first and the last third of the batches after the first round, whose messages make every machine's
        baselines and first rows of state (a start-up cost, not a pace)."""
        first_round = -(-self.machines // self.batch_max_messages)
        third = max(1, (len(self.batch_seconds) - first_round) // 3)
        return slice(first_round, first_round + third), slice(-third, None)


def table_bytes(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {table: conn.execute(
            """SELECT coalesce((SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(%(t)s::regclass)),
                               pg_total_relation_size(%(t)s::regclass))::bigint""",
            {"t": table}).fetchone()[0] for table in TABLES}


def row_counts(database_url: str) -> dict[str, int]:
    with psycopg.connect(database_url) as conn:
        return {table: conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0] for table in TABLES}


def run_soak(services: Services, machines: int, messages: int, seconds_per_message: int, batch_max_messages: int,
             progress) -> SoakResult:
    plant = bench_plant(machines, publishers=1)
    rounds = -(-messages // machines)
    start = datetime.combine(datetime.now(UTC).date() - timedelta(days=SPAN_DAYS + 1), datetime.min.time(), UTC)
    workload = build_workload(plant, messages, seconds_per_message, 1, start=start,
                              round_every_s=SPAN_DAYS * DAY_S // rounds)
    incoming = []
    for topic, payload in workload.per_publisher[0]:
        last = max(datetime.fromisoformat(sample["ts"]) for sample in json.loads(payload)["samples"])
        incoming.append(Incoming(topic, payload, last + timedelta(seconds=1)))
    database_url = services.fresh_database("bench_soak")
    prepare_database(database_url, plant)
    engine = make_engine(database_url)
    try:
        apply_retention(engine, RetentionDays(0, 0), start)  # the days ahead, as the core's job keeps them
        empty = table_bytes(database_url)
        service = IngestService(database_url)
        result = SoakResult(machines, workload.messages, workload.samples, seconds_per_message, batch_max_messages, {}, {}, {})
        task = progress.add_task(f"soak: {machines:,} machines, {workload.messages:,} messages", total=workload.messages)
        try:
            for first in range(0, len(incoming), batch_max_messages):
                batch = incoming[first:first + batch_max_messages]
                began = time.perf_counter()
                service.ingest(batch)
                result.batch_seconds.append(time.perf_counter() - began)
                result.batch_messages.append(len(batch))
                progress.update(task, advance=len(batch))
        finally:
            service.close()
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute("VACUUM ANALYZE")  # the visibility and free-space maps a running database has too
        grown = table_bytes(database_url)
        result.growth = {table: grown[table] - empty[table] for table in TABLES}
        result.rows = row_counts(database_url)
        end = start + timedelta(days=SPAN_DAYS)
        result.dropped = apply_retention(engine, RetentionDays(1, 1), end).dropped
        kept = table_bytes(database_url)
        result.after_retention = {table: kept[table] - empty[table] for table in TABLES}
    finally:
        engine.dispose()
    return result
