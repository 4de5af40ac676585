"""Modbus TCP adapter: one pymodbus client per host:port, each machine (unit id) polled on its own
timer with one read per block of its register map.

Blocks: a read never spans a register the map does not name unless the source's `max_gap` allows it
(strict devices refuse such a read with exception 2, and a machine whose every read is refused is
never counted), and never more than the protocol allows in one request.

Isolation: an exception response or a unit that does not answer marks only its machine (`bad_config`
for a refused address or function, naming the registers and the code; `unreachable` for an absent
unit); the connection is dropped and rebuilt only when the socket itself is gone.

Why pymodbus's own reconnect stays off (`reconnect_delay=0`): it starts only when an established
socket drops (not for the first connect, nor after the adapter closes a connection whose reads time
out), it sleeps on a schedule of its own without jitter, nothing outside pymodbus hears of a failed
attempt, and while it waits a read connects on its own as well. The coordinator (base.Source)
reconnects instead, on the one policy, and reports each failure.
"""

from __future__ import annotations

import asyncio
import struct
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.sources.base import Emit, Reading, Source, utc_now
from edge.sources.values import Unusable, signal_value
from kernel.logs import get_logger
from kernel.modbus import value_bytes
from kernel.plant import Machine, ModbusRegister, ModbusSource
from kernel.signals import COUNTERS

log = get_logger(__name__)

# The protocol's limits per read request: 125 registers, 2000 coils or discrete inputs.
MAX_REGISTERS_PER_READ = 125
MAX_BITS_PER_READ = 2000
REQUEST_TIMEOUT_S = 2.0
# Exception codes that say the map asks for something the device does not have.
CONFIG_EXCEPTIONS = {1: "illegal function", 2: "illegal data address", 3: "illegal data value"}
# Exception codes of a unit that is absent or not answering (4 is what pymodbus answers for an unknown unit).
ABSENT_EXCEPTIONS = {4: "device failure", 10: "gateway path unavailable", 11: "gateway target did not respond"}
STALE_AFTER_POLLS = 3
ABSENT_UNIT_POLL_S = 5.0
# No answer from any unit for this long: the connection is taken for dead and rebuilt.
SILENT_CONNECTION_S = 3 * REQUEST_TIMEOUT_S + ABSENT_UNIT_POLL_S
STALE_AFTER_MIN_S = 5.0


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers (or bits) of `table` from `start`, covering `signals`."""

    start: int
    count: int
    signals: tuple[str, ...]
    table: str = "holding"

    def __str__(self) -> str:
        return f"{self.table} {self.start}-{self.start + self.count - 1} ({', '.join(self.signals)})"


def plan_blocks(registers: Mapping[str, ModbusRegister], max_gap: int = 0,
                max_count: int = MAX_REGISTERS_PER_READ) -> list[Block]:
    """The reads that cover every signal: per table, neighbours within `max_gap` unnamed registers
    of each other share a read of at most `max_count` registers (MAX_BITS_PER_READ for bit tables)."""
    blocks: list[Block] = []
    for table in ("holding", "input", "coil", "discrete"):
        limit = MAX_BITS_PER_READ if table in ("coil", "discrete") else max_count
        start = end = 0
        signals: list[str] = []
        named = sorted((r.address, signal, r) for signal, r in registers.items() if r.table == table)
        for address, signal, register in named:
            register_end = address + register.register_count
            if signals and address - end <= max_gap and max(end, register_end) - start <= limit:
                end = max(end, register_end)
                signals.append(signal)
                continue
            if signals:
                blocks.append(Block(start, end - start, tuple(signals), table))
            start, end, signals = address, register_end, [signal]
        if signals:
            blocks.append(Block(start, end - start, tuple(signals), table))
    return blocks


def decode_raw(words: Sequence[int | bool], register: ModbusRegister) -> int | float | str | bool:
    """The register's value as the device means it (before scale and offset)."""
    kind = register.type
    if kind == "bool":
        return bool(words[0])
    if kind == "string":
        # Characters in reading order; only the byte order within each register can be swapped.
        swapped = register.order in ("BADC", "DCBA")
        data = b"".join(int(w).to_bytes(2, "little" if swapped else "big") for w in words[:register.length])
        return data.rstrip(b"\0").decode("ascii", errors="replace")
    data = value_bytes([int(w) for w in words[:register.register_count]], register.order)
    if kind.startswith("float"):
        return struct.unpack(">f" if kind == "float32" else ">d", data)[0]
    return int.from_bytes(data, "big", signed=kind.startswith("int"))


def decode_register(words: Sequence[int | bool], register: ModbusRegister, signal: str,
                    width: int | None = None) -> int | str | Unusable:
    """The wire value of a signal's register (see values.signal_value), or why it cannot be used;
    `width` is a counter's."""
    return signal_value(signal, decode_raw(words, register), register.type, register, width)


