import asyncio
from decimal import Decimal

import structlog
from edge_harness import NAMESPACE, TinyModbusServer, TinyOpcUaServer, eventually, free_port, make_plant

from edge.sources import build_sources, group_by_endpoint
from edge.sources.base import Reading, Source
from edge.sources.modbus import Block, ModbusClientSource, decode_register, plan_blocks
from edge.sources.opcua import OpcUaClientSource
from kernel.signals import SIGNALS
from kernel.plant import ModbusRegister, ModbusSource, OpcUaSource


def opcua_machine(template_plant_machine, endpoint: str, machine_id: str):
    source = OpcUaSource(endpoint=endpoint, namespace=NAMESPACE, nodes={s: f"{machine_id}.{s}" for s in SIGNALS})
    return template_plant_machine.model_copy(update={"id": machine_id, "source": source, "protocol": "opcua"})


def modbus_machine(template_plant_machine, port: int, registers: dict[str, ModbusRegister], device_id: int = 1):
    source = ModbusSource(host="127.0.0.1", port=port, device_id=device_id, registers=registers, poll_ms=20)
    return template_plant_machine.model_copy(update={"id": f"dev{device_id}", "source": source, "protocol": "modbus"})


def a_machine():
    """A valid Machine to copy; the tests replace its id and source."""
    return make_plant(1, 2).machines[0]


# --- pure logic ------------------------------------------------------------------------------

def test_plan_blocks_never_reads_an_unnamed_register_unless_max_gap_allows_it():
    registers = {
        "good": ModbusRegister(address=0),
        "scrap": ModbusRegister(address=2),
        "state": ModbusRegister(address=6, type="uint16"),
        "fault": ModbusRegister(address=300, type="uint16"),
    }
    assert plan_blocks(registers) == [Block(0, 4, ("good", "scrap")), Block(6, 1, ("state",)), Block(300, 1, ("fault",))]
    assert plan_blocks(registers, max_gap=2) == [Block(0, 7, ("good", "scrap", "state")), Block(300, 1, ("fault",))]
    assert plan_blocks(registers, max_gap=2, max_count=4) == [Block(0, 4, ("good", "scrap")), Block(6, 1, ("state",)),
                                                             Block(300, 1, ("fault",))]


def test_plan_blocks_splits_at_the_protocols_limit_and_by_table():
    registers = {
        "good": ModbusRegister(address=0),
        "scrap": ModbusRegister(address=124),  # ends at 126: past 125 registers from 0
        "energy_wh": ModbusRegister(address=0, table="input", type="float32"),
        "state": ModbusRegister(address=5, table="coil", type="bool"),
    }
    assert plan_blocks(registers, max_gap=200) == [
        Block(0, 2, ("good",)), Block(124, 2, ("scrap",)), Block(0, 2, ("energy_wh",), "input"), Block(5, 1, ("state",), "coil"),
    ]


def test_decode_register_word_orders_and_scale():
    assert decode_register([0x0001, 0x0002], ModbusRegister(address=0, word_order="big"), "good") == 0x00010002
    assert decode_register([0x0002, 0x0001], ModbusRegister(address=0, word_order="little"), "good") == 0x00010002
    assert decode_register([7, 99], ModbusRegister(address=0, type="uint16"), "good") == 7
    assert decode_register([15], ModbusRegister(address=0, type="uint16", scale=Decimal("0.1")), "good") == 1  # floor
    assert decode_register([15], ModbusRegister(address=0, type="uint16", scale=Decimal(10)), "good") == 150


def test_decode_register_reads_an_order_id_as_nul_padded_ascii_and_drops_an_unusable_one():
    order = ModbusRegister(address=10, type="string", length=4)
    assert decode_register([0x574F, 0x2D31, 0x3200, 0], order, "order") == "WO-12"
    assert decode_register([0, 0, 0, 0], order, "order") == ""  # no order
    assert decode_register([0x2020, 0x5741, 0x2020, 0], order, "order") == "WA"  # outer spaces are padding too
    assert decode_register([0xC3A9, 0, 0, 0], order, "order").reason == "bad_order_id"  # not ASCII
    assert order.register_count == 4 and ModbusRegister(address=0).register_count == 2


def test_machines_sharing_an_endpoint_share_one_source():
    template = a_machine()
    machines = [
        opcua_machine(template, "opc.tcp://h:1/", "a"),
        opcua_machine(template, "opc.tcp://h:1/", "b"),
        opcua_machine(template, "opc.tcp://h:2/", "c"),
        modbus_machine(template, 502, {"good": ModbusRegister(address=0)}, device_id=1),
        modbus_machine(template, 502, {"good": ModbusRegister(address=0)}, device_id=2),
    ]
    assert [len(g) for g in group_by_endpoint(machines).values()] == [2, 1, 2]
    sources = build_sources(machines)
    assert [type(s).__name__ for s in sources] == ["OpcUaClientSource", "OpcUaClientSource", "ModbusClientSource"]
    assert sources[0].machine_ids == ("a", "b")


