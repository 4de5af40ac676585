"""The one interface every PLC protocol adapter implements (like a Home Assistant integration).

An adapter serves every machine reachable through one connection (one OPC UA endpoint, one Modbus
host:port): a plant with fifty machines behind one gateway opens one socket, not fifty.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from kernel.plant import Machine


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one signal of one machine, as the PLC showed it at `ts` (aware, UTC)."""

    machine_id: str
    signal: str
    value: int | str  # text only for the order signal
    ts: datetime

    def __post_init__(self) -> None:
        if self.ts.tzinfo is None:
            raise ValueError("Reading.ts must be timezone-aware")


Emit = Callable[[Reading], None]


def as_utc(ts: datetime | None) -> datetime | None:
    """Protocol libraries hand out naive datetimes that mean UTC; make that explicit."""
    if ts is None:
        return None
    if ts.tzinfo is None:
        return ts.replace(tzinfo=timezone.utc)
    return ts.astimezone(timezone.utc)


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


class Source(ABC):
    """A connection to one endpoint serving one or more machines.

    `start` returns promptly even when the endpoint is down: the adapter keeps (re)connecting in the
    background and never raises into the agent. `emit` is called on the event loop's thread.
    """

    def __init__(self, machines: Sequence[Machine]) -> None:
        if not machines:
            raise ValueError("a source needs at least one machine")
        self.machines = tuple(machines)

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while values are flowing from the endpoint."""

    @abstractmethod
    async def start(self, emit: Emit) -> None: ...

    @abstractmethod
    async def stop(self) -> None: ...

    @property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.machines)
