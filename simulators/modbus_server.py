"""One Modbus TCP server standing in for every Modbus PLC of a plant: one device id per machine."""

from __future__ import annotations

import struct
from decimal import Decimal
from collections.abc import Iterable, Sequence

from pymodbus.constants import ExcCodes
from pymodbus.server import ModbusTcpServer
from pymodbus.simulator import DataType, SimData, SimDevice

from kernel.logs import get_logger
from kernel.modbus import words_of
from kernel.plant import Machine, ModbusRegister, ModbusSource

log = get_logger(__name__)

# Function codes through which a client could write holding registers; a PLC's counters are read-only.
WRITE_FUNCTION_CODES = frozenset({5, 6, 15, 16, 22, 23})


def register_words(value: int | str, register: ModbusRegister) -> list[int]:
    """The 16-bit words a register of this type and byte order holds for `value` (a counter's value
    as the model counts it, unsigned: a signed type shows the same bits, so it reads negative past
    its half range)."""
    if register.type == "string":
        text = str(value).encode("ascii")
        if len(text) > 2 * register.length:
            raise ValueError(f"{value!r} does not fit in {register.length} registers")
        padded = text.ljust(2 * register.length, b"\0")
        swapped = register.order in ("BADC", "DCBA")
        return [int.from_bytes(padded[i:i + 2], "little" if swapped else "big") for i in range(0, len(padded), 2)]
    if register.type == "bool":
        return [1 if value else 0]
    size = 2 * register.register_count
    if register.type.startswith("float"):
        # A float meter shows the model's whole units divided by the scale the reader multiplies by.
        data = struct.pack(">f" if register.type == "float32" else ">d", float(Decimal(value) / register.scale))
    else:
        data = (int(value) % (1 << (8 * size))).to_bytes(size, "big")
    return words_of(data, register.order)


def register_addresses(registers: Iterable[ModbusRegister]) -> set[int]:
    """Every address a reader may touch. A uint16 also keeps its next address readable when free, so
    a reader using the two-registers-per-signal layout of `modbus_register_map` can read count=2."""
    used = {r.address + offset for r in registers for offset in range(r.register_count)}
    padding = {r.address + 1 for r in registers if r.type == "uint16" and r.address < 65535}
    return used | padding


def contiguous_runs(addresses: set[int]) -> list[tuple[int, int]]:
    """(first address, count) of each run of consecutive addresses."""
    runs: list[tuple[int, int]] = []
    for address in sorted(addresses):
        if runs and runs[-1][0] + runs[-1][1] == address:
            runs[-1] = (runs[-1][0], runs[-1][1] + 1)
        else:
            runs.append((address, 1))
    return runs


async def _refuse_writes(function_code: int, *_: object) -> ExcCodes | None:
    return ExcCodes.ILLEGAL_FUNCTION if function_code in WRITE_FUNCTION_CODES else None


# pymodbus's order of a device's separate tables, and the function code that reads each.
TABLES = ("coil", "discrete", "holding", "input")
READ_FUNCTION_CODES = {"coil": 1, "discrete": 2, "holding": 3, "input": 4}


def _device(machine: Machine) -> SimDevice:
    """Only the addresses the map names (and the padding above) exist: a read across any other is
    refused with exception 2, as a strict device does. Holding registers only share pymodbus's one
    block; a map with another table gets the four tables apart, so each is read by its own function."""
    source = _modbus_source(machine)

    def blocks(table: str) -> list[SimData]:
        registers = [r for r in source.registers.values() if r.table == table]
        kind = DataType.BITS if table in ("coil", "discrete") else DataType.REGISTERS
        # pymodbus wants every table to hold something: a table the map does not use gets the last address.
        runs = contiguous_runs(register_addresses(registers)) or [(65535, 1)]
        return [SimData(address=first, count=count, values=0, datatype=kind) for first, count in runs]

    if all(r.table == "holding" for r in source.registers.values()):
        return SimDevice(id=source.device_id, simdata=blocks("holding"), action=_refuse_writes)
    tables = tuple(blocks(table) for table in TABLES)
    return SimDevice(id=source.device_id, simdata=tables, action=_refuse_writes)  # type: ignore[arg-type]


def _modbus_source(machine: Machine) -> ModbusSource:
    source = machine.source
    if not isinstance(source, ModbusSource):
        raise ValueError(f"machine {machine.id} is not a Modbus machine")
    if any(register.offset != 0 or register.scale != 1 and not register.type.startswith("float")
           for register in source.registers.values()):
        raise ValueError(f"machine {machine.id}: the simulator serves no offset, and a scale on float registers only")
    return source


class ModbusPlcServer:
    """Holding registers per `machine.source.registers`; unknown device ids answer exception 4."""

    def __init__(self, machines: Sequence[Machine], host: str, port: int) -> None:
        self._sources = {machine.id: _modbus_source(machine) for machine in machines}
        device_ids = [source.device_id for source in self._sources.values()]
        if len(set(device_ids)) != len(device_ids):
            raise ValueError(f"Modbus device ids must be unique, got {sorted(device_ids)}")
        self._devices = [_device(machine) for machine in machines]
        self._host = host
        self._requested_port = port
        self._server: ModbusTcpServer | None = None
        self._shown: dict[str, dict[str, int | str]] = {}

    @property
    def port(self) -> int:
        """The bound port (the real one when 0 was asked for)."""
        if self._server is None or self._server.transport is None:
            raise RuntimeError("the Modbus server is not started")
        return self._server.transport.sockets[0].getsockname()[1]

    async def start(self, values: dict[str, dict[str, int | str]]) -> None:
        if not self._devices:
            return
        self._server = ModbusTcpServer(self._devices, address=(self._host, self._requested_port))
        await self._server.serve_forever(background=True)
        await self.publish(values)
        log.info("modbus server listening", host=self._host, port=self.port, devices=len(self._devices))

    async def publish(self, values: dict[str, dict[str, int | str]]) -> None:
        """Write the signals of each machine that changed since the last publish."""
        if self._server is None:
            return
        for machine_id, signals in values.items():
            source = self._sources.get(machine_id)
            if source is None:
                continue
            shown = self._shown.setdefault(machine_id, {})
            for signal, value in signals.items():
                register = source.registers.get(signal)  # type: ignore[call-overload]
                if register is None or shown.get(signal) == value:
                    continue
                words = register_words(value, register)
                if register.table in ("coil", "discrete"):
                    words = [bool(word) for word in words]  # type: ignore[misc]
                await self._server.async_setValues(source.device_id, READ_FUNCTION_CODES[register.table],
                                                   register.address, words)
                shown[signal] = value

    async def stop(self) -> None:
        if self._server is not None:
            await self._server.shutdown()
            self._server = None