# --- against real servers --------------------------------------------------------------------

def test_opcua_subscription_delivers_every_change_in_order_and_survives_a_server_restart():
    async def scenario():
        port = free_port()
        server = TinyOpcUaServer(port, ["m1"])
        await server.start()
        source = OpcUaClientSource([opcua_machine(a_machine(), server.endpoint, "m1")])
        readings: list[Reading] = []
        await source.start(readings.append)
        try:
            good = lambda: [r.value for r in readings if r.signal == "good"]  # noqa: E731
            await eventually(lambda: good() == [0] and source.connected, 20, "initial value")
            for value in range(1, 501):  # as fast as the server accepts writes
                await server.set("m1", "good", value)
            await eventually(lambda: good()[-1:] == [500], 20, "the last change")
            assert good() == list(range(0, 501))
            assert all(r.ts.tzinfo is not None for r in readings)

            await server.stop()
            restarted = TinyOpcUaServer(port, ["m1"])
            await restarted.start(initial=1000)
            await eventually(lambda: good()[-1:] == [1000], 30, "the value from the restarted server")
            await restarted.set("m1", "good", 1001)
            await eventually(lambda: good()[-1:] == [1001], 10, "a change after the restart")
            await restarted.stop()
        finally:
            await source.stop()

    asyncio.run(scenario())


def test_opcua_polling_fallback_reads_values():
    async def scenario():
        server = TinyOpcUaServer(free_port(), ["m1"])
        await server.start(initial=42)
        machine = opcua_machine(a_machine(), server.endpoint, "m1")
        machine = machine.model_copy(update={"source": machine.source.model_copy(update={"poll_ms": 50})})
        source = OpcUaClientSource([machine])
        readings: list[Reading] = []
        await source.start(readings.append)
        try:
            await eventually(lambda: {r.signal for r in readings if r.value in (42, "")} == set(SIGNALS), 20, "polled values")
            await server.set("m1", "scrap", 43)
            await server.set("m1", "order", "WO-9")
            await eventually(lambda: {(r.signal, r.value) for r in readings} >= {("scrap", 43), ("order", "WO-9")}, 10, "polled change")
        finally:
            await source.stop()
            await server.stop()

    asyncio.run(scenario())


def test_modbus_reads_uint32_in_both_word_orders_and_reconnects():
    async def scenario():
        port = free_port()
        server = TinyModbusServer(port, [1])
        await server.start()
        registers = {
            "good": ModbusRegister(address=0, word_order="big"),
            "scrap": ModbusRegister(address=2, word_order="little"),
            "state": ModbusRegister(address=4, type="uint16"),
            "energy_wh": ModbusRegister(address=5, type="uint16", scale=Decimal("0.5")),
        }
        big, little = 4_294_967_200, 70_000
        await server.set_uint32(1, 0, big, "big")
        await server.set_uint32(1, 2, little, "little")
        await server.set_registers(1, 4, [3, 11])
        source = ModbusClientSource([modbus_machine(a_machine(), port, registers)])
        latest: dict[str, int] = {}
        await source.start(lambda r: latest.__setitem__(r.signal, r.value))
        try:
            expected = {"good": big, "scrap": little, "state": 3, "energy_wh": 5}
            await eventually(lambda: latest == expected, 10, "decoded registers")
            assert source.connected

            await server.stop()
            await eventually(lambda: not source.connected, 10, "the source to notice the server is gone")
            restarted = TinyModbusServer(port, [1])
            await restarted.start()
            await restarted.set_uint32(1, 0, 12345, "big")
            await eventually(lambda: latest.get("good") == 12345, 20, "a value after the server restart")
            await restarted.stop()
        finally:
            await source.stop()

    asyncio.run(scenario())


class Unanswering(Source):
    """An adapter whose endpoint never answers: its connect and its goodbye wait for ever."""

    goodbye_dropped = False

    @property
    def name(self) -> str:
        return "unanswering"

    @property
    def connected(self) -> bool:
        return False

    async def _connect(self, emit) -> None:
        await asyncio.Event().wait()

    async def _serve(self, emit) -> None:
        raise AssertionError("never connected")

    async def _disconnect(self) -> None:
        try:
            await asyncio.Event().wait()
        finally:
            self.goodbye_dropped = True


def test_stopping_a_source_cancels_its_connect_and_cuts_its_goodbye_short():
    async def scenario():
        source = Unanswering([a_machine()])
        await source.start(lambda reading: None)
        await asyncio.sleep(0.1)  # the connect under way
        with structlog.testing.capture_logs() as logs:
            await asyncio.wait_for(source.stop(), 60)  # a guard against hanging, far above the bound
        return source, logs

    source, logs = asyncio.run(scenario())
    events = [entry["event"] for entry in logs]
    assert source.goodbye_dropped and "source.not_stopped" not in events
    assert events.count("source.disconnect_cut_short") == 2, logs  # the connect's clean-up, then the stop's
