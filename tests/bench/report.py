"""The summary printed at the end and the docs/benchmarks.md it writes."""

from __future__ import annotations

import os
import platform
import statistics
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime

from rich.table import Table

from tests.bench.backflush import BOM, SHORT, BackflushResults
from tests.bench.cores import CoresResults
from tests.bench.soak import BOUNDED, COMPRESSED_TABLES, DROPPABLE, CompressedDay, SoakResult
from tests.bench.boards import LINE_BOARD, TARGET_RATIO, BoardsResult
from tests.bench.ingest import CopyRun, IngestRun, PureRun, Workload
from tests.bench.latency import CHANGES_PER_MACHINE_S, SERVED_SHARE, LatencyRun
from tests.bench.plant import MACHINE_BUSY, MODBUS_PER_SERVER, OPCUA_PER_SERVER, OTHERS
from tests.bench.planning import PlanningResults

INGEST_TARGET = 0.6
LATENCY_TARGET_S = 1.0
LATENCY_TARGET_MACHINES = 1000
REGENERATION_TARGET = (10000, 5.0, 1024)  # items, seconds, MB
NET_CHANGE_TARGET_S = 0.2
BACKFLUSH_TARGET = 0.8
SOAK_TARGET_MB = 200  # per machine and day on plain PostgreSQL before retention
SOAK_TIMESCALE_TARGET_MB = 50  # the same on TimescaleDB with compression
SOAK_RATE_NOISE = 0.15  # the last third's messages/s may fall this share below the first's (this machine's noise)


@dataclass
class Results:
    started_at: datetime
    command: str
    machine: dict[str, str]
    args: dict
    services: dict[str, str] = field(default_factory=dict)
    workload: Workload | None = None
    ingest_runs: list[IngestRun] = field(default_factory=list)
    copy: CopyRun | None = None
    pure: PureRun | None = None
    latency_runs: list[LatencyRun] = field(default_factory=list)
    edge_runs: list[LatencyRun] = field(default_factory=list)  # the edge alone, K stepping up
    backflush: BackflushResults | None = None
    planning: PlanningResults | None = None
    boards: BoardsResult | None = None
    cores: CoresResults | None = None
    soak: SoakResult | None = None
    skipped: list[str] = field(default_factory=list)
    elapsed_s: float = 0.0

    @property
    def ratio(self) -> float | None:
        if not self.ingest_runs or self.copy is None:
            return None
        return self.ingest_runs[0].samples_per_s / self.copy.rows_per_s


def machine_description() -> dict[str, str]:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as handle:
            cpu = next((line.split(":", 1)[1].strip() for line in handle if line.startswith("model name")), cpu)
    except OSError:
        pass
    memory_gb = "?"
    try:
        with open("/proc/meminfo") as handle:
            memory_gb = f"{int(handle.readline().split()[1]) / 1024 / 1024:.0f}"
    except OSError:
        pass
    cores = os.cpu_count() or 0
    load = ", ".join(f"{value:.2f}" for value in os.getloadavg())
    summary = (f"{cores} cores ({cpu}), {memory_gb} GB RAM, Linux {platform.release()}, Python {platform.python_version()}; "
               f"shared/noisy machine, load average at start {load}")
    return {"summary": summary, "cores": str(cores), "cpu": cpu, "load": load}


def _fmt(value: float, digits: int = 0) -> str:
    return f"{value:,.{digits}f}"


def _ms(seconds: float) -> str:
    return "—" if seconds != seconds else f"{seconds * 1000:,.0f}"  # NaN → dash


def _target_rows(results: Results) -> list[tuple[str, str, str]]:
    rows = []
    if results.ratio is not None:
        met = results.ratio >= INGEST_TARGET
        rows.append((f"core ingest ≥ {INGEST_TARGET} × raw COPY of the same rows",
                     f"{results.ratio:.2f} × ({_fmt(results.ingest_runs[0].samples_per_s)} vs {_fmt(results.copy.rows_per_s)} samples/s)",
                     "met" if met else "**MISSED**"))
    if results.latency_runs:
        sustained = [run for run in results.latency_runs if run.sustained]
        at_target = min((run for run in results.latency_runs if run.machines >= LATENCY_TARGET_MACHINES),
                        key=lambda run: run.machines, default=None)
        if at_target is not None:
            stats = at_target.stats()
            met = at_target.sustained and stats["p99"] < LATENCY_TARGET_S
            rows.append((f"end-to-end p99 < {LATENCY_TARGET_S:.0f} s at {LATENCY_TARGET_MACHINES:,} machines × 1 Hz",
                         f"p99 {_ms(stats['p99'])} ms, {'sustained' if at_target.sustained else 'NOT sustained'}",
                         "met" if met else "**MISSED**"))
        best = max(sustained, key=lambda run: run.machines, default=None)
        rows.append(("largest K sustained (of those tried)",
                     f"{best.machines:,} machines (p99 {_ms(best.stats()['p99'])} ms)" if best else "none of those tried",
                     "—"))
        within = [run for run in sustained if run.stats()["p99"] < LATENCY_TARGET_S]
        best = max(within, key=lambda run: run.machines, default=None)
        rows.append((f"largest K sustained with p99 < {LATENCY_TARGET_S:.0f} s (of those tried)",
                     f"{best.machines:,} machines (p99 {_ms(best.stats()['p99'])} ms)" if best else "none of those tried",
                     "—"))
    if results.edge_runs:
        best = max((run for run in results.edge_runs if run.edge_kept_up and run.edge_cpu < 1.0),
                   key=lambda run: run.machines, default=None)
        rows.append(("most machines × 1 Hz one `mes edge` process keeps up with below 1.0 core (of those tried)",
                     f"{best.machines:,} machines (edge CPU {best.edge_cpu:.2f}, core CPU {best.core_cpu:.2f})"
                     if best else "none of those tried", "—"))
    if results.backflush is not None:
        bf = results.backflush
        rows.append((f"production deltas/s through attribution + backflush + ledger ≥ {BACKFLUSH_TARGET} × ingest alone",
                     f"{bf.ratio:.2f} × ({_fmt(bf.with_backflush.deltas_per_s)} vs {_fmt(bf.alone.deltas_per_s)} "
                     "deltas/s)", "met" if bf.ratio >= BACKFLUSH_TARGET else "**MISSED**"))
    if results.planning is not None:
        items, seconds, megabytes = REGENERATION_TARGET
        at = next((run for run in results.planning.regenerations if run.items == items), None)
        if at is not None:
            met = at.cpu_s < seconds and at.peak_rss_mb < megabytes
            rows.append((f"full regeneration of {items:,} items × 26 weeks < {seconds:.0f} s and < 1 GB",
                         f"{at.wall_s:.2f} s wall, {at.cpu_s:.2f} s CPU, {at.peak_rss_mb:,.0f} MB",
                         ("met (CPU)" if at.wall_s >= seconds else "met") if met else "**MISSED**"))
        change = results.planning.net_change
        if change is not None:
            p99, cpu99 = change.percentile(change.latencies_s, 0.99), change.percentile(change.cpu_s, 0.99)
            verdict = "met" if p99 < NET_CHANGE_TARGET_S else ("met (CPU)" if cpu99 < NET_CHANGE_TARGET_S else "**MISSED**")
            rows.append((f"net change, committed completion → updated plan row, p99 < {NET_CHANGE_TARGET_S * 1000:.0f} ms "
                         f"({change.items:,} items)", f"p99 {_ms(p99)} ms wall, {_ms(cpu99)} ms CPU", verdict))
    if results.boards is not None:
        total = results.boards.total
        rows.append((f"line board queries over {results.boards.large_samples:,} vs {results.boards.small_samples:,} samples "
                     f"≤ {TARGET_RATIO} × slower", f"{total.ratio:.2f} × ({total.large_ms:,.0f} vs {total.small_ms:,.0f} ms)",
                     "met" if total.ratio <= TARGET_RATIO else "**MISSED**"))
    if results.soak is not None:
        soak = results.soak
        mb = soak.per_machine_day_mb(soak.growth)
        rows.append((f"database bytes per machine and day, plain PostgreSQL before retention < {SOAK_TARGET_MB} MB "
                     f"({soak.machines:,} machines, extrapolated)", f"{mb:,.1f} MB",
                     "met" if mb < SOAK_TARGET_MB else "**MISSED**"))
        first, last = (soak.rate(part) for part in soak.thirds)
        rows.append((f"soak ingest rate, last third of the batches no slower than the first beyond {SOAK_RATE_NOISE:.0%} "
                     "(median batch)", f"{last / first:.2f} × ({_fmt(last)} vs {_fmt(first)} messages/s)",
                     "met" if last / first >= 1 - SOAK_RATE_NOISE else "**MISSED**"))
        timescale = soak.timescale_per_machine_day_mb()
        rows.append((f"database bytes per machine and day, TimescaleDB with compression < {SOAK_TIMESCALE_TARGET_MB} MB "
                     "(compressed hypertables measured in PGlite)",
                     f"{timescale:,.1f} MB" if timescale is not None else f"not measured: {soak.timescale}",
                     "—" if timescale is None else "met" if timescale < SOAK_TIMESCALE_TARGET_MB else "**MISSED**"))
    return rows


