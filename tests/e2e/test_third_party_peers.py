"""The real `mes core` and `mes edge` against PLC servers we did not write: node-opcua and modbus-serial (npm,
locked in tests/peers/package-lock.json; tests/support/peers.py). Each run ends with the good / scrap / Wh the
core recorded in PostgreSQL equal, per machine, to the ground truth the servers kept. Skipped only when Node.js
is absent."""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from pathlib import Path

import psycopg
import pytest
import yaml

from app.plantrun import MesProcess, PlantRun
from core.queries import counter_values
from kernel.embedded.broker import free_port
from kernel.plant import Plant, load_plant
from tests.support.peers import EdgeStatusLog, NodePeer, PeerPlant, peers_node

pytestmark = pytest.mark.slow

PLC = "urn:peer:plc"
OTHER = "urn:peer:other"
SECRET = "peer-Pa55word-never-logged"
PASSWORD_ENV = "MES_PEER_OPCUA_PASSWORD"
FAST = {"ideal_cycle_s": "0.01"}  # counts: up to 1,000 a second are credible
METER_RATE = 100_000  # Wh/s: energy steps the test makes in a fraction of a second are credible


@pytest.fixture(scope="module")
def node() -> str:
    return peers_node()


def plant_file(directory: Path, machines: list[dict]) -> tuple[Plant, Path]:
    """A plant of these machines, its edge and site named for this run (the broker is the session's)."""
    document = {"site": "peers", "edge_id": f"peers-{uuid.uuid4().hex[:8]}",
                "areas": [{"id": "a", "lines": [{"id": "l", "machines": machines}]}]}
    path = directory / "plant.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_plant(path), path


def whole_plant(plant: Plant, path: Path, servers: PeerPlant, database_url: str, mqtt_url: str, directory: Path,
                edge_env: dict[str, str] | None = None) -> PlantRun:
    """The real processes: `mes core` and `mes edge`, with their logs in `directory`."""
    core = MesProcess.core(database_url, mqtt_url, path, directory / "core.log")
    edge = MesProcess.edge(mqtt_url, path, directory / "edge", directory / "edge.log", env=edge_env)
    return PlantRun(plant, database_url, mqtt_url, directory, core=core, edge_process=edge, servers=servers)


async def wait_for_status(statuses: EdgeStatusLog, machine: str, wanted: set[str], timeout_s: float = 30):
    deadline = time.monotonic() + timeout_s
    while (latest := statuses.latest(machine)) is None or latest.status not in wanted:
        assert time.monotonic() < deadline, f"{machine} not {wanted} within {timeout_s} s: {latest}"
        await asyncio.sleep(0.1)
    return latest


async def committed(run: PlantRun, what: str) -> None:
    """Until the core has committed the value every served counter shows (else: what it has and what they show)."""
    try:
        await run.wait_for(run.final_values_committed, 60, what)
    except TimeoutError as timeout:
        shown = await asyncio.to_thread(run.simulated.counters)
        with psycopg.connect(run.database_url) as conn:
            raise AssertionError(f"{timeout}\ncommitted: {counter_values(conn)}\nshown: {shown}") from None


def assert_exact(plant_run: PlantRun, database_url: str) -> None:
    comparison = plant_run.comparison()
    mismatches = {m: e for m, e in comparison.items() if e["recorded"] != e["ground_truth"]}
    assert not mismatches, json.dumps(mismatches, indent=1)
    with psycopg.connect(database_url) as conn:
        assert conn.execute("SELECT count(*) FROM counter_events WHERE quarantined > 0").fetchone() == (0,)


