"""`mes simulate`: serve a plant's simulated PLCs until a duration elapses or the task is cancelled."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from kernel.logs import get_logger
from kernel.signals import MachineState
from kernel.plant import Plant
from simulators.plant import SimulatedPlant

log = get_logger(__name__)

# How long a restarted OPC UA server stays away (`opcua_restart_every_s`): long enough for a reader
# to see the connection go.
OPCUA_RESTART_DOWN_S = 2.0


def log_machines(simulated: SimulatedPlant, event: str) -> None:
    counters = simulated.counters()
    for machine_id, truth in simulated.ground_truth().items():
        shown = counters[machine_id]
        log.info(
            event,
            machine=machine_id,
            state=MachineState.NAMES.get(shown["state"], str(shown["state"])),
            fault=shown["fault"],
            good=truth["good"],
            scrap=truth["scrap"],
            energy_wh=truth["energy_wh"],
            shown_good=shown["good"],
            shown_scrap=shown["scrap"],
            shown_energy_wh=shown["energy_wh"],
        )


async def run_simulator(
    plant: Plant,
    duration_s: float | None,
    on_tick: Callable[[SimulatedPlant], None] | None = None,
    *,
    report_every_s: float = 10.0,
    simulated: SimulatedPlant | None = None,
    opcua_restart_every_s: float | None = None,
) -> dict[str, dict]:
    """Start the plant and produce until `duration_s` wall seconds (None = until cancelled).

    `on_tick` is called about once a second with the running plant (e.g. for a live table).
    `opcua_restart_every_s` restarts every OPC UA server that often, each time with its namespaces
    one index higher (production goes on meanwhile). Returns the ground truth; on cancellation the
    final ground truth is logged and the cancellation goes on.
    """
    simulated = simulated or SimulatedPlant(plant)
    await simulated.start()
    try:
        simulated.start_production()
        started = time.monotonic()
        last_report = last_restart = started
        while duration_s is None or time.monotonic() - started < duration_s:
            if opcua_restart_every_s is not None and time.monotonic() - last_restart >= opcua_restart_every_s:
                await restart_opcua_servers(simulated)
                last_restart = time.monotonic()
            left = None if duration_s is None else duration_s - (time.monotonic() - started)
            await asyncio.sleep(1.0 if left is None else max(0.0, min(1.0, left)))
            simulated.raise_if_failed()
            if on_tick is not None:
                on_tick(simulated)
            if time.monotonic() - last_report >= report_every_s:
                last_report = time.monotonic()
                log_machines(simulated, "machine")
        simulated.stop_production()
        log_machines(simulated, "final ground truth")
        return simulated.ground_truth()
    except asyncio.CancelledError:
        simulated.stop_production()
        log_machines(simulated, "final ground truth")
        raise
    finally:
        await simulated.stop()


async def restart_opcua_servers(simulated: SimulatedPlant) -> None:
    for endpoint, server in simulated.opcua_servers.items():
        if server.machine_ids:
            log.info("opc ua server restarting", endpoint=endpoint, down_s=OPCUA_RESTART_DOWN_S,
                     namespaces_ahead=len(server.namespaces_ahead) + 1)
            await simulated.restart_opcua(endpoint, down_s=OPCUA_RESTART_DOWN_S)
