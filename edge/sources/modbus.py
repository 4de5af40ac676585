"""Modbus TCP adapter: one pymodbus client per host:port, each machine (device id) polled on its own
timer with one holding-register read per contiguous block.

Why pymodbus's own reconnect stays off (`reconnect_delay=0`): it starts only when an established
socket drops (not for the first connect, nor after the adapter closes a connection whose reads time
out), it sleeps on a schedule of its own without jitter, nothing outside pymodbus hears of a failed
attempt, and while it waits a read connects on its own as well. The coordinator (base.Source)
reconnects instead, on the one policy, and reports each failure.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import ROUND_FLOOR, Decimal

from pymodbus.client import AsyncModbusTcpClient
from pymodbus.exceptions import ModbusException

from edge.sources.base import Emit, Reading, Source, utc_now
from kernel.logs import get_logger
from kernel.payload import is_order_id
from kernel.plant import Machine, ModbusRegister, ModbusSource

log = get_logger(__name__)

# Modbus allows at most 125 holding registers per read request.
MAX_REGISTERS_PER_READ = 125
REQUEST_TIMEOUT_S = 2.0


@dataclass(frozen=True)
class Block:
    """One read request: `count` registers from `start`, covering `signals`."""

    start: int
    count: int
    signals: tuple[str, ...]


def plan_blocks(registers: Mapping[str, ModbusRegister], max_count: int = MAX_REGISTERS_PER_READ) -> list[Block]:
    """Group the signals into as few contiguous reads as fit in `max_count` registers each."""
    blocks: list[Block] = []
    start = end = 0
    signals: list[str] = []
    for signal, register in sorted(registers.items(), key=lambda item: item[1].address):
        register_end = register.address + register.width
        if signals and register_end - start <= max_count:
            end = max(end, register_end)
            signals.append(signal)
            continue
        if signals:
            blocks.append(Block(start, end - start, tuple(signals)))
        start, end, signals = register.address, register_end, [signal]
    if signals:
        blocks.append(Block(start, end - start, tuple(signals)))
    return blocks


def decode_register(words: Sequence[int], register: ModbusRegister) -> int | str | None:
    """The register's value: a number scaled (floor, because a counter reports completed units
    only), or a string with its NUL padding and outer spaces removed; None when the string is not a
    usable order id (sent on, it would cost the whole message its counts)."""
    if register.type == "string":
        text = b"".join(word.to_bytes(2, "big") for word in words[:register.length]).rstrip(b"\0")
        decoded = text.decode("ascii", errors="replace").strip()
        return decoded if is_order_id(decoded) else None
    if register.type == "uint32":
        raw = AsyncModbusTcpClient.convert_from_registers(
            list(words[:2]), AsyncModbusTcpClient.DATATYPE.UINT32, word_order=register.word_order
        )
    else:
        raw = words[0]
    assert isinstance(raw, int)
    return int((Decimal(raw) * register.scale).to_integral_value(rounding=ROUND_FLOOR))


def decode_block(block: Block, words: Sequence[int], registers: Mapping[str, ModbusRegister]) -> dict[str, int | str]:
    values = {}
    for signal in block.signals:
        offset = registers[signal].address - block.start
        value = decode_register(words[offset:offset + registers[signal].width], registers[signal])
        if value is None:
            log.warning("modbus.unusable_value_dropped", signal=signal, words=list(words[offset:offset + registers[signal].width]))
        else:
            values[signal] = value
    return values


class ModbusClientSource(Source):
    def __init__(self, machines: Sequence[Machine]) -> None:
        super().__init__(machines)
        hosts = {(m.source.host, m.source.port) if isinstance(m.source, ModbusSource) else None for m in self.machines}
        if len(hosts) != 1 or None in hosts:
            raise ValueError("a ModbusClientSource serves Modbus machines of exactly one host:port")
        self.host, self.port = hosts.pop()  # type: ignore[misc]
        self._client: AsyncModbusTcpClient | None = None

    @property
    def name(self) -> str:
        return f"modbus {self.host}:{self.port}"

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def _connect(self, emit: Emit) -> None:
        if self._client is None:  # built here because pymodbus binds the client to the running loop
            self._client = AsyncModbusTcpClient(
                self.host, port=self.port, timeout=REQUEST_TIMEOUT_S, retries=0, reconnect_delay=0
            )
        if not await self._client.connect():
            raise ConnectionError(f"no connection to {self.host}:{self.port}")

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
        blocks = plan_blocks(source.registers)
        # Every machine's poller shares the one connection: a read that fails (a timeout, a dropped
        # socket) raises, and the coordinator reconnects for all of them.
        while not self._stopping and self._client.connected:
            await self._poll_once(machine.id, source, blocks, emit)
            await asyncio.sleep(source.poll_ms / 1000)

    async def _poll_once(self, machine_id: str, source: ModbusSource, blocks: list[Block], emit: Emit) -> None:
        for block in blocks:
            try:
                response = await self._client.read_holding_registers(block.start, count=block.count, device_id=source.device_id)
            except (ModbusException, OSError, asyncio.TimeoutError) as error:
                raise ConnectionError(f"reading {machine_id} (device {source.device_id}) failed: {error}") from error
            if response.isError():
                log.warning("modbus.device_error", machine=machine_id, device_id=source.device_id, response=str(response))
                return
            ts = utc_now()
            for signal, value in decode_block(block, response.registers, source.registers).items():
                emit(Reading(machine_id=machine_id, signal=signal, value=value, ts=ts))
