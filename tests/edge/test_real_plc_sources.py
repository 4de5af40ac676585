"""The edge against real servers set up as real PLCs are, not as our simulators: numeric NodeIds and
the nsu= form, signed counters across their wrap, UInt64, a Double kWh meter, a server restart that
moves the namespace index, a node or register that does not exist; Modbus sparse maps on a device
that refuses reads across gaps, input registers, every byte order, unit ids 0 and 255."""

from __future__ import annotations

import asyncio
import struct
from datetime import UTC, datetime

from asyncua import Server, ua
from edge_harness import Counted, eventually, free_port, make_plant
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from edge.sources.base import Reading
from edge.sources.modbus import ModbusClientSource
from edge.sources.opcua import OpcUaClientSource
from kernel.modbus import words_of
from kernel.plant import parse_plant

PLC_NAMESPACE = "urn:test:plc"
OTHER_NAMESPACE = "urn:test:other"
VARIABLES = {  # numeric identifier or name -> (type, initial value)
    1001: (ua.VariantType.Int16, 32760), 1002: (ua.VariantType.Int32, 2**31 - 3), "Energy.kWh": (ua.VariantType.Double, 1.0),
    2001: (ua.VariantType.UInt64, 2**40), 3001: (ua.VariantType.UInt32, 5),
}


class PlcLikeServer:
    """An asyncua server with the variables above in PLC_NAMESPACE; `shifted` registers another
    namespace first, as a PLC whose project gained a library does after a restart."""

    def __init__(self, port: int, shifted: bool = False) -> None:
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/plc/"
        self.shifted = shifted
        self.server = Server()
        self.ids: dict[object, ua.NodeId] = {}

    async def start(self, values: dict[object, object] | None = None) -> None:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        if self.shifted:
            await self.server.register_namespace(OTHER_NAMESPACE)
        index = await self.server.register_namespace(PLC_NAMESPACE)
        for identifier, (kind, initial) in VARIABLES.items():
            node = ua.NodeId(identifier, index, ua.NodeIdType.Numeric if isinstance(identifier, int) else ua.NodeIdType.String)
            value = (values or {}).get(identifier, initial)
            await self.server.nodes.objects.add_variable(node, str(identifier), ua.Variant(value, kind))
            self.ids[identifier] = node
        await self.server.start()

    async def set(self, identifier: object, value: object) -> None:
        now = datetime.now(UTC)
        variant = ua.Variant(value, VARIABLES[identifier][0])
        await self.server.write_attribute_value(self.ids[identifier], ua.DataValue(variant, SourceTimestamp=now, ServerTimestamp=now))

    async def stop(self) -> None:
        await self.server.stop()


def opcua_plant(endpoint: str):
    def machine(machine_id, nodes):
        return {"id": machine_id, "protocol": "opcua", "ideal_cycle_s": "0.01", "rated_power_w": 1000,
                "source": {"protocol": "opcua", "endpoint": endpoint, "namespace": PLC_NAMESPACE, "nodes": nodes}}
    return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        machine("s7", {"good": {"node": f"nsu={PLC_NAMESPACE};i=1001", "width": 16},  # type from the server
                       "scrap": {"node": 1002, "type": "int32"},  # a YAML integer in `namespace`
                       "energy_wh": {"node": f"nsu={PLC_NAMESPACE};s=Energy.kWh", "scale": 1000}}),
        machine("by-index", {"good": {"node": "ns=2;i=2001", "type": "uint64"}}),
        machine("broken", {"good": 3001, "scrap": {"node": 9999, "type": "uint32"}}),
    ]}]}]})


