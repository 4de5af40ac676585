"""The one interface every PLC protocol adapter implements (like a Home Assistant integration).

An adapter serves every machine reachable through one connection (one OPC UA endpoint, one Modbus
host:port): a plant with fifty machines behind one gateway opens one socket, not fifty.
"""

from __future__ import annotations

import asyncio
import functools
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone

from edge.sources.health import Health
from kernel.logs import get_logger, redact_secrets
from kernel.plant import Machine
from kernel.reconnect import RECONNECT, retry_async

log = get_logger(__name__)

STOP_TIMEOUT_S = 5.0
# How long a source's goodbye (`_disconnect`) may take before it is cut short: a server that stopped
# answering (frozen, stopping, a half-open socket) would otherwise hold up a stop or a reconnect for the
# protocol library's request timeouts (asyncua: 4 s for each of close_session and close_secure_channel).
DISCONNECT_TIMEOUT_S = 2.0


@dataclass(frozen=True, slots=True)
class Reading:
    """One value of one signal of one machine, as the PLC showed it at `ts` (aware, UTC)."""

    machine_id: str
    signal: str
    value: int | str  # text only for the order signal; a counter as its unsigned value (see values.py)
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

    This base class is the coordinator: it connects, lets the adapter serve until the connection is
    lost, and reconnects on the one reconnect policy (kernel.reconnect), reporting every failure in
    the same words whatever the protocol. An adapter only connects, fetches and converts. `start`
    returns promptly even when the endpoint is down, and nothing raises into the agent. `emit` is
    called on the event loop's thread.
    """

    def __init__(self, machines: Sequence[Machine]) -> None:
        if not machines:
            raise ValueError("a source needs at least one machine")
        self.machines = tuple(machines)
        self._session: asyncio.Task[None] | None = None
        self._stopping = False

    @property
    @abstractmethod
    def name(self) -> str:
        """The endpoint, as the log lines name it: no credentials."""

    @property
    @abstractmethod
    def connected(self) -> bool:
        """True while values are flowing from the endpoint."""

    @abstractmethod
    async def _connect(self, emit: Emit) -> None:
        """Open the connection and set up what `_serve` needs; raise when that fails."""

    @abstractmethod
    async def _serve(self, emit: Emit) -> None:
        """Deliver readings until the connection is lost, then raise (or return once stopping)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Close the connection, whatever state it is in, without raising; when cancelled (see `_close`),
        drop the socket without the goodbye."""

    @property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(m.id for m in self.machines)

    @functools.cached_property
    def health(self) -> Health:
        return Health(self.machine_ids, self.name)

    def stale_after_s(self) -> dict[str, float]:
        """Per machine, how long an `ok` machine may deliver nothing before it shows `stale`: only
        polled machines have such a bound (a subscription delivers changes only)."""
        return {}

    async def start(self, emit: Emit) -> None:
        self._session = asyncio.create_task(self._keep_connected(emit), name=f"source {self.name}")

    async def stop(self) -> None:
        """Ends the session within STOP_TIMEOUT_S + DISCONNECT_TIMEOUT_S whatever the endpoint does: a
        connect or read under way is cancelled, not awaited (what was read before is already emitted)."""
        # The flag as well as the cancel: a cancel that lands while a protocol library completes a
        # request can be swallowed inside it (seen under load with pymodbus); the adapter's loops
        # look at `_stopping` so they end all the same.
        self._stopping = True
        if self._session is not None:
            if not self._session.done():
                log.info("source.stopping", source=self.name, cancelled="serving" if self.connected else "connecting")
            self._session.cancel()
            _, still_running = await asyncio.wait([self._session], timeout=STOP_TIMEOUT_S)
            if still_running:
                log.warning("source.not_stopped", source=self.name, waited_s=STOP_TIMEOUT_S)
        await self._close()

    async def _close(self) -> None:
        """`_disconnect`, for at most DISCONNECT_TIMEOUT_S. A task waited on rather than `wait_for`, which
        would wait for the cancelled goodbye to end, and a protocol library may swallow that cancel."""
        closing = asyncio.create_task(self._disconnect(), name=f"disconnect {self.name}")
        try:
            _, still_running = await asyncio.wait([closing], timeout=DISCONNECT_TIMEOUT_S)
            if still_running:
                log.warning("source.disconnect_cut_short", source=self.name, waited_s=DISCONNECT_TIMEOUT_S)
        finally:
            closing.cancel()  # a no-op once it ended; else the socket goes without the goodbye

    async def _keep_connected(self, emit: Emit) -> None:
        while not self._stopping:
            await retry_async(functools.partial(self._open, emit), what=f"connect to {self.name}", on=Exception)
            log.info("source.connected", source=self.name, machines=list(self.machine_ids))
            try:
                await self._serve(emit)
                lost = "the connection ended"
            except Exception as error:  # whatever the protocol library raises, the agent goes on
                lost = f"{type(error).__name__}: {error}"
            await self._close()
            if self._stopping:
                return
            self.health.set_all("unreachable", redact_secrets(lost))
            # A pause before the first attempt too: a server that accepts every connection and then
            # drops it must not be hammered.
            log.warning("source.connection_lost", source=self.name, error=redact_secrets(lost),
                        retry_in_s=RECONNECT.first_s)
            await asyncio.sleep(RECONNECT.first_s)

    async def _open(self, emit: Emit) -> None:
        if self._stopping:
            raise asyncio.CancelledError  # a cancel swallowed by the protocol library (see stop)
        try:
            await self._connect(emit)
        except BaseException as error:
            await self._close()
            if isinstance(error, Exception):
                self.health.set_all("unreachable", redact_secrets(f"{type(error).__name__}: {error}"))
            raise
