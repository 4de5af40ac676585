"""A whole plant running: simulators → edge agent → broker → core → database.

One harness for `mes demo`, the end-to-end tests and the benchmark, so that what the demo shows is
what the tests prove. The core and the edge run in this process or as real `mes core` / `mes edge`
subprocesses that a test can SIGKILL.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Protocol

import psycopg

from app.core_process import CoreProcess
from core.queries import counter_values, recorded_totals
from core.service import prepare_database
from edge.agent import EdgeAgent
from kernel.logs import get_logger
from kernel.signals import COUNTERS
from kernel.plant import Plant
from simulators.plant import SimulatedPlant

log = get_logger("app.plantrun")


class PlcServers(Protocol):
    """The PLCs a plant run reads: our simulators (SimulatedPlant), or servers we did not write
    (tests/support/peers.py) that keep a ground truth the same way."""

    async def start(self) -> None: ...
    async def stop(self) -> None: ...
    def start_production(self) -> None: ...
    def stop_production(self) -> None: ...
    def raise_if_failed(self) -> None: ...

    def counters(self) -> dict[str, dict[str, int | str]]:
        """Per machine, the value each counter it serves shows now, as the core records it."""

    def ground_truth(self) -> dict[str, dict]:
        """Per machine, what it produced: every counter of kernel.signals.COUNTERS (and more if it likes)."""


class ThreadCore:
    """The core (its consumer and its jobs) running in a thread of this process."""

    def __init__(self, database_url: str, mqtt_url: str, **options):
        """`options`: those of `CoreProcess`."""
        self.database_url, self.mqtt_url, self.options = database_url, mqtt_url, options
        self.process: CoreProcess | None = None
        self._thread: threading.Thread | None = None
        self._failure: BaseException | None = None

    def start(self) -> None:
        self.process = CoreProcess(self.database_url, self.mqtt_url, **self.options)
        self._thread = threading.Thread(target=self._run, name="mes-core", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            self.process.run()
        except BaseException as error:  # kept for raise_if_failed: a dead thread would otherwise just go quiet
            self._failure = error
            raise

    def raise_if_failed(self) -> None:
        if self._failure is not None:
            raise RuntimeError("the core stopped with an error") from self._failure

    def stop(self) -> None:
        if self.process is not None:
            self.process.stop()
            self._thread.join(timeout=90)  # the consumer's batch in hand, then every job's round in hand
            self.process = None


class MesProcess:
    """A `mes <command>` child process: what a plant runs, and what a test can kill -9."""

    def __init__(self, arguments: list[str], env: dict[str, str], log_file: Path):
        self.arguments = arguments
        self.env = {**os.environ, "MES_LOG_FORMAT": "json", **env}
        self.log_file = log_file
        self.process: subprocess.Popen | None = None
        self._ended_on_purpose = False

    @classmethod
    def core(cls, database_url: str, mqtt_url: str, plant_file: Path, log_file: Path,
             env: dict[str, str] | None = None) -> MesProcess:
        """`env`: more variables, e.g. MES_CORE_PARTITION=edges for one of several cores."""
        return cls(["core"], {"MES_DATABASE_URL": database_url, "MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file),
                              **(env or {})}, log_file)

    @classmethod
    def edge(cls, mqtt_url: str, plant_file: Path, state_dir: Path, log_file: Path,
             env: dict[str, str] | None = None) -> MesProcess:
        """`env`: more variables, e.g. the one a plant file's `password_env` names."""
        return cls(["edge", "--state-dir", str(state_dir)],
                   {"MES_MQTT_URL": mqtt_url, "MES_PLANT": str(plant_file), **(env or {})}, log_file)

    def start(self) -> None:
        self._ended_on_purpose = False
        with open(self.log_file, "ab") as log_handle:
            self.process = subprocess.Popen([sys.executable, "-m", "app", *self.arguments], env=self.env,
                                            stdout=log_handle, stderr=subprocess.STDOUT)

    def raise_if_failed(self) -> None:
        """An exit nobody asked for (killed or stopped on purpose is not one) is a failure."""
        if self.process is not None and not self._ended_on_purpose and self.process.poll() is not None:
            tail = self.log_file.read_text(errors="replace").splitlines()[-15:]
            raise RuntimeError(f"mes {self.arguments[0]} exited with {self.process.returncode}:\n" + "\n".join(tail))

    def kill(self) -> None:
        """SIGKILL: no clean-up, no last commit, no goodbye to the broker."""
        self._ended_on_purpose = True
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=10)

    def stop(self) -> None:
        """SIGTERM, as a service manager stops it; SIGKILL if it has not finished in 30 s."""
        self._ended_on_purpose = True
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


