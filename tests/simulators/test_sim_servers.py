"""The simulated plant over real protocols, read with real asyncua and pymodbus clients."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from asyncua import Client, ua
from asyncua.crypto.security_policies import SecurityPolicyBasic256Sha256
from pymodbus.client import AsyncModbusTcpClient

from edge.sources.modbus import decode_register
from kernel.signals import COUNTERS, ORDER, SIGNALS, MachineState
from kernel.embedded.broker import free_port
from kernel.opcua import node_id
from kernel.opcua_security import load_certificate, own_certificate, thumbprint
from kernel.plant import Machine, ModbusRegister, ModbusSource, OpcUaSource
from simulators.modbus_server import contiguous_runs, register_addresses, register_words
from simulators.opcua_server import OpcUaPlcServer, without_credentials
from simulators.plant import SimulatedPlant
from simulators.service import run_simulator
from sim_helpers import eventually, plant_with

NO_FAILURES = {"scrap_rate": "0.2", "energy_wh_per_cycle": 3, "idle_power_w": 500, "seed": 1}
MACHINES = [
    {"id": "opc-16", "protocol": "opcua", "ideal_cycle_s": "0.1", "counter_width": 16, "counter_start": 65530, "simulation": NO_FAILURES},
    {"id": "opc-32", "protocol": "opcua", "ideal_cycle_s": "0.1", "counter_width": 32, "counter_start": 2**32 - 6, "simulation": NO_FAILURES},
    {"id": "mb-16-little", "protocol": "modbus", "ideal_cycle_s": "0.1", "counter_width": 16, "counter_start": 65532, "word_order": "little", "simulation": NO_FAILURES},
    {"id": "mb-32-big", "protocol": "modbus", "ideal_cycle_s": "0.1", "counter_width": 32, "counter_start": 2**32 - 7, "word_order": "big", "simulation": NO_FAILURES},
    {"id": "mb-32-little", "protocol": "modbus", "ideal_cycle_s": "0.1", "counter_width": 32, "counter_start": 2**32 - 5, "word_order": "little", "simulation": NO_FAILURES},
]


class Readers:
    """Real protocol clients reading every signal of every machine of a plant."""

    def __init__(self, simulated: SimulatedPlant) -> None:
        self.machines = simulated.plant.machines
        protocols = {machine.protocol for machine in self.machines}
        self.opcua = Client(simulated.opcua.endpoint) if "opcua" in protocols else None
        self.modbus = AsyncModbusTcpClient("127.0.0.1", port=simulated.modbus.port) if "modbus" in protocols else None

    async def __aenter__(self) -> Readers:
        if self.opcua:
            await self.opcua.connect()
        if self.modbus:
            await self.modbus.connect()
        return self

    async def __aexit__(self, *_: object) -> None:
        if self.modbus:
            self.modbus.close()
        if self.opcua:
            await self.opcua.disconnect()

    async def read_all(self) -> dict[str, dict[str, int]]:
        return {machine.id: await self.read(machine) for machine in self.machines}

    async def read(self, machine: Machine) -> dict[str, int]:
        if isinstance(machine.source, OpcUaSource):
            return await self._read_opcua(machine.source)
        assert isinstance(machine.source, ModbusSource)
        return {signal: await self._read_register(machine.source.device_id, register) for signal, register in machine.source.registers.items()}

    async def _read_opcua(self, source: OpcUaSource) -> dict[str, int]:
        namespaces = await self.opcua.get_namespace_array()
        nodes = [self.opcua.get_node(node_id(source.address(signal), namespaces)) for signal in SIGNALS]
        return dict(zip(SIGNALS, await self.opcua.read_values(nodes), strict=True))

    async def _read_register(self, device_id: int, register: ModbusRegister) -> int | str:
        response = await self.modbus.read_holding_registers(register.address, count=register.register_count, device_id=device_id)
        assert not response.isError(), response
        return decode_register(response.registers, register, "order" if register.type == "string" else "state")


def test_counters_roll_over_and_clients_read_exactly_what_the_plcs_show():
    async def scenario() -> None:
        plant = plant_with(MACHINES, acceleration=5)
        async with SimulatedPlant(plant, modbus_port=0, tick_ms=20) as simulated, Readers(simulated) as readers:
            assert await readers.read_all() == simulated.counters()
            for machine in plant.machines:
                simulated.model(machine.id).set_order(f"WO-{machine.id}")
            assert all(shown["state"] == MachineState.IDLE for shown in simulated.counters().values())

            simulated.start_production()
            # 10 good units take every counter past its maximum.
            await eventually(lambda: all(t["good"] >= 10 for t in simulated.ground_truth().values()), what="rollovers")
            simulated.stop_production()
            await eventually(lambda: _equal(readers.read_all(), simulated.counters()), what="readers to converge")

            shown = simulated.counters()
            for machine in plant.machines:
                truth = simulated.ground_truth()[machine.id]
                modulus = 2**machine.counter_width
                assert shown[machine.id]["good"] == (machine.counter_start + truth["good"]) % modulus
                assert shown[machine.id]["good"] < machine.counter_start  # rolled over
                assert shown[machine.id]["energy_wh"] == (machine.counter_start + truth["energy_wh"]) % modulus
                assert shown[machine.id]["state"] == MachineState.RUNNING

    asyncio.run(scenario())


def test_opcua_layout_and_types():
    async def scenario() -> None:
        plant = plant_with(MACHINES[:2])
        async with SimulatedPlant(plant, modbus_port=0) as simulated, Client(simulated.opcua.endpoint) as client:
            namespace = await client.get_namespace_index(plant.endpoints.opcua_namespace)
            machine_object = await client.nodes.objects.get_child([f"{namespace}:area-1", f"{namespace}:line-1", f"{namespace}:opc-16"])
            assert {(await child.read_browse_name()).Name for child in await machine_object.get_children()} == set(SIGNALS)
            for machine_id, counter_type in [("opc-16", ua.VariantType.UInt16), ("opc-32", ua.VariantType.UInt32)]:
                for signal in SIGNALS:
                    value = await client.get_node(ua.NodeId(f"{machine_id}.{signal}", namespace)).read_data_value()
                    expected = {ORDER: ua.VariantType.String}.get(signal, counter_type if signal in COUNTERS else ua.VariantType.UInt16)
                    assert value.Value.VariantType == expected
                    assert value.SourceTimestamp is not None

    asyncio.run(scenario())


def test_modbus_device_ids_word_order_and_read_only_registers():
    async def scenario() -> None:
        plant = plant_with(MACHINES[2:])
        async with SimulatedPlant(plant, modbus_port=0) as simulated:
            client = AsyncModbusTcpClient("127.0.0.1", port=simulated.modbus.port)
            await client.connect()
            try:
                big = plant.machine("mb-32-big").source
                little = plant.machine("mb-32-little").source
                assert isinstance(big, ModbusSource) and isinstance(little, ModbusSource)
                start_big, start_little = 2**32 - 7, 2**32 - 5
                words = (await client.read_holding_registers(0, count=2, device_id=big.device_id)).registers
                assert words == [start_big >> 16, start_big & 0xFFFF]
                words = (await client.read_holding_registers(0, count=2, device_id=little.device_id)).registers
                assert words == [start_little & 0xFFFF, start_little >> 16]

                unknown = await client.read_holding_registers(0, count=2, device_id=200)
                assert unknown.isError() and unknown.exception_code == 4
                refused = await client.write_register(0, 1, device_id=big.device_id)
                assert refused.isError()
                beyond = await client.read_holding_registers(100, count=2, device_id=big.device_id)
                assert beyond.isError()
            finally:
                client.close()

    asyncio.run(scenario())


def test_a_scripted_repair_with_reset_is_seen_over_modbus_after_the_hold():
    async def scenario() -> None:
        plant = plant_with(MACHINES[3:4], acceleration=2)
        async with SimulatedPlant(plant, modbus_port=0, tick_ms=20, reset_hold_s=Decimal("0.5")) as simulated, Readers(simulated) as readers:
            machine = plant.machines[0]
            simulated.start_production()
            await eventually(lambda: simulated.ground_truth()[machine.id]["good"] >= 2, what="production")
            simulated.model(machine.id).force_fault(77, Decimal("0.1"), reset=True)
            await eventually(lambda: _reads(readers, machine, lambda seen: seen["fault"] == 77), what="fault code")
            await eventually(lambda: _reads(readers, machine, lambda seen: seen["good"] < 100), what="PLC reset")
            await eventually(lambda: _reads(readers, machine, lambda seen: seen["fault"] == 0), what="repair to end")
            simulated.stop_production()
            await eventually(lambda: _equal(readers.read_all(), simulated.counters()), what="readers to converge")
            assert simulated.ground_truth()[machine.id]["plc_resets"] == 1
            assert simulated.counters()[machine.id]["fault"] == 0

    asyncio.run(scenario())


def test_run_simulator_returns_ground_truth():
    async def scenario() -> dict:
        plant = plant_with(MACHINES[2:3], acceleration=10)
        ticks: list[int] = []
        simulated = SimulatedPlant(plant, modbus_port=0)
        truth = await run_simulator(plant, duration_s=1.5, on_tick=lambda running: ticks.append(1), simulated=simulated)
        assert ticks
        return truth

    truth = asyncio.run(scenario())
    assert truth["mb-16-little"]["good"] + truth["mb-16-little"]["scrap"] > 0


def test_register_layout_helpers():
    little = ModbusRegister(address=4, type="uint32", word_order="little")
    assert register_words(0x12345678, little) == [0x5678, 0x1234]
    assert register_words(0x12345678, ModbusRegister(address=4)) == [0x1234, 0x5678]
    assert register_words(65535, ModbusRegister(address=0, type="uint16")) == [65535]
    assert register_words("WO-1", ModbusRegister(address=0, type="string", length=3)) == [0x574F, 0x2D31, 0]
    with pytest.raises(ValueError, match="does not fit"):
        register_words("WO-1234", ModbusRegister(address=0, type="string", length=3))
    addresses = register_addresses([ModbusRegister(address=0, type="uint16"), little, ModbusRegister(address=10, type="uint16")])
    assert contiguous_runs(addresses) == [(0, 2), (4, 2), (10, 2)]


def test_scaled_integer_registers_are_refused():
    registers = {"good": {"address": 0, "scale": "0.1"}}
    spec = {"id": "m", "protocol": "modbus", "ideal_cycle_s": 1, "source": {"protocol": "modbus", "host": "127.0.0.1", "port": 1, "device_id": 1, "registers": registers}}
    with pytest.raises(ValueError, match="scale on float registers only"):
        SimulatedPlant(plant_with([spec]))


async def _equal(reading, expected: dict) -> bool:
    return await reading == expected


async def _reads(readers: Readers, machine: Machine, check) -> bool:
    return bool(check(await readers.read(machine)))


def test_a_poller_over_modbus_counts_exactly_through_natural_failures_and_plc_resets():
    """The reset hold in wall seconds lets a poller that is faster than the hold see every last value."""
    flaky = {"scrap_rate": "0.1", "energy_wh_per_cycle": 2, "idle_power_w": 7200, "mtbf_s": 3, "mttr_s": 1, "plc_reset_probability": 1, "seed": 3}
    # Starting far from the maximum, any drop within this short run is a reset, never a rollover.
    spec = {"id": "flaky", "protocol": "modbus", "ideal_cycle_s": "0.1", "counter_start": 1_000_000, "simulation": flaky}
    plant = plant_with([spec], acceleration=10)
    machine = plant.machines[0]

    async def scenario() -> None:
        async with SimulatedPlant(plant, modbus_port=0, tick_ms=20, reset_hold_s=1) as simulated, Readers(simulated) as readers:
            last = await readers.read(machine)
            totals = dict.fromkeys(COUNTERS, 0)

            async def poll() -> None:
                nonlocal last
                seen = await readers.read(machine)
                for counter in COUNTERS:
                    totals[counter] += seen[counter] if seen[counter] < last[counter] else seen[counter] - last[counter]
                last = seen

            simulated.start_production()
            while simulated.ground_truth()[machine.id]["plc_resets"] < 2:
                await asyncio.wait_for(poll(), timeout=5)
                await asyncio.sleep(0.05)
                assert simulated.simulated_seconds < 600, "expected two PLC resets long before this"
            simulated.stop_production()
            await eventually(lambda: _equal(readers.read(machine), simulated.counters()[machine.id]), what="final values")
            await poll()
            truth = simulated.ground_truth()[machine.id]
            assert totals == {counter: truth[counter] for counter in COUNTERS}

    asyncio.run(scenario())


SECRET = "sim-Pa55word-for-one-user"


def secured_plant(tmp_path, **security):
    """One machine on an OPC UA endpoint of its own that asks for Basic256Sha256 SignAndEncrypt and a user."""
    port = free_port()
    spec = {"id": "secured", "protocol": "opcua", "ideal_cycle_s": "0.1", "counter_width": 16,
            "simulation": {**NO_FAILURES, "server_certificate": str(tmp_path / "server" / "cert.der"),
                           "server_private_key": str(tmp_path / "server" / "key.pem")},
            "source": {"protocol": "opcua", "endpoint": f"opc.tcp://127.0.0.1:{port}/secured/",
                       "namespace": "urn:test:secured",
                       "nodes": {"good": {"node": 1001, "type": "int16"}, "state": "secured.state"},
                       "security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt",
                                    "certificate": str(tmp_path / "edge" / "cert.der"),
                                    "private_key": str(tmp_path / "edge" / "key.pem"), "user": "edge", **security}}}
    return plant_with([MACHINES[0], spec])


async def _secured_client(endpoint: str, tmp_path, *, user: str | None = "edge", password: str = SECRET,
                          encrypted: bool = True) -> Client:
    client = Client(endpoint)
    if user is not None:
        client.set_user(user)
        client.set_password(password)
    if encrypted:
        await own_certificate(tmp_path / "client.der", tmp_path / "client.pem", client.application_uri, "localhost", server=False)
        await client.set_security(SecurityPolicyBasic256Sha256, str(tmp_path / "client.der"), str(tmp_path / "client.pem"),
                                  mode=ua.MessageSecurityMode.SignAndEncrypt)
    return client


def test_a_secured_endpoint_admits_only_its_user_over_sign_and_encrypt_with_a_certificate_made_once(tmp_path, monkeypatch):
    monkeypatch.setenv("SIM_TEST_OPCUA_PASSWORD", SECRET)
    plant = secured_plant(tmp_path, password_env="SIM_TEST_OPCUA_PASSWORD")
    machine = plant.machine("secured")
    endpoint = machine.source.endpoint

    async def refused(**how) -> str:
        client = await _secured_client(endpoint, tmp_path, **how)
        try:
            await client.connect()
        except Exception as error:  # noqa: BLE001 - what asyncua raises differs by where the refusal comes
            return f"{type(error).__name__}: {error}"
        await client.disconnect()
        raise AssertionError(f"connected with {how}")

    async def scenario() -> None:
        async with SimulatedPlant(plant, modbus_port=0) as simulated:
            assert simulated.opcua_server(endpoint) is not simulated.opcua  # an endpoint of its own
            certificate = tmp_path / "server" / "cert.der"
            assert certificate.is_file()  # created on the first run
            thumbprint_before = thumbprint(load_certificate(certificate))

            assert "BadUserAccessDenied" in await refused(password="wrong")
            assert "BadIdentityTokenRejected" in await refused(user=None)  # no anonymous session
            assert "No matching endpoints" in await refused(encrypted=False)  # NoSecurity is not offered
            client = await _secured_client(endpoint, tmp_path)
            async with client:
                namespace = await client.get_namespace_index("urn:test:secured")
                good = await client.get_node(ua.NodeId(1001, namespace)).read_data_value()
                assert good.Value.VariantType == ua.VariantType.Int16

            await simulated.restart_opcua(endpoint, move_namespaces=False)
            assert thumbprint(load_certificate(certificate)) == thumbprint_before  # kept across restarts
            async with await _secured_client(endpoint, tmp_path) as client:
                assert await client.get_namespace_index("urn:test:secured") == namespace

    asyncio.run(scenario())


def test_the_password_may_come_from_a_file_and_a_policy_needs_a_server_certificate(tmp_path):
    secret_file = tmp_path / "password"
    secret_file.write_text(SECRET + "\n")
    plant = secured_plant(tmp_path, password_file=str(secret_file))

    async def scenario() -> None:
        async with SimulatedPlant(plant, modbus_port=0) as simulated:
            async with await _secured_client(plant.machine("secured").source.endpoint, tmp_path) as client:
                assert await client.get_namespace_index("urn:test:secured")
            assert simulated.opcua_server(plant.machine("secured").source.endpoint).running

    asyncio.run(scenario())
    spec = plant.machine("secured").model_copy(update={"simulation": plant.machine("opc-16").simulation})
    with pytest.raises(ValueError, match="server_certificate"):
        OpcUaPlcServer([spec], spec.source.endpoint)


def test_a_restart_moves_the_namespaces_and_serves_what_the_machines_show_now():
    async def scenario() -> None:
        plant = plant_with(MACHINES[:1], acceleration=5)
        machine = plant.machines[0]
        async with SimulatedPlant(plant, modbus_port=0, tick_ms=20) as simulated:
            async with Client(simulated.opcua.endpoint) as client:
                index_before = await client.get_namespace_index(plant.endpoints.opcua_namespace)
            simulated.start_production()
            await simulated.stop_opcua()
            assert not simulated.opcua.running
            await eventually(lambda: simulated.ground_truth()[machine.id]["good"] >= 5, what="production while the server is away")
            simulated.opcua.move_namespaces()
            await simulated.start_opcua()
            simulated.stop_production()
            shown = simulated.counters()[machine.id]
            async with Client(simulated.opcua.endpoint) as client, Readers(simulated) as readers:
                assert await client.get_namespace_index(plant.endpoints.opcua_namespace) == index_before + 1
                await eventually(lambda: _equal(readers.read(machine), shown), what="the restarted server's values")
            await simulated.restart_opcua()  # once more: one more index
            async with Client(simulated.opcua.endpoint) as client:
                assert await client.get_namespace_index(plant.endpoints.opcua_namespace) == index_before + 2
            states = [(s.state, s.fault) for s in simulated.published_states(machine.id)]
            assert all(a != b for a, b in zip(states, states[1:], strict=False)), "a restart is no state change"

    asyncio.run(scenario())


def test_the_endpoint_without_credentials_is_where_a_server_listens():
    assert without_credentials("opc.tcp://edge:pw@127.0.0.1:4840/plc/") == "opc.tcp://127.0.0.1:4840/plc/"
    assert without_credentials("opc.tcp://127.0.0.1:4840/plc/") == "opc.tcp://127.0.0.1:4840/plc/"
    assert without_credentials("opc.tcp://u:p@[::1]:4840/") == "opc.tcp://[::1]:4840/"
