"""Benchmark 1: core ingest throughput against a raw COPY of the same sample rows.

1. A plant of M machines is registered in a fresh database (migrations + machine registry).
2. The core's persistent session is created on the broker (subscribe QoS 1, disconnect), then N data
   messages are published with QoS 1 from a few publisher clients, one edge id each, and all are
   PUBACKed: the broker now holds the whole backlog for the core.
3. The core (`CoreProcess`: the consumer and its jobs) starts; the clock runs from its start until the last message is committed.
   parse / look-up / locks and context / plan / write inside the core are timed by wrapping those functions in
   this process, and its start-up (until it parses its first batch).
4. Baseline: COPY of exactly the rows the core committed to `samples` into `bench_copy (LIKE samples
   INCLUDING ALL)` (same columns, same indexes), through psycopg `cursor.copy` + `write_row`.
5. Informational: parse + plan of the same payloads in-process, without any I/O.
"""

from __future__ import annotations

import gc
import json
import os
import random
import statistics
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import psycopg

import core.ingest.service as ingest_service
import core.ingest.store as ingest_store
from app.core_process import CoreProcess
from core.ingest.plan import IngestState, Incoming, parse_batch, plan_batch
from core.ingest.rows import SAMPLE_TYPES, SampleRow
from kernel.db.models import make_engine
from core.service import prepare_database
from kernel.mqtt import new_client, parse_mqtt_url
from kernel.payload import DATA_SUBSCRIPTION, DataMessage, data_topic, decode_data
from kernel.plant import Plant, parse_plant
from tests.bench.infra import Services, process_cpu_s
from tests.support.mqtt_sessions import forget_session

CORE_CLIENT_ID = "bench-core"
MACHINES_PER_LINE = 20


def bench_plant(machines: int, **options) -> Plant:
    """The plant of `bench_plant_document(machines, **options)`."""
    return parse_plant(bench_plant_document(machines, **options))


def bench_plant_document(machines: int, *, site: str = "bench", opcua_share: float = 1.0, endpoints: dict | None = None,
                         modbus_limit: int = 247, edge_id: str = "bench-edge", publishers: int | None = None) -> dict:
    """M machines at 1 Hz (ideal cycle 1 s), 32-bit counters, never failing; lines of 20 machines. With
    `publishers`, machine n belongs to edge `bench-edge-<n % publishers + 1>`, as `build_workload` publishes it."""
    modbus = min(modbus_limit, round(machines * (1 - opcua_share)))
    every = machines / modbus if modbus else 0
    modbus_indexes = {int(n * every) for n in range(modbus)}
    specs = [{"id": f"m{index:04d}", "protocol": "modbus" if index in modbus_indexes else "opcua",
              "ideal_cycle_s": 1, "counter_width": 32, "counter_start": 1000 + index,
              "simulation": {"mtbf_s": None, "plc_reset_probability": 0, "seed": index},
              **({"edge_id": publisher_edge(index % publishers)} if publishers else {})}
             for index in range(machines)]
    lines = [{"id": f"line-{n // MACHINES_PER_LINE + 1:03d}", "machines": specs[n:n + MACHINES_PER_LINE]}
             for n in range(0, machines, MACHINES_PER_LINE)]
    document = {"site": site, "edge_id": edge_id, "areas": [{"id": "area-1", "lines": lines}]}
    if endpoints:
        document["endpoints"] = endpoints
    return document


def publisher_edge(publisher: int) -> str:
    return f"bench-edge-{publisher + 1}"


@dataclass
class Workload:
    """The messages to publish, in publish order per publisher (= per edge id)."""

    per_publisher: list[list[tuple[str, bytes]]]
    messages: int
    samples: int
    samples_per_message: int


