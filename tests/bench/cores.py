"""Benchmark 5: ingest throughput with 1, 2 and 4 cores sharing one plant's edges (MES_CORE_PARTITION=edges).

Each core is a real `mes core` process (so each has its own interpreter and GIL). For each count of cores:
a fresh database, the cores started and left to settle their edge leases (every edge owned, balanced), then
stopped with SIGSTOP while the broker is filled with the ingest workload (its edges spread over the cores),
then let go with SIGCONT. Measured: seconds from SIGCONT until every message is committed, and each core's
and PostgreSQL's CPU seconds meanwhile. The cores, the broker and PostgreSQL share the machine's CPUs, so the
gain is bounded by them: the figure says how much a second core buys on this machine, not on a cluster.
"""

from __future__ import annotations

import signal
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
import yaml

from app.plantrun import MesProcess
from core.ingest.partition import APPLICATION_NAME, LEASE_NAMESPACE
from core.service import prepare_database
from kernel.plant import parse_plant
from tests.bench.infra import Services, process_cpu_s
from tests.bench.ingest import Workload, bench_plant_document, build_workload, publish_all

CLIENT_ID = "bench-cores"


@dataclass
class CoresRun:
    cores: int
    partition: str  # "plant": today's one core, one session; "edges": the cores share the edges
    edges: int
    messages: int
    samples: int
    seconds: float
    core_cpu_s: list[float] = field(default_factory=list)
    database_cpu_s: float = 0.0
    # what the cores' busy database sessions were doing, sampled every 20 ms during the drain
    waits: Counter[str] = field(default_factory=Counter)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds


@dataclass
class CoresResults:
    runs: list[CoresRun]
    machines: int
    edges: int

    def gain(self, run: CoresRun) -> float:
        """× the whole-plant core (the first run)."""
        return run.samples_per_s / self.runs[0].samples_per_s


def _lease_counts(database_url: str) -> list[int]:
    with psycopg.connect(database_url) as conn:
        return sorted(count for (count,) in conn.execute(
            """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid::int = %s AND granted
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database()) GROUP BY pid""",
            (LEASE_NAMESPACE,)))


def _committed(database_url: str) -> tuple[int, int]:
    with psycopg.connect(database_url) as conn:
        messages = conn.execute("SELECT count(*) FROM ingested_messages").fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
    return messages, dead


class _WaitSampler:
    """Samples the wait events of the cores' ingest sessions (not their lease sessions) while they drain."""

    def __init__(self, database_url: str):
        self.database_url, self.waits = database_url, Counter[str]()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, name="wait-sampler", daemon=True)

    def __enter__(self) -> _WaitSampler:
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        with psycopg.connect(self.database_url, autocommit=True) as conn:
            while not self._stop.wait(0.02):
                for kind, event in conn.execute(
                        """SELECT wait_event_type, wait_event FROM pg_stat_activity
                           WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'active'
                             AND application_name <> %s""", (APPLICATION_NAME,)):
                    self.waits["on CPU" if kind is None else f"{kind}: {event}"] += 1


def _wait(condition, timeout_s: float, what: str, processes: list[MesProcess]) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        for process in processes:
            process.raise_if_failed()
        if time.monotonic() > deadline:
            raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for: {what}")
        time.sleep(0.2)


def run_one(services: Services, document: dict, workload: Workload, cores: int, partition: str, work_dir: Path,
            progress) -> CoresRun:
    plant = parse_plant(document)
    edges = len({machine.edge_id for machine in plant.machines})
    database_url = services.fresh_database(f"bench_cores_{partition}_{cores}")
    prepare_database(database_url, plant)
    run_dir = work_dir / f"cores-{partition}-{cores}"
    run_dir.mkdir(parents=True, exist_ok=True)
    plant_file = run_dir / "plant.yaml"
    plant_file.write_text(yaml.safe_dump(document))
    env = {"MES_CORE_PARTITION": partition, "MES_CORE_CLIENT_ID": f"{CLIENT_ID}-{partition}", "MES_LOG_LEVEL": "INFO"}
    processes = [MesProcess.core(database_url, services.mqtt_url, plant_file, run_dir / f"core-{n}.log", env=env)
                 for n in range(cores)]
    label = f"{cores} core(s), {partition}"
    task = progress.add_task(f"{label}: settle", total=None)
    for process in processes:
        process.start()
    try:
        if partition == "edges":
            fewest = edges // cores
            balanced = sorted([fewest + 1] * (edges % cores) + [fewest] * (cores - edges % cores))
            _wait(lambda: _lease_counts(database_url) == balanced, 120, f"{cores} cores with their edges", processes)
        else:
            _wait(lambda: '"connected to broker"' in processes[0].log_file.read_text(), 120, "the core connected",
                  processes)
        time.sleep(3)  # every session connected and subscribed
        for process in processes:
            process.process.send_signal(signal.SIGSTOP)
        progress.update(task, description=f"{label}: fill broker")
        publish_all(services.mqtt_url, workload, lambda n: None)
        cpu_before = [process_cpu_s(process.process.pid) for process in processes]
        database_before = sum(process_cpu_s(pid) for pid in services.postgres_pids())
        progress.update(task, description=f"{label}: ingest", total=workload.messages)
        started = time.monotonic()
        for process in processes:
            process.process.send_signal(signal.SIGCONT)

        def done() -> bool:
            messages, dead = _committed(database_url)
            progress.update(task, completed=messages)
            return messages + dead >= workload.messages

        with _WaitSampler(database_url) as sampler:
            _wait(done, 900, "every message committed", processes)
        seconds = time.monotonic() - started
        core_cpu = [process_cpu_s(process.process.pid) - before for process, before in zip(processes, cpu_before, strict=True)]
        database_cpu = sum(process_cpu_s(pid) for pid in services.postgres_pids()) - database_before
        progress.update(task, description=f"{label}: {workload.samples / seconds:,.0f} samples/s")
    finally:
        for process in processes:
            if process.process is not None and process.process.poll() is None:
                process.process.send_signal(signal.SIGCONT)
            process.stop()
    return CoresRun(cores, partition, edges, workload.messages, workload.samples, seconds, core_cpu, database_cpu, sampler.waits)


def run_cores(services: Services, machines: int, messages: int, seconds_per_message: int, edges: int,
              counts: list[int], work_dir: Path, progress) -> CoresResults:
    """The same workload (`edges` edges) ingested by one whole-plant core (the reference), then by each count of
    cores in `counts` sharing the edges."""
    document = bench_plant_document(machines, publishers=edges, site="cores")
    workload = build_workload(parse_plant(document), messages, seconds_per_message, edges)
    runs = [run_one(services, document, workload, 1, "plant", work_dir, progress),
            *(run_one(services, document, workload, cores, "edges", work_dir, progress) for cores in counts)]
    return CoresResults(runs, machines, edges)
