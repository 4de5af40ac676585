"""PLC servers we did not write, for whole-plant runs (app.plantrun.PlantRun's `servers`): node-opcua and
modbus-serial from the npm registry, locked in tests/peers/package-lock.json. Each is a Node process
(tests/peers/*.mjs) that keeps its ground truth in a JSON state file, rewritten before it confirms a command."""

from __future__ import annotations

import asyncio
import json
import math
import threading
import uuid
from collections.abc import Sequence
from decimal import Decimal
from pathlib import Path

from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import EdgeStatus, MachineConnection, status_topic
from kernel.plant import TYPE_BITS, Plant, SignalSettings
from kernel.signals import COUNTERS, Counter
from tests.support.node import node_with_packages

PEERS = Path(__file__).resolve().parents[1] / "peers"


def peers_node() -> str:
    """`node`, with the peers' locked packages installed; skips the test only when Node.js is absent."""
    return node_with_packages(PEERS, "the third-party PLC servers (node-opcua, modbus-serial)")


class NodePeer:
    """One server process: its config as JSON on the command line, one JSON command a line on stdin,
    answered "ok" once done; its output goes to `<name>.log` in `directory`."""

    def __init__(self, node: str, script: str, config: dict, directory: Path, name: str) -> None:
        self.name = name
        self.state_file = directory / f"{name}.state.json"
        self.log_file = directory / f"{name}.log"
        self.config = {**config, "state": str(self.state_file)}
        self._command = [node, str(PEERS / script)]
        self._process: asyncio.subprocess.Process | None = None
        self._stopped = False

    async def start(self, **changes: object) -> None:
        """Listening, with the counters of the state file if there is one (a restart: `changes` replace keys
        of the config, e.g. a server that comes back with its namespaces in another order)."""
        self.config |= changes
        self._stopped = False
        with open(self.log_file, "ab") as log:
            self._process = await asyncio.create_subprocess_exec(
                *self._command, json.dumps(self.config), cwd=PEERS, stdin=asyncio.subprocess.PIPE,
                stdout=asyncio.subprocess.PIPE, stderr=log)
        await self._answer("ready", 60)

    async def produce(self, counter: str | int, units: int = 1) -> None:
        """The PLC counts `units` more on `counter` (for a meter: steps of its resolution)."""
        self._process.stdin.write((json.dumps({"produce": counter, "units": units}) + "\n").encode())
        await self._process.stdin.drain()
        await self._answer("ok", 10)

    async def _answer(self, expected: str, timeout_s: float) -> None:
        while True:
            line = await asyncio.wait_for(self._process.stdout.readline(), timeout_s)
            if not line:
                raise RuntimeError(f"the peer {self.name} ended:\n{self._log_tail()}")
            if line.decode().strip() == expected:
                return

    async def stop(self) -> None:
        """As a server shuts down: its input closed, it ends (killed if it has not within 10 s)."""
        self._stopped = True
        process, self._process = self._process, None
        if process is None or process.returncode is not None:
            return
        process.stdin.close()
        try:
            await asyncio.wait_for(process.wait(), 10)
        except TimeoutError:
            process.kill()
            await process.wait()

    def raise_if_failed(self) -> None:
        if not self._stopped and self._process is not None and self._process.returncode is not None:
            raise RuntimeError(f"the peer {self.name} ended with {self._process.returncode}:\n{self._log_tail()}")

    def truth(self) -> dict[str, dict[str, str]]:
        """Per counter id: its `type`, `start`, the `value` it shows and what it `produced`, as decimal text."""
        return json.loads(self.state_file.read_text())

    def _log_tail(self) -> str:
        return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-15:])