def decode_block(block: Block, words: Sequence[int | bool], machine: Machine) -> dict[str, int | str | Unusable]:
    registers = machine.source.registers  # type: ignore[union-attr]
    values = {}
    for signal in block.signals:
        register = registers[signal]
        offset = register.address - block.start
        spec = machine.counters.get(signal) if signal in COUNTERS else None  # type: ignore[call-overload]
        values[signal] = decode_register(words[offset:offset + register.register_count], register, signal,
                                         spec.width if spec else None)
    return values


class ModbusClientSource(Source):
    def __init__(self, machines: Sequence[Machine]) -> None:
        super().__init__(machines)
        hosts = {(m.source.host, m.source.port) if isinstance(m.source, ModbusSource) else None for m in self.machines}
        if len(hosts) != 1 or None in hosts:
            raise ValueError("a ModbusClientSource serves Modbus machines of exactly one host:port")
        self.host, self.port = hosts.pop()  # type: ignore[misc]
        self._client: AsyncModbusTcpClient | None = None
        self._last_answer = 0.0  # monotonic time of the last response from any unit

    @property
    def name(self) -> str:
        return f"modbus {self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    def stale_after_s(self) -> dict[str, float]:
        return {m.id: max(STALE_AFTER_POLLS * m.source.poll_ms / 1000, STALE_AFTER_MIN_S) for m in self.machines}  # type: ignore[union-attr]

    async def _connect(self, emit: Emit) -> None:
        if self._client is None:  # built here because pymodbus binds the client to the running loop
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=REQUEST_TIMEOUT_S, retries=0, reconnect_delay=0
            )
        if not await self._client.connect():
            raise ConnectionError(f"no connection to {self.host}:{self.port}")
        self._last_answer = time.monotonic()

    async def _serve(self, emit: Emit) -> None:
        pollers = [
            asyncio.create_task(self._poll_forever(machine, emit), name=f"{self.name} {machine.id}")
            for machine in self.machines
        ]
        try:
            await asyncio.gather(*pollers)
        finally:
            self._client.close()  # ends the loop of a poller whose cancel was swallowed (see Source.stop)
            for poller in pollers:
                poller.cancel()
            await asyncio.gather(*pollers, return_exceptions=True)

    async def _disconnect(self) -> None:
        if self._client is not None:
            self._client.close()

    async def _poll_forever(self, machine: Machine, emit: Emit) -> None:
        source = machine.source
        assert isinstance(source, ModbusSource)
        blocks = plan_blocks(source.registers, source.max_gap)
        # Every machine's poller shares the one connection: when the socket is gone, a read raises
        # and the coordinator reconnects for all of them.
        while not self._stopping and self._client.connected:
            await self._poll_once(machine, blocks, emit)
            # Requests are serialised on the one connection: an absent unit, which costs a timeout per
            # read, is asked less often so that it slows the other machines less.
            absent = self.health.status(machine.id) == "unreachable"
            await asyncio.sleep(max(source.poll_ms / 1000, ABSENT_UNIT_POLL_S) if absent else source.poll_ms / 1000)

    async def _read(self, block: Block, device_id: int) -> object:
        client = self._client
        read = {
            "holding": client.read_holding_registers, "input": client.read_input_registers,
            "coil": client.read_coils, "discrete": client.read_discrete_inputs,
        }[block.table]
        return await read(block.start, count=block.count, device_id=device_id)

    async def _poll_once(self, machine: Machine, blocks: list[Block], emit: Emit) -> None:
        source = machine.source
        assert isinstance(source, ModbusSource)
        refused: list[str] = []
        for block in blocks:
            try:
                response = await self._read(block, source.device_id)
            except (ModbusException, OSError, asyncio.TimeoutError) as error:
                # One unit that does not answer is that machine's problem; no answer from any unit for
                # a while is the connection's (a half-open socket): rebuild it.
                silent_s = time.monotonic() - self._last_answer
                if not self._client.connected or silent_s > SILENT_CONNECTION_S:
                    raise ConnectionError(f"reading {machine.id} (unit {source.device_id}) failed: {error}") from error
                self.health.set(machine.id, "unreachable", f"unit {source.device_id} does not answer: {type(error).__name__}")
                return
            self._last_answer = time.monotonic()
            if response.isError():
                code = getattr(response, "exception_code", None)
                if code in CONFIG_EXCEPTIONS:
                    refused.append(f"{block}: exception {code} {CONFIG_EXCEPTIONS[code]}")
                    continue
                self.health.set(machine.id, "unreachable", f"unit {source.device_id}: exception {code} "
                                f"{ABSENT_EXCEPTIONS.get(code, 'from the device')}")
                return
            ts = utc_now()
            words = response.bits if block.table in ("coil", "discrete") else response.registers
            for signal, value in decode_block(block, words, machine).items():
                if isinstance(value, Unusable):
                    self.health.unusable(machine.id, signal, value.reason, f"{block}: {value.detail}")
                else:
                    emit(Reading(machine_id=machine.id, signal=signal, value=value, ts=ts))
            self.health.value_arrived(machine.id)
        if refused:
            self.health.set(machine.id, "bad_config", "; ".join(refused))
        else:
            self.health.set(machine.id, "ok")