def test_node_opcua_signed_wraps_uint64_kwh_nodeid_forms_a_namespace_shift_and_sign_and_encrypt(
        node, database_url, mqtt_url, tmp_path):
    plain, secure = free_port(), free_port()
    plc = NodePeer(node, "opcua_peer.mjs", {
        "port": plain, "namespaces": [PLC], "plc": PLC, "pki": str(tmp_path / "pki-plc"), "security": None,
        "variables": [{"id": 1001, "type": "Int16", "start": 32760}, {"id": 1002, "type": "Int32", "start": 2**31 - 4},
                      {"id": 2001, "type": "UInt64", "start": 2**40},
                      {"id": "Energy.kWh", "type": "Double", "start": "1.5", "decimals": 4}]}, tmp_path, "plc")
    locked = NodePeer(node, "opcua_peer.mjs", {
        "port": secure, "namespaces": [PLC], "plc": PLC, "pki": str(tmp_path / "pki-locked"),
        "security": {"user": "edge", "password": SECRET},
        "variables": [{"id": 3001, "type": "Int16", "start": 32766}]}, tmp_path, "locked")
    endpoint = f"opc.tcp://127.0.0.1:{plain}/peer"
    security = {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "user": "edge", "password_env": PASSWORD_ENV,
                "certificate": str(tmp_path / "edge-cert.der"), "private_key": str(tmp_path / "edge-key.pem")}
    plant, path = plant_file(tmp_path, [
        # Siemens-like: an Int16 read as the type the server gives (its width said: the core must know where it
        # wraps), an Int32 as a YAML integer inside `namespace`, a Double kWh meter scaled to Wh
        {"id": "s7", "protocol": "opcua", **FAST, "source": {"endpoint": endpoint, "protocol": "opcua", "namespace": PLC, "nodes": {
            "good": {"node": f"nsu={PLC};i=1001", "width": 16},
            "scrap": {"node": 1002, "type": "int32"},
            "energy_wh": {"node": f"nsu={PLC};s=Energy.kWh", "scale": 1000, "max_rate_per_s": METER_RATE}}}},
        {"id": "wide", "protocol": "opcua", **FAST, "source": {"endpoint": endpoint, "protocol": "opcua",
                                                               "nodes": {"good": {"node": f"nsu={PLC};i=2001", "type": "uint64"}}}},
        {"id": "wrong", "protocol": "opcua", **FAST, "source": {"endpoint": endpoint, "protocol": "opcua",
                                                                "nodes": {"good": f"nsu={PLC};i=9999"}}},
        {"id": "locked", "protocol": "opcua", **FAST, "source": {
            "endpoint": f"opc.tcp://127.0.0.1:{secure}/peer", "protocol": "opcua", "security": security,
            "nodes": {"good": {"node": f"nsu={PLC};i=3001", "type": "int16"}}}},
    ])
    servers = PeerPlant(plant, [plc, locked], {
        ("s7", "good"): (plc, 1001), ("s7", "scrap"): (plc, 1002), ("s7", "energy_wh"): (plc, "Energy.kWh"),
        ("wide", "good"): (plc, 2001), ("locked", "good"): (locked, 3001)})

    async def produce(ticks: int, meter_steps: list[int]) -> None:
        for tick in range(ticks):
            for peer, counter in ((plc, 1001), (plc, 1002), (plc, 2001), (locked, 3001)):
                await peer.produce(counter)
            if tick < len(meter_steps):
                await plc.produce("Energy.kWh", meter_steps[tick])  # 0.0001 kWh each
            await asyncio.sleep(0.05)

    async def scenario() -> None:
        statuses = EdgeStatusLog(mqtt_url, plant.edge_id)
        try:
            async with whole_plant(plant, path, servers, database_url, mqtt_url, tmp_path, {PASSWORD_ENV: SECRET}) as run:
                await produce(20, [1125, 3876, 1, 12499])  # across 32767 -> -32768 and 2**31 - 1 -> -2**31
                await committed(run, "the wraps and the meter committed")
                wrong = await wait_for_status(statuses, "wrong", {"bad_config"})
                assert "i=9999" in wrong.detail and "BadNodeIdUnknown" in wrong.detail, wrong
                assert all(statuses.latest(m).status == "ok" for m in ("s7", "wide", "locked"))

                # The server restarts with another namespace first: the PLC's moves from index 2 to 3.
                # (No status is on its way now: the edge publishes one when a machine's connection changes.)
                before = statuses.count()
                await plc.stop()
                await wait_for_status(statuses, "s7", {"unreachable", "bad_config"})
                await plc.start(namespaces=[OTHER, PLC])
                meanwhile = {machine: [c.status for c in statuses.of(machine, since=before)] for machine in ("s7", "wide")}
                returned = time.monotonic()
                await produce(5, [2500, 3])
                await committed(run, "counting again after the server's return")
                print(f"counting resumed {time.monotonic() - returned:.1f} s after the server's return")
                assert all(shown and set(shown) <= {"unreachable", "bad_config"} for shown in meanwhile.values()), meanwhile
                await wait_for_status(statuses, "s7", {"ok"})
                assert (await wait_for_status(statuses, "wrong", {"bad_config"})).detail == wrong.detail
                await run.drain()
                assert_exact(run, database_url)
                assert run.comparison()["s7"]["recorded"]["energy_wh"] == 3500 - 1500  # 3.5004 kWh: 0.4 Wh not complete
        finally:
            statuses.close()

    asyncio.run(scenario())
    for log in ("core.log", "edge.log"):
        text = (tmp_path / log).read_text()
        assert text and SECRET not in text, f"the password in {log}"


