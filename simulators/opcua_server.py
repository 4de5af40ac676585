"""One OPC UA server standing in for every OPC UA PLC of a plant.

Address space: Objects / <area> / <line> / <machine> / <signal>, where each signal is a variable
with the NodeId `machine.source.nodes[signal]` names (a namespace it names is registered).

Every write is stamped with the instant of the publish (SourceTimestamp = ServerTimestamp), which
clients take as the time of the value. The server keeps each machine's state changes as published
(`published_states`): the exact instants a reader can see, the ground truth of state durations.
"""

from __future__ import annotations

import logging
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import NamedTuple

from asyncua import Server, ua
from asyncua.common.node import Node

from kernel.logs import get_logger
from kernel.opcua import node_id as opcua_node_id
from kernel.signals import COUNTERS, ORDER
from kernel.plant import Machine, OpcUaSource

log = get_logger(__name__)

# Bounds the memory of a long demo run; a test looks at the last few changes.
PUBLISHED_STATES_KEPT = 10_000


class PublishedState(NamedTuple):
    """A machine's state and fault code as shown from `ts` on (the SourceTimestamp of their write)."""

    ts: datetime
    state: int
    fault: int


# Where the machines' objects go when a machine's source names no namespace of its own.
DEFAULT_NAMESPACE = "urn:open-mes:simulated"
VARIANT_TYPES = {
    "uint16": ua.VariantType.UInt16, "int16": ua.VariantType.Int16, "uint32": ua.VariantType.UInt32,
    "int32": ua.VariantType.Int32, "uint64": ua.VariantType.UInt64, "int64": ua.VariantType.Int64,
    "float32": ua.VariantType.Float, "float64": ua.VariantType.Double, "bool": ua.VariantType.Boolean,
    "string": ua.VariantType.String,
}


def variant_type(machine: Machine, signal: str) -> ua.VariantType:
    if signal == ORDER:
        return ua.VariantType.String
    given = machine.source.nodes[signal].type  # type: ignore[union-attr,index]
    if given is not None:
        return VARIANT_TYPES[given]
    if signal in COUNTERS and machine.counters[signal].width == 32:  # type: ignore[index]
        return ua.VariantType.UInt32
    return ua.VariantType.UInt16


def shown_value(value: int | str, kind: ua.VariantType, scale: Decimal) -> int | float | str:
    """What a PLC of this type shows for the model's (unsigned) value: a signed counter the same
    bits, a float the value divided by the signal's scale (a kWh meter read as Wh with scale 1000)."""
    if isinstance(value, str):
        return value
    bits = {ua.VariantType.Int16: 16, ua.VariantType.Int32: 32, ua.VariantType.Int64: 64}.get(kind)
    if bits is not None:
        return value - (1 << bits) if value >= 1 << (bits - 1) else value
    if kind in (ua.VariantType.Float, ua.VariantType.Double):
        return float(Decimal(value) / scale)
    return value


def _opcua_source(machine: Machine) -> OpcUaSource:
    if not isinstance(machine.source, OpcUaSource):
        raise ValueError(f"machine {machine.id} is not an OPC UA machine")
    return machine.source


class OpcUaPlcServer:
    def __init__(self, machines: Sequence[Machine], endpoint: str, server_name: str = "open-mes simulated plant") -> None:
        # how far the simulated PLCs' clock is off: their SourceTimestamps, as a PLC whose clock was stepped
        self.clock_offset = timedelta(0)
        self._machines = list(machines)
        for machine in self._machines:
            _opcua_source(machine)
        self._endpoint = endpoint
        self._server_name = server_name
        self._server: Server | None = None
        self._variables: dict[str, dict[str, tuple[ua.NodeId, ua.VariantType, Decimal]]] = {}
        self._shown: dict[str, dict[str, int | str]] = {}
        self._published_states: dict[str, deque[PublishedState]] = {}

    @property
    def endpoint(self) -> str:
        return self._endpoint

    def published_states(self, machine_id: str) -> list[PublishedState]:
        """Each change of the machine's state or fault code as published, oldest first."""
        if machine_id not in {machine.id for machine in self._machines}:
            raise ValueError(f"machine {machine_id} is not served by this OPC UA server")
        return list(self._published_states.get(machine_id, ()))

    async def start(self, values: dict[str, dict[str, int | str]]) -> None:
        if not self._machines:
            return
        # The simulator serves NoSecurity on purpose; asyncua's server would warn about it at every start.
        logging.getLogger("asyncua.server.server").setLevel(logging.ERROR)
        server = Server()
        await server.init()
        server.set_endpoint(self._endpoint)
        server.set_server_name(self._server_name)
        server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
        folders: dict[tuple[str, ...], Node] = {}
        for machine in self._machines:
            source = _opcua_source(machine)
            namespace = await server.register_namespace(source.namespace or DEFAULT_NAMESPACE)
            parent = server.nodes.objects
            for depth in range(1, 3):
                path = (machine.area, machine.line)[:depth]
                if path not in folders:
                    folders[path] = await parent.add_folder(namespace, path[-1])
                parent = folders[path]
            machine_object = await parent.add_object(namespace, machine.id)
            variables = self._variables[machine.id] = {}
            namespaces = await server.get_namespace_array()
            for signal in source.nodes:
                address = source.address(signal)
                if address.namespace_uri is not None and address.namespace_uri not in namespaces:
                    await server.register_namespace(address.namespace_uri)
                    namespaces = await server.get_namespace_array()
                node_id = opcua_node_id(address, namespaces)
                kind = variant_type(machine, signal)
                initial = values.get(machine.id, {}).get(signal, "" if signal == ORDER else 0)
                await machine_object.add_variable(node_id, ua.QualifiedName(signal, namespace),
                                                  ua.Variant(shown_value(initial, kind, source.nodes[signal].scale), kind))
                variables[signal] = (node_id, kind, source.nodes[signal].scale)
        await server.start()
        self._server = server
        await self.publish(values)
        log.info("opc ua server listening", endpoint=self._endpoint, machines=len(self._machines))

    async def publish(self, values: dict[str, dict[str, int | str]]) -> None:
        """Write the signals of each machine that changed since the last publish."""
        if self._server is None:
            return
        now = datetime.now(UTC)
        for machine_id, signals in values.items():
            variables = self._variables.get(machine_id)
            if variables is None:
                continue
            shown = self._shown.setdefault(machine_id, {})
            codes_before = (shown.get("state"), shown.get("fault"))
            for signal, value in signals.items():
                if signal not in variables or shown.get(signal) == value:
                    continue
                node_id, kind, scale = variables[signal]
                data_value = ua.DataValue(ua.Variant(shown_value(value, kind, scale), kind),
                                          SourceTimestamp=now + self.clock_offset, ServerTimestamp=now)
                await self._server.write_attribute_value(node_id, data_value)
                shown[signal] = value
            if (shown.get("state"), shown.get("fault")) != codes_before:
                published = self._published_states.setdefault(machine_id, deque(maxlen=PUBLISHED_STATES_KEPT))
                published.append(PublishedState(now, shown.get("state"), shown.get("fault")))

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.stop()
            self._server = None