def build_workload(plant: Plant, messages: int, seconds_per_message: int, publishers: int, *,
                   start: datetime | None = None, round_every_s: int | None = None) -> Workload:
    """Counter values climb as a 1 Hz machine's would (≤ its plausible rate), timestamps 1 s apart. A round (one
    message per machine) begins every `round_every_s` (default: right after the last), the first at `start`."""
    machines = plant.machines
    rounds = -(-messages // len(machines))
    every = round_every_s or seconds_per_message
    start = start or datetime.now(UTC) - timedelta(seconds=rounds * every + 60)
    rng = random.Random(7)
    counters = {m.id: {"good": m.counter_start, "scrap": 0, "energy_wh": 0} for m in machines}
    per_publisher: list[list[tuple[str, bytes]]] = [[] for _ in range(publishers)]
    seqs = [0] * publishers
    made = samples = 0
    topics = {m.id: data_topic(*m.path) for m in machines}
    for round_index in range(rounds):
        for index, machine in enumerate(machines):
            if made == messages:
                break
            publisher = index % publishers
            seqs[publisher] += 1
            values = counters[machine.id]
            base = start + timedelta(seconds=round_index * every)
            body = [{"ts": base.isoformat(), "signal": "state", "value": 1}]
            for second in range(seconds_per_message):
                ts = (base + timedelta(seconds=second, microseconds=rng.randrange(1000))).isoformat()
                values["good"] += 1
                values["scrap"] += 1 if rng.random() < 0.03 else 0
                values["energy_wh"] += 2
                body += [{"ts": ts, "signal": signal, "value": values[signal]} for signal in ("good", "scrap", "energy_wh")]
            message = DataMessage.model_validate({"edge_id": publisher_edge(publisher), "epoch": 1,
                                                  "seq": seqs[publisher], "machine": machine.id, "samples": body})
            per_publisher[publisher].append((topics[machine.id], message.model_dump_json().encode()))
            made += 1
            samples += len(body)
    return Workload(per_publisher, made, samples, 1 + 3 * seconds_per_message)


def create_core_session(mqtt_url: str) -> None:
    """The core's persistent session with its subscription, then away: the broker queues for it."""
    target = parse_mqtt_url(mqtt_url)
    client = new_client(target, CORE_CLIENT_ID, persistent=True, manual_ack=True)
    subscribed = threading.Event()
    client.on_connect = lambda c, *_: c.subscribe(DATA_SUBSCRIPTION, qos=1)
    client.on_subscribe = lambda *_: subscribed.set()
    client.connect(target.host, target.port)
    client.loop_start()
    if not subscribed.wait(10):
        raise RuntimeError("could not subscribe the benchmark's core session")
    client.disconnect()
    client.loop_stop()


def publish_all(mqtt_url: str, workload: Workload, progress: Callable[[int], None]) -> float:
    """Publish every message QoS 1, one client per edge id; returns seconds until the last PUBACK."""
    target = parse_mqtt_url(mqtt_url)
    acked = 0
    lock = threading.Lock()
    done = threading.Event()

    def on_publish(*_):
        nonlocal acked
        with lock:
            acked += 1
            if acked == workload.messages:
                done.set()

    clients = []
    for number in range(len(workload.per_publisher)):
        client = new_client(target, f"bench-publisher-{number + 1}", persistent=False)
        client.on_publish = on_publish
        client.connect(target.host, target.port)
        client.loop_start()
        clients.append(client)
    started = time.monotonic()
    for client, messages in zip(clients, workload.per_publisher, strict=True):
        for topic, payload in messages:
            client.publish(topic, payload, qos=1)
    while not done.wait(0.2):
        progress(acked)
        if time.monotonic() - started > 600:
            raise TimeoutError(f"only {acked} of {workload.messages} messages were acknowledged by the broker")
    elapsed = time.monotonic() - started
    progress(acked)
    for client in clients:
        client.disconnect()
        client.loop_stop()
    return elapsed


@dataclass
class StageTimes:
    """Seconds spent in each stage of the core's ingest, measured inside the real run."""

    parse: float = 0.0
    lookup: float = 0.0
    load: float = 0.0  # the machines' locks and the plan's context (`lookup` is inside)
    plan: float = 0.0
    write: float = 0.0
    calls: dict[str, int] = field(default_factory=dict)
    clock_started: float = 0.0  # perf_counter when the run's clock started
    first_batch: float = 0.0  # seconds from then until the core parsed its first batch (its start-up)
    # inside write: seconds per table (COPY for append-only tables, staging COPY + upsert for state)
    tables: dict[str, float] = field(default_factory=dict)


@contextmanager
def timed_core_stages(times: StageTimes):
    """Wrap the core's stage functions (in this process only) to time them; restored afterwards."""
    originals = {
        (ingest_service, "parse_batch"): "parse",
        (ingest_service, "plan_batch"): "plan",
        (ingest_store, "find_ingested"): "lookup",
        (ingest_store, "with_machines_locked"): "load",
        (ingest_store, "load_context"): "load",
        (ingest_store, "write_plan"): "write",
    }
    saved = {}
    for (module, name), stage in originals.items():
        function = getattr(module, name)
        saved[module, name] = function

        def wrapper(*args, _function=function, _stage=stage, **kwargs):
            started = time.perf_counter()
            if _stage == "parse" and not times.calls.get("parse"):
                times.first_batch = started - times.clock_started
            try:
                return _function(*args, **kwargs)
            finally:
                setattr(times, _stage, getattr(times, _stage) + time.perf_counter() - started)
                times.calls[_stage] = times.calls.get(_stage, 0) + 1

        setattr(module, name, wrapper)
    for name in ("copy_rows", "_upsert"):
        function = getattr(ingest_store, name)
        saved[ingest_store, name] = function

        def table_wrapper(cur, table, *args, _function=function, _kind=name, **kwargs):
            started = time.perf_counter()
            try:
                return _function(cur, table, *args, **kwargs)
            finally:
                label = table if _kind == "copy_rows" else f"{table} (upsert)"
                times.tables[label] = times.tables.get(label, 0.0) + time.perf_counter() - started

        setattr(ingest_store, name, table_wrapper)
    try:
        yield times
    finally:
        for (module, name), function in saved.items():
            setattr(module, name, function)


@dataclass
class IngestRun:
    batch_max_messages: int
    messages: int
    samples: int
    seconds: float
    batches: int
    stages: StageTimes
    publish_seconds: float
    rows: list[tuple] = field(repr=False, default_factory=list)
    dead_letters: int = 0
    quarantined: int = 0
    duplicates: int = 0
    # CPU seconds spent while the core ran, per process: what a loaded machine's wall times hide
    cpu_s: dict[str, float] = field(default_factory=dict)

    @property
    def samples_per_s(self) -> float:
        return self.samples / self.seconds

    @property
    def messages_per_s(self) -> float:
        return self.messages / self.seconds


def run_ingest(services: Services, plant: Plant, workload: Workload, batch_max_messages: int, name: str,
               progress, keep_rows: bool, seed: Callable[[str], None] | None = None) -> tuple[IngestRun, str]:
    """`seed(database_url)`, when given, runs after the migrations and before the broker is filled (not timed)."""
    database_url = services.fresh_database(name)
    prepare_database(database_url, plant)
    if seed is not None:
        seed(database_url)
    forget_session(services.mqtt_url, CORE_CLIENT_ID)
    create_core_session(services.mqtt_url)

    task = progress.add_task(f"fill broker (batch {batch_max_messages})", total=workload.messages)
    publish_s = publish_all(services.mqtt_url, workload, lambda n: progress.update(task, completed=n))
    progress.update(task, description=f"fill broker: {workload.messages / publish_s:,.0f} msg/s")

    committed = {"messages": 0, "samples": 0, "batches": 0, "duplicates": 0, "dead": 0}
    finished = threading.Event()

    def on_commit(plan, committed_at):
        committed["messages"] += len(plan.messages)
        committed["samples"] += len(plan.samples)
        committed["batches"] += 1
        committed["duplicates"] += plan.duplicates
        committed["dead"] += len(plan.dead_letters)
        if committed["messages"] + committed["dead"] >= workload.messages:
            finished.set()

    stages = StageTimes()
    task = progress.add_task(f"core ingest, batch ≤ {batch_max_messages}", total=workload.messages)
    with timed_core_stages(stages):
        cpu_before = _cpu(services)
        started = time.monotonic()
        stages.clock_started = time.perf_counter()
        core = CoreProcess(database_url, services.mqtt_url, client_id=CORE_CLIENT_ID,
                           batch_max_messages=batch_max_messages, status_every_s=3600, on_commit=on_commit)
        thread = threading.Thread(target=core.run, name="mes-core", daemon=True)
        thread.start()
        while not finished.wait(0.2):
            progress.update(task, completed=committed["messages"])
            if not thread.is_alive():
                raise RuntimeError(f"the core stopped after {committed['messages']:,} of {workload.messages:,} "
                                   "messages (see its log above)")
            if time.monotonic() - started > 600:
                break
        elapsed = time.monotonic() - started
        cpu_s = {name: sum(seconds - cpu_before.get(name, {}).get(pid, 0.0) for pid, seconds in by_pid.items())
                 for name, by_pid in _cpu(services).items()}
        progress.update(task, completed=committed["messages"],
                        description=f"core ingest, batch ≤ {batch_max_messages}: {committed['samples'] / elapsed:,.0f} samples/s")
        core.stop()
        thread.join(90)
    forget_session(services.mqtt_url, CORE_CLIENT_ID)
    with psycopg.connect(database_url) as conn:
        quarantined = conn.execute("SELECT count(*) FROM counter_events WHERE quarantined > 0").fetchone()[0]
        dead = conn.execute("SELECT count(*) FROM dead_letters").fetchone()[0]
        # the baseline's input: exactly the rows the core committed (read back, not kept during the run,
        # so the measured process does not carry them)
        rows = conn.execute(f"SELECT {', '.join(SampleRow._fields)} FROM samples").fetchall() if keep_rows else []
    return IngestRun(batch_max_messages, committed["messages"], committed["samples"], elapsed, committed["batches"],
                     stages, publish_s, rows, dead, quarantined, committed["duplicates"], cpu_s), database_url


def _cpu(services: Services) -> dict[str, dict[int, float]]:
    """CPU seconds so far of the benchmark's process (the core runs in it), PostgreSQL's processes and the broker."""
    broker = {services.broker_pid: process_cpu_s(services.broker_pid)} if services.broker_pid else {}
    return {"core process": {os.getpid(): process_cpu_s(os.getpid())},
            "PostgreSQL": {pid: process_cpu_s(pid) for pid in services.postgres_pids()}, "broker": broker}


# --- baselines ------------------------------------------------------------------------------------

@dataclass
class CopyRun:
    rows: int
    seconds: list[float]  # one per repetition
    binary_seconds: list[float]

    @property
    def rows_per_s(self) -> float:
        return self.rows / statistics.median(self.seconds)

    @property
    def binary_rows_per_s(self) -> float:
        return self.rows / statistics.median(self.binary_seconds) if self.binary_seconds else 0.0


def copy_baseline(database_url: str, rows: list[tuple], repetitions: int, progress) -> CopyRun:
    """COPY the rows into a fresh `bench_copy (LIKE samples INCLUDING ALL)`, one transaction, timed
    from the COPY statement to the commit. Text COPY (as the core writes), then binary for reference."""
    columns = ", ".join(SampleRow._fields)
    text_s, binary_s = [], []
    task = progress.add_task("raw COPY baseline", total=2 * repetitions)
    with psycopg.connect(database_url) as conn:
        for binary in (False, True):
            for _ in range(repetitions):
                with conn.transaction():
                    conn.execute("DROP TABLE IF EXISTS bench_copy")
                    conn.execute("CREATE TABLE bench_copy (LIKE samples INCLUDING ALL)")
                started = time.perf_counter()
                with conn.transaction(), conn.cursor() as cur:
                    statement = f"COPY bench_copy ({columns}) FROM STDIN" + (" (FORMAT BINARY)" if binary else "")
                    with cur.copy(statement) as copy:
                        if binary:
                            copy.set_types(list(SAMPLE_TYPES))
                        for row in rows:
                            copy.write_row(row)
                (binary_s if binary else text_s).append(time.perf_counter() - started)
                progress.advance(task)
        copied = conn.execute("SELECT count(*) FROM bench_copy").fetchone()[0]
        conn.execute("DROP TABLE bench_copy")
        conn.commit()
    if copied != len(rows):
        raise RuntimeError(f"COPY baseline wrote {copied} rows, expected {len(rows)}")
    progress.update(task, description=f"raw COPY baseline: {len(rows) / statistics.median(text_s):,.0f} rows/s")
    return CopyRun(len(rows), text_s, binary_s)


@dataclass
class PureRun:
    parse_s: float
    plan_s: float
    messages: int
    samples: int
    gc_off: PureRun | None = None
    validation: dict[str, float] = field(default_factory=dict)  # µs per sample, validation alone


def validation_alone(workload: Workload) -> dict[str, float]:
    """µs per sample of validating the payloads alone: as the core does it, with the pydantic model, and JSON alone."""
    payloads = [payload for messages in workload.per_publisher for _, payload in messages]
    results = {}
    for label, function in (("`decode_data` (msgspec, as the core does)", decode_data),
                            ("`DataMessage.model_validate_json` (pydantic, the schema of record)", DataMessage.model_validate_json),
                            ("`json.loads` alone", json.loads)):
        started = time.perf_counter()
        for payload in payloads:
            function(payload)
        results[label] = (time.perf_counter() - started) / workload.samples * 1e6
    return results


def pure_with_variants(database_url: str, workload: Workload, batch_max_messages: int) -> PureRun:
    """The pure pipeline as is, again with Python's cyclic GC off, and validation alone."""
    result = pure_pipeline(database_url, workload, batch_max_messages)
    gc.collect()
    gc.disable()
    try:
        result.gc_off = pure_pipeline(database_url, workload, batch_max_messages)
    finally:
        gc.enable()
    result.validation = validation_alone(workload)
    return result


def pure_pipeline(database_url: str, workload: Workload, batch_max_messages: int) -> PureRun:
    """parse_batch + plan_batch over the same payloads, batch by batch, no I/O at all."""
    engine = make_engine(database_url)
    with engine.connect() as connection:
        registry = ingest_store.load_registry(connection)
    engine.dispose()
    received = datetime.now(UTC)
    # the order the core sees: the broker interleaves publishers; per edge id the order is kept
    incoming = [Incoming(topic, payload, received) for batch in zip(*workload.per_publisher, strict=False) for topic, payload in batch]
    leftovers = [m for messages in workload.per_publisher for m in messages[min(map(len, workload.per_publisher)):]]
    incoming += [Incoming(topic, payload, received) for topic, payload in leftovers]
    state = IngestState()
    parse_s = plan_s = 0.0
    samples = messages = 0
    for start in range(0, len(incoming), batch_max_messages):
        t0 = time.perf_counter()
        parsed = parse_batch(incoming[start:start + batch_max_messages], registry)
        t1 = time.perf_counter()
        plan = plan_batch(parsed, state, registry, set())
        t2 = time.perf_counter()
        state = plan.state
        parse_s += t1 - t0
        plan_s += t2 - t1
        samples += len(plan.samples)
        messages += len(plan.messages)
    return PureRun(parse_s, plan_s, messages, samples)
