"""PLC adapters: pick one by `machine.source.protocol`, one instance per endpoint."""

from __future__ import annotations

from collections.abc import Iterable

from edge.sources.base import Emit, Reading, Source
from edge.sources.modbus import ModbusClientSource
from edge.sources.opcua import OpcUaClientSource
from kernel.plant import Machine, ModbusSource, OpcUaSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "opcua": OpcUaClientSource,
    "modbus": ModbusClientSource,
}


def endpoint_key(machine: Machine) -> tuple[str, ...]:
    """Machines with the same key share one connection."""
    source = machine.source
    if isinstance(source, OpcUaSource):
        return ("opcua", source.endpoint)
    if isinstance(source, ModbusSource):
        return ("modbus", source.host, str(source.port))
    raise TypeError(f"unknown source type {type(source).__name__}")


def group_by_endpoint(machines: Iterable[Machine]) -> dict[tuple[str, ...], list[Machine]]:
    groups: dict[tuple[str, ...], list[Machine]] = {}
    for machine in machines:
        groups.setdefault(endpoint_key(machine), []).append(machine)
    return groups


def build_sources(machines: Iterable[Machine]) -> list[Source]:
    return [SOURCE_TYPES[key[0]](group) for key, group in group_by_endpoint(machines).items()]


__all__ = ["SOURCE_TYPES", "Emit", "Reading", "Source", "build_sources", "endpoint_key", "group_by_endpoint"]
