"""Real components for the edge tests: a Mosquitto broker, a tiny OPC UA server, a tiny Modbus
server and an MQTT subscriber. Every port is picked free at run time.

A uniquely named module (not conftest) so test files can import it without clashing with the
other packages' conftest modules."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from decimal import Decimal
from typing import Any

from asyncua import Server, ua
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from core.rules.counters import CounterPoint, counter_step
from edge.sources.base import Reading
from kernel.embedded.broker import free_port
from kernel.mqtt import connect, new_client, parse_mqtt_url
from kernel.payload import EdgeAck, ack_topic
from kernel.signals import ORDER, SIGNALS
from kernel.plant import Plant, parse_plant

MOSQUITTO = "/usr/sbin/mosquitto"
NAMESPACE = "urn:open-mes:test"


def port_open(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(0.05)


async def eventually(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        await asyncio.sleep(0.05)


class Mosquitto:
    """A broker of our own; `stop`/`start` simulate an outage (persistence keeps sessions)."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.directory = directory
        self.config = directory / "mosquitto.conf"
        lines = [
            f"listener {self.port} 127.0.0.1",
            "allow_anonymous true",
            "persistence true",
            f"persistence_location {directory}/",
            "max_queued_messages 0",
            "max_inflight_messages 0",
            f"log_dest file {directory}/mosquitto.log",
        ]
        if os.geteuid() == 0:
            lines.append("user root")  # otherwise it switches to a user that cannot write the temp dir
        self.config.write_text("\n".join(lines) + "\n")
        self._process: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        self._process = subprocess.Popen([MOSQUITTO, "-c", str(self.config)])
        wait_until(lambda: port_open(self.port), 10, "mosquitto to listen")

    def stop(self) -> None:
        if self._process is not None:
            self._process.terminate()  # SIGTERM: mosquitto writes its persistence file on the way out
            self._process.wait(timeout=10)
            self._process = None


class Subscriber:
    """Collects every data message (decoded JSON) in arrival order, with a persistent session so that
    nothing published while it reconnects after a broker restart is missed. As the core does, it
    acknowledges to each edge the highest position it received (the edge then frees its queue)."""

    def __init__(self, url: str, topic: str = "mes/v1/#") -> None:
        self._lock = threading.Lock()
        self._messages: list[tuple[str, dict[str, Any]]] = []
        self._highest: dict[str, tuple[int, int]] = {}
        target = parse_mqtt_url(url)
        self.client = new_client(target, client_id=f"test-subscriber-{uuid.uuid4().hex[:8]}", persistent=True)
        self.client.on_connect = lambda c, _u, _f, _r, _p: c.subscribe(topic, qos=1)
        self.client.on_message = self._on_message
        connect(self.client, target)

    def _on_message(self, client: Any, _userdata: Any, message: Any) -> None:
        payload = json.loads(message.payload)
        with self._lock:
            self._messages.append((message.topic, payload))
            if not message.topic.endswith("/data"):
                return
            edge, position = payload["edge_id"], (payload["epoch"], payload["seq"])
            self._highest[edge] = max(self._highest.get(edge, position), position)
            epoch, seq = self._highest[edge]
        ack = EdgeAck(edge_id=edge, epoch=epoch, seq=seq)
        client.publish(ack_topic(edge), ack.model_dump_json(), qos=1, retain=True)

    def messages(self, kind: str = "data") -> list[dict[str, Any]]:
        with self._lock:
            return [payload for topic, payload in self._messages if topic.endswith(f"/{kind}")]

    def close(self) -> None:
        self.client.disconnect()
        self.client.loop_stop()


def _variant_type(signal: str) -> ua.VariantType:
    return ua.VariantType.String if signal == ORDER else ua.VariantType.UInt32


