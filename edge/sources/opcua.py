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
reconnects from scratch on the one policy, resolving the namespace URIs again (a changed index gives
new NodeIds) and subscribing again; the
new monitored items deliver the current values. What a brief drop costs: the server-side queue of
the old session, i.e. the changes of those seconds that the current values supersede (counters are
cumulative, so no count is lost; a state that came and went in between is).

Isolation: each machine's monitored items are created on their own, and a node the server refuses
(or whose values cannot be used) marks only its machine `bad_config`; a value with a status that is
not good marks it `stale` until that node delivers a good value again.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import Any

from asyncua import Client, ua
from asyncua.client.ua_client import UaClientState
from asyncua.common.subscription import DataChangeNotif

from edge.sources.base import Emit, Reading, Source, as_utc, utc_now
from edge.sources.opcua_security import secure
from edge.sources.values import CONFIG_REASONS, Unusable, signal_value
from kernel.logs import get_logger, redact_secrets
from kernel.opcua import UnknownNamespace, node_id
from kernel.payload import ConnectionStatus
from kernel.plant import Machine, OpcUaSource
from kernel.signals import COUNTERS

log = get_logger(__name__)

MONITORED_ITEM_QUEUE = 10_000
SESSION_TIMEOUT_MS = 600_000

NodeKey = tuple[str, str]  # (machine id, signal)

# The value types of the plant file, by the OPC UA built-in type a value arrives as.
VALUE_TYPES = {
    ua.VariantType.UInt16: "uint16", ua.VariantType.Int16: "int16",
    ua.VariantType.UInt32: "uint32", ua.VariantType.Int32: "int32",
    ua.VariantType.UInt64: "uint64", ua.VariantType.Int64: "int64",
    ua.VariantType.Float: "float32", ua.VariantType.Double: "float64",
    ua.VariantType.Boolean: "bool", ua.VariantType.String: "string",
}
# Status codes that say the plant file names something the server does not serve as written.
CONFIG_STATUS_CODES = frozenset({
    ua.StatusCodes.BadNodeIdUnknown, ua.StatusCodes.BadNodeIdInvalid, ua.StatusCodes.BadNotReadable,
    ua.StatusCodes.BadUserAccessDenied, ua.StatusCodes.BadTypeMismatch, ua.StatusCodes.BadAttributeIdInvalid,
    ua.StatusCodes.BadNotSupported, ua.StatusCodes.BadDataEncodingInvalid,
})
_SEVERITY = {"ok": 0, "stale": 1, "bad_config": 2}


def status_name(code: ua.StatusCode) -> str:
    try:
        return code.name
    except (AttributeError, KeyError):
        return f"0x{code.value:08X}"


def polling_interval_ms(sources: Sequence[OpcUaSource]) -> int:
    """Fastest poll the machines ask for; sampling_ms stands in when a subscription had to be replaced."""
    return min((s.poll_ms or s.sampling_ms or 100) for s in sources)


class _DataChangeHandler:
    def __init__(self, keys: dict[ua.NodeId, NodeKey], deliver: Any) -> None:
        self._keys = keys
        self._deliver = deliver

    def datachange_notification(self, node: Any, val: Any, data: DataChangeNotif) -> None:
        key = self._keys.get(node.nodeid)
        if key is not None:
            self._deliver(key, data.monitored_item.Value)

    def status_change_notification(self, status: Any) -> None:
        log.warning("opcua.subscription_status", status=str(status))


