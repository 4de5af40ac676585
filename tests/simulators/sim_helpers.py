"""Helpers for the simulator tests (a plain module: tests/conftest.py belongs to the shared fixtures)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from decimal import Decimal

from kernel.embedded.broker import free_port
from kernel.plant import Plant, parse_plant


def plant_with(machines: list[dict], *, acceleration: Decimal | int = 1) -> Plant:
    """A one-line plant on free ports; machine dicts are MachineSpec fields."""
    return parse_plant(
        {
            "site": "test-works",
            "clock": {"acceleration": acceleration},
            "endpoints": {"opcua": f"opc.tcp://127.0.0.1:{free_port()}/open-mes/", "modbus_port": free_port()},
            "areas": [{"id": "area-1", "lines": [{"id": "line-1", "machines": machines}]}],
        }
    )


async def eventually(condition: Callable[[], object], timeout_s: float = 20.0, what: str = "condition") -> None:
    """Wait for a (possibly async) condition instead of asserting on timing."""
    deadline = time.monotonic() + timeout_s
    while True:
        result = condition()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        await asyncio.sleep(0.05)
