"""The edge against servers we did not write: node-opcua and modbus-serial (npm, locked in
tests/peers/package-lock.json), each with a ground truth the test sets. Skipped only when Node is absent."""

from __future__ import annotations

import asyncio
import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from edge_harness import Counted, eventually, free_port

from edge.sources.modbus import ModbusClientSource
from edge.sources.opcua import OpcUaClientSource
from kernel.modbus import words_of
from kernel.plant import parse_plant

PEERS = Path(__file__).resolve().parents[1] / "peers"
PLC = "urn:peer:plc"
OTHER = "urn:peer:other"
SECRET = "peer-Pa55word-never-logged"


@pytest.fixture(scope="module")
def node() -> str:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("Node.js 20+ and npm run the third-party peers (node-opcua, modbus-serial)")
    if not (PEERS / "node_modules" / "node-opcua").is_dir() or not (PEERS / "node_modules" / "modbus-serial").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=PEERS, check=True, capture_output=True, timeout=600)
    return node


class Peer:
    """A Node server process: started with its JSON config, fed one JSON command per line."""

    def __init__(self, node: str, script: str, config: dict) -> None:
        self._command = [node, str(PEERS / script), json.dumps(config)]
        self._process: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        self._process = await asyncio.create_subprocess_exec(
            *self._command, cwd=PEERS, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE)
        await self._answer("ready", 60)

    async def send(self, **command: object) -> None:
        self._process.stdin.write((json.dumps(command) + "\n").encode())
        await self._process.stdin.drain()
        await self._answer("ok", 10)

    async def _answer(self, expected: str, timeout: float) -> None:
        while True:
            line = (await asyncio.wait_for(self._process.stdout.readline(), timeout)).decode().strip()
            if not line and self._process.returncode is not None:
                raise RuntimeError(f"{self._command[1]} ended")
            if line == expected:
                return

    async def stop(self) -> None:
        if self._process is not None and self._process.returncode is None:
            self._process.kill()
            await self._process.wait()


def opcua_peer(node: str, port: int, pki: Path, namespaces: list[str], values: dict, security: dict | None = None) -> Peer:
    types = {1001: "Int16", 1002: "Int32", 2001: "UInt64", "Energy.kWh": "Double"}
    return Peer(node, "opcua_peer.mjs", {
        "port": port, "namespaces": namespaces, "plc": PLC, "pki": str(pki), "security": security,
        "variables": [{"id": i, "type": t, "value": values[i]} for i, t in types.items()]})


def opcua_plant(port: int, security: dict | None = None):
    source = {"protocol": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{port}/peer", "namespace": PLC, "nodes": {
        "good": {"node": f"nsu={PLC};i=1001", "type": "int16"},
        "scrap": {"node": 1002, "type": "int32"},
        "energy_wh": {"node": f"nsu={PLC};s=Energy.kWh", "scale": 1000}}}
    wide = {"protocol": "opcua", "endpoint": source["endpoint"], "nodes": {"good": {"node": f"nsu={PLC};i=2001", "type": "uint64"}}}
    if security:
        source["security"] = wide["security"] = security
    return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        {"id": "s7", "protocol": "opcua", "ideal_cycle_s": "0.01", "rated_power_w": 1000, "source": source},
        {"id": "wide", "protocol": "opcua", "ideal_cycle_s": "0.01", "source": wide}]}]}]})


def signed(value: int, bits: int) -> int:
    return (value + 2 ** (bits - 1)) % 2**bits - 2 ** (bits - 1)


def test_node_opcua_signed_wraps_uint64_a_kwh_meter_and_a_restart_that_moves_the_namespace(node, tmp_path):
    async def scenario():
        port = free_port()
        start = {1001: 32760, 1002: 2**31 - 4, 2001: 2**40, "Energy.kWh": 1.5}
        peer = opcua_peer(node, port, tmp_path / "pki", [PLC], start)
        await peer.start()
        plant = opcua_plant(port)
        counted = Counted(plant)
        source = OpcUaClientSource(plant.machines)
        await source.start(counted)
        try:
            await eventually(lambda: counted.latest("s7", "energy_wh") == 1500 and counted.latest("wide", "good") == 2**40,
                             30, "the initial values")
            for step in range(1, 21):  # 20 units across each signed wrap
                await peer.send(set=1001, value=signed(32760 + step, 16))
                await peer.send(set=1002, value=signed(2**31 - 4 + step, 32))
                await peer.send(set=2001, value=2**40 + step)
            for kwh in (1.6125, 2.0001, 3.25):
                await peer.send(set="Energy.kWh", value=kwh)
            await eventually(lambda: counted.totals.get(("s7", "good")) == 20 and counted.totals.get(("s7", "scrap")) == 20
                             and counted.totals.get(("wide", "good")) == 20 and counted.latest("s7", "energy_wh") == 3250,
                             20, "the wraps and the meter")
            assert counted.totals[("s7", "energy_wh")] == 3250 - 1500 and not counted.quarantined

            await peer.stop()
            await eventually(lambda: source.health.status("s7") == "unreachable", 15, "the server to be missed")
            seen: list[str] = []

            async def watch() -> None:
                while True:
                    seen.append(source.health.status("s7"))
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            moved = opcua_peer(node, port, tmp_path / "pki", [OTHER, PLC],
                               {1001: signed(32785, 16), 1002: signed(2**31 + 21, 32), 2001: 2**40 + 25, "Energy.kWh": 3.5})
            await moved.start()
            watcher.cancel()
            assert "ok" not in seen
            returned = asyncio.get_running_loop().time()
            await eventually(lambda: counted.totals.get(("s7", "good")) == 25 and counted.totals.get(("wide", "good")) == 25
                             and counted.latest("s7", "energy_wh") == 3500, 10, "counting within 10 s of the server's return")
            assert asyncio.get_running_loop().time() - returned < 10 and not counted.quarantined
            await moved.stop()
        finally:
            await source.stop()
            await peer.stop()

    asyncio.run(scenario())