class PlantRun:
    def __init__(self, plant: Plant, database_url: str, mqtt_url: str, state_dir: Path, *,
                 core: ThreadCore | MesProcess | None = None, edge_process: MesProcess | None = None,
                 edge_options: dict | None = None, simulator_options: dict | None = None,
                 edge_mqtt_urls: dict[str, str] | None = None, servers: PlcServers | None = None,
                 unread: Iterable[tuple[str, str]] = ()):
        """One edge agent per edge the plant file assigns machines to, each with its broker URL from
        `edge_mqtt_urls` (default `mqtt_url`) and `edge_options` (for EdgeAgent). They run in this process,
        but for the plant's default edge (`plant.edge_id`, `self.edge`) when `edge_process` is given.
        `servers`: the PLCs, by default our simulators serving the plant (with `simulator_options`).
        `unread`: (machine, counter) pairs the edge cannot read (an edge process given a plant file with a
        wrong node or register), which the waits for baselines and final values leave out."""
        self.plant = plant
        self.database_url = database_url
        self.mqtt_url = mqtt_url
        self.edge_mqtt_urls = edge_mqtt_urls or {}
        self.state_dir = Path(state_dir)
        self.core = core or ThreadCore(database_url, mqtt_url)
        self.simulated = servers if servers is not None else SimulatedPlant(plant, **(simulator_options or {}))
        self.edge_options = edge_options or {}
        self.edge_process = edge_process
        self.edge: EdgeAgent | None = None
        self._edge_task: asyncio.Task | None = None
        self._other_edges: list[tuple[EdgeAgent, asyncio.Task]] = []
        self.unread = frozenset(unread)

    async def start(self, baseline_timeout_s: float = 60) -> None:
        """Everything up, every counter's baseline committed, production not yet started."""
        await asyncio.to_thread(prepare_database, self.database_url, self.plant)
        await self.simulated.start()
        self.core.start()
        await self.start_edge()
        await self.wait_for(self._baselines_committed, baseline_timeout_s, "every counter's first value committed")

    async def start_edge(self) -> None:
        """Every edge agent of the plant."""
        if self.edge_process is not None:
            self.edge_process.start()
        elif self.plant.machines_of(self.plant.edge_id):
            self.edge, self._edge_task = self._start_agent(self.plant.edge_id, self.state_dir / "edge")
        others = dict.fromkeys(machine.edge_id for machine in self.plant.machines if machine.edge_id != self.plant.edge_id)
        self._other_edges = [self._start_agent(edge_id, self.state_dir / f"edge-{edge_id}") for edge_id in others]

    def _start_agent(self, edge_id: str, state_dir: Path) -> tuple[EdgeAgent, asyncio.Task]:
        agent = EdgeAgent(self.plant, self.edge_mqtt_urls.get(edge_id, self.mqtt_url), state_dir, edge_id=edge_id,
                          **self.edge_options)
        return agent, asyncio.create_task(agent.run(), name=f"edge agent {edge_id}")

    async def stop_edge(self) -> None:
        """Every edge agent of the plant."""
        if self.edge_process is not None:
            await asyncio.to_thread(self.edge_process.stop)
        running = ([(self.edge, self._edge_task)] if self.edge is not None else []) + self._other_edges
        for agent, _ in running:
            agent.stop()
        for _, task in running:
            await task
        self.edge, self._other_edges = None, []

    def start_production(self) -> None:
        self.simulated.start_production()

    async def drain(self, timeout_s: float = 60) -> None:
        """Stop production and wait until the core has committed the counters' final values."""
        self.simulated.stop_production()
        await self.wait_for(self.final_values_committed, timeout_s, "final counter values committed")

    async def stop(self) -> None:
        await self.stop_edge()
        await asyncio.to_thread(self.core.stop)
        await self.simulated.stop()

    async def __aenter__(self) -> PlantRun:
        try:
            await self.start()
        except BaseException:
            await self.stop()
            raise
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    def comparison(self) -> dict[str, dict[str, dict[str, int]]]:
        """Per machine: what the database recorded and what the simulator knows was produced."""
        with psycopg.connect(self.database_url) as conn:
            recorded = recorded_totals(conn)
        truth = self.simulated.ground_truth()
        return {
            machine.id: {
                "recorded": recorded.get(machine.id, dict.fromkeys(COUNTERS, 0)),
                "ground_truth": {counter: truth[machine.id][counter] for counter in COUNTERS},
            }
            for machine in self.plant.machines
        }

    async def wait_for(self, condition: Callable[[], bool], timeout_s: float, what: str) -> None:
        deadline = time.monotonic() + timeout_s
        while not await asyncio.to_thread(condition):
            self.simulated.raise_if_failed()
            self.core.raise_if_failed()
            if self.edge_process is not None:
                self.edge_process.raise_if_failed()
            if time.monotonic() > deadline:
                raise TimeoutError(f"timed out after {timeout_s:.0f} s waiting for: {what}")
            await asyncio.sleep(0.25)

    def _committed_counters(self) -> dict[str, dict[str, int]]:
        with psycopg.connect(self.database_url) as conn:
            return counter_values(conn)

    def _served_counters(self) -> dict[str, dict[str, int | str]]:
        """What the servers show of each counter a machine serves (a machine may serve only some) and the edge reads."""
        return {machine: {c: v for c, v in values.items() if c in COUNTERS and (machine, c) not in self.unread}
                for machine, values in self.simulated.counters().items()}

    def _baselines_committed(self) -> bool:
        committed = self._committed_counters()
        return all(set(shown) <= set(committed.get(m, {})) for m, shown in self._served_counters().items())

    def final_values_committed(self) -> bool:
        """The core has committed the value every served counter shows now."""
        committed = self._committed_counters()
        return all(committed.get(m, {}).get(c) == v for m, shown in self._served_counters().items() for c, v in shown.items())


def exact(comparison: dict) -> bool:
    return all(entry["recorded"] == entry["ground_truth"] for entry in comparison.values())
