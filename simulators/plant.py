"""A whole simulated plant: machine models driven by the wall clock, served over OPC UA and Modbus."""

from __future__ import annotations

import asyncio
import contextlib
import time
from decimal import Decimal
from fractions import Fraction

from kernel.logs import get_logger
from kernel.plant import Machine, OpcUaSource, Plant
from simulators.model import DEFAULT_RESET_HOLD_S, MachineModel, seconds_from_microseconds
from simulators.modbus_server import ModbusPlcServer
from simulators.opcua_server import OpcUaPlcServer, PublishedState, without_credentials

log = get_logger(__name__)

NS_PER_US = 1_000


class PlantClock:
    """Simulated microseconds elapsed while production runs: wall time × acceleration, exactly.

    Measured from the moment production (re)started rather than summed per tick, so a late tick
    never loses or gains simulated time.
    """

    def __init__(self, acceleration: Decimal) -> None:
        self._acceleration = Fraction(acceleration)
        self._running_since_ns: int | None = None
        self._elapsed_before_us = 0

    @property
    def running(self) -> bool:
        return self._running_since_ns is not None

    def start(self, now_ns: int) -> None:
        if self._running_since_ns is None:
            self._running_since_ns = now_ns

    def stop(self, now_ns: int) -> None:
        self._elapsed_before_us = self.elapsed_us(now_ns)
        self._running_since_ns = None

    def elapsed_us(self, now_ns: int) -> int:
        if self._running_since_ns is None:
            return self._elapsed_before_us
        wall_us = Fraction(now_ns - self._running_since_ns, NS_PER_US)
        return self._elapsed_before_us + int(wall_us * self._acceleration)


