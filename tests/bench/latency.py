"""Benchmark 2: end-to-end latency with K simulated machines at 1 Hz.

A PlantRun (OPC UA + Modbus simulators, the edge agent, the core in a thread) on free ports, in THIS
process, with the broker and PostgreSQL as separate processes; everything shares the machine's cores.

Latency of a sample = the core's commit time (the `on_commit` hook) − the sample's `ts`:
  * OPC UA: the SourceTimestamp the simulator stamps when it writes the changed value;
  * Modbus: the edge's read time (a Modbus register has no timestamp), so the up to `poll_ms` (500 ms)
    between the change in the simulator and the poll is NOT included for Modbus machines.
Only counter samples whose value differs from the previous committed value of that counter count:
the edge's heartbeat snapshots restate unchanged values with their last-confirmed time and would
measure the heartbeat period, not the pipeline.

Sustained: over the measured window, (messages the edge enqueued − messages the core committed) grew by
less than one second's worth of messages (K): whatever the bottleneck (edge queue, broker, core queue),
the pipeline kept up.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from kernel.embedded.broker import free_port
from kernel.signals import COUNTERS
from app.plantrun import PlantRun, ThreadCore
from tests.bench.infra import CpuMeter, Services
from tests.support.mqtt_sessions import forget_session
from tests.bench.ingest import bench_plant


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
    backlog_start: int = 0
    backlog_end: int = 0
    backlog_max: int = 0
    enqueued_per_s: float = 0.0
    committed_per_s: float = 0.0
    committed_samples_per_s: float = 0.0
    readings_per_s: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    error: str | None = None
    stop_problem: str | None = None
    modbus_warnings: int = 0  # pymodbus warnings during the run (e.g. answers arriving after the 2 s timeout)

    @property
    def all_latencies(self) -> list[float]:
        return [value for values in self.latencies.values() for value in values]

    @property
    def sustained(self) -> bool:
        return self.error is None and self.backlog_growth < self.machines

    @property
    def backlog_growth(self) -> float:
        """Messages enqueued by the edge but not committed by the core, more at the end than at the start."""
        return (self.enqueued_per_s - self.committed_per_s) * self.duration_s

    def stats(self, protocol: str | None = None, values: list[float] | None = None) -> dict[str, float]:
        if values is None:
            values = self.all_latencies if protocol is None else self.latencies.get(protocol, [])
        return {"n": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
                "p99": percentile(values, 99), "max": max(values) if values else float("nan")}


class LatencyRecorder:
    """on_commit hook: latency of every counter sample that changed the counter's value."""

    def __init__(self, protocols: dict[str, str]) -> None:
        self.protocols = protocols
        self.last: dict[tuple[str, str], int] = {}
        self.window: tuple[datetime, datetime] | None = None
        self.latencies: dict[str, list[float]] = {"opcua": [], "modbus": []}
        # the same latencies split at the core's receipt (paho on_message): source → core, core → commit
        self.to_core: list[float] = []
        self.in_core: list[float] = []
        self.messages = 0
        self.samples = 0

    def __call__(self, plan, committed_at: datetime) -> None:
        self.messages += len(plan.messages)
        self.samples += len(plan.samples)
        recording = self.window is not None and self.window[0] <= committed_at <= self.window[1]
        received = {(edge, epoch, seq): received_at for edge, epoch, seq, _, received_at, *_ in plan.messages} if recording else {}
        for machine_id, ts, signal, value, edge, epoch, seq in plan.samples:
            if signal not in COUNTERS:
                continue
            key = (machine_id, signal)
            previous = self.last.get(key)
            self.last[key] = value
            if recording and previous is not None and value != previous:
                self.latencies[self.protocols[machine_id]].append((committed_at - ts).total_seconds())
                received_at = received[edge, epoch, seq]
                self.to_core.append((received_at - ts).total_seconds())
                self.in_core.append((committed_at - received_at).total_seconds())


