"""Boards that don't slow down with history: the line board's queries over a small and a large history.

Two databases of the same plant (20 machines on one line) hold the same last hours of production and differ
only in how much older history lies before them: SMALL and LARGE rows of `samples` in all (1M and 10M by
default), with the production intervals, states, attributions and hourly rollups the ingest and the rollup job
would have written beside them (generated in SQL, in time order as the ingest appends them: the queries read
tables, whoever filled them). Then, on each
database, every panel query of the Grafana line board as Grafana sends it for the last 6 hours (all machines
selected) and the built-in board's snapshot, each timed as the median of REPEAT runs after a warm-up.
Target: the large history no more than 1.5 × slower than the small one in total; a query of a few milliseconds
is reported, but its ratio is mostly the machine's noise.

    python -m tests.bench.boards [--small 1000000] [--large 10000000] [--repeat 7]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg
from sqlalchemy.orm import Session

from core.service import prepare_database
from dashboards.grafana.boards import boards
from dashboards.grafana.macros import Variable, expand
from dashboards.grafana.panels import panels_of
from dashboards.services.board import snapshot
from kernel.db.models import make_engine
from tests.bench.ingest import bench_plant

MACHINES = 20
TICK_S = 5  # one reading per machine every 5 s: good, scrap and energy samples and one production interval
SIGNALS = ("good", "scrap", "energy_wh")
RANGE = timedelta(hours=6)  # what the board reads: both histories reach further back
INTERVAL = timedelta(seconds=30)
TARGET_RATIO = 1.5
LINE_BOARD = "mes-line"


@dataclass
class QueryTiming:
    name: str
    small_ms: float
    large_ms: float

    @property
    def ratio(self) -> float:
        return self.large_ms / self.small_ms if self.small_ms else float("inf")


@dataclass
class BoardsResult:
    small_samples: int
    large_samples: int
    machines: int = MACHINES
    seed_s: dict[str, float] = field(default_factory=dict)
    table_rows: dict[str, dict[str, int]] = field(default_factory=dict)
    timings: list[QueryTiming] = field(default_factory=list)

    @property
    def total(self) -> QueryTiming:
        return QueryTiming("all queries", sum(t.small_ms for t in self.timings), sum(t.large_ms for t in self.timings))


def history_seconds(samples: int) -> int:
    """How far back a history of `samples` rows of `samples` reaches at this plant's rate."""
    per_second = MACHINES * len(SIGNALS) / TICK_S
    return int(samples / per_second)


SEED = """
WITH ticks AS (
    SELECT m.machine_id, t AS ts, extract(epoch FROM t)::bigint / %(tick_s)s AS seq
    FROM machines m CROSS JOIN generate_series(%(start)s::timestamptz, %(end)s::timestamptz, %(tick)s::interval) AS t
)
{insert}
"""
INSERTS = {
    "samples": """INSERT INTO samples (machine_id, ts, signal, value)
        SELECT machine_id, ts, signal, seq * (CASE signal WHEN 'energy_wh' THEN 30 ELSE 1 END)
        FROM ticks CROSS JOIN unnest(%(signals)s::text[]) AS signal ORDER BY ts""",
    "production_intervals": """INSERT INTO production_intervals
            (machine_id, start_ts, end_ts, good, scrap, energy_wh, edge_id, epoch, seq)
        SELECT machine_id, ts - %(tick)s::interval, ts, 4 + (seq %% 2), (seq %% 17 = 0)::int, 30, 'bench-edge',
               hashtext(machine_id), seq
        FROM ticks ORDER BY ts""",
    "production_attributions": """INSERT INTO production_attributions
            (edge_id, epoch, seq, machine_id, work_order_id, good, scrap, energy_wh, first_ts, last_ts)
        SELECT 'bench-edge', hashtext(machine_id), seq, machine_id, NULL, 4 + (seq %% 2), (seq %% 17 = 0)::int, 30,
               ts - %(tick)s::interval, ts
        FROM ticks ORDER BY ts""",
    # a state change every 10 minutes: running, with a 1-minute stop in each hour
    "machine_states": """INSERT INTO machine_states (machine_id, ts, state_code, fault_code, edge_id, epoch, seq)
        SELECT machine_id, ts, CASE WHEN extract(minute FROM ts) = 30 THEN 3 ELSE 1 END,
               CASE WHEN extract(minute FROM ts) = 30 THEN 301 ELSE 0 END, 'bench-edge', 1, seq
        FROM ticks WHERE extract(epoch FROM ts)::bigint %% 600 = 0 ORDER BY ts""",
}
HOURLY = ("""
INSERT INTO production_hourly (bucket, machine_id, good, scrap, energy_wh, intervals)
SELECT mes_bucket(INTERVAL '1 hour', end_ts), machine_id, sum(good), sum(scrap), sum(energy_wh), count(*)
FROM production_intervals GROUP BY 1, 2""", """
INSERT INTO oee_hourly (machine_id, bucket, planned_production_s, planned_downtime_s, unknown_s, run_s, stopped_s,
                        breakdown_s, microstop_s, failures, microstops, ideal_s, total, good, energy_wh, refreshed_at)
SELECT machine_id, hour, 3600, 0, 0, 3540, 60, 60, 0, 1, 0, 3400, 3540, 3400, 21600, now()
FROM machines CROSS JOIN generate_series(date_trunc('hour', %(start)s::timestamptz), %(end)s::timestamptz, '1 hour') AS hour""", """
INSERT INTO downtime_hourly (machine_id, bucket, reason_code, stop_kind, stops, seconds)
SELECT machine_id, hour, 'unassigned', 'breakdown', 1, 60
FROM machines CROSS JOIN generate_series(date_trunc('hour', %(start)s::timestamptz), %(end)s::timestamptz, '1 hour') AS hour""")