def test_opcua_nodeid_forms_signed_wraps_a_kwh_meter_a_bad_node_and_a_namespace_shift():
    async def scenario():
        port = free_port()
        server = PlcLikeServer(port)
        await server.start()
        plant = opcua_plant(server.endpoint)
        counted = Counted(plant)
        source = OpcUaClientSource(plant.machines)
        await source.start(counted)
        health = source.health
        try:
            await eventually(lambda: counted.latest("s7", "energy_wh") == 1000 and counted.latest("by-index", "good") == 2**40
                             and counted.latest("broken", "good") == 5, 20, "the initial values")
            await eventually(lambda: health.status("s7") == "ok" and health.status("broken") == "bad_config", 10, "statuses")
            broken = health.snapshot()["broken"]
            assert f"nsu={PLC_NAMESPACE};i=9999" in broken.detail and "BadNodeIdUnknown" in broken.detail
            assert health.status("by-index") == "ok"

            for step in range(1, 16):  # Int16 32760 -> 32767 -> -32768 -> ..., Int32 likewise, 15 units each
                await server.set(1001, (32760 + step + 2**15) % 2**16 - 2**15)
                await server.set(1002, (2**31 - 3 + step + 2**31) % 2**32 - 2**31)
                await server.set(3001, 5 + step)  # the bad node's machine still counts its good node
            for kwh in (1.2345, 1.5, 2.0004, 12.345):  # a Double kWh meter with fractional steps, scale 1000
                await server.set("Energy.kWh", kwh)
            await eventually(lambda: counted.latest("s7", "energy_wh") == 12345 and counted.latest("broken", "good") == 20,
                             10, "the changes")
            await eventually(lambda: counted.totals.get(("s7", "good")) == 15 and counted.totals.get(("s7", "scrap")) == 15,
                             10, "the wraps counted")
            assert counted.totals[("s7", "energy_wh")] == 12345 - 1000
            assert counted.totals[("broken", "good")] == 15 and not counted.quarantined

            await server.stop()
            await eventually(lambda: health.status("s7") == "unreachable", 10, "the source to notice the server is gone")
            restarted = PlcLikeServer(port, shifted=True)  # the PLC namespace moves from index 2 to 3; 7 more units
            seen: list[str] = []

            async def watch() -> None:
                while True:
                    seen.append(health.status("s7"))
                    await asyncio.sleep(0.02)

            watcher = asyncio.create_task(watch())
            await restarted.start({1001: -32754, 1002: -2**31 + 12, "Energy.kWh": 12.345, 3001: 20})
            watcher.cancel()
            assert "ok" not in seen  # unreachable all the while the server was away
            await restarted.set(1001, -32750)
            await eventually(lambda: counted.latest("s7", "good") == 2**16 - 32750, 10, "counting after the namespace moved")
            assert counted.totals[("s7", "good")] == 15 + 7 + 4 and not counted.quarantined
            await eventually(lambda: health.status("s7") == "ok", 10, "s7 ok again")
            # ns=2 now names the other namespace: the index form points nowhere, and says so
            await eventually(lambda: health.status("by-index") == "bad_config", 10, "the index form to show bad_config")
            assert "BadNodeIdUnknown" in health.snapshot()["by-index"].detail
            assert health.snapshot()["broken"].unusable.get("bad_status", 0) == 0  # refused items are config, not readings
            await restarted.stop()
        finally:
            await source.stop()

    asyncio.run(scenario())


class SparseModbusServer:
    """A strict device: holding registers only at 0-1 and 50-51, input registers at 0-7 and 100-107;
    a read across anything else is refused with exception 2. Every unit id in `units` answers."""

    def __init__(self, port: int, units: list[int]) -> None:
        def tables():
            holding = [SimData(address=0, count=2, values=0, datatype=DataType.REGISTERS),
                       SimData(address=50, count=2, values=0, datatype=DataType.REGISTERS)]
            inputs = [SimData(address=0, count=8, values=0, datatype=DataType.REGISTERS),
                      SimData(address=100, count=8, values=0, datatype=DataType.REGISTERS)]
            coils = [SimData(address=0, count=1, values=0, datatype=DataType.BITS)]
            return (coils, coils, holding, inputs)
        self.server = ModbusTcpServer([SimDevice(id=unit, simdata=tables()) for unit in units], address=("127.0.0.1", port))

    async def start(self) -> None:
        await self.server.serve_forever(background=True)

    async def write(self, unit: int, table: str, address: int, words: list[int]) -> None:
        await self.server.async_setValues(unit, {"holding": 3, "input": 4}[table], address, words)

    async def stop(self) -> None:
        await self.server.shutdown()


ORDERS = ("ABCD", "CDAB", "BADC", "DCBA")


def modbus_plant(port: int):
    def machine(machine_id, unit, registers):
        return {"id": machine_id, "protocol": "modbus", "ideal_cycle_s": "0.01", "rated_power_w": 1000, "source": {
            "protocol": "modbus", "host": "127.0.0.1", "port": port, "device_id": unit, "poll_ms": 20, "registers": registers}}
    orders = [machine(f"order-{order}", unit, {
        "good": {"address": 0, "table": "input", "type": "int32", "byte_order": order},
        "energy_wh": {"address": 100 + 2 * n, "table": "input", "type": "float32", "byte_order": order, "scale": 1000},
    }) for n, (order, unit) in enumerate(zip(ORDERS, (0, 1, 2, 255), strict=True))]
    return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
        machine("sparse", 7, {"good": {"address": 0}, "scrap": {"address": 50}}),
        machine("wrong-register", 8, {"good": {"address": 0}, "scrap": {"address": 60}}),
        *orders,
    ]}]}]})