class PeerPlant:
    """The PLCs of a plant run, as third-party servers. `served`: per machine and counter, the peer serving
    it and that counter's id there. Production is the test's: `NodePeer.produce`, counter by counter."""

    def __init__(self, plant: Plant, peers: Sequence[NodePeer], served: dict[tuple[str, Counter], tuple[NodePeer, str | int]]):
        self.plant = plant
        self.peers = list(peers)
        self.served = served

    async def start(self) -> None:
        await asyncio.gather(*(peer.start() for peer in self.peers))

    async def stop(self) -> None:
        await asyncio.gather(*(peer.stop() for peer in self.peers))

    def start_production(self) -> None:
        """Nothing: the test produces."""

    def stop_production(self) -> None:
        """Nothing: the test produces."""

    def raise_if_failed(self) -> None:
        for peer in self.peers:
            peer.raise_if_failed()

    def counters(self) -> dict[str, dict[str, int | str]]:
        """The value each served counter shows, as the core records it: a signed integer as the unsigned value
        of its bits, `value × scale + offset` floored to a whole unit."""
        shown: dict[str, dict[str, int | str]] = {}
        for (machine, counter), (peer, key) in self.served.items():
            entry = peer.truth()[str(key)]
            shown.setdefault(machine, {})[counter] = recorded(entry, "value", self._settings(machine, counter))
        return shown

    def ground_truth(self) -> dict[str, dict]:
        """What each machine produced: units for a counter; for a meter the energy to the whole unit the core
        records, i.e. its reading floored less its first reading floored (a fraction not completed yet is not
        counted yet). A machine or counter not served produced nothing readable: 0."""
        truth = {machine.id: dict.fromkeys(COUNTERS, 0) for machine in self.plant.machines}
        for (machine, counter), (peer, key) in self.served.items():
            entry = peer.truth()[str(key)]
            settings = self._settings(machine, counter)
            if not entry["type"].startswith("float"):
                assert settings.scale == 1 and settings.offset == 0, "a scaled integer counter: say what it produced"
                truth[machine][counter] = int(entry["produced"])
            else:
                truth[machine][counter] = recorded(entry, "value", settings) - recorded(entry, "start", settings)
        return truth

    def _settings(self, machine_id: str, counter: str) -> SignalSettings:
        source = next(m for m in self.plant.machines if m.id == machine_id).source
        signals = source.nodes if source.protocol == "opcua" else source.registers
        return signals[counter]


def recorded(entry: dict[str, str], field: str, settings: SignalSettings) -> int:
    if entry["type"].startswith("float"):
        value = Decimal(entry[field])
    else:  # the bits of a signed value, read unsigned (Decimal's % would keep the sign)
        value = Decimal(int(entry[field]) % 2 ** TYPE_BITS[entry["type"]])
    return math.floor(value * settings.scale + settings.offset)


class EdgeStatusLog:
    """Every status message of one edge (`mes/v1/edge/<id>/status`, retained) as it arrives."""

    def __init__(self, mqtt_url: str, edge_id: str) -> None:
        self._lock = threading.Lock()
        self._statuses: list[EdgeStatus] = []
        target = parse_mqtt_url(mqtt_url)
        self._client = new_client(target, client_id=f"test-status-{uuid.uuid4().hex[:8]}", persistent=False)
        self._client.on_connect = lambda client, *_: client.subscribe(status_topic(edge_id), qos=1)
        self._client.on_message = self._arrived
        connect(self._client, target)

    def _arrived(self, _client: object, _userdata: object, message: object) -> None:
        with self._lock:
            self._statuses.append(EdgeStatus.model_validate_json(message.payload))

    def count(self) -> int:
        with self._lock:
            return len(self._statuses)

    def of(self, machine_id: str, since: int = 0) -> list[MachineConnection]:
        """The machine's connection in each status message from the `since`-th on (while the edge was online)."""
        with self._lock:
            return [s.connections[machine_id] for s in self._statuses[since:] if s.online and machine_id in s.connections]

    def latest(self, machine_id: str) -> MachineConnection | None:
        shown = self.of(machine_id)
        return shown[-1] if shown else None

    def close(self) -> None:
        self._client.disconnect()
        self._client.loop_stop()