class SimulatedPlant:
    def __init__(
        self,
        plant: Plant,
        *,
        modbus_port: int | None = None,
        tick_ms: int = 50,
        reset_hold_s: Decimal | int = DEFAULT_RESET_HOLD_S,
    ) -> None:
        """`reset_hold_s` is in wall seconds: how long counters stay still before a PLC reset."""
        self.plant = plant
        self._tick_s = tick_ms / 1000
        hold_sim_s = Decimal(reset_hold_s) * plant.clock.acceleration
        self._models = {machine.id: MachineModel(machine, reset_hold_s=hold_sim_s) for machine in plant.machines}
        self._clock = PlantClock(plant.clock.acceleration)
        self._advanced_us = 0
        endpoints = plant.endpoints
        # One OPC UA server per endpoint the machines name; the plant's own one even when none does.
        by_endpoint: dict[str, list[Machine]] = {without_credentials(endpoints.opcua): []}
        for machine in plant.machines:
            if isinstance(machine.source, OpcUaSource):
                by_endpoint.setdefault(without_credentials(machine.source.endpoint), []).append(machine)
        self.opcua_servers = {endpoint: OpcUaPlcServer(machines, endpoint) for endpoint, machines in by_endpoint.items()}
        self.modbus = ModbusPlcServer(
            [m for m in plant.machines if m.protocol == "modbus"],
            endpoints.modbus_host,
            endpoints.modbus_port if modbus_port is None else modbus_port,
        )
        self._ticker: asyncio.Task[None] | None = None

    @property
    def opcua(self) -> OpcUaPlcServer:
        """The OPC UA server at the plant's `endpoints.opcua`."""
        return self.opcua_server()

    def opcua_server(self, endpoint: str | None = None) -> OpcUaPlcServer:
        """The OPC UA server at `endpoint` (default: the plant's `endpoints.opcua`)."""
        return self.opcua_servers[without_credentials(endpoint or self.plant.endpoints.opcua)]

    @property
    def producing(self) -> bool:
        return self._clock.running

    @property
    def simulated_seconds(self) -> Decimal:
        """Simulated time the models have been advanced through since production started."""
        return seconds_from_microseconds(self._advanced_us)

    def model(self, machine_id: str) -> MachineModel:
        return self._models[machine_id]

    def counters(self) -> dict[str, dict[str, int | str]]:
        return {machine_id: model.counters() for machine_id, model in self._models.items()}

    def ground_truth(self) -> dict[str, dict]:
        return {machine_id: model.ground_truth() for machine_id, model in self._models.items()}

    def published_states(self, machine_id: str) -> list[PublishedState]:
        """An OPC UA machine's state changes with the SourceTimestamp they were published with, oldest
        first: what its state intervals must be. (Over Modbus the edge stamps its reads itself.)"""
        for server in self.opcua_servers.values():
            if machine_id in server.machine_ids:
                return server.published_states(machine_id)
        raise ValueError(f"machine {machine_id} is not served over OPC UA")

    async def start(self) -> None:
        """Servers up with every counter at its start value, machines IDLE, nothing produced yet."""
        values = self.counters()
        try:
            for server in self.opcua_servers.values():
                await server.start(values)
            await self.modbus.start(values)
        except BaseException:
            await self._stop_servers()
            raise
        self._ticker = asyncio.create_task(self._tick_forever(), name="simulated-plant-ticker")

    def start_production(self) -> None:
        for model in self._models.values():
            model.start_production()
        self._clock.start(time.monotonic_ns())
        log.info("production started", site=self.plant.site, acceleration=str(self.plant.clock.acceleration))

    def stop_production(self) -> None:
        """Freeze every machine where it is now; the next tick publishes these final values."""
        now_ns = time.monotonic_ns()
        self._advance_to(now_ns)
        self._clock.stop(now_ns)
        log.info("production stopped", site=self.plant.site, simulated_s=str(self.simulated_seconds))

    async def stop(self) -> None:
        """Stop ticking and close both servers; re-raises an error that had ended the ticker."""
        ticker, self._ticker = self._ticker, None
        try:
            if ticker is not None:
                ticker.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await ticker
        finally:
            await self._stop_servers()

    async def _stop_servers(self) -> None:
        await self.modbus.stop()
        for server in self.opcua_servers.values():
            await server.stop()

    async def stop_opcua(self, endpoint: str | None = None) -> None:
        """Take an OPC UA server away (default: the plant's); its machines go on producing unseen."""
        await self.opcua_server(endpoint).stop()

    async def start_opcua(self, endpoint: str | None = None) -> None:
        """Bring an OPC UA server back, with what its machines show now (and the namespaces it has
        ahead of the plant's: see OpcUaPlcServer.move_namespaces)."""
        await self.opcua_server(endpoint).start(self.counters())

    async def restart_opcua(self, endpoint: str | None = None, *, down_s: float = 0, move_namespaces: bool = True) -> None:
        """Stop an OPC UA server, wait `down_s`, start it again; by default with its namespaces one
        index higher, as a PLC whose project gained a library comes back."""
        server = self.opcua_server(endpoint)
        await server.stop()
        await asyncio.sleep(down_s)
        if move_namespaces:
            server.move_namespaces()
        await self.start_opcua(endpoint)

    def raise_if_failed(self) -> None:
        """Surface an error that ended the ticker (servers would otherwise go quietly stale)."""
        if self._ticker is not None and self._ticker.done() and not self._ticker.cancelled():
            self._ticker.result()

    async def publish(self) -> None:
        """Push what the models show now to both servers (only changed values are written)."""
        values = self.counters()
        for server in self.opcua_servers.values():
            await server.publish(values)
        await self.modbus.publish(values)

    async def __aenter__(self) -> SimulatedPlant:
        await self.start()
        return self

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _tick_forever(self) -> None:
        while True:
            if self._clock.running:
                self._advance_to(time.monotonic_ns())
            await self.publish()
            await asyncio.sleep(self._tick_s)

    def _advance_to(self, now_ns: int) -> None:
        target_us = self._clock.elapsed_us(now_ns)
        step = seconds_from_microseconds(target_us - self._advanced_us)
        for model in self._models.values():
            model.advance(step)
        self._advanced_us = target_us
