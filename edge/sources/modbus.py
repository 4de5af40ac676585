"""Modbus TCP adapter: one pymodbus client per host:port, each machine (device id) polled on its own
timer with one holding-register read per contiguous block."""

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
STOP_TIMEOUT_S = 5.0
RECONNECT_MAX_DELAY_S = 5.0


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
        self._connect_lock = asyncio.Lock()
        self._next_connect_delay = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = False

    @property
    def connected(self) -> bool:
        return self._client is not None and self._client.connected

    async def start(self, emit: Emit) -> None:
        # Built here because pymodbus binds the client to the running loop. reconnect_delay=0 turns
        # its own background reconnect off: this adapter reconnects, with one policy and one log.
        self._client = AsyncModbusTcpClient(
            self.host, port=self.port, timeout=REQUEST_TIMEOUT_S, retries=0, reconnect_delay=0
        )
        self._tasks = [
            asyncio.create_task(self._poll_forever(machine, emit), name=f"modbus {self.host}:{self.port} {machine.id}")
            for machine in self.machines
        ]

    async def stop(self) -> None:
        # The flag as well as the cancel: a cancel that lands while pymodbus completes a read can be
        # swallowed inside it (seen under load), and the poller would then go on for ever.
        self._stopping = True
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, still_running = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT_S)
            if still_running:
                log.warning("modbus.pollers_not_stopped", host=self.host, port=self.port, count=len(still_running))
        if self._client is not None:
            self._client.close()

    async def _ensure_connected(self) -> bool:
        async with self._connect_lock:  # every machine's poller shares the one connection
            if self._client.connected:
                return True
            await asyncio.sleep(self._next_connect_delay)
            if await self._client.connect():
                self._next_connect_delay = 0.0
                log.info("modbus.connected", host=self.host, port=self.port, machines=list(self.machine_ids))
                return True
            self._next_connect_delay = min(max(self._next_connect_delay * 2, 0.5), RECONNECT_MAX_DELAY_S)
            log.warning("modbus.connect_failed", host=self.host, port=self.port, retry_s=self._next_connect_delay)
            return False

    async def _poll_forever(self, machine: Machine, emit: Emit) -> None:
        source = machine.source
        assert isinstance(source, ModbusSource)
        blocks = plan_blocks(source.registers)
        while not self._stopping:
            if await self._ensure_connected():
                await self._poll_once(machine.id, source, blocks, emit)
            await asyncio.sleep(source.poll_ms / 1000)

    async def _poll_once(self, machine_id: str, source: ModbusSource, blocks: list[Block], emit: Emit) -> None:
        for block in blocks:
            try:
                response = await self._client.read_holding_registers(block.start, count=block.count, device_id=source.device_id)
            except (ModbusException, OSError, asyncio.TimeoutError) as exc:
                # A timeout or a dropped socket: close so the next poll reconnects from scratch.
                log.warning("modbus.read_failed", host=self.host, port=self.port, machine=machine_id, error=repr(exc))
                self._client.close()
                return
            if response.isError():
                log.warning("modbus.device_error", machine=machine_id, device_id=source.device_id, response=str(response))
                return
            ts = utc_now()
            for signal, value in decode_block(block, response.registers, source.registers).items():
                emit(Reading(machine_id=machine_id, signal=signal, value=value, ts=ts))