async def run_latency(services: Services, machines: int, duration_s: float, warmup_s: float, opcua_share: float,
                      progress) -> LatencyRun:
    endpoints = {"opcua": f"opc.tcp://127.0.0.1:{free_port()}/open-mes/", "modbus_port": free_port()}
    plant = bench_plant(machines, site=f"lat{machines}", opcua_share=opcua_share, endpoints=endpoints,
                        edge_id=f"bench-edge-{machines}")
    protocols = {m.id: m.protocol for m in plant.machines}
    opcua = sum(1 for p in protocols.values() if p == "opcua")
    database_url = services.fresh_database(f"bench_latency_{machines}")
    client_id = f"bench-e2e-{machines}"
    forget_session(services.mqtt_url, client_id)
    recorder = LatencyRecorder(protocols)
    core = ThreadCore(database_url, services.mqtt_url, client_id=client_id, status_every_s=3600, on_commit=recorder)
    state_dir = services.work_dir / f"e2e-{machines}"
    shutil.rmtree(state_dir, ignore_errors=True)
    plant_run = PlantRun(plant, database_url, services.mqtt_url, state_dir, core=core,
                         edge_options={"stats_every_s": 3600})
    result = LatencyRun(machines, opcua, machines - opcua, duration_s, 0.0, recorder.latencies, recorder.to_core,
                        recorder.in_core)
    counter = _WarningCounter()
    logging.getLogger("pymodbus").addHandler(counter)
    task = progress.add_task(f"K={machines}: start-up (servers, edge subscriptions, baselines)", total=None)
    started = time.monotonic()
    try:
        await plant_run.start(baseline_timeout_s=180)
        result.startup_s = time.monotonic() - started
        plant_run.start_production()
        progress.update(task, description=f"K={machines}: warm-up", total=warmup_s + duration_s, completed=0)
        t0 = time.monotonic()
        while time.monotonic() - t0 < warmup_s:
            await asyncio.sleep(0.5)
            progress.update(task, completed=time.monotonic() - t0)

        def backlog() -> int:
            consumer = core.process.consumer if core.process else None
            return plant_run.edge.metrics.queue_depth + (consumer._deliveries.qsize() if consumer else 0)

        meter = CpuMeter(services)
        meter.start()
        window_start = datetime.now(UTC)
        recorder.window = (window_start, datetime.max.replace(tzinfo=UTC))
        result.backlog_start = result.backlog_max = backlog()
        enqueued0, committed0, samples0 = plant_run.edge.metrics.enqueued_total, recorder.messages, recorder.samples
        readings0 = plant_run.edge.metrics.readings_total
        t1 = time.monotonic()
        while (elapsed := time.monotonic() - t1) < duration_s:
            await asyncio.sleep(0.5)
            current = backlog()
            result.backlog_max = max(result.backlog_max, current)
            recent = recorder.latencies["opcua"][-1500:] + recorder.latencies["modbus"][-500:]
            progress.update(task, completed=warmup_s + elapsed,
                            description=(f"K={machines}: backlog {current:,} msg · p50 {percentile(recent, 50):.2f} s "
                                         f"· p99 {percentile(recent, 99):.2f} s (recent)"))
        measured_s = time.monotonic() - t1
        result.cpu = meter.stop()
        recorder.window = (window_start, datetime.now(UTC))
        result.backlog_end = backlog()
        result.enqueued_per_s = (plant_run.edge.metrics.enqueued_total - enqueued0) / measured_s
        result.committed_per_s = (recorder.messages - committed0) / measured_s
        result.committed_samples_per_s = (recorder.samples - samples0) / measured_s
        result.readings_per_s = (plant_run.edge.metrics.readings_total - readings0) / measured_s
        verdict = "sustained" if result.sustained else "NOT sustained"
        stats = result.stats()
        progress.update(task, description=(f"K={machines}: {verdict} · p50 {stats['p50']:.2f} s · p99 {stats['p99']:.2f} s"
                                           f" · backlog {result.backlog_start:,}→{result.backlog_end:,}"))
    except Exception as error:  # noqa: BLE001 - a K the machine cannot start is a result, not a crash
        result.error = f"{type(error).__name__}: {error}"
        progress.update(task, description=f"K={machines}: failed: {result.error}", total=1, completed=1)
    finally:
        if plant_run.simulated.producing:
            plant_run.simulated.stop_production()
        await stop_plant(plant_run, core, result, services.work_dir / f"hang-K{machines}.txt")
        forget_session(services.mqtt_url, client_id)
        logging.getLogger("pymodbus").removeHandler(counter)
        result.modbus_warnings = counter.count
    return result


STOP_TIMEOUT_S = 30


async def stop_plant(plant_run: PlantRun, core: ThreadCore, result: LatencyRun, dump: Path) -> None:
    """PlantRun.stop() with time limits: a hung stop must not hang the benchmark (and is reported)."""
    edge, edge_task = plant_run.edge, plant_run._edge_task
    if edge is not None and edge_task is not None:
        edge.stop()
        try:
            await asyncio.wait_for(asyncio.shield(edge_task), STOP_TIMEOUT_S)
        except asyncio.TimeoutError:
            with open(dump, "w") as handle:
                for task in asyncio.all_tasks():
                    print(f"--- {task.get_name()}", file=handle)
                    task.print_stack(file=handle)
            result.stop_problem = (f"the edge agent did not stop within {STOP_TIMEOUT_S} s (its shut-down awaits "
                                   f"a source's stop(); task stacks in {dump}); cancelled")
            edge_task.cancel()
            await asyncio.wait({edge_task}, timeout=STOP_TIMEOUT_S)
            await asyncio.to_thread(edge._stop_mqtt)  # the cancelled shut-down skipped it
        except Exception as error:  # noqa: BLE001 - reported, the run goes on
            result.stop_problem = f"the edge agent stopped with {type(error).__name__}: {error}"
        plant_run.edge = None
    await asyncio.to_thread(core.stop)
    try:
        await asyncio.wait_for(plant_run.simulated.stop(), STOP_TIMEOUT_S)
    except asyncio.TimeoutError:
        result.stop_problem = (result.stop_problem or "") + f"; the simulators did not stop within {STOP_TIMEOUT_S} s"


class _WarningCounter(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