class TinyOpcUaServer:
    """Variables named `<machine>.<signal>` in NAMESPACE, like the plant's default layout: UInt32,
    and a String for the order id."""

    def __init__(self, port: int, machines: list[str]) -> None:
        self.port = port
        self.endpoint = f"opc.tcp://127.0.0.1:{port}/test/"
        self.machines = machines
        self.server = Server()
        self.node_ids: dict[tuple[str, str], ua.NodeId] = {}

    async def start(self, initial: int = 0) -> None:
        await self.server.init()
        self.server.set_endpoint(self.endpoint)
        index = await self.server.register_namespace(NAMESPACE)
        folder = await self.server.nodes.objects.add_folder(ua.NodeId("plant", index), "plant")
        for machine in self.machines:
            for signal in SIGNALS:
                node_id = ua.NodeId(f"{machine}.{signal}", index)
                value = "" if signal == ORDER else initial
                await folder.add_variable(node_id, f"{machine}.{signal}", ua.Variant(value, _variant_type(signal)))
                self.node_ids[(machine, signal)] = node_id
        await self.server.start()

    async def set(self, machine: str, signal: str, value: int | str) -> None:
        now = datetime.now(timezone.utc)
        data_value = ua.DataValue(ua.Variant(value, _variant_type(signal)), SourceTimestamp=now, ServerTimestamp=now)
        await self.server.write_attribute_value(self.node_ids[(machine, signal)], data_value)

    async def stop(self) -> None:
        await self.server.stop()


class TinyModbusServer:
    """Holding registers 0..29 of each device id (the default layout's numbers and order id), all zero at start."""

    def __init__(self, port: int, device_ids: list[int]) -> None:
        self.port = port
        devices = [SimDevice(id=i, simdata=[SimData(address=0, count=30, values=0, datatype=DataType.REGISTERS)]) for i in device_ids]
        self.server = ModbusTcpServer(devices, address=("127.0.0.1", port))

    async def start(self) -> None:
        await self.server.serve_forever(background=True)

    async def set_registers(self, device_id: int, address: int, words: list[int]) -> None:
        await self.server.async_setValues(device_id, 3, address, words)

    async def set_uint32(self, device_id: int, address: int, value: int, word_order: str = "big") -> None:
        words = [value >> 16, value & 0xFFFF]
        await self.set_registers(device_id, address, words if word_order == "big" else words[::-1])

    async def stop(self) -> None:
        await self.server.shutdown()


def make_plant(opcua_port: int, modbus_port: int, edge_id: str = "edge-t", modbus_poll_ms: int = 50) -> Plant:
    """One OPC UA machine (`press`, 16-bit) and one Modbus machine (`welder`, device 2, little-endian words)."""
    plant = parse_plant({
        "site": "test-site",
        "edge_id": edge_id,
        "endpoints": {
            "opcua": f"opc.tcp://127.0.0.1:{opcua_port}/test/",
            "opcua_namespace": NAMESPACE,
            "modbus_host": "127.0.0.1",
            "modbus_port": modbus_port,
        },
        "areas": [{"id": "area", "lines": [{"id": "line", "machines": [
            {"id": "press", "protocol": "opcua", "ideal_cycle_s": 1, "counter_width": 16},
            {"id": "welder", "protocol": "modbus", "ideal_cycle_s": 1, "word_order": "little", "device_id": 2},
        ]}]}],
    })
    # Faster polling than the 500 ms default keeps the tests short.
    machines = tuple(
        m.model_copy(update={"source": m.source.model_copy(update={"poll_ms": modbus_poll_ms})}) if m.protocol == "modbus" else m
        for m in plant.machines
    )
    return plant.model_copy(update={"machines": machines})


class Counted:
    """Readings through the core's counter rule: what the core would record per machine and counter
    (with no plausibility limit: the test servers change values far faster than any machine)."""

    def __init__(self, plant) -> None:
        self.plant = plant
        self.readings: list[Reading] = []
        self.last: dict[tuple[str, str], CounterPoint] = {}
        self.totals: dict[tuple[str, str], int] = {}
        self.quarantined: list[object] = []

    def __call__(self, reading: Reading) -> None:
        self.readings.append(reading)
        spec = self.plant.machine(reading.machine_id).counters.get(reading.signal)
        if spec is None:
            return
        key = (reading.machine_id, reading.signal)
        step = counter_step(self.last.get(key), CounterPoint(reading.value, reading.ts), spec.width, Decimal(10**15))
        if step.quarantined:
            self.quarantined.append((reading, step))
        self.last[key] = step.point
        self.totals[key] = self.totals.get(key, 0) + step.delta

    def latest(self, machine_id: str, signal: str):
        values = [r.value for r in self.readings if (r.machine_id, r.signal) == (machine_id, signal)]
        return values[-1] if values else None
