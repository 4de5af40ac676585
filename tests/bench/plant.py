"""A benchmark plant shaped like a real one: every component in its own process.

K machines at 1 Hz served by several `mes simulate` processes (each at most OPCUA_PER_SERVER OPC UA
machines on its own OPC UA server and MODBUS_PER_SERVER Modbus machines on its own Modbus server, as a
plant has many PLCs), one `mes edge`, one `mes core`; the broker and PostgreSQL are the benchmark's
services (tests/bench/infra.py). The benchmark process only watches:

  * commits, from outside the core: it subscribes to the edge's retained ack topic (docs/mqtt.md), which
    the core publishes after each commit, and notes when each ack arrives; a message's commit time is the
    arrival of the first ack at or past its (epoch, seq);
  * the edge's progress, from its Prometheus metrics (`mes edge --metrics-port`);
  * CPU per process (and its children: the core's jobs process), from /proc.
"""

from __future__ import annotations

import bisect
import json
import math
import os
import re
import shutil
import socket
import subprocess
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import psycopg

from app.plantrun import MesProcess
from core.queries import counter_values
from kernel.embedded.broker import free_port
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import EdgeAck, ack_topic
from kernel.plant import Plant, parse_plant
from kernel.signals import COUNTERS
from tests.bench.infra import Services, _all_pids, _ppid, machine_busy, process_cpu_s
from tests.bench.ingest import bench_plant_document
from tests.support.mqtt_sessions import forget_session

OPCUA_PER_SERVER = 400
MODBUS_PER_SERVER = 247  # Modbus device ids 1..247 on one server
STOP_TIMEOUT_S = 30
BENCH = "benchmark process (watching acks and the edge's metrics)"
OTHERS = "everything else on the machine (other users, OS)"
MACHINE_BUSY = "machine busy (all cores, 1.0 = every core)"
SIMULATORS = "simulators (every `mes simulate` process)"
EDGE = "edge (`mes edge`)"
CORE = "core (`mes core` and its jobs process)"


@dataclass
class PlantFiles:
    plant: Plant  # what the edge and the core read: every machine, each with its own server's address
    plant_file: Path
    simulator_files: list[Path]
    ports: list[int]  # every simulated server's TCP port, to wait for


def _chunks(items: list, parts: int) -> list[list]:
    size = math.ceil(len(items) / parts) if items else 0
    return [items[n * size:(n + 1) * size] for n in range(parts)]


def write_plant(machines: int, opcua_share: float, directory: Path, *, site: str, edge_id: str) -> PlantFiles:
    """The plant file of the edge and the core, and one per simulator process."""
    document = bench_plant_document(machines, site=site, opcua_share=opcua_share, modbus_limit=machines, edge_id=edge_id)
    specs = [spec for line in document["areas"][0]["lines"] for spec in line["machines"]]
    opcua = [spec for spec in specs if spec["protocol"] == "opcua"]
    modbus = [spec for spec in specs if spec["protocol"] == "modbus"]
    groups = max(1, math.ceil(len(opcua) / OPCUA_PER_SERVER), math.ceil(len(modbus) / MODBUS_PER_SERVER))
    directory.mkdir(parents=True, exist_ok=True)
    sources: dict[str, dict] = {}
    simulator_files, ports = [], []
    for index, (opcua_part, modbus_part) in enumerate(zip(_chunks(opcua, groups), _chunks(modbus, groups), strict=True)):
        opcua_port, modbus_port = free_port(), free_port()
        ports += [opcua_port] if opcua_part else []
        ports += [modbus_port] if modbus_part else []
        members = {spec["id"] for spec in opcua_part + modbus_part}
        lines = [{"id": line["id"], "machines": [spec for spec in line["machines"] if spec["id"] in members]}
                 for line in document["areas"][0]["lines"]]
        part = {**document, "endpoints": {"opcua": f"opc.tcp://127.0.0.1:{opcua_port}/open-mes/", "modbus_port": modbus_port},
                "areas": [{"id": "area-1", "lines": [line for line in lines if line["machines"]]}]}
        # the simulator's own reading of its file gives each machine the address (and Modbus device id) it serves
        for machine in parse_plant(part).machines:
            sources[machine.id] = machine.source.model_dump(mode="json")
        path = directory / f"simulator-{index + 1}.yaml"
        path.write_text(json.dumps(part))  # JSON is YAML
        simulator_files.append(path)
    whole = {**document, "areas": [{"id": "area-1", "lines": [
        {"id": line["id"], "machines": [{**spec, "source": sources[spec["id"]]} for spec in line["machines"]]}
        for line in document["areas"][0]["lines"]]}]}
    plant_file = directory / "plant.yaml"
    plant_file.write_text(json.dumps(whole))
    return PlantFiles(parse_plant(whole), plant_file, simulator_files, ports)


