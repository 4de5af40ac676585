"""Soak: what a 1,000-machine plant leaves in the database per machine and day, and whether ingest keeps its pace.

The workload of benchmark 1 (`build_workload`: M machines, a message of 1 + 3 × S samples per machine and round),
its rounds spread over two simulated days (accelerated time: each message is received at its own simulated
instant), is fed batch by batch to the core's ingest service (`IngestService.ingest`, the transaction `mes core`
commits per batch) — the broker is not what is measured here. The retention job creates the days' partitions
before (as the running core does ahead of time) and, after, drops the first simulated day with 1-day settings.
Sizes are pg_total_relation_size per table (partitions summed), growth since the empty schema.

TimescaleDB with compression cannot run the ingest here (no server; tests/timescale has TimescaleDB in PGlite, a
WASM PostgreSQL driven from Node): `compressed_day` fills the schema's compressed hypertables there with one day of
rows of the same shape, generated in SQL, compresses them as the policy would after 7 days and measures both.
"""

from __future__ import annotations

import json
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

from core.ingest.plan import Incoming
from core.ingest.rows import ProductionInterval, SampleRow
from core.ingest.service import IngestService
from core.service import prepare_database
from core.services.retention import RetentionDays, apply_retention
from kernel.db.migrations import offline_sql
from kernel.db.models import make_engine
from tests.bench.infra import Services
from tests.bench.ingest import bench_plant, build_workload
from tests.support.node import NpmInstallFailed, node_with_packages

TIMESCALE = Path(__file__).resolve().parents[1] / "timescale"

DAY_S = 86_400
TIMESCALE_MACHINES = 4  # a day of each in PGlite: 1.1 M sample rows, about 15 s
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
    timescale: CompressedDay | str = "not run"  # or why not measured

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

    def timescale_per_machine_day_mb(self) -> float | None:
        """On TimescaleDB once compressed: the hypertables that compress as measured in PGlite, every other table as
        the plain run wrote it (`ingested_messages` is a hypertable too, not compressed)."""
        if not isinstance(self.timescale, CompressedDay):
            return None
        rest = self.per_machine_day_mb({t: size for t, size in self.growth.items() if t not in COMPRESSED_TABLES})
        return rest + sum(self.timescale.per_machine_mb(self.timescale.compressed).values())

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
    task = progress.add_task("soak: a day of TimescaleDB's compressed hypertables in PGlite", total=None)
    result.timescale = compressed_day(TIMESCALE_MACHINES, seconds_per_message)
    progress.update(task, total=1, completed=1)
    return result


@dataclass
class CompressedDay:
    """One day of `machines` machines' rows in TimescaleDB's compressed hypertables (PGlite), before and after."""

    machines: int
    seconds_per_message: int
    rows: dict[str, int]
    raw: dict[str, int]  # hypertable_size, before compression
    compressed: dict[str, int]
    version: str

    def per_machine_mb(self, sizes: dict[str, int]) -> dict[str, float]:
        return {table: size / self.machines / 1e6 for table, size in sizes.items()}


COMPRESSED_TABLES = ("samples", "production_intervals")  # those of the ingest's per-message rows that compress


def _generated_rows_sql(machines: int, seconds_per_message: int) -> str:
    """A day of benchmark 1's shape per machine: good +1 and energy +2 Wh a second, scrap +1 in 3 % of the seconds,
    sub-millisecond jitter on the timestamps, a state sample and a production interval per message."""
    day = "TIMESTAMPTZ '2026-01-05 00:00+00'"
    common = {"machine_id": "'m' || m", "edge_id": "'edge-1'", "epoch": "1", "seq": f"m * 1000000 + s / {seconds_per_message}"}
    sample = {**common, "ts": f"{day} + make_interval(secs => s + random() / 1000)", "signal": "sig",
              "value": "CASE sig WHEN 'good' THEN s + 1 WHEN 'scrap' THEN scrap WHEN 'energy_wh' THEN 2 * (s + 1) ELSE 1 END"}
    interval = {**common, "start_ts": f"{day} + make_interval(secs => s)",
                "end_ts": f"{day} + make_interval(secs => s + {seconds_per_message - 1})",
                "good": str(seconds_per_message), "scrap": "scrap_in", "energy_wh": str(2 * seconds_per_message)}
    sample_columns, interval_columns = SampleRow._fields, ProductionInterval._fields
    return f"""
-- statement
CREATE TABLE generated AS
SELECT m, s, sum(scrapped) OVER (PARTITION BY m ORDER BY s) AS scrap,
       sum(scrapped) OVER (PARTITION BY m ORDER BY s ROWS BETWEEN CURRENT ROW AND {seconds_per_message - 1} FOLLOWING) AS scrap_in
FROM (SELECT m, s, (random() < 0.03)::int AS scrapped FROM generate_series(1, {machines}) m, generate_series(0, 86399) s) seconds;
-- statement
INSERT INTO samples ({", ".join(sample_columns)})
SELECT {", ".join(sample[c] for c in sample_columns)} FROM generated, (VALUES ('good'), ('scrap'), ('energy_wh')) counters(sig)
UNION ALL
SELECT {", ".join(sample[c] for c in sample_columns)} FROM generated, (VALUES ('state')) states(sig) WHERE s % {seconds_per_message} = 0;
-- statement
INSERT INTO production_intervals ({", ".join(interval_columns)})
SELECT {", ".join(interval[c] for c in interval_columns)} FROM generated WHERE s % {seconds_per_message} = 0;
"""


def compressed_day(machines: int, seconds_per_message: int) -> CompressedDay | str:
    """The measurement, or why it could not be made."""
    try:
        node = node_with_packages(TIMESCALE, "TimescaleDB in PGlite")
    except NpmInstallFailed as failed:
        return str(failed)
    except BaseException as skipped:  # node_with_packages skips a pytest test where Node.js is missing
        return str(skipped)
    tables = ", ".join(f"('{t}')" for t in COMPRESSED_TABLES)
    sizes = f"SELECT t AS table, hypertable_size(t::regclass) AS bytes FROM (VALUES {tables}) v(t) ORDER BY t"
    checks = f"""
-- statement
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb';
-- statement
SELECT 'samples' AS table, count(*) AS rows FROM samples UNION ALL SELECT 'production_intervals', count(*) FROM production_intervals;
-- statement
{sizes};
-- statement
SELECT count(compress_chunk(c)) AS chunks FROM (VALUES {tables}) v(t), show_chunks(t::regclass) c;
-- statement
{sizes};
"""
    with tempfile.TemporaryDirectory() as folder:
        schema, checked = Path(folder) / "schema.sql", Path(folder) / "checks.sql"
        schema.write_text(offline_sql(timescale=True) + _generated_rows_sql(machines, seconds_per_message))
        checked.write_text(checks)
        finished = subprocess.run([node, "run_sql.mjs", str(schema), str(checked)], cwd=TIMESCALE, capture_output=True,
                                  text=True, timeout=900)
    if finished.returncode != 0:
        return f"PGlite failed: {finished.stderr.strip()[-500:]}"
    version, rows, raw, _, compressed = (check["rows"] for check in json.loads(finished.stdout)["checks"])
    return CompressedDay(machines, seconds_per_message, {r["table"]: int(r["rows"]) for r in rows},
                         {r["table"]: int(r["bytes"]) for r in raw}, {r["table"]: int(r["bytes"]) for r in compressed},
                         version[0]["extversion"])