class OpcUaClientSource(Source):
    def __init__(self, machines: Sequence[Machine]) -> None:
        super().__init__(machines)
        endpoints = {m.source.endpoint if isinstance(m.source, OpcUaSource) else None for m in self.machines}
        if len(endpoints) != 1 or None in endpoints:
            raise ValueError("an OpcUaClientSource serves OPC UA machines of exactly one endpoint")
        self.endpoint = endpoints.pop()
        securities = {m.source.security for m in self.machines}  # type: ignore[union-attr]
        if len(securities) != 1:
            raise ValueError(f"the machines of {redact_secrets(self.endpoint)} must share one `security` setting")
        self._security = securities.pop()
        self._by_id = {m.id: m for m in self.machines}
        self._client: Client | None = None
        self._nodes: dict[NodeKey, Any] = {}
        self._polled: list[Machine] = []
        self._ready = False
        self._emit: Emit | None = None
        # What each node last showed: None when fine, else the status it gives its machine and why.
        self._node_trouble: dict[NodeKey, tuple[ConnectionStatus, str]] = {}

    @property
    def name(self) -> str:
        return redact_secrets(self.endpoint)

    @property
    def connected(self) -> bool:
        return self._ready and self._client is not None and self._client.state is UaClientState.CONNECTED

    async def _connect(self, emit: Emit) -> None:
        self._emit = emit
        client = Client(self.endpoint)
        # asyncua asks for an hour and servers commonly cap sessions at 10 minutes, with a warning
        client.session_timeout = SESSION_TIMEOUT_MS
        self._client = client
        await secure(client, self._security, self.name)
        await client.connect()
        self._node_trouble = {}
        self._nodes, usable = await self._resolve_nodes(client)
        subscribed = [m for m in usable if m.source.poll_ms == 0]
        self._polled = [m for m in usable if m.source.poll_ms > 0]
        if subscribed:
            try:
                subscription = await client.create_subscription(
                    min(m.source.sampling_ms for m in subscribed) or 100,
                    _DataChangeHandler({node.nodeid: key for key, node in self._nodes.items()}, self._deliver))
            except Exception as exc:
                log.warning("opcua.subscription_failed_polling_instead", endpoint=self.name, error=repr(exc))
                self._polled += subscribed
            else:
                for machine in subscribed:
                    await self._subscribe(subscription, machine)
        if self._polled:
            log.info("opcua.polling", endpoint=self.name, machines=[m.id for m in self._polled])
        for machine in usable:
            self._refresh_status(machine.id)
        self._ready = True

    async def _serve(self, emit: Emit) -> None:
        client = self._client
        if self._polled:
            await self._poll_forever(client, self._polled, emit)
            return
        async with client.subscribe_state() as state:
            await state.wait_for_state(UaClientState.DISCONNECTED)
        raise ConnectionError("the connection to the server was lost")

    async def _resolve_nodes(self, client: Client) -> tuple[dict[NodeKey, Any], list[Machine]]:
        """The nodes of every machine whose namespaces the server has (read afresh on each connect:
        a restarted server may have moved them); the others show `bad_config`."""
        namespaces = await client.get_namespace_array()
        nodes: dict[NodeKey, Any] = {}
        usable = []
        for machine in self.machines:
            source = machine.source
            assert isinstance(source, OpcUaSource)
            try:
                machine_nodes = {(machine.id, signal): client.get_node(node_id(source.address(signal), namespaces))
                                 for signal in source.nodes}
            except UnknownNamespace as error:
                self.health.set(machine.id, "bad_config", str(error))
                continue
            nodes |= machine_nodes
            usable.append(machine)
        return nodes, usable

    async def _subscribe(self, subscription: Any, machine: Machine) -> None:
        keys = [key for key in self._nodes if key[0] == machine.id]
        results = await subscription.subscribe_data_change(
            [self._nodes[key] for key in keys], queuesize=MONITORED_ITEM_QUEUE, sampling_interval=machine.source.sampling_ms
        )
        for key, result in zip(keys, results, strict=True):
            if isinstance(result, ua.StatusCode):
                self._node_trouble[key] = ("bad_config", f"{self._address(key)}: {status_name(result)}")

    def _address(self, key: NodeKey) -> str:
        return str(self._by_id[key[0]].source.address(key[1]))  # type: ignore[union-attr]

    def _deliver(self, key: NodeKey, data_value: ua.DataValue) -> None:
        """Emit the reading a DataValue carries (stamped with its SourceTimestamp when the server gives
        one), or count why it cannot be used; either way the node's part in its machine's status."""
        machine_id, signal = key
        trouble = self._trouble_of(key, data_value)
        if trouble is None:
            machine = self._by_id[machine_id]
            settings = machine.source.nodes[signal]  # type: ignore[union-attr,index]
            variant = data_value.Value
            value_type = settings.type or VALUE_TYPES.get(variant.VariantType)
            if value_type is None:
                value: int | str | Unusable = Unusable("type_mismatch", f"{self._address(key)} is a {variant.VariantType.name}")
            else:
                spec = machine.counters.get(signal) if signal in COUNTERS else None  # type: ignore[call-overload]
                value = signal_value(signal, variant.Value, value_type, settings, spec.width if spec else None)
            if isinstance(value, Unusable):
                self.health.unusable(machine_id, signal, value.reason, f"{self._address(key)}: {value.detail}")
                if value.reason in CONFIG_REASONS:
                    trouble = ("bad_config", f"{self._address(key)}: {value.detail}")
            else:
                ts = as_utc(data_value.SourceTimestamp) or as_utc(data_value.ServerTimestamp) or utc_now()
                self.health.value_arrived(machine_id)
                self._emit(Reading(machine_id=machine_id, signal=signal, value=value, ts=ts))
        if self._node_trouble.get(key) != trouble:
            if trouble is None:
                self._node_trouble.pop(key, None)
            else:
                self._node_trouble[key] = trouble
            if self._ready:
                self._refresh_status(machine_id)

    def _trouble_of(self, key: NodeKey, data_value: ua.DataValue) -> tuple[ConnectionStatus, str] | None:
        code = data_value.StatusCode
        if code is not None and not code.is_good():
            self.health.unusable(key[0], key[1], "bad_status", f"{self._address(key)}: {status_name(code)}")
            status: ConnectionStatus = "bad_config" if code.value in CONFIG_STATUS_CODES else "stale"
            return status, f"{self._address(key)}: {status_name(code)}"
        if data_value.Value is None or data_value.Value.Value is None:
            self.health.unusable(key[0], key[1], "no_value", self._address(key))
            return "stale", f"{self._address(key)}: no value"
        return None

    def _refresh_status(self, machine_id: str) -> None:
        troubles = [t for key, t in self._node_trouble.items() if key[0] == machine_id]
        if not troubles:
            self.health.set(machine_id, "ok")
            return
        status, detail = max(troubles, key=lambda t: _SEVERITY[t[0]])
        self.health.set(machine_id, status, "; ".join(sorted(d for s, d in troubles if s == status)))

    async def _poll_forever(self, client: Client, machines: list[Machine], emit: Emit) -> None:
        polled = [(key, node) for key, node in self._nodes.items() if key[0] in {m.id for m in machines}]
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
                    self._deliver(key, data_value)
            await asyncio.sleep(interval_s)

    async def _disconnect(self) -> None:
        self._ready = False
        client, self._client = self._client, None
        if client is not None:
            try:
                await client.disconnect()
            except Exception as exc:  # closing a dead connection may fail; nothing left to do then
                log.debug("opcua.disconnect_error", endpoint=self.name, error=repr(exc))
            finally:
                client.disconnect_socket()  # when the goodbye was cut short (Source._close); else a no-op
