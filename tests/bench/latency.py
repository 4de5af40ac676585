"""Benchmark 2: end-to-end latency with K simulated machines at 1 Hz, every component its own process.

The plant of tests/bench/plant.py: several `mes simulate` processes, one `mes edge`, one `mes core`, the
broker and PostgreSQL; everything shares the machine's cores.

Latency of a sample = its commit − its `ts`. The commit is seen from outside the core: the arrival, at a
subscriber of the edge's ack topic, of the first ack at or past the sample's message (the core publishes it
after the commit, so this is an upper bound by one broker hop). `ts`:
  * OPC UA: the SourceTimestamp the simulator stamps when it writes the changed value;
  * Modbus: the edge's read time (a Modbus register has no timestamp), so the up to `poll_ms` (500 ms)
    between the change in the simulator and the poll is NOT included for Modbus machines.
Only counter samples whose value differs from the previous sample of that counter count: the edge's
heartbeat snapshots restate unchanged values with their last-confirmed time and would measure the
heartbeat period, not the pipeline.

Sustained: every machine was served (its changes reached the database: `served`) and over the measured
window the edge's disk queue (messages enqueued and not yet confirmed committed by the core) grew by less
than one second's worth of messages (K): whatever the bottleneck (simulators, edge, broker, core), the
pipeline kept up. The edge alone kept up when what it enqueued minus what the
broker acknowledged (PUBACK) grew by less than K: the edge's own throughput, whatever the core does after.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import dataclass, field

import psycopg

from tests.bench.infra import Services
from tests.bench.plant import (CORE, EDGE, AckWatch, PlantCpu, ProcessPlant, changed_counter_samples, commit_time,
                               edge_metrics, write_plant)

ENQUEUED, PUBLISHED = "mes_edge_enqueued_messages_total", "mes_edge_published_messages_total"
QUEUED, READINGS = "mes_edge_queue_messages", "mes_edge_readings_total"
# A machine of the benchmark plant (1 s cycle, never failing) changes `good` and `energy_wh` once a cycle (and
# `scrap` now and then): about 2 changed counter samples a second. Served = at least SERVED_SHARE of that committed.
CHANGES_PER_MACHINE_S = 2.0
SERVED_SHARE = 0.95


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    index = min(len(ordered) - 1, max(0, round(q / 100 * len(ordered) + 0.5) - 1))
    return ordered[index]


@dataclass
class LatencyRun:
    machines: int
    opcua: int
    modbus: int
    duration_s: float
    startup_s: float
    latencies: dict[str, list[float]] = field(repr=False)
    to_core: list[float] = field(repr=False, default_factory=list)
    in_core: list[float] = field(repr=False, default_factory=list)
    simulators: int = 0  # `mes simulate` processes
    backlog_start: int = 0
    backlog_end: int = 0
    backlog_max: int = 0
    enqueued_per_s: float = 0.0
    published_per_s: float = 0.0
    committed_per_s: float = 0.0
    committed_samples_per_s: float = 0.0
    readings_per_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    stop_problem: str | None = None
    edge_warnings: int = 0  # warning lines the edge logged during the run (e.g. a Modbus read timing out)

    @property
    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]

    @property
    def sustained(self) -> bool:
        return self.error is None and self.served and self.backlog_growth < self.machines

    @property
    def backlog_growth(self) -> float:
        """Messages enqueued by the edge but not committed by the core, more at the end than at the start."""
        return float(self.backlog_end - self.backlog_start)

    @property
    def changes_per_machine_s(self) -> float:
        """Changed counter samples committed per machine and second: ~CHANGES_PER_MACHINE_S when every machine is
        read as it produces (fewer when the simulators or the edge's sources fall behind)."""
        return len(self.all_latencies) / (self.machines * self.duration_s) if self.duration_s else 0.0

    @property
    def served(self) -> bool:
        return self.changes_per_machine_s >= SERVED_SHARE * CHANGES_PER_MACHINE_S

    @property
    def edge_kept_up(self) -> bool:
        """Every machine's changes reached the core and the edge handed the broker what it enqueued (within one
        second's worth)."""
        return (self.error is None and self.served
                and (self.enqueued_per_s - self.published_per_s) * self.duration_s < self.machines)

    @property
    def edge_cpu(self) -> float:
        return self.cpu.get(EDGE, float("nan"))

    @property
    def core_cpu(self) -> float:
        return self.cpu.get(CORE, float("nan"))

    def stats(self, protocol: str | None = None, values: list[float] | None = None) -> dict[str, float]:
        if values is None:
            values = self.all_latencies if protocol is None else self.latencies.get(protocol, [])
        return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
                "p99": percentile(values, 99), "max": max(values) if values else float("nan")}