def summary_tables(results: Results) -> list[Table]:
    tables = []
    if results.ingest_runs:
        table = Table(title="Ingest throughput (pre-filled broker → committed)")
        for column in ("batch ≤", "messages", "samples", "seconds", "samples/s", "messages/s", "× COPY"):
            table.add_column(column, justify="right")
        for run in results.ingest_runs:
            ratio = run.samples_per_s / results.copy.rows_per_s if results.copy else float("nan")
            table.add_row(str(run.batch_max_messages), _fmt(run.messages), _fmt(run.samples), _fmt(run.seconds, 2),
                          _fmt(run.samples_per_s), _fmt(run.messages_per_s), f"{ratio:.2f}")
        if results.copy:
            table.add_row("raw COPY", "", _fmt(results.copy.rows), _fmt(statistics.median(results.copy.seconds), 2),
                          _fmt(results.copy.rows_per_s), "", "1.00")
        tables.append(table)
    if results.latency_runs:
        table = Table(title="End-to-end latency (commit − source timestamp, changed counter samples)")
        for column in ("K", "sustained", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms", "msg/s", "edge CPU",
                       "core CPU", "machine busy"):
            table.add_column(column, justify="right")
        for run in [*results.latency_runs, *(run for run in results.edge_runs if run not in results.latency_runs)]:
            stats = run.stats()
            busy = run.cpu.get(MACHINE_BUSY, float("nan"))
            label = f"{run.machines:,}" + (" (edge)" if run not in results.latency_runs else "")
            table.add_row(label, "error" if run.error else ("yes" if run.sustained else "NO"), _fmt(stats["n"]),
                          _ms(stats["p50"]), _ms(stats["p90"]), _ms(stats["p99"]), _ms(stats["max"]),
                          _fmt(run.committed_per_s), f"{run.edge_cpu:.2f}", f"{run.core_cpu:.2f}", f"{busy:.0%}")
        tables.append(table)
    if results.backflush is not None:
        bf = results.backflush
        table = Table(title="Production through backflush (same workload, fresh databases)")
        for column in ("run", "deltas", "seconds", "deltas/s", "msg/s", "moves", "exceptions", "× alone"):
            table.add_column(column, justify="right")
        for run in (bf.alone, bf.with_backflush):
            table.add_row(run.label, _fmt(run.deltas), _fmt(run.run.seconds, 2), _fmt(run.deltas_per_s),
                          _fmt(run.run.messages_per_s), _fmt(sum(run.moves.values())),
                          _fmt(sum(count for count, _ in run.exceptions.values())),
                          f"{run.deltas_per_s / bf.alone.deltas_per_s:.2f}")
        tables.append(table)
    if results.boards is not None:
        table = Table(title="Board queries: small vs large history")
        for column in ("query", "small ms", "large ms", "× small"):
            table.add_column(column, justify="left" if column == "query" else "right")
        for timing in [*results.boards.timings, results.boards.total]:
            table.add_row(timing.name, f"{timing.small_ms:,.1f}", f"{timing.large_ms:,.1f}", f"{timing.ratio:.2f}")
        tables.append(table)
    if results.planning is not None:
        table = Table(title="Planning: full regeneration (pure rules) and net change (through the database)")
        for column in ("run", "items", "wall", "CPU", "detail"):
            table.add_column(column, justify="right")
        for run in results.planning.regenerations:
            table.add_row("regeneration", _fmt(run.items), f"{run.wall_s:.2f} s", f"{run.cpu_s:.2f} s",
                          f"{_fmt(run.planned_orders)} planned orders, {_fmt(run.peak_rss_mb)} MB")
        change = results.planning.net_change
        if change is not None:
            table.add_row("live regeneration (database)", _fmt(change.items), f"{change.regenerate_s:.2f} s",
                          f"{change.regenerate_cpu_s:.2f} s", "load, net, write every row")
            table.add_row("net change p50 / p99", _fmt(change.items),
                          f"{_ms(statistics.median(change.latencies_s))} / {_ms(change.percentile(change.latencies_s, 0.99))} ms",
                          f"{_ms(statistics.median(change.cpu_s))} / {_ms(change.percentile(change.cpu_s, 0.99))} ms",
                          f"{change.completions} completions")
        tables.append(table)
    if results.cores is not None:
        table = Table(title=f"Several cores: one workload over {results.cores.edges} edges")
        for column in ("cores", "partition", "drain s", "samples/s", "× plant core", "CPU s per core", "PostgreSQL CPU s"):
            table.add_column(column, justify="right")
        for run in results.cores.runs:
            table.add_row(str(run.cores), run.partition, _fmt(run.seconds, 1), _fmt(run.samples_per_s), f"{results.cores.gain(run):.2f}",
                          " / ".join(f"{cpu:.1f}" for cpu in run.core_cpu_s), _fmt(run.database_cpu_s, 1))
        tables.append(table)
        waits = _top_waits(results.cores)
        table = Table(title="Several cores: the ingest sessions' active samples by wait event")
        for column in ("cores", "partition", *waits):
            table.add_column(column, justify="right")
        for run in results.cores.runs:
            table.add_row(str(run.cores), run.partition, *(f"{run.waits[w] / max(1, sum(run.waits.values())):.0%}" for w in waits))
        tables.append(table)
    if results.soak is not None:
        table = Table(title=f"Soak: bytes per message by table ({results.soak.messages:,} messages)")
        for column in ("table", "rows", "bytes/message", "MB/machine/day", "after retention, bytes/message"):
            table.add_column(column, justify="right")
        for row in _soak_rows(results.soak):
            table.add_row(*row)
        tables.append(table)
    if _target_rows(results):
        table = Table(title="Targets")
        for column in ("target", "result", "verdict"):
            table.add_column(column)
        for row in _target_rows(results):
            table.add_row(*(cell.replace("**", "") for cell in row))
        tables.append(table)
    return tables


def _md_table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---:" if i else "---" for i in range(len(header))) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _per_pure(pure) -> float:
    """µs per sample of the in-process parse + plan."""
    return (pure.parse_s + pure.plan_s) / pure.samples * 1e6


def _rest(run) -> float:
    """Seconds of an ingest run outside every timed stage of the core and its start-up."""
    stages = run.stages
    return run.seconds - stages.parse - stages.load - stages.plan - stages.write - stages.first_batch