def test_modbus_sparse_map_on_a_strict_device_input_registers_byte_orders_and_unit_ids_0_and_255():
    async def scenario():
        port = free_port()
        server = SparseModbusServer(port, [0, 1, 2, 7, 8, 255])
        await server.start()
        plant = modbus_plant(port)
        for unit in (7, 8):
            await server.write(unit, "holding", 0, [1, 2])
            await server.write(unit, "holding", 50, [0, 9])
        for n, (order, unit) in enumerate(zip(ORDERS, (0, 1, 2, 255), strict=True)):
            await server.write(unit, "input", 0, words_of(struct.pack(">i", -2), order))
            await server.write(unit, "input", 100 + 2 * n, words_of(struct.pack(">f", 12.345), order))
        counted = Counted(plant)
        source = ModbusClientSource(plant.machines)
        await source.start(counted)
        health = source.health
        try:
            await eventually(lambda: counted.latest("sparse", "scrap") == 9, 10, "the sparse map read")
            assert counted.latest("sparse", "good") == 0x00010002
            for order in ORDERS:
                await eventually(lambda o=order: counted.latest(f"order-{o}", "energy_wh") == 12345, 10, f"{order} values")
                assert counted.latest(f"order-{order}", "good") == 2**32 - 2  # int32 -2 as its unsigned bits
                assert health.status(f"order-{order}") == "ok"
            await eventually(lambda: health.status("wrong-register") == "bad_config", 10, "the wrong register to show")
            detail = health.snapshot()["wrong-register"].detail
            assert "holding 60-61 (scrap)" in detail and "exception 2" in detail
            assert counted.latest("wrong-register", "good") == 0x00010002  # its readable block still counts
            assert health.status("sparse") == "ok"

            for order, unit in zip(ORDERS, (0, 1, 2, 255), strict=True):  # int32 -2 -> 3: 5 units
                await server.write(unit, "input", 0, words_of(struct.pack(">i", 3), order))
            for order in ORDERS:
                await eventually(lambda o=order: counted.totals.get((f"order-{o}", "good")) == 5, 10, f"{order} wrap")
        finally:
            await source.stop()
            await server.stop()

    asyncio.run(scenario())


def test_an_absent_unit_shows_unreachable_while_the_others_count():
    async def scenario():
        port = free_port()
        server = SparseModbusServer(port, [7])
        await server.start()
        plant = modbus_plant(port)
        machines = [plant.machine("sparse"), plant.machine("order-CDAB")]  # unit 1 is not on this server
        counted = Counted(plant)
        source = ModbusClientSource(machines)
        await source.start(counted)
        try:
            await server.write(7, "holding", 50, [0, 4])
            await eventually(lambda: counted.latest("sparse", "scrap") == 4, 10, "the present unit")
            await eventually(lambda: source.health.status("order-CDAB") == "unreachable", 10, "the absent unit")
            assert "unit 1" in source.health.snapshot()["order-CDAB"].detail
            await server.write(7, "holding", 50, [0, 5])
            await eventually(lambda: counted.latest("sparse", "scrap") == 5, 10, "the present unit still read")
        finally:
            await source.stop()
            await server.stop()

    asyncio.run(scenario())


def test_the_edge_status_carries_each_machines_connection(broker, subscriber, tmp_path):
    from edge.agent import EdgeAgent
    from edge_harness import TinyOpcUaServer

    async def scenario():
        opcua = TinyOpcUaServer(free_port(), ["press"])
        await opcua.start()
        plant = make_plant(int(opcua.endpoint.split(":")[2].split("/")[0]), free_port())  # the Modbus port has no server
        agent = EdgeAgent(plant, broker.url, tmp_path / "edge", heartbeat_s=1, flush_ms=50)
        task = asyncio.create_task(agent.run())
        try:
            def connections():
                statuses = [m for m in subscriber.messages("status") if m.get("online")]
                return statuses[-1].get("connections", {}) if statuses else {}
            await eventually(lambda: connections().get("press", {}).get("status") == "ok"
                             and connections().get("welder", {}).get("status") == "unreachable", 20, "both statuses")
        finally:
            agent.stop()
            await task
            await opcua.stop()

    asyncio.run(scenario())


