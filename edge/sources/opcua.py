"""OPC UA adapter: one asyncua client per endpoint, a subscription on every node (or polling).

Why a *sync* handler: asyncua's handler mode wraps each notification in its own task. A sync
`datachange_notification` runs to completion in the first step of its task, and tasks start in
creation order, so notifications reach `emit` in the order the server sent them. An async handler
could interleave and reorder; iterator mode drops the oldest events silently when its queue fills.
The server-side queue of each monitored item is enlarged too, otherwise a counter that moves twice
within one publishing interval would only report its last value.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeNotif

from edge.sources.base import Emit, Reading, Source, as_utc, utc_now
from kernel.logs import get_logger
from kernel.payload import is_order_id
from kernel.signals import ORDER
from kernel.plant import Machine, OpcUaSource

log = get_logger(__name__)

MONITORED_ITEM_QUEUE = 10_000
SESSION_TIMEOUT_MS = 600_000
RECONNECT_MAX_DELAY_S = 5.0
# How long a read waits for the reconnect supervisor before failing; short so polling keeps trying.
REQUEST_WAIT_S = 5.0

NodeKey = tuple[str, str]  # (machine id, signal)


def signal_value(signal: str, value: Any) -> int | str | None:
    """A PLC value as the signal's type (text for the order id, else a non-negative int), or None
    when it is not usable."""
    if signal == ORDER:
        # An unusable id is dropped here: sent on, it would cost the whole message its counts.
        return value.strip() if isinstance(value, str) and is_order_id(value.strip()) else None
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value if value >= 0 else None
    if isinstance(value, float) and value.is_integer() and value >= 0:
        return int(value)
    return None


def reading_from_data_value(key: NodeKey, data_value: ua.DataValue) -> Reading | None:
    """The reading a DataValue carries, stamped with its SourceTimestamp when the server gives one."""
    if data_value.StatusCode is not None and not data_value.StatusCode.is_good():
        return None
    if data_value.Value is None:
        return None
    value = signal_value(key[1], data_value.Value.Value)
    if value is None:
        return None
    ts = as_utc(data_value.SourceTimestamp) or as_utc(data_value.ServerTimestamp) or utc_now()
    return Reading(machine_id=key[0], signal=key[1], value=value, ts=ts)


def polling_interval_ms(sources: Sequence[OpcUaSource]) -> int:
    """Fastest poll the machines ask for; sampling_ms stands in when a subscription had to be replaced."""
    return min((s.poll_ms or s.sampling_ms or 100) for s in sources)


class _DataChangeHandler:
    def __init__(self, keys: dict[ua.NodeId, NodeKey], emit: Emit) -> None:
        self._keys = keys
        self._emit = emit

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        key = self._keys.get(node.nodeid)
        reading = reading_from_data_value(key, data.monitored_item.Value) if key else None
        if reading is not None:
            self._emit(reading)

    def status_change_notification(self, status: Any) -> None:
        log.warning("opcua.subscription_status", status=str(status))


class OpcUaClientSource(Source):
    def __init__(self, machines: Sequence[Machine]) -> None:
        super().__init__(machines)
        endpoints = {m.source.endpoint if isinstance(m.source, OpcUaSource) else None for m in self.machines}
        if len(endpoints) != 1 or None in endpoints:
            raise ValueError("an OpcUaClientSource serves OPC UA machines of exactly one endpoint")
        self.endpoint = endpoints.pop()
        self._client: Client | None = None
        self._ready = False
        self._task: asyncio.Task[None] | None = None

    @property
    def connected(self) -> bool:
        return self._ready and self._client is not None and self._client.state is UaClientState.CONNECTED

    async def start(self, emit: Emit) -> None:
        self._task = asyncio.create_task(self._run(emit), name=f"opcua {self.endpoint}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        await self._disconnect()

    async def _run(self, emit: Emit) -> None:
        delay = 1.0
        while True:
            try:
                await self._connect_and_serve(emit)
                return
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # the endpoint may be down at start; keep trying, never crash the agent
                log.warning("opcua.connect_failed", endpoint=self.endpoint, error=repr(exc), retry_s=delay)
                await self._disconnect()
                await asyncio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_DELAY_S)

    async def _connect_and_serve(self, emit: Emit) -> None:
        client = Client(self.endpoint, auto_reconnect=True, reconnect_max_delay=RECONNECT_MAX_DELAY_S,
                        reconnect_request_timeout=REQUEST_WAIT_S)
        # asyncua asks for an hour and servers commonly cap sessions at 10 minutes, with a warning
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        await client.connect()
        nodes = await self._resolve_nodes(client)
        subscribed = [m for m in self.machines if m.source.poll_ms == 0]
        polled = [m for m in self.machines if m.source.poll_ms > 0]
        if subscribed:
            try:
                await self._subscribe(client, subscribed, nodes, emit)
            except Exception as exc:
                log.warning("opcua.subscription_failed_polling_instead", endpoint=self.endpoint, error=repr(exc))
                polled += subscribed
        self._ready = True
        log.info("opcua.connected", endpoint=self.endpoint, machines=list(self.machine_ids), polled=[m.id for m in polled])
        if polled:
            await self._poll_forever(client, polled, nodes, emit)
        else:
            # The client's supervisor reconnects and restores the subscription by itself.
            await asyncio.Future()

    async def _resolve_nodes(self, client: Client) -> dict[NodeKey, Any]:
        namespace_index: dict[str, int] = {}
        nodes: dict[NodeKey, Any] = {}
        for machine in self.machines:
            source = machine.source
            assert isinstance(source, OpcUaSource)
            if source.namespace not in namespace_index:
                namespace_index[source.namespace] = await client.get_namespace_index(source.namespace)
            for signal, identifier in source.nodes.items():
                nodes[(machine.id, signal)] = client.get_node(ua.NodeId(identifier, namespace_index[source.namespace]))
        return nodes

    async def _subscribe(self, client: Client, machines: list[Machine], nodes: dict[NodeKey, Any], emit: Emit) -> None:
        keys = {node.nodeid: key for key, node in nodes.items() if key[0] in {m.id for m in machines}}
        period = min(m.source.sampling_ms for m in machines) or 100
        subscription = await client.create_subscription(period, _DataChangeHandler(keys, emit))
        for machine in machines:
            machine_nodes = [node for key, node in nodes.items() if key[0] == machine.id]
            results = await subscription.subscribe_data_change(
                machine_nodes, queuesize=MONITORED_ITEM_QUEUE, sampling_interval=machine.source.sampling_ms
            )
            failed = [r for r in results if isinstance(r, ua.StatusCode)]
            if failed:
                raise RuntimeError(f"monitored items refused for {machine.id}: {failed}")

    async def _poll_forever(self, client: Client, machines: list[Machine], nodes: dict[NodeKey, Any], emit: Emit) -> None:
        polled = [(key, node) for key, node in nodes.items() if key[0] in {m.id for m in machines}]
        interval_s = polling_interval_ms([m.source for m in machines]) / 1000  # type: ignore[misc]
        while True:
            try:
                values = await client.read_attributes([node for _, node in polled])
            except (ConnectionError, OSError, asyncio.TimeoutError, ua.UaError) as exc:
                log.warning("opcua.poll_failed", endpoint=self.endpoint, error=repr(exc))
            else:
                for (key, _), data_value in zip(polled, values, strict=True):
                    reading = reading_from_data_value(key, data_value)
                    if reading is not None:
                        emit(reading)
            await asyncio.sleep(interval_s)

    async def _disconnect(self) -> None:
        self._ready = False
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except Exception as exc:  # closing a dead connection may fail; nothing left to do then
                log.debug("opcua.disconnect_error", endpoint=self.endpoint, error=repr(exc))