class AckWatch:
    """The core's acks to one edge as they arrive: (arrival, epoch, seq), in arrival order."""

    def __init__(self, mqtt_url: str, edge_id: str) -> None:
        self.edge_id = edge_id
        self.target = parse_mqtt_url(mqtt_url)
        self.acks: list[tuple[float, int, int]] = []
        self._lock = threading.Lock()
        self._client = new_client(self.target, f"bench-ackwatch-{edge_id}", persistent=False)
        self._client.on_connect = lambda client, *_: client.subscribe(ack_topic(edge_id), qos=1)
        self._client.on_message = self._on_message

    def _on_message(self, _client, _userdata, message) -> None:
        arrived = time.time()
        if not message.payload or message.retain:  # a retained one is an earlier commit's, not news
            return
        ack = EdgeAck.model_validate_json(message.payload)
        with self._lock:
            self.acks.append((arrived, ack.epoch, ack.seq))

    def start(self) -> None:
        connect(self._client, self.target)
        self._client.loop_start()

    def last(self) -> tuple[int, int]:
        with self._lock:
            return (self.acks[-1][1], self.acks[-1][2]) if self.acks else (0, 0)

    def stop(self) -> None:
        """Also clears the retained ack: a later edge of the same id must not take it for its own."""
        self._client.publish(ack_topic(self.edge_id), b"", qos=1, retain=True).wait_for_publish(timeout=5)
        self._client.disconnect()
        self._client.loop_stop()

    def commit_times(self) -> tuple[list[tuple[int, int]], list[float]]:
        """Positions acknowledged, ascending, and for each the earliest arrival of an ack at or past it."""
        with self._lock:
            acks = sorted(self.acks, key=lambda ack: (ack[1], ack[2]))
        positions: list[tuple[int, int]] = []
        times: list[float] = []
        for arrived, epoch, seq in reversed(acks):  # later positions first: keep the running minimum of arrivals
            earliest = min(arrived, times[-1]) if times else arrived
            positions.append((epoch, seq))
            times.append(earliest)
        return positions[::-1], times[::-1]


def commit_time(positions: list[tuple[int, int]], times: list[float], position: tuple[int, int]) -> float | None:
    index = bisect.bisect_left(positions, position)
    return times[index] if index < len(times) else None


_METRIC = re.compile(r"^(mes_edge_[a-z_]+)\{[^}]*\} ([0-9.e+-]+)$", re.MULTILINE)


def edge_metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
        text = response.read().decode()
    values: dict[str, float] = {}
    for name, value in _METRIC.findall(text):
        values[name] = values.get(name, 0.0) + float(value)
    return values


def changed_counter_samples(database_url: str, edge_id: str, after: tuple[int, int]) -> list[tuple[str, float, int, int, float]]:
    """(machine, ts, epoch, seq, core receipt) of every counter sample after `after` whose value differs from
    that counter's previous sample: heartbeat snapshots restate old values with their last-confirmed time.
    A sample's message is the machine's first whose placed samples end at or after it (samples keep no key,
    migration 0022): a message's changed samples were read after the previous message left the edge, and the
    core never places a counter sample before the previous one of its counter."""
    with psycopg.connect(database_url) as conn:
        # the day partitions autovacuum has not analyzed yet would otherwise plan the look-up as a scan per sample
        conn.execute("ANALYZE samples, ingested_messages")
        rows = conn.execute(
            """SELECT s.machine_id, extract(epoch FROM s.ts)::float8, m.epoch, m.seq, extract(epoch FROM m.received_at)::float8
               FROM (SELECT machine_id, ts, value, lag(value) OVER (PARTITION BY machine_id, signal ORDER BY ts) AS previous
                     FROM samples WHERE machine_id IN (SELECT machine_id FROM machines WHERE edge_id = %s)
                                    AND signal = ANY(%s)) s
               CROSS JOIN LATERAL (SELECT epoch, seq, received_at FROM ingested_messages
                                   WHERE edge_id = %s AND machine_id = s.machine_id AND last_ts >= s.ts
                                   ORDER BY last_ts LIMIT 1) m
               WHERE s.previous IS NOT NULL AND s.value <> s.previous AND (m.epoch, m.seq) > (%s, %s)""",
            (edge_id, list(COUNTERS), edge_id, *after)).fetchall()
    return rows


def _descendants(pid: int) -> list[int]:
    """`pid` and every process under it."""
    children: dict[int, list[int]] = {}
    for child in _all_pids():
        parent = _ppid(child)
        if parent is not None:
            children.setdefault(parent, []).append(child)
    found, todo = [], [pid]
    while todo:
        current = todo.pop()
        found.append(current)
        todo += children.get(current, [])
    return found


