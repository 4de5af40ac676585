"""OPC UA adapter: one asyncua client per endpoint, a subscription on every node (or polling).

Why a *sync* handler: asyncua's handler mode wraps each notification in its own task. A sync
`datachange_notification` runs to completion in the first step of its task, and tasks start in
creation order, so notifications reach `emit` in the order the server sent them. An async handler
could interleave and reorder; iterator mode drops the oldest events silently when its queue fills.
The server-side queue of each monitored item is enlarged too, otherwise a counter that moves twice
within one publishing interval would only report its last value.

Why asyncua's own `auto_reconnect` stays off: a server that restarts may give the namespace another
index, and asyncua would re-create the monitored items with the old NodeIds, only logging
BadNodeIdUnknown while the source looked connected. Its loop also has a back-off of its own
(1 s doubling, no jitter) and reports failed attempts only in its own log. So a lost connection
ends the session (asyncua then marks the client DISCONNECTED) and the coordinator (base.Source)
reconnects from scratch on the one policy, resolving the namespaces and subscribing again; the
new monitored items deliver the current values. What a brief drop costs: the server-side queue of
the old session, i.e. the changes of those seconds that the current values supersede (counters are
cumulative, so no count is lost; a state that came and went in between is).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeNotif

from edge.sources.base import Emit, Reading, Source, as_utc, utc_now
from kernel.logs import get_logger, redact_secrets
from kernel.payload import is_order_id
from kernel.signals import ORDER
from kernel.plant import Machine, OpcUaSource

log = get_logger(__name__)

MONITORED_ITEM_QUEUE = 10_000
SESSION_TIMEOUT_MS = 600_000

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
        self._nodes: dict[NodeKey, Any] = {}
        self._polled: list[Machine] = []
        self._ready = False

    @property
    def name(self) -> str:
        return redact_secrets(self.endpoint)

    @property
    def connected(self) -> bool:
        return self._ready and self._client is not None and self._client.state is UaClientState.CONNECTED

    async def _connect(self, emit: Emit) -> None:
        client = Client(self.endpoint)
        # asyncua asks for an hour and servers commonly cap sessions at 10 minutes, with a warning
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        await client.connect()
        self._nodes = await self._resolve_nodes(client)
        subscribed = [m for m in self.machines if m.source.poll_ms == 0]
        self._polled = [m for m in self.machines if m.source.poll_ms > 0]
        if subscribed:
            try:
                await self._subscribe(client, subscribed, self._nodes, emit)
            except Exception as exc:
                log.warning("opcua.subscription_failed_polling_instead", endpoint=self.name, error=repr(exc))
                self._polled += subscribed
        if self._polled:
            log.info("opcua.polling", endpoint=self.name, machines=[m.id for m in self._polled])
        self._ready = True

    async def _serve(self, emit: Emit) -> None:
        client = self._client
        if self._polled:
            await self._poll_forever(client, self._polled, self._nodes, emit)
            return
        async with client.subscribe_state() as state:
            await state.wait_for_state(UaClientState.DISCONNECTED)
        raise ConnectionError("the connection to the server was lost")

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
        while not self._stopping:
            try:
                values = await client.read_attributes([node for _, node in polled])
            except (ConnectionError, OSError, asyncio.TimeoutError, ua.UaError) as exc:
                if client.state is not UaClientState.CONNECTED:
                    raise  # the session is gone: the coordinator reconnects
                log.warning("opcua.poll_failed", endpoint=self.name, error=repr(exc))
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
                log.debug("opcua.disconnect_error", endpoint=self.name, error=repr(exc))