def test_node_opcua_sign_and_encrypt_with_a_user(node, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PEER_OPCUA_PASSWORD", SECRET)

    async def scenario():
        port = free_port()
        peer = opcua_peer(node, port, tmp_path / "pki", [PLC], {1001: 5, 1002: 0, 2001: 0, "Energy.kWh": 0.0},
                          security={"user": "edge", "password": SECRET})
        await peer.start()
        plant = opcua_plant(port, {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "user": "edge",
                                   "password_env": "PEER_OPCUA_PASSWORD", "certificate": str(tmp_path / "edge.der"),
                                   "private_key": str(tmp_path / "edge-key.pem")})
        counted = Counted(plant)
        source = OpcUaClientSource(plant.machines)
        await source.start(counted)
        try:
            await eventually(lambda: counted.latest("s7", "good") == 5, 60, "a value over SignAndEncrypt")
            await peer.send(set=1001, value=-32768)
            await eventually(lambda: counted.latest("s7", "good") == 32768, 10, "a change")
        finally:
            await source.stop()
            await peer.stop()

    asyncio.run(scenario())
    logged = capsys.readouterr()
    assert SECRET not in logged.out + logged.err


def test_modbus_serial_sparse_strict_map_input_registers_byte_orders_and_unit_ids_0_and_255(node):
    orders = {"ABCD": 0, "CDAB": 1, "BADC": 2, "DCBA": 255}

    async def scenario():
        port = free_port()
        peer = Peer(node, "modbus_peer.mjs", {"port": port, "units": [0, 1, 2, 255],
                                              "holding": [[0, 2], [50, 2]], "input": [[0, 2], [100, 8]]})
        await peer.start()
        machines = [{"id": "sparse", "protocol": "modbus", "ideal_cycle_s": "0.01", "source": {
            "protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": 1, "poll_ms": 20,
            "registers": {"good": {"address": 0}, "scrap": {"address": 50}}}}]
        machines += [{"id": f"meter-{order}", "protocol": "modbus", "ideal_cycle_s": "0.01", "rated_power_w": 1000, "source": {
            "protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": unit, "poll_ms": 20, "registers": {
                "good": {"address": 0, "table": "input", "type": "int32", "byte_order": order},
                "energy_wh": {"address": 100 + 2 * n, "table": "input", "type": "float32", "byte_order": order,
                              "scale": 1000}}}} for n, (order, unit) in enumerate(orders.items())]
        plant = parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": machines}]}]})
        await peer.send(unit=1, table="holding", address=0, words=[0, 7])
        await peer.send(unit=1, table="holding", address=50, words=[0, 3])
        for n, (order, unit) in enumerate(orders.items()):
            await peer.send(unit=unit, table="input", address=0, words=words_of(struct.pack(">i", -3), order))
            await peer.send(unit=unit, table="input", address=100 + 2 * n, words=words_of(struct.pack(">f", 12.345), order))
        counted = Counted(plant)
        source = ModbusClientSource(plant.machines)
        await source.start(counted)
        try:
            await eventually(lambda: counted.latest("sparse", "scrap") == 3 and counted.latest("sparse", "good") == 7, 20,
                             "the sparse map on a strict device")
            for order in orders:
                await eventually(lambda o=order: counted.latest(f"meter-{o}", "energy_wh") == 12345, 20, f"{order}")
                assert counted.latest(f"meter-{order}", "good") == 2**32 - 3
            for order, unit in orders.items():
                await peer.send(unit=unit, table="input", address=0, words=words_of(struct.pack(">i", 4), order))
            for order in orders:
                await eventually(lambda o=order: counted.totals.get((f"meter-{o}", "good")) == 7, 20, f"{order} wrap")
            assert all(source.health.status(m.id) == "ok" for m in plant.machines) and not counted.quarantined
        finally:
            await source.stop()
            await peer.stop()

    asyncio.run(scenario())