def _ingest_section(results: Results) -> list[str]:
    args, main, copy, pure, workload = results.args, results.ingest_runs[0], results.copy, results.pure, results.workload
    out = ["## 1. Ingest throughput vs raw COPY", ""]
    out += [
        "**How.** A plant of "
        f"{args['machines']} machines (1 Hz, 32-bit counters) is migrated and registered in a fresh database. The "
        "core's persistent session is created on the broker (client id `bench-core`, subscription "
        "`mes/v1/+/+/+/+/data` QoS 1) and left; then "
        f"{workload.messages:,} data messages of {workload.samples_per_message} samples each (1 state + good, scrap, "
        f"energy_wh at {args['seconds_per_message']} timestamps 1 s apart, climbing within each counter's plausible "
        f"rate) = {workload.samples:,} samples are published QoS 1 by {args['publishers']} clients (one edge id each) "
        "and all PUBACKed. The broker (Mosquitto, `max_queued_messages 0`) holds the backlog. Then the core "
        "(`CoreProcess`: the consumer and its jobs) starts in a thread; the clock runs from its construction until `on_commit` has seen the last message "
        "committed. The core's defaults apart from `batch_max_messages` (`batch_max_wait_ms` 50).",
        "",
        "**Baseline.** The very rows the core committed to `samples` (read back after the run) are COPYed into "
        "`bench_copy (LIKE samples INCLUDING ALL)` (same columns, same indexes) in one transaction with psycopg "
        "`cursor.copy()` + `write_row()` (text format), timed from the COPY statement to the "
        f"commit; median of {len(copy.seconds)} repetitions into a freshly created table. The core itself writes its "
        "samples (and its other per-message rows) by binary COPY: against the binary baseline row its ratio is "
        f"{main.samples_per_s / copy.binary_rows_per_s:.2f} ×." if copy.binary_seconds else
        "`cursor.copy()` + `write_row()` (text format), timed from the COPY statement to the "
        f"commit; median of {len(copy.seconds)} repetitions into a freshly created table.",
        "",
        _md_table(["core batch ≤ (messages)", "batches", "seconds", "samples/s", "messages/s", "× raw COPY"],
                  [[str(run.batch_max_messages), _fmt(run.batches), _fmt(run.seconds, 2), _fmt(run.samples_per_s),
                    _fmt(run.messages_per_s), f"**{run.samples_per_s / copy.rows_per_s:.2f}**"] for run in results.ingest_runs]
                  + [["raw COPY, text (baseline)", "1", _fmt(statistics.median(copy.seconds), 2), _fmt(copy.rows_per_s), "",
                      "1.00"],
                     ["raw COPY, binary (for reference)", "1", _fmt(statistics.median(copy.binary_seconds), 2),
                      _fmt(copy.binary_rows_per_s), "", f"{copy.binary_rows_per_s / copy.rows_per_s:.2f}"]]),
        "",
        f"COPY repetitions (s): text {', '.join(f'{s:.2f}' for s in copy.seconds)}; binary "
        f"{', '.join(f'{s:.2f}' for s in copy.binary_seconds)}. Filling the broker took "
        f"{main.publish_seconds:.1f} s ({workload.messages / main.publish_seconds:,.0f} msg/s). Sanity: "
        f"{main.messages:,} messages / {main.samples:,} samples committed, {main.dead_letters} dead letters, "
        f"{main.quarantined} quarantined counter events, {main.duplicates} duplicates.",
        "",
    ]
    if main.cpu_s:
        out += ["CPU while the core ran, µs per sample (this holds on a loaded machine, where the wall times above do "
                "not): " + ", ".join(f"{name} {seconds / main.samples * 1e6:.1f}" for name, seconds in main.cpu_s.items())
                + f"; in all {sum(main.cpu_s.values()) / main.samples * 1e6:.1f}. The core process includes its paho "
                "and job threads.", ""]
    stages = main.stages
    rows = [["parse + validate (`parse_batch`: msgspec, `DataMessage` for what it refuses)", stages.parse],
            ["already-ingested look-up (`find_ingested`)", stages.lookup],
            ["machine locks + plan context (`with_machines_locked`, `load_context` less the look-up)",
             stages.load - stages.lookup],
            ["plan (`plan_batch`: sequencing + counter rules)", stages.plan],
            ["database write (`write_plan`; the commit is below)", stages.write],
            ["start-up (the core's construction until it parses its first batch)", stages.first_batch],
            ["everything else (commit, MQTT receive + PUBACK, batching waits)", _rest(main)]]
    out += [f"### Where the core's time goes (batch ≤ {main.batch_max_messages}, measured inside the run)", "",
            "Stage functions of the core were wrapped with timers in the benchmark process (no change to core/). "
            "The core's worker thread runs them one after another; paho's network thread (receiving, "
            "PUBACKs) runs beside it in the same process and competes for the GIL.", "",
            _md_table(["stage", "seconds", "share of wall time", "µs per sample"],
                      [[name, f"{seconds:.2f}", f"{seconds / main.seconds:.0%}", f"{seconds / main.samples * 1e6:.1f}"]
                       for name, seconds in rows]), ""]
    tables = sorted(stages.tables.items(), key=lambda item: -item[1])
    in_tables = sum(seconds for _, seconds in tables)
    table_rows = [[f"`{name}`", f"{seconds:.2f}", f"{seconds / stages.write:.0%}"] for name, seconds in tables]
    table_rows.append(["outside the tables (dispatch updates, the rollup mark, cursors)", f"{stages.write - in_tables:.2f}",
                       f"{(stages.write - in_tables) / stages.write:.0%}"])
    out += ["Inside `write_plan`:", "", _md_table(["table", "seconds", "share of write"], table_rows), ""]
    samples_copy = stages.tables.get("samples", 0.0)
    out += [
        f"The `samples` COPY inside the core took {samples_copy:.2f} s for {main.samples:,} rows "
        f"({main.samples / samples_copy:,.0f} rows/s, {main.samples / samples_copy / copy.rows_per_s:.2f} × the baseline's "
        f"rate; it runs in {main.batches} COPYs of one batch each, into a growing table, while paho's thread competes for "
        f"the GIL) against {statistics.median(copy.seconds):.2f} s for the single baseline COPY. Even a free database "
        f"write would leave parse + plan + the rest: {(main.seconds - stages.write):.2f} s, i.e. at most "
        f"{main.samples / (main.seconds - stages.write) / copy.rows_per_s:.2f} × raw COPY.",
        "",
        f"**Pure, in-process (informational).** `parse_batch` + `plan_batch` over the same {pure.messages:,} payloads "
        f"in batches of {main.batch_max_messages}, no I/O, no threads: parse {pure.parse_s:.2f} s "
        f"({pure.parse_s / pure.samples * 1e6:.1f} µs/sample), plan {pure.plan_s:.2f} s "
        f"({pure.plan_s / pure.samples * 1e6:.1f} µs/sample) → the pure part alone caps ingest at "
        f"{pure.samples / (pure.parse_s + pure.plan_s):,.0f} samples/s "
        f"= {pure.samples / (pure.parse_s + pure.plan_s) / copy.rows_per_s:.2f} × raw COPY, before any I/O.",
        "",
    ]
    if pure.gc_off:
        off = pure.gc_off
        out += [f"The same with Python's cyclic garbage collector off (`gc.disable()`): parse {off.parse_s:.2f} s "
                f"({off.parse_s / off.samples * 1e6:.1f} µs/sample), plan {off.plan_s:.2f} s "
                f"({off.plan_s / off.samples * 1e6:.1f} µs/sample): the GC's share of the pure part is "
                f"{1 - (off.parse_s + off.plan_s) / (pure.parse_s + pure.plan_s):.0%}.", ""]
    if pure.validation:
        out += ["Validation alone, same payloads (µs per sample):", "",
                _md_table(["how", "µs/sample"], [[label, f"{value:.2f}"] for label, value in pure.validation.items()]), ""]
    return out