SECRET = "s3cret-Pa55word-never-logged"


class OneUser:
    def get_user(self, iserver, username=None, password=None, certificate=None):
        from asyncua.crypto.permission_rules import User, UserRole
        return User(role=UserRole.User, name=username) if (username, password) == ("edge", SECRET) else None


async def secured_server(port: int, directory):
    """An asyncua server that offers only Basic256Sha256 SignAndEncrypt and admits one user."""
    from asyncua.crypto.cert_gen import setup_self_signed_certificate
    from cryptography.x509.oid import ExtendedKeyUsageOID

    server = Server(user_manager=OneUser())
    await server.init()
    server.set_endpoint(f"opc.tcp://127.0.0.1:{port}/secure/")
    server.set_security_policy([ua.SecurityPolicyType.Basic256Sha256_SignAndEncrypt])
    uri = "urn:test:secured-plc"
    await server.set_application_uri(uri)
    key, cert = directory / "server-key.pem", directory / "server-cert.der"
    await setup_self_signed_certificate(key, cert, uri, "127.0.0.1", [ExtendedKeyUsageOID.SERVER_AUTH], {})
    await server.load_certificate(str(cert))
    await server.load_private_key(str(key))
    index = await server.register_namespace(PLC_NAMESPACE)
    node = await server.nodes.objects.add_variable(ua.NodeId(1001, index), "good", ua.Variant(7, ua.VariantType.Int32))
    await server.start()
    return server, node, cert


def test_opcua_sign_and_encrypt_with_a_user_whose_password_never_reaches_a_log(tmp_path, monkeypatch, capsys, caplog):
    monkeypatch.setenv("TEST_OPCUA_PASSWORD", SECRET)

    def plant(port, **security):
        return parse_plant({"site": "s", "areas": [{"id": "a", "lines": [{"id": "l", "machines": [
            {"id": "secured", "protocol": "opcua", "ideal_cycle_s": 1, "source": {
                "protocol": "opcua", "endpoint": f"opc.tcp://edge:{SECRET}@127.0.0.1:{port}/secure/",
                "nodes": {"good": {"node": f"nsu={PLC_NAMESPACE};i=1001", "type": "int32"}},
                "security": {"policy": "Basic256Sha256", "mode": "SignAndEncrypt", "user": "edge",
                             "password_env": "TEST_OPCUA_PASSWORD", "certificate": str(tmp_path / "edge" / "cert.der"),
                             "private_key": str(tmp_path / "edge" / "key.pem"), **security}}}]}]}]})

    async def scenario():
        port = free_port()
        server, node, server_cert = await secured_server(port, tmp_path)
        readings: list[Reading] = []
        source = OpcUaClientSource(plant(port, trusted_server_certificates=[str(server_cert)]).machines)
        await source.start(readings.append)
        try:
            await eventually(lambda: [r.value for r in readings] == [7], 30, "a value over SignAndEncrypt")
            assert (tmp_path / "edge" / "cert.der").is_file()  # created on first use
            await node.write_value(ua.Variant(-1, ua.VariantType.Int32))
            await eventually(lambda: readings[-1].value == 2**32 - 1, 10, "a change")
        finally:
            await source.stop()

        # A server certificate that is not trusted is refused, and says so.
        other = tmp_path / "other"
        other.mkdir()
        from asyncua.crypto.cert_gen import setup_self_signed_certificate
        from cryptography.x509.oid import ExtendedKeyUsageOID
        await setup_self_signed_certificate(other / "k.pem", other / "c.der", "urn:x", "h", [ExtendedKeyUsageOID.SERVER_AUTH], {})
        untrusting = OpcUaClientSource(plant(port, trusted_server_certificates=[str(other)]).machines)
        await untrusting.start(readings.append)
        try:
            await eventually(lambda: "BadCertificateUntrusted" in untrusting.health.snapshot()["secured"].detail
                             or "Untrusted" in untrusting.health.snapshot()["secured"].detail, 30, "the refusal")
            assert untrusting.health.status("secured") == "unreachable"
        finally:
            await untrusting.stop()
            await server.stop()

    asyncio.run(scenario())
    logged = capsys.readouterr()
    everything = logged.out + logged.err + caplog.text
    assert "thumbprint" in everything  # the edge's certificate is announced
    assert SECRET not in everything