def run_latency(services: Services, machines: int, duration_s: float, warmup_s: float, opcua_share: float,
                progress, kind: str = "e2e") -> LatencyRun:
    """`kind`: names the run's database, edge and files, so that the same K can run again in one benchmark."""
    name = f"{kind}-{machines}"
    work_dir = services.work_dir / name
    shutil.rmtree(work_dir, ignore_errors=True)  # logs and the edge's queue of an earlier benchmark
    files = write_plant(machines, opcua_share, work_dir, site=f"lat{machines}", edge_id=f"bench-edge-{name}")
    protocols = {m.id: m.protocol for m in files.plant.machines}
    opcua = sum(1 for p in protocols.values() if p == "opcua")
    result = LatencyRun(machines, opcua, machines - opcua, duration_s, 0.0, {"opcua": [], "modbus": []},
                        simulators=len(files.simulator_files))
    database_url = services.fresh_database(f"bench_latency_{kind}_{machines}")
    plant = ProcessPlant(services, files, database_url, work_dir)
    acks = AckWatch(services.mqtt_url, plant.edge_id)
    task = progress.add_task(f"{kind} K={machines}: start-up ({result.simulators} simulators, core, edge, baselines)",
                             total=None)
    started = time.monotonic()
    try:
        acks.start()
        plant.start(timeout_s=120 + machines * 0.06)
        result.startup_s = time.monotonic() - started
        progress.update(task, description=f"{kind} K={machines}: warm-up", total=warmup_s + duration_s, completed=0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < warmup_s:
            time.sleep(0.5)
            plant.raise_if_failed()
            progress.update(task, completed=time.monotonic() - t0)
        meter = PlantCpu(services, plant.processes())
        before, start_position = edge_metrics(plant.metrics_port), acks.last()
        meter.start()
        window_start = time.time()
        t1 = time.monotonic()
        result.backlog_start = result.backlog_max = int(before[QUEUED])
        while (elapsed := time.monotonic() - t1) < duration_s:
            time.sleep(min(1.0, duration_s - elapsed))
            plant.raise_if_failed()
            current = int(edge_metrics(plant.metrics_port)[QUEUED])
            result.backlog_max = max(result.backlog_max, current)
            progress.update(task, completed=warmup_s + time.monotonic() - t1,
                            description=f"{kind} K={machines}: edge queue {current:,} msg")
        result.cpu = meter.stop()
        measured_s = time.monotonic() - t1
        window_end = time.time()
        after, end_position = edge_metrics(plant.metrics_port), acks.last()
        result.duration_s = measured_s
        result.backlog_end = int(after[QUEUED])
        result.enqueued_per_s = (after[ENQUEUED] - before[ENQUEUED]) / measured_s
        result.published_per_s = (after[PUBLISHED] - before[PUBLISHED]) / measured_s
        result.readings_per_s = (after[READINGS] - before[READINGS]) / measured_s
        with psycopg.connect(database_url) as conn:
            messages, samples = conn.execute(
                "SELECT count(*), coalesce(sum(sample_count), 0) FROM ingested_messages WHERE edge_id = %s"
                " AND (epoch, seq) > (%s, %s) AND (epoch, seq) <= (%s, %s)",
                (plant.edge_id, *start_position, *end_position)).fetchone()
        result.committed_per_s, result.committed_samples_per_s = messages / measured_s, samples / measured_s
        _latencies(result, acks, database_url, plant.edge_id, start_position, (window_start, window_end), protocols)
        verdict = "sustained" if result.sustained else "NOT sustained"
        stats = result.stats()
        progress.update(task, description=(f"{kind} K={machines}: {verdict} · p50 {stats['p50']:.2f} s · p99 "
                                           f"{stats['p99']:.2f} s · edge CPU {result.edge_cpu:.2f} · queue "
                                           f"{result.backlog_start:,}→{result.backlog_end:,}"))
    except Exception as error:  # noqa: BLE001 - a K the machine cannot start is a result, not a crash
        result.error = f"{type(error).__name__}: {error}"
        progress.update(task, description=f"{kind} K={machines}: failed: {result.error}", total=1, completed=1)
    finally:
        result.stop_problem = plant.stop()
        acks.stop()
        edge_log = work_dir / "logs" / "edge.log"
        result.edge_warnings = len(edge_log.read_text(errors="replace").splitlines()) if edge_log.exists() else 0
    return result


def _latencies(result: LatencyRun, acks: AckWatch, database_url: str, edge_id: str, after: tuple[int, int],
               window: tuple[float, float], protocols: dict[str, str]) -> None:
    positions, times = acks.commit_times()
    for machine, ts, epoch, seq, received in changed_counter_samples(database_url, edge_id, after):
        committed = commit_time(positions, times, (epoch, seq))
        if committed is None or not window[0] <= committed <= window[1]:
            continue
        result.latencies[protocols[machine]].append(committed - ts)
        result.to_core.append(received - ts)
        result.in_core.append(committed - received)