def _latency_section(results: Results) -> list[str]:
    args = results.args
    out = ["## 2. End-to-end latency", ""]
    out += [
        "**How.** A plant of K machines (`ideal_cycle_s: 1`, no failures, 32-bit counters, "
        f"{args['opcua_share']:.0%} OPC UA and the rest Modbus) with every component in its own process, as in a "
        "plant (tests/bench/plant.py): the simulated PLCs in several `mes simulate` processes (each serves at most "
        f"{OPCUA_PER_SERVER} OPC UA machines on its own OPC UA server and {MODBUS_PER_SERVER} Modbus machines on its "
        "own Modbus server, device ids 1..247), one `mes edge` (default options: flush 200 ms, heartbeat 10 s, Modbus "
        "poll 500 ms, OPC UA subscription sampling 100 ms) reading them all from one plant file that gives each "
        "machine its server's address, one `mes core` (default batch options; its jobs process included in its CPU), "
        "Mosquitto and PostgreSQL; all share the machine's cores, and the benchmark process only watches. After "
        f"start-up (processes, OPC UA address spaces, subscriptions, every counter's baseline committed) production "
        f"runs {args['warmup']:.0f} s of warm-up, then {args['duration']:.0f} s are measured.",
        "",
        "**Latency** of a sample = its commit − its `ts`, the commit seen from outside the core: the benchmark "
        "subscribes to the edge's ack topic (`mes/v1/edge/<edge_id>/ack`, docs/mqtt.md), which the core publishes "
        "after each commit, and notes each ack's arrival; a sample's commit time is the arrival of the first ack at "
        "or past its message's (epoch, seq) — later than the commit by the ack's trip through the broker (a "
        "millisecond or so). The samples come from the database afterwards (`samples` joined to "
        "`ingested_messages` for the core's receipt time). For OPC UA `ts` is the SourceTimestamp the simulator "
        "sets when it writes the changed value; for Modbus it is the edge's read time (registers carry no time), so "
        "for Modbus machines the up to 500 ms between the change and the next poll is *not* included. Only counter "
        "samples whose value differs from the counter's previous sample count (heartbeat snapshots restate old "
        "values with their last-confirmed time). Every simulated machine starts its cycle at the same instant with "
        "the same 1 s cycle, so the K machines of one simulator process change within the same 50 ms tick: the load "
        "arrives in bursts once per second, the worst case for tail latency.",
        "",
        "**Sustained** = every machine served (at least "
        f"{SERVED_SHARE:.0%} of the ~{CHANGES_PER_MACHINE_S:.0f} changed counter samples per machine and second its "
        "1 s cycle makes reach the database: fewer when the simulators or the edge's sources fall behind) and over "
        "the measured window the edge's disk queue (messages enqueued and not yet confirmed committed by the core: "
        "`mes_edge_queue_messages`) grew by less than one second's worth of messages (K): the pipeline kept up. K steps down from the largest value until one is sustained with p99 < 1 s (or the "
        "time budget is spent). A K close to what the machine can carry flips between sustained and not from one "
        "run to the next (a backlog, once started, only grows): rerun before reading much into one result at the "
        "limit.",
        "",
    ]
    out += _latency_table(results.latency_runs)
    for run in [*results.latency_runs, *results.edge_runs]:
        if run.stop_problem:
            out += [f"- **K={run.machines:,}, at shut-down:** {run.stop_problem}.", ""]
    warnings = [f"K={run.machines:,}: {run.edge_warnings}" for run in results.latency_runs if run.edge_warnings]
    if warnings:
        out += ["Warnings the edge logged during the runs (e.g. a Modbus reply later than the 2 s request timeout, "
                "a sign of an overloaded edge): " + ", ".join(warnings) + ".", ""]
    for note in results.skipped:
        out += [f"- {note}"]
    if results.skipped:
        out += [""]
    rows = []
    for run in results.latency_runs:
        if run.error:
            continue
        for label, stats in (("OPC UA (source timestamp)", run.stats("opcua")), ("Modbus (read time)", run.stats("modbus")),
                             ("source → core receipt", run.stats(values=run.to_core)),
                             ("core receipt → commit", run.stats(values=run.in_core))):
            rows.append([f"{run.machines:,}", label, _fmt(stats["n"]), _ms(stats["p50"]), _ms(stats["p90"]),
                         _ms(stats["p99"]), _ms(stats["max"])])
    if rows:
        out += ["By protocol, and split at the moment the core's paho thread received the message (its `received_at`):",
                "", _md_table(["K", "part", "samples", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows), ""]
    out += _cpu_table(results, results.latency_runs)
    if results.edge_runs:
        out += ["### The edge alone", "",
                "**How.** The same plant, K stepping up (`--edge-machines`), the same K measured above taken as it is: "
                "how many machines at 1 Hz one `mes edge` process serves while it keeps up with its CPU below one "
                "core. Kept up = every machine read as it produces (at least "
                f"{SERVED_SHARE:.0%} of the ~{CHANGES_PER_MACHINE_S:.0f} changed counter samples per machine and second "
                "its 1 s cycle makes reach the database: this fails when the simulators or the edge's sources fall "
                "behind) and what the edge enqueued minus what the broker acknowledged (PUBACK) grew by less than K "
                "over the window. The simulators run in their own processes; the core still consumes (it acknowledges the edge, "
                "which then deletes the rows), and its CPU is shown too: a core falling behind shows as the pipeline "
                "not sustained while the edge keeps up. Stops after the first K the edge does not keep up with.",
                ""]
        rows = [[f"{run.machines:,}", f"error: {run.error}" if run.error else ("yes" if run.edge_kept_up else "**no**"),
                 f"**{run.edge_cpu:.2f}**", f"{run.changes_per_machine_s:.2f}", _fmt(run.readings_per_s),
                 _fmt(run.enqueued_per_s), _fmt(run.published_per_s),
                 "yes" if run.sustained else "no", f"{run.core_cpu:.2f}", _ms(run.stats()["p99"])]
                for run in results.edge_runs]
        out += [_md_table(["K machines", "edge kept up", "edge CPU", "changes committed per machine·s", "readings/s",
                           "messages/s enqueued",
                           "messages/s PUBACKed", "pipeline sustained", "core CPU", "p99 ms"], rows), ""]
        out += _cpu_table(results, [run for run in results.edge_runs if run not in results.latency_runs])
    return out


def _latency_table(runs: list[LatencyRun]) -> list[str]:
    rows = []
    for run in runs:
        stats = run.stats()
        verdict = f"error: {run.error}" if run.error else ("yes" if run.sustained else "**no**")
        rows.append([f"{run.machines:,} ({run.opcua:,} OPC UA / {run.modbus:,} Modbus; {run.simulators} `mes simulate`)",
                     verdict, f"{run.startup_s:.1f}", f"{run.changes_per_machine_s:.2f}", _fmt(run.readings_per_s),
                     _fmt(run.committed_per_s),
                     _fmt(run.committed_samples_per_s), f"{run.backlog_growth:,.0f}", _fmt(stats["n"]), _ms(stats["p50"]),
                     _ms(stats["p90"]), f"**{_ms(stats['p99'])}**", _ms(stats["max"])])
    return [_md_table(["K machines", "sustained", "start-up s", "changes committed per machine·s", "edge readings/s",
                       "messages/s committed",
                       "samples/s committed", "edge queue growth (msg)", "latency samples", "p50 ms", "p90 ms", "p99 ms",
                       "max ms"], rows), ""] if rows else []


def _cpu_table(results: Results, runs: list[LatencyRun]) -> list[str]:
    runs = [run for run in runs if run.cpu]
    groups = list(dict.fromkeys(name for run in runs for name in run.cpu))
    if not groups:
        return []
    header = ["CPU"] + [f"K={run.machines:,}" for run in runs]

    def cell(run: LatencyRun, name: str) -> str:
        if name not in run.cpu:
            return "n/a"
        return f"{run.cpu[name]:.0%}" if name == MACHINE_BUSY else f"{run.cpu[name]:.2f}"

    return ["**CPU by process during the measured window** (1.00 = one core fully busy; 'machine busy' is the share "
            f"of all {results.machine['cores']} cores, everything on the machine included — other users' processes "
            "too):", "", _md_table(header, [[name] + [cell(run, name) for run in runs] for name in groups]), ""]


def _backflush_section(results: Results) -> list[str]:
    bf = results.backflush
    alone, on, seeded = bf.alone, bf.with_backflush, bf.seeded
    out = ["## 3. Production through attribution + backflush + ledger, vs ingest alone", ""]
    bom = "; ".join(f"{parent} → {component} × {quantity}" + (f" (+{scrap:%} scrap)" if scrap else "")
                    + (" **phantom**" if phantom else "") for parent, component, quantity, scrap, phantom in BOM)
    out += [
        f"**How.** The workload of benchmark 1, same shape with fewer messages: {bf.machines} machines (lines of 20), "
        f"{bf.workload.messages:,} data messages of {bf.workload.samples_per_message} samples "
        f"({bf.workload.samples:,} samples), pre-filled in the broker and drained by the core (`CoreProcess`) "
        f"(batch ≤ {bf.batch_max_messages}), clocked as in benchmark 1. It runs twice in the same run, each time "
        "into a fresh database: **(a) ingest alone**, no work orders, so every count lands in the unassigned bucket "
        "and the store loads no stock; **(b) + backflush**, seeded beforehand (not timed, "
        f"{seeded.seconds:.1f} s) through the services the API calls (`mes/services/`): one item with a 2-level "
        f"BOM ({bom}), a `line_side` location per line (`negative_stock` allow) with {seeded.lots // max(1, seeded.lines)} "
        f"lots per line ({len(seeded.per_unit)} components × 3 lots, expiries out of receipt order), and one released "
        f"work order per machine, started on it with a dispatch window opening 1 h before the first sample. Stock per "
        f"line is 1.5 × what the workload consumes there for two components and 0.5 × for `{SHORT}`, so about half "
        "of its consumption takes the shortage path (pick from the unknown lot + a `backflush_exceptions` row).",
        "",
        "**Production deltas** = counter samples (good, scrap, energy_wh) whose value moved from the machine's "
        "previous sample: what the counter rules turn into counted units, the units attribution splits by work order "
        "and backflush consumes for. Counted afterwards from the committed `samples` "
        "(`value <> lag(value)` per machine and counter); identical in both runs by construction. Deltas/s = "
        "deltas ÷ the run's wall time, so the ratio equals the ratio of messages/s and samples/s.",
        "",
        _md_table(["run", "seconds", "production deltas/s", "samples/s", "messages/s", "attribution rows",
                   "stock moves written", "backflush exceptions", "× ingest alone"],
                  [[f"({'a' if run is alone else 'b'}) {run.label}", _fmt(run.run.seconds, 2), _fmt(run.deltas_per_s),
                    _fmt(run.run.samples_per_s), _fmt(run.run.messages_per_s), _fmt(run.attribution_rows),
                    _fmt(sum(run.moves.values())), _fmt(sum(count for count, _ in run.exceptions.values())),
                    f"**{run.deltas_per_s / alone.deltas_per_s:.2f}**"] for run in (alone, on)]),
        "",
    ]
    exceptions = ", ".join(f"{count:,} `{kind}` ({quantity:,} in all)" for kind, (count, quantity) in on.exceptions.items())
    moves = ", ".join(f"{count:,} `{reason}`" for reason, count in on.moves.items())
    consumed = [[f"`{component}`" + (" (short)" if component == SHORT else ""), f"{seeded.per_unit[component]}",
                 f"{ledger}", f"{expected}", "**yes**" if ledger == expected else "**NO**"]
                for component, (ledger, expected) in on.consumed.items()]
    out += [
        f"**Sanity.** Both runs: {alone.deltas:,} / {on.deltas:,} production deltas, {alone.run.messages:,} / "
        f"{on.run.messages:,} messages committed, {alone.run.dead_letters} / {on.run.dead_letters} dead letters, "
        f"{alone.run.quarantined} / {on.run.quarantined} quarantined counter events. Units counted (good + scrap): "
        f"(a) {alone.good + alone.scrap:,}, all unassigned ({alone.unassigned_units:,}); (b) "
        f"{on.good + on.scrap:,} ({on.good:,} good + {on.scrap:,} scrap), {on.attributed_units:,} attributed to work "
        f"orders, {on.unassigned_units:,} unassigned. Stock moves the core wrote in (b): {moves}; exceptions: "
        f"{exceptions or 'none'}; work orders held: {on.held}.",
        "",
        "Consumed (Σ of the ledger's `backflush` moves, the unknown-lot picks included) against Σ(good + scrap) of "
        "the attributed units × the per-unit quantity snapshotted at release, both exact `Decimal`:",
        "",
        _md_table(["component", "per unit", "ledger", "Σ(good + scrap) × per unit", "equal"], consumed),
        "",
        f"Per work order and component, in PostgreSQL's numeric arithmetic: {on.mismatches} of "
        f"{seeded.work_orders * len(seeded.per_unit):,} (order, component) pairs differ. Finished goods received = "
        f"Σ good per work order: {'yes' if on.receipts_match else '**NO**'}.",
        "",
    ]
    steps_a, steps_b = alone.steps, on.steps
    extra = on.run.seconds - alone.run.seconds
    moves_copy = steps_b.copies.get("stock_moves", 0.0)
    exceptions_copy = steps_b.copies.get("backflush_exceptions", 0.0)
    rows = [["`load_dispatch_windows` (both runs)", f"{steps_a.windows:.2f}", f"{steps_b.windows:.2f}"],
            ["`load_work_orders`: the batch's orders, locked, with counts for auto-complete", f"{steps_a.work_orders:.2f}",
             f"{steps_b.work_orders:.2f}"],
            ["`stock_for`: materials, line sides, lot balances read locked (3 queries)", f"{steps_a.stock:.2f}",
             f"{steps_b.stock:.2f}"],
            ["`plan_backflush` (pure: consumption, lot picks, exceptions)", "0.00", f"{steps_b.plan_backflush:.2f}"],
            ["`write_backflush` inside `write_plan` (lots, moves and exceptions COPY, holds)", f"{steps_a.write_backflush:.2f}",
             f"{steps_b.write_backflush:.2f}"],
            ["  of which COPY `stock_moves` (its statement triggers: `lot_balances`, `moves_to_value`, planning marks)",
             "0.00", f"{moves_copy:.2f}"],
            ["  of which COPY `backflush_exceptions`", "0.00", f"{exceptions_copy:.2f}"],
            ["`production_attributions` COPY", f"{alone.run.stages.tables.get('production_attributions', 0):.2f}",
             f"{on.run.stages.tables.get('production_attributions', 0):.2f}"],
            ["`plan_batch` (incl. attribution)", f"{alone.run.stages.plan:.2f}", f"{on.run.stages.plan:.2f}"],
            ["`write_plan` in all (incl. commit)", f"{alone.run.stages.write:.2f}", f"{on.run.stages.write:.2f}"],
            ["wall time", f"{alone.run.seconds:.2f}", f"{on.run.seconds:.2f}"],
            ["beside the ingest: the valuation job's rounds, a thread of the core process (wall / CPU)",
             f"{steps_a.valuation:.2f} / {steps_a.valuation_cpu:.2f}", f"{steps_b.valuation:.2f} / {steps_b.valuation_cpu:.2f}"]]
    out += ["### Where the extra time goes (seconds, measured inside the runs)", "",
            "The same stage wrappers as benchmark 1, plus timers around the backflush functions the ingest calls "
            "(no change to core/), and around the rounds of the core's valuation job. Everything runs inside the "
            "batch's one transaction; auto-complete is planned with the batch (in `plan_batch`). A stock move's "
            "references (item, locations, lot) are checked on its `lot_balances` rows, inserted once per (item, "
            "location, lot) and then only updated, not by foreign keys on every move (migration 0020). The "
            "valuation job values the moves as they commit (`moves_to_value`), in a thread of the core's "
            "process: its CPU is Python that the ingest thread waits for the GIL behind, part of (b)'s wall time "
            "though in no stage of the ingest.", "",
            _md_table(["stage", "(a) ingest alone", "(b) + backflush"], rows), ""]
    calls = steps_b.stock_calls
    out += [f"(b) took {extra:+.2f} s over (a), {extra / on.attribution_rows * 1e6:,.0f} µs per attributed "
            f"interval (message), {extra / max(1, sum(on.moves.values())) * 1e6:,.0f} µs per stock move written.", ""]
    if len(calls) >= 4:
        tenth = max(1, len(calls) // 10)
        head, tail = calls[:tenth], calls[-tenth:]
        first_ms = sum(s for s, _ in head) / len(head) * 1000
        last_ms = sum(s for s, _ in tail) / len(tail) * 1000
        grew = last_ms > 1.5 * first_ms
        out += [
            ("**The look-ups grow with the ledger.** " if grew else "**The look-ups and the ledger.** ")
            + f"The look-ups of `stock_for` took {first_ms:,.1f} ms per "
            f"batch on average over the first {tenth} of its {len(calls)} batches with work and {last_ms:,.1f} ms over "
            f"the last {tenth}. " + ("The" if grew else "Within the noise: the")
            + " lot-balance query reads the rows of `lot_balances` (the table the ledger's inserts keep, migration "
            "0019) of the batch's items at its line sides, FOR UPDATE, through its unique index: it reads a few rows "
            "per (item, location, lot) whatever the ledger's length, and locking them is what keeps a concurrent "
            "document step from taking a lot below zero under `block`"
            + (f": run once more after the run, on the full ledger of {on.ledger_rows:,} moves, it took "
               f"{on.balance_query_ms:,.1f} ms." if on.balance_query_ms is not None else "."),
            "",
        ]
    return out


def _planning_section(planning: PlanningResults) -> list[str]:
    out = ["## 4. Planning: a full regeneration, and net change from a committed completion", "",
           "Regeneration: the pure rules through `planning.services.plans.regenerate` (what the live plan runs), each "
           "size in a fresh process (its peak memory is the regeneration's): 5 BOM levels, 3 components an item, 26 "
           "weekly buckets, 2 open demands an item on the end items, lot-for-lot (tests/bench/planning.py).", ""]
    if planning.regenerations:
        out += [_md_table(["items", "demands", "wall s", "CPU s", "planned orders", "pegs", "peak RSS MB"],
                          [[_fmt(run.items), _fmt(run.demands), f"{run.wall_s:.2f}", f"{run.cpu_s:.2f}",
                            _fmt(run.planned_orders), _fmt(run.pegs), _fmt(run.peak_rss_mb)]
                           for run in planning.regenerations]), ""]
    change = planning.net_change
    if change is not None:
        lat, cpu = change.latencies_s, change.cpu_s
        out += [
            f"Net change: the same shape at {change.items:,} items stored in a fresh database and kept as the live "
            f"plan (its full regeneration from the database: {change.regenerate_s:.2f} s wall, "
            f"{change.regenerate_cpu_s:.2f} s CPU of the bench process, the server's not counted). Then an end "
            f"item's work order ({change.below - 1} items below it) runs on a machine and counts one good unit at a time "
            f"through the real ingest (attribution, backflush of its components), {change.completions} times; after "
            "each commit, the marks are brought into the live plan (`bring_up_to_date`, the planner's round). "
            "Latency = the ingest's commit → the live plan's commit of the updated row; CPU = the bench process's "
            "and its database backend's for that round. The core's planner job adds up to one "
            "`MES_PLAN_EVERY_S` (0.05 s) of waiting for its next round (the last row).", "",
            _md_table(["", "p50 ms", "p90 ms", "p99 ms", "max ms"],
                      [["wall", _ms(statistics.median(lat)), _ms(change.percentile(lat, 0.9)), _ms(change.percentile(lat, 0.99)),
                        _ms(max(lat))],
                       ["CPU", _ms(statistics.median(cpu)), _ms(change.percentile(cpu, 0.9)), _ms(change.percentile(cpu, 0.99)),
                        _ms(max(cpu))],
                       *([[f"wall, the planner job running ({len(change.with_planner_s)} completions)",
                           _ms(statistics.median(change.with_planner_s)), _ms(change.percentile(change.with_planner_s, 0.9)),
                           _ms(change.percentile(change.with_planner_s, 0.99)), _ms(max(change.with_planner_s))]]
                         if change.with_planner_s else [])]), "",
            "The last row: the core's planner job (`mes-planner`, its own process, a round every `MES_PLAN_EVERY_S`) "
            "brings the completions in while a reader polls the row every 10 ms: the latency a planner's screen sees, "
            "the job's waiting for its round included.", ""]
    return out


def _analysis(results: Results) -> list[str]:
    out = ["## What the numbers point at (for whoever optimises)", ""]
    if results.ingest_runs and results.copy and results.pure:
        main, copy, pure = results.ingest_runs[0], results.copy, results.pure
        per = lambda seconds: seconds / main.samples * 1e6  # noqa: E731
        budget = 1e6 / (INGEST_TARGET * copy.rows_per_s)
        spent = per(main.seconds)
        stages = main.stages
        samples_copy = per(stages.tables.get("samples", 0.0))
        python = per(stages.parse + stages.plan)
        out += [
            f"- **Ingest budget.** {INGEST_TARGET} × raw COPY means at most **{budget:.1f} µs per sample** for "
            f"everything; the core spends **{spent:.1f} µs**: parse {per(stages.parse):.1f}, plan {per(stages.plan):.1f}, "
            f"locks + context {per(stages.load):.1f}, write {per(stages.write):.1f} (of which the `samples` COPY "
            f"{samples_copy:.1f}), start-up {per(stages.first_batch):.1f}, rest {per(_rest(main)):.1f}. The raw COPY "
            f"itself costs {1e6 / copy.rows_per_s:.1f} µs per row from Python, so the target leaves "
            f"{budget - 1e6 / copy.rows_per_s:.1f} µs per sample for parsing, the counter rules and every other table; "
            f"parse + plan alone take {python:.1f} µs in the run ({_per_pure(pure):.1f} µs in process, without I/O or "
            "other threads). The gap is the interpreter's work per sample, not the database: no database tuning can "
            "close it.",
        ]
        if pure.validation:
            values = list(pure.validation.values())
            out += [f"- **Parse:** the core decodes with msgspec (`kernel.payload.decode_data`: {values[0]:.2f} µs/sample "
                    f"here, against {values[1]:.2f} for pydantic's `DataMessage.model_validate_json`, {values[2]:.2f} for "
                    "`json.loads` alone) and hands only what msgspec refuses to `DataMessage`, for its reasons; the "
                    "digest's content is msgspec's encoding too. Parsing is no longer where the time goes."]
        if pure.gc_off:
            off = pure.gc_off
            share = 1 - (off.parse_s + off.plan_s) / (pure.parse_s + pure.plan_s)
            out += [f"- **Garbage collector:** the pure parse + plan, timed here with the interpreter's default "
                    f"collector settings, ran {share:.0%} faster with `gc.disable()`. The core's consumer already calls "
                    "`gc.freeze()` at start and raises the generation-0 threshold to 50,000, which takes most of that."]
        out += [
            f"- **Plan:** {per(stages.plan):.1f} µs/sample in the run, {pure.plan_s / pure.samples * 1e6:.1f} in process. "
            "Per sample `_Planner.ingest` places the timestamp (`place`), builds the `samples` row and, for a counter, "
            "calls `counter_step`: the benchmark's counters climb 1–2 units a sample, within the rule's floor, so no "
            "sample reaches its `Decimal` arithmetic (integer maths there would change nothing here). What is left is "
            "the interpreter itself: a few NamedTuples (`Placed`, `CounterPoint`, `Step`, `SampleRow`) and aware-datetime "
            "comparisons per sample. A machine with no dispatch window skips the attribution rule's window search. "
            "The next step down is per-counter vectors (a message's values of one counter checked at once, the exact "
            "per-sample path kept for rollover/reset/jump) or compiled code; neither was done.",
            f"- **Write:** the `samples` COPY is {stages.tables.get('samples', 0) / stages.write:.0%} of `write_plan`, "
            "by binary COPY (so are `ingested_messages`, `production_intervals` and `production_attributions`); the "
            "per-message rows pay their indexes and foreign keys in the server, and the `counter_state` upsert a row "
            "per counter per batch. The staged upserts stay a COPY into a temporary table + one `INSERT … ON CONFLICT` "
            "each: one `INSERT … SELECT FROM unnest(%s::text[], …)` statement instead was measured slower from Python "
            "(psycopg adapts a list element by element; COPY writes rows in C), and a binary staging COPY gained "
            "nothing measurable.",
            "- **Beyond one core:** "
            + (f"the core's `write_plan` alone ({per(stages.write):.1f} µs/sample) already exceeds the "
               f"{budget:.1f} µs budget, so even free parsing and planning would miss the target; "
               if per(stages.write) > budget else "")
            + "reaching 0.6 × raw COPY realistically needs several ingesting processes — `mes core` processes sharing "
            "the plant's edges (MES_CORE_PARTITION=edges, benchmark 6) — or moving per-sample work into PostgreSQL "
            "(the raw payloads COPYed into a staging table and expanded in one INSERT … SELECT, only the counter rules "
            "in Python). Batch size is not the lever: the cost is per sample, not per commit.",
        ]
    runs = [run for run in results.latency_runs if not run.error and run.to_core]
    if runs:
        run = runs[0]
        to_core, in_core = run.stats(values=run.to_core), run.stats(values=run.in_core)
        share = {name: value for name, value in run.cpu.items() if name != MACHINE_BUSY}
        busiest = max(share, key=share.get)
        out += [
            f"- **Latency at K={run.machines:,}:** p99 {_ms(run.stats()['p99'])} ms end to end, of which source → core "
            f"receipt p50 {_ms(to_core['p50'])} / p99 {_ms(to_core['p99'])} ms and receipt → commit p50 "
            f"{_ms(in_core['p50'])} / p99 {_ms(in_core['p99'])} ms. "
            + ("Most of the time is spent before the core: " if to_core["p99"] > in_core["p99"]
               else "Most of the tail is in the core (queue wait, batch of ≤ 500 messages, parse/plan/write); before it: ")
            + "simulator tick (50 ms), OPC UA publishing interval (100 ms), edge flush (200 ms), the SQLite enqueue "
            "with fsync, the edge's in-flight window to the broker. The machines of one simulator complete their "
            "cycle in the same tick, so each second a burst arrives at once and the last of it waits for the whole "
            f"burst. CPU in the window: edge {run.edge_cpu:.2f}, core {run.core_cpu:.2f}, the busiest being "
            f"{busiest} at {share[busiest]:.2f} of a core; the machine was {run.cpu.get(MACHINE_BUSY, 0):.0%} busy.",
        ]
    kept = [run for run in results.edge_runs if run.edge_kept_up and run.edge_cpu < 1.0]
    if results.edge_runs:
        best = max(kept, key=lambda run: run.machines, default=None)
        last = results.edge_runs[-1]
        out += [
            "- **The edge alone:** "
            + (f"one `mes edge` process kept up with {best.machines:,} machines × 1 Hz at {best.edge_cpu:.2f} of a core "
               f"({best.edge_cpu / best.machines * 1000:.2f} cores per 1,000 machines). " if best else
               "no K tried was kept up with below one core. ")
            + (f"At K={last.machines:,} it {'kept up' if last.edge_kept_up else 'fell behind'} at {last.edge_cpu:.2f} "
               "of a core" + _edge_limit(last) if last is not best else "")
            + " Its cost per machine is the Python work per reading (OPC UA notification or Modbus read, sample "
            "buffer, JSON) and per message (SQLite insert, publish, confirm); the SQLite fsyncs are batched per "
            "flush and per confirm round, not per message.",
        ]
    out += [""]
    return out


def _edge_limit(run: LatencyRun) -> str:
    """Why the edge stopped keeping up at `run`: its own CPU, or a machine with no CPU left for anyone."""
    if run.edge_kept_up and run.edge_cpu < 1.0:
        return "."
    busy, others = run.cpu.get(MACHINE_BUSY, 0.0), run.cpu.get(OTHERS, 0.0)
    if run.edge_cpu < 0.9 and busy >= 0.95:
        return (f", with every core of the machine busy ({busy:.0%}; work outside the plant {others:.2f} cores) and "
                f"{run.changes_per_machine_s:.2f} of the ~{CHANGES_PER_MACHINE_S:.0f} changes per machine and second "
                "reaching the database: the shared machine ran out of CPU (the simulators, the edge and the core "
                "compete for it) before the edge process reached one core, so its own limit lies further and was not "
                "measured here.")
    return (" — where one edge process ends on this machine; a larger plant takes more edges (one per cell or line), "
            "which the core's partitioned ingest spreads (benchmark 6).")


def _boards_section(boards: BoardsResult) -> list[str]:
    small, large = boards.table_rows["small"], boards.table_rows["large"]
    return [
        "## 5. Boards over a small and a large history", "",
        f"**How.** Two databases of the same plant ({boards.machines} machines on one line, a reading every 5 s) hold "
        f"the same last hours and {boards.small_samples:,} vs {boards.large_samples:,} rows of `samples` in all, with "
        "the production intervals, attributions, state changes, `production_hourly` and the hourly OEE and downtime "
        "rollups the ingest and the rollup job write beside them (generated in SQL: the queries read tables, whoever "
        f"filled them; seeded in {boards.seed_s['small']:.0f} s and {boards.seed_s['large']:.0f} s). On each, every "
        f"query of the Grafana line board (`{LINE_BOARD}`) as Grafana sends it for the last 6 hours, every machine "
        "selected, and the built-in board's snapshot (`dashboards.services.board.snapshot`), each the median of "
        f"its timed runs after a warm-up. Target: the large history ≤ {TARGET_RATIO} × the small one in total; a "
        "query of a few milliseconds is listed, but its ratio is mostly the machine's noise.", "",
        _md_table(["query", "small history ms", "large history ms", "× small"],
                  [[timing.name, f"{timing.small_ms:,.1f}", f"{timing.large_ms:,.1f}", f"{timing.ratio:.2f}"]
                   for timing in boards.timings]
                  + [[f"**{boards.total.name}**", f"**{boards.total.small_ms:,.1f}**", f"**{boards.total.large_ms:,.1f}**",
                      f"**{boards.total.ratio:.2f}**"]]), "",
        "Rows: " + "; ".join(f"`{table}` {small[table]:,} vs {large[table]:,}" for table in small) + ".", "",
        "Before migration 0018 `production_hourly` was a view over every production interval on plain PostgreSQL: the "
        "hourly panels (\"Good and scrap per hour against target\", \"Energy per good unit\") were 3.4–3.7 × slower on "
        "the 10 × larger history (170 → 585 ms, 177 → 646 ms) and the board in total 3.1 ×; the table the ingest now "
        "keeps in its own transaction reads a few rows per machine and hour however long the history. The same runs found two more: the state timeline evaluated its start bound once per earlier state change (now once per machine, materialized), and the board's live OEE joined the attributions to its spans without a constant time bound, so no index could narrow it (now bounded: the BRIN time index reads only the spans' pages, once VACUUM has summarized them, as autovacuum does on an insert-heavy table).", "",
    ]


def _cores_section(cores: CoresResults) -> list[str]:
    rows = [[str(run.cores), run.partition, f"{run.seconds:.1f}", _fmt(run.samples_per_s), f"{cores.gain(run):.2f} ×",
             " / ".join(f"{cpu:.1f}" for cpu in run.core_cpu_s), f"{run.database_cpu_s:.1f}"] for run in cores.runs]
    return ["## 6. Several cores on one plant (MES_CORE_PARTITION=edges)", "",
            f"The ingest workload of benchmark 1's shape ({cores.machines} machines, {cores.runs[0].messages:,} messages, "
            f"{cores.runs[0].samples:,} samples) spread over {cores.edges} edges, drained from a pre-filled broker by that "
            "many `mes core` processes, each leasing its share of the edges; the reference is one core with today's "
            "default, one session for the whole plant. No target: the cores, the broker and "
            "PostgreSQL share this machine's CPUs, so a second core buys at most what CPU is left beside the database.",
            "", _md_table(["cores", "MES_CORE_PARTITION", "drain s", "samples/s", "× whole-plant core", "CPU s per core",
                           "PostgreSQL CPU s"], rows), "",
            "Where the cores' database sessions were while a statement ran (pg_stat_activity sampled every 20 ms "
            "during the drain; share of the samples):", "",
            _md_table(["cores", "partition", *(_top_waits(cores))],
                      [[str(run.cores), run.partition, *(f"{run.waits[w] / max(1, sum(run.waits.values())):.0%}" for w in _top_waits(cores))]
                       for run in cores.runs]), ""]


def _soak_rows(soak: SoakResult) -> list[list[str]]:
    per_day = {table: soak.per_machine_day_mb({table: size}) for table, size in soak.growth.items()}
    rows = [[f"`{table}`", _fmt(soak.rows[table]), _fmt(size / soak.messages),
             f"bounded: {size / 1e6:,.1f} MB for the plant" if table in BOUNDED else _fmt(per_day[table], 2),
             _fmt(soak.after_retention[table] / soak.messages)]
            for table, size in sorted(soak.growth.items(), key=lambda item: (item[0] in BOUNDED, -per_day[item[0]]))
            if size > 0]
    total, after = sum(soak.growth.values()), sum(soak.after_retention.values())
    return [*rows, ["**all**", "", f"**{_fmt(total / soak.messages)}**", f"**{soak.per_machine_day_mb(soak.growth):,.1f}**",
                    f"**{_fmt(after / soak.messages)}**"]]


def _soak_section(results: Results) -> list[str]:
    soak = results.soak
    first, last = (soak.rate(part) for part in soak.thirds)
    droppable = soak.per_machine_day_mb(soak.growth, DROPPABLE)
    forever = soak.per_machine_day_mb(soak.growth) - droppable
    return [
        "## 7. Soak: what a plant leaves in the database, and ingest's pace", "",
        f"**How.** Benchmark 1's workload (`build_workload`) for {soak.machines:,} machines, a message of "
        f"{soak.samples // soak.messages} samples per machine every {soak.seconds_per_message} s of production, "
        f"{soak.messages:,} messages ({soak.samples:,} samples) whose rounds are spread over two simulated days "
        "(accelerated time: each message received at its own simulated instant, so the rows fall into the days' "
        f"partitions), fed in batches of {soak.batch_max_messages} to the core's ingest service (`IngestService.ingest`, "
        "the transaction `mes core` commits per batch; the broker is not what is measured). Sizes: "
        "`pg_total_relation_size` per table, partitions summed, less the empty schema's, after a `VACUUM ANALYZE`. "
        "**Extrapolated**, not run: a simulated plant day is "
        f"{soak.messages_per_machine_day * soak.machines:,.0f} messages ({soak.messages_per_machine_day:,.0f} per machine), "
        f"{soak.messages_per_machine_day * soak.machines / soak.messages:,.0f} × this run, so MB per machine and day = "
        "bytes per message × messages per machine and day; the fixed part of an index is counted in, which makes it "
        "an upper bound; the tables of current state (a row per machine, counter or edge) are the plant's size, not "
        "the day's, and stay out of it (`production_hourly` counts 24 of its rows per machine and day, a row per hour, whereas here each "
        "round falls in an hour of its own). Then the retention job ran at the end of the second day with 1-day settings "
        f"(dropped: {', '.join(f'`{name}`' for name in soak.dropped) or 'nothing'}).", "",
        _md_table(["table", "rows", "bytes per message", "MB per machine and day", "after retention, bytes per message"],
                  _soak_rows(soak)), "",
        f"Of the {soak.per_machine_day_mb(soak.growth):,.1f} MB per machine and day, {droppable:,.1f} MB are `samples` and "
        f"`ingested_messages`, which the retention job drops after MES_RETENTION_SAMPLES_DAYS / "
        f"MES_RETENTION_MESSAGES_DAYS (90 days each by default: a steady state of about {droppable * 90 / 1000:,.1f} GB "
        f"per machine); {forever:,.1f} MB are kept forever (counts, attribution, states; docs/deploy.md, Retention).", "",
        f"**Ingest rate** (of the median batch): {_fmt(first)} messages/s over the first third of the batches after the first round (whose "
        f"messages make every machine's baselines and first state rows), {_fmt(last)} over the last "
        f"({last / first:.2f} ×). The run fills one simulated day's partitions to {soak.messages // 2:,} messages, "
        "a small share of a real day's: it shows no slowdown within that, not a day's worth of index growth.", "",
        *_timescale_part(soak),
    ]


def _timescale_part(soak: SoakResult) -> list[str]:
    day = soak.timescale
    if not isinstance(day, CompressedDay):
        return [f"**TimescaleDB with compression** (target < {SOAK_TIMESCALE_TARGET_MB} MB per machine and day): not "
                f"measured ({day}).", ""]
    raw, compressed = day.per_machine_mb(day.raw), day.per_machine_mb(day.compressed)
    rows = [[f"`{table}`", _fmt(day.rows[table] / day.machines), f"{raw[table]:,.1f}", f"{compressed[table]:,.2f}",
             f"{day.raw[table] / day.compressed[table]:,.0f} ×"] for table in COMPRESSED_TABLES]
    rest = soak.per_machine_day_mb({t: size for t, size in soak.growth.items() if t not in COMPRESSED_TABLES})
    return [
        f"**TimescaleDB with compression.** No TimescaleDB server is installable here and PGlite (TimescaleDB "
        f"{day.version} in WASM PostgreSQL, tests/timescale) cannot run the ingest, so the schema's TimescaleDB DDL ran "
        f"there and one UTC day of {day.machines} machines' rows of the same shape, generated in SQL (good +1 and "
        "energy +2 Wh a second, scrap +1 in 3 % of the seconds, sub-millisecond jitter, a state sample and a production "
        "interval per message), went into its compressed hypertables; then every chunk was compressed, as the policy "
        "does after 7 days (`hypertable_size` before and after):", "",
        _md_table(["hypertable", "rows per machine and day", "MB per machine and day, raw", "compressed", "ratio"], rows), "",
        f"With every other table as the plain run above wrote it ({rest:,.1f} MB per machine and day: `ingested_messages`, a "
        "hypertable not compressed, the attributions and the rest), a day costs "
        f"**{soak.timescale_per_machine_day_mb():,.1f} MB per machine** on TimescaleDB once compressed; the last 7 days stay "
        f"raw (about {sum(raw.values()) * 7:,.0f} MB per machine of hypertables). Synthetic values compress at least as well as "
        "a real machine's, whose counters are as regular but whose states change more often: read the ratio as an upper "
        "bound.", "",
    ]


def _top_waits(cores: CoresResults, top: int = 5) -> list[str]:
    total: Counter[str] = Counter()
    for run in cores.runs:
        total.update(run.waits)
    return [wait for wait, _ in total.most_common(top)]


def write_markdown(results: Results) -> str:
    out = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (tests/bench/); rerun to refresh. Numbers are measured, not asserted: each is",
        "compared with a baseline measured in the same run. `python -m tests.bench --help` explains every option.",
        "",
        f"- **Date:** {results.started_at:%Y-%m-%d %H:%M} UTC",
        f"- **Command:** `{results.command}`",
        f"- **Machine:** {results.machine['summary']}. Every component (simulators, edge, broker, core, "
        "PostgreSQL) shares these cores, and other work on the machine may run at the same time: treat "
        "differences under ~15 % between runs as noise.",
        f"- **Services:** database {results.services.get('database', '?')}; broker {results.services.get('broker', '?')}; "
        "a fresh database per benchmark.",
        f"- **Total run time:** {results.elapsed_s:.0f} s",
        "",
        "## Targets",
        "",
        _md_table(["target", "this run", "verdict"], [list(row) for row in _target_rows(results)]),
        "",
    ]
    if results.ingest_runs and results.copy and results.pure:
        out += _ingest_section(results)
    if results.latency_runs:
        out += _latency_section(results)
    if results.backflush is not None:
        out += _backflush_section(results)
    if results.planning is not None:
        out += _planning_section(results.planning)
    if results.boards is not None:
        out += _boards_section(results.boards)
    if results.cores is not None:
        out += _cores_section(results.cores)
    if results.soak is not None:
        out += _soak_section(results)
    out += _analysis(results)
    return "\n".join(out)