def seed(database_url: str, now: datetime, samples: int) -> tuple[float, dict[str, int]]:
    """The plant's history: `samples` rows of samples ending at `now`, in chunks of a day so that no statement
    holds the whole history in memory; then VACUUM ANALYZE, as autovacuum would have done long before a board read it
    (its statistics, and the summaries of the BRIN time indexes: an unsummarized range is read whole)."""
    began = time.perf_counter()
    end = datetime.fromtimestamp(int(now.timestamp()) // 600 * 600, UTC)  # on the 5 s and the 10-minute grid
    start = end - timedelta(seconds=history_seconds(samples) // 600 * 600)  # the state changes' grid too
    with psycopg.connect(database_url, autocommit=True) as connection:
        chunk_start = start
        while chunk_start < end:
            chunk_end = min(chunk_start + timedelta(days=1), end)
            parameters = {"start": chunk_start, "end": chunk_end - timedelta(seconds=TICK_S) if chunk_end < end else chunk_end,
                          "tick": f"{TICK_S} seconds", "tick_s": TICK_S, "signals": list(SIGNALS)}
            for insert in INSERTS.values():
                connection.execute(SEED.format(insert=insert), parameters)
            chunk_start = chunk_end
        for statement in HOURLY:
            connection.execute(statement, {"start": start, "end": end})
        connection.execute("VACUUM ANALYZE")
        rows = {table: connection.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for table in (*INSERTS, "production_hourly", "oee_hourly", "downtime_hourly")}
    return time.perf_counter() - began, rows


def line_board_queries(connection: psycopg.Connection, now: datetime) -> list[tuple[str, str]]:
    """(panel title, SQL) of every query of the line board for the last 6 hours, every variable on "All"."""
    board = next(board for board in boards() if board["uid"] == LINE_BOARD)
    variables: dict[str, Variable] = {}
    for variable in board["templating"]["list"]:
        sql = expand(variable["query"], time_from=now - RANGE, time_to=now, variables=variables)
        options = tuple(str(value) for value, *_ in connection.execute(sql).fetchall())
        variables[variable["name"]] = Variable(options, quoted=variable["multi"] or variable["includeAll"])
    queries = []
    for row, panel in panels_of(board):
        repeat = row.get("repeat") if row else None
        scope = {repeat: Variable(variables[repeat].values[:1])} if repeat else {}  # the first of a repeated row
        for number, target in enumerate(panel["targets"]):
            suffix = f" #{number + 1}" if len(panel["targets"]) > 1 else ""
            queries.append((panel["title"] + suffix, expand(target["rawSql"], time_from=now - RANGE, time_to=now,
                                                            interval=INTERVAL, variables=variables | scope)))
    return queries


def median_ms(run, repeat: int) -> float:
    run()  # warm-up: caches and plans, as on a board that refreshes
    times = []
    for _ in range(repeat):
        began = time.perf_counter()
        run()
        times.append((time.perf_counter() - began) * 1000)
    return statistics.median(times)


def time_queries(database_url: str, now: datetime, repeat: int) -> dict[str, float]:
    timings: dict[str, float] = {}
    with psycopg.connect(database_url, autocommit=True) as connection:
        for title, sql in line_board_queries(connection, now):
            timings[f"Grafana line board: {title}"] = median_ms(lambda sql=sql: connection.execute(sql).fetchall(), repeat)
    engine = make_engine(database_url)
    try:
        def board() -> None:
            with Session(engine) as session:
                snapshot(session, now)

        timings["built-in board snapshot"] = median_ms(board, repeat)
    finally:
        engine.dispose()
    return timings


def run_boards(fresh_database, small: int, large: int, repeat: int, progress=None) -> BoardsResult:
    """`fresh_database(name)` → the URL of a new empty database."""
    now = datetime.now(UTC)
    plant = bench_plant(MACHINES)
    result = BoardsResult(small, large)
    measured: dict[str, dict[str, float]] = {}
    for label, samples in (("small", small), ("large", large)):
        task = progress.add_task(f"boards: {samples:,} samples of history", total=None) if progress else None
        database_url = fresh_database(f"bench_boards_{label}")
        prepare_database(database_url, plant)
        result.seed_s[label], result.table_rows[label] = seed(database_url, now, samples)
        measured[label] = time_queries(database_url, now, repeat)
        if progress:
            progress.update(task, total=1, completed=1)
    result.timings = [QueryTiming(name, measured["small"][name], measured["large"][name]) for name in measured["small"]]
    return result


def print_result(result: BoardsResult) -> None:
    print(f"history: {result.small_samples:,} vs {result.large_samples:,} samples "
          f"(seeded in {result.seed_s['small']:.0f} s and {result.seed_s['large']:.0f} s)")
    for timing in [*result.timings, result.total]:
        verdict = "ok" if timing.ratio <= TARGET_RATIO else "SLOWER"
        print(f"{timing.small_ms:9.1f} ms {timing.large_ms:9.1f} ms  {timing.ratio:5.2f} ×  {verdict:6}  {timing.name}")


def main() -> None:
    from kernel.logs import configure_logging
    from kernel.settings import Settings
    from tests.bench.infra import services

    parser = argparse.ArgumentParser(prog="python -m tests.bench.boards", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--small", type=int, default=1_000_000, help="rows of samples in the small history")
    parser.add_argument("--large", type=int, default=10_000_000, help="rows of samples in the large history")
    parser.add_argument("--repeat", type=int, default=7, help="timed runs per query; the median counts")
    args = parser.parse_args()
    configure_logging("WARNING")
    settings = Settings()
    with services(settings, settings.data_dir / "bench") as svc:
        print_result(run_boards(svc.fresh_database, args.small, args.large, args.repeat))


if __name__ == "__main__":
    main()