def test_modbus_serial_strict_sparse_map_input_registers_int32_float32_in_every_byte_order_units_0_and_255(
        node, database_url, mqtt_url, tmp_path):
    port = free_port()
    orders = {"ABCD": 0, "CDAB": 1, "BADC": 2, "DCBA": 255}  # byte order -> the meter's unit id
    counters = [
        {"id": "sparse.good", "unit": 1, "table": "holding", "address": 0, "type": "int32", "start": 2**31 - 3},
        {"id": "sparse.scrap", "unit": 1, "table": "holding", "address": 50, "type": "int16", "start": -3},
    ]
    for order, unit in orders.items():
        counters += [
            {"id": f"{order}.good", "unit": unit, "table": "input", "address": 0, "type": "int32", "byte_order": order,
             "start": 2**31 - 2},
            {"id": f"{order}.kWh", "unit": unit, "table": "input", "address": 100, "type": "float32", "byte_order": order,
             "start": "12.345", "decimals": 4},
        ]
    # a strict device: only these registers exist, a read across any other is refused (exception 2)
    device = NodePeer(node, "modbus_peer.mjs", {"port": port, "units": list(orders.values()) + [1],
                                                "holding": [[0, 2], [50, 1]], "input": [[0, 2], [100, 2]],
                                                "counters": counters}, tmp_path, "device")
    modbus = {"protocol": "modbus", "host": "127.0.0.1", "port": port, "poll_ms": 20}
    machines = [
        {"id": "sparse", "protocol": "modbus", **FAST, "source": {**modbus, "device_id": 1, "registers": {
            "good": {"address": 0, "type": "int32"}, "scrap": {"address": 50, "type": "int16"}}}},
        {"id": "wrong", "protocol": "modbus", **FAST, "source": {**modbus, "device_id": 1, "registers": {
            "good": {"address": 20}}}},
    ]
    machines += [{"id": f"meter-{order}", "protocol": "modbus", **FAST, "source": {**modbus, "device_id": unit, "registers": {
        "good": {"address": 0, "table": "input", "type": "int32", "byte_order": order},
        "energy_wh": {"address": 100, "table": "input", "type": "float32", "byte_order": order, "scale": 1000,
                      "max_rate_per_s": METER_RATE}}}} for order, unit in orders.items()]
    plant, path = plant_file(tmp_path, machines)
    served = {("sparse", "good"): (device, "sparse.good"), ("sparse", "scrap"): (device, "sparse.scrap")}
    for order in orders:
        served |= {(f"meter-{order}", "good"): (device, f"{order}.good"),
                   (f"meter-{order}", "energy_wh"): (device, f"{order}.kWh")}
    servers = PeerPlant(plant, [device], served)

    async def scenario() -> None:
        statuses = EdgeStatusLog(mqtt_url, plant.edge_id)
        try:
            async with whole_plant(plant, path, servers, database_url, mqtt_url, tmp_path) as run:
                for tick in range(7):  # int32 across 2**31 - 1 -> -2**31, int16 across -1 -> 0
                    for counter in ("sparse.good", "sparse.scrap", *(f"{order}.good" for order in orders)):
                        await device.produce(counter)
                    if tick < 3:
                        for order in orders:
                            await device.produce(f"{order}.kWh", (125, 1, 3333)[tick])  # 0.0001 kWh each
                    await asyncio.sleep(0.06)
                await committed(run, "every unit and Wh committed")
                wrong = await wait_for_status(statuses, "wrong", {"bad_config"})
                assert "holding 20" in wrong.detail and "exception 2" in wrong.detail, wrong
                assert {m.id: statuses.latest(m.id).status for m in plant.machines if m.id != "wrong"} == dict.fromkeys(
                    ["sparse", *(f"meter-{order}" for order in orders)], "ok")
                await run.drain()
                assert_exact(run, database_url)
                assert run.comparison()["meter-DCBA"]["recorded"]["energy_wh"] == 12690 - 12345  # 12.6909 kWh
        finally:
            statuses.close()

    asyncio.run(scenario())