class PlantCpu:
    """CPU seconds between `start()` and `stop()` of named process trees (a process and its children), the
    broker, PostgreSQL (the postmaster and every backend), this process, and the whole machine."""

    def __init__(self, services: Services, trees: dict[str, list[int]]) -> None:
        self.services = services
        self.trees = {**trees, "broker (mosquitto)": [services.broker_pid] if services.broker_pid else []}

    def _sample(self) -> dict[tuple[str, int], float]:
        sample = {(name, pid): process_cpu_s(pid) for name, roots in self.trees.items()
                  for root in roots for pid in _descendants(root)}
        sample |= {("PostgreSQL (all backends)", pid): process_cpu_s(pid) for pid in self.services.postgres_pids()}
        sample[BENCH, os.getpid()] = process_cpu_s(os.getpid())
        return sample

    def start(self) -> None:
        self._before, self._busy_before, self._t0 = self._sample(), machine_busy(), time.monotonic()

    def stop(self) -> dict[str, float]:
        """Share of one core per name (1.0 = one core fully busy), and 'machine busy' out of 1 (all cores).
        A backend that ended during the window is lost; one that started counts whole."""
        after, (busy, total), wall = self._sample(), machine_busy(), time.monotonic() - self._t0
        usage: dict[str, float] = {}
        for (name, pid), cpu in after.items():
            usage[name] = usage.get(name, 0.0) + max(0.0, cpu - self._before.get((name, pid), 0.0)) / wall
        share = (busy - self._busy_before[0]) / (total - self._busy_before[1]) if total > self._busy_before[1] else 0.0
        usage[OTHERS] = max(0.0, share * (os.cpu_count() or 1) - sum(usage.values()))
        usage[MACHINE_BUSY] = share
        return usage


@dataclass
class ProcessPlant:
    """The processes of a benchmark plant; `start()` returns once every counter's baseline is committed."""

    services: Services
    files: PlantFiles
    database_url: str
    work_dir: Path
    edge_env: dict[str, str] = field(default_factory=dict)
    simulators: list[MesProcess] = field(default_factory=list)
    edge: MesProcess | None = None
    core: MesProcess | None = None
    metrics_port: int = 0

    @property
    def edge_id(self) -> str:
        return self.files.plant.edge_id

    @property
    def core_client_id(self) -> str:
        return f"bench-core-{self.edge_id}"

    def start(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        quiet = {"MES_LOG_LEVEL": "WARNING"}
        logs = self.work_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        self.simulators = [MesProcess(["simulate", "--plant", str(path)], quiet, logs / f"{path.stem}.log")
                           for path in self.files.simulator_files]
        for simulator in self.simulators:
            simulator.start()
        self._wait(deadline, "the simulated PLC servers listening", self._servers_listening)
        forget_session(self.services.mqtt_url, self.core_client_id)
        self.core = MesProcess.core(self.database_url, self.services.mqtt_url, self.files.plant_file, logs / "core.log",
                                    {**quiet, "MES_CORE_CLIENT_ID": self.core_client_id})
        self.core.start()
        self.metrics_port = free_port()
        self.edge = MesProcess.edge(self.services.mqtt_url, self.files.plant_file, self.work_dir / "edge", logs / "edge.log",
                                    {**quiet, **self.edge_env})
        self.edge.arguments += ["--metrics-port", str(self.metrics_port)]
        self.edge.start()
        self._wait(deadline, "every counter's first value committed", self._baselines_committed)

    def processes(self) -> dict[str, list[int]]:
        return {SIMULATORS: [p.process.pid for p in self.simulators],
                EDGE: [self.edge.process.pid], CORE: [self.core.process.pid]}

    def raise_if_failed(self) -> None:
        for process in [*self.simulators, self.edge, self.core]:
            if process is not None:
                process.raise_if_failed()

    def _wait(self, deadline: float, what: str, condition) -> None:
        while not condition():
            self.raise_if_failed()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out waiting for: {what}")
            time.sleep(0.5)

    def _servers_listening(self) -> bool:
        for port in self.files.ports:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
            except OSError:
                return False
        return True

    def _baselines_committed(self) -> bool:
        try:
            with psycopg.connect(self.database_url) as conn:
                committed = counter_values(conn)
        except psycopg.Error:  # the core has not migrated the schema yet
            return False
        return all(set(COUNTERS) <= set(committed.get(machine.id, {})) for machine in self.files.plant.machines)

    def stop(self) -> str | None:
        """SIGTERM, the edge first (while its PLCs and the core still answer, as a plant stops it), then the core
        and the simulators together; what went wrong, if anything."""
        problems: list[str] = []
        for group in ([self.edge], [self.core, *self.simulators]):
            running = [p for p in group if p is not None and p.process is not None]
            for process in running:
                if process.process.poll() is None:
                    process._ended_on_purpose = True
                    process.process.terminate()
            for process in running:
                try:
                    process.process.wait(timeout=STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:  # reported and killed: the run goes on
                    problems.append(f"`mes {process.arguments[0]}` did not stop within {STOP_TIMEOUT_S} s of SIGTERM; killed")
                    process.kill()
        forget_session(self.services.mqtt_url, self.core_client_id)
        shutil.rmtree(self.work_dir / "edge", ignore_errors=True)
        return "; ".join(problems) or None
