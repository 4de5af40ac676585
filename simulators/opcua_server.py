"""One OPC UA server standing in for the OPC UA PLCs of one endpoint.

Address space: Objects / <area> / <line> / <machine> / <signal>, where each signal is a variable
with the NodeId `machine.source.nodes[signal]` names (a namespace it names is registered).

Security is what the machines' `source.security` asks of the edge: a policy and mode is the only
endpoint offered (with the server's own certificate from `simulation.server_certificate`, created
on its first run), and a `user` is the only identity admitted, with the password the edge reads
(the same environment variable or file). Without either, the server offers NoSecurity to anyone.

A restart (`stop`, then `start`) may move the namespaces: `namespaces_ahead` are registered before
the plant's, as on a PLC whose project gained a library; `move_namespaces` adds one.

Every write is stamped with the instant of the publish (SourceTimestamp = ServerTimestamp), which
clients take as the time of the value. The server keeps each machine's state changes as published
(`published_states`): the exact instants a reader can see, the ground truth of state durations.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import socket
from collections import deque
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, NamedTuple
from urllib.parse import urlsplit, urlunsplit

from asyncua import Server, ua
from asyncua.common.node import Node
from asyncua.crypto.permission_rules import User, UserRole
from asyncua.server.user_managers import UserManager

from kernel.logs import get_logger
from kernel.opcua import node_id as opcua_node_id
from kernel.opcua_security import own_certificate, password
from kernel.signals import COUNTERS, ORDER
from kernel.plant import Machine, OpcUaSecurity, OpcUaSource

log = get_logger(__name__)

# Bounds the memory of a long demo run; a test looks at the last few changes.
PUBLISHED_STATES_KEPT = 10_000


class PublishedState(NamedTuple):
    """A machine's state and fault code as shown from `ts` on (the SourceTimestamp of their write)."""

    ts: datetime
    state: int
    fault: int


# Where the machines' objects go when a machine's source names no namespace of its own.
DEFAULT_NAMESPACE = "urn:open-mes:simulated"
# What a restart registers ahead of the plant's namespaces (`move_namespaces`), numbered from 1.
LIBRARY_NAMESPACE = "urn:open-mes:simulated:library-{}"
APPLICATION_URI = "urn:open-mes:simulated-plc"
SECURITY_POLICIES = {
    (policy, mode): ua.SecurityPolicyType[f"{policy.replace('_', '')}_{mode}"]
    for policy in ("Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss") for mode in ("Sign", "SignAndEncrypt")
}
VARIANT_TYPES = {
    "uint16": ua.VariantType.UInt16, "int16": ua.VariantType.Int16, "uint32": ua.VariantType.UInt32,
    "int32": ua.VariantType.Int32, "uint64": ua.VariantType.UInt64, "int64": ua.VariantType.Int64,
    "float32": ua.VariantType.Float, "float64": ua.VariantType.Double, "bool": ua.VariantType.Boolean,
    "string": ua.VariantType.String,
}


def variant_type(machine: Machine, signal: str) -> ua.VariantType:
    if signal == ORDER:
        return ua.VariantType.String
    given = machine.source.nodes[signal].type  # type: ignore[union-attr,index]
    if given is not None:
        return VARIANT_TYPES[given]
    if signal in COUNTERS and machine.counters[signal].width == 32:  # type: ignore[index]
        return ua.VariantType.UInt32
    return ua.VariantType.UInt16


def shown_value(value: int | str, kind: ua.VariantType, scale: Decimal) -> int | float | str:
    """What a PLC of this type shows for the model's (unsigned) value: a signed counter the same
    bits, a float the value divided by the signal's scale (a kWh meter read as Wh with scale 1000)."""
    if isinstance(value, str):
        return value
    bits = {ua.VariantType.Int16: 16, ua.VariantType.Int32: 32, ua.VariantType.Int64: 64}.get(kind)
    if bits is not None:
        return value - (1 << bits) if value >= 1 << (bits - 1) else value
    if kind in (ua.VariantType.Float, ua.VariantType.Double):
        return float(Decimal(value) / scale)
    return value


def _opcua_source(machine: Machine) -> OpcUaSource:
    if not isinstance(machine.source, OpcUaSource):
        raise ValueError(f"machine {machine.id} is not an OPC UA machine")
    return machine.source


def without_credentials(endpoint: str) -> str:
    """The endpoint URL without a `user:password@` part: where a server listens."""
    parts = urlsplit(endpoint)
    if parts.hostname is None or "@" not in parts.netloc:
        return endpoint
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return urlunsplit(parts._replace(netloc=host if parts.port is None else f"{host}:{parts.port}"))


class _OneUser(UserManager):
    """Admits the plant file's user with its password and nobody else."""

    def __init__(self, user: str, secret: str) -> None:
        self._user, self._secret = user, secret.encode()

    def get_user(self, iserver: Any, username: str | None = None, password: str | None = None,
                 certificate: Any = None) -> User | None:
        if username != self._user or password is None:
            return None
        given = password.encode() if isinstance(password, str) else bytes(password)
        return User(role=UserRole.User, name=username) if hmac.compare_digest(given, self._secret) else None


def _shared(machines: Sequence[Machine], what: str, values: set[Any]) -> Any:
    if len(values) > 1:
        raise ValueError(f"the machines of one OPC UA endpoint ({', '.join(m.id for m in machines)}) must share {what}")
    return values.pop() if values else None


class OpcUaPlcServer:
    def __init__(self, machines: Sequence[Machine], endpoint: str, server_name: str = "open-mes simulated plant") -> None:
        # how far the simulated PLCs' clock is off: their SourceTimestamps, as a PLC whose clock was stepped
        self.clock_offset = timedelta(0)
        # registered before the plant's namespaces at the next start, which gives those higher indexes
        self.namespaces_ahead: tuple[str, ...] = ()
        self._machines = list(machines)
        self._security: OpcUaSecurity = _shared(
            self._machines, "one `security` setting", {_opcua_source(machine).security for machine in self._machines}
        ) or OpcUaSecurity()
        given = {(m.simulation.server_certificate, m.simulation.server_private_key) for m in self._machines}
        self._certificate: tuple[Path, Path] | None = _shared(
            self._machines, "one simulation.server_certificate and server_private_key", given - {(None, None)})
        if self._security.policy != "None" and self._certificate is None:
            raise ValueError(f"the simulated OPC UA server of {', '.join(m.id for m in self._machines)} offers policy "
                             f"{self._security.policy}: give those machines `simulation: {{server_certificate: <file>, "
                             "server_private_key: <file>}` (created there on the first run)")
        self._endpoint = without_credentials(endpoint)
        self._server_name = server_name
        self._server: Server | None = None
        # Publishes, starts and stops one at a time: an older value must never overwrite a newer one.
        self._lock = asyncio.Lock()
        self._variables: dict[str, dict[str, tuple[ua.NodeId, ua.VariantType, Decimal]]] = {}
        self._shown: dict[str, dict[str, int | str]] = {}
        self._published_states: dict[str, deque[PublishedState]] = {}

    @property
    def endpoint(self) -> str:
        """Where the server listens (the machines' endpoint without credentials)."""
        return self._endpoint

    @property
    def machine_ids(self) -> tuple[str, ...]:
        return tuple(machine.id for machine in self._machines)

    @property
    def running(self) -> bool:
        return self._server is not None

    def move_namespaces(self) -> None:
        """At the next start, one more namespace ahead of the plant's: each of them one index higher."""
        self.namespaces_ahead += (LIBRARY_NAMESPACE.format(len(self.namespaces_ahead) + 1),)

    def published_states(self, machine_id: str) -> list[PublishedState]:
        """Each change of the machine's state or fault code as published, oldest first."""
        if machine_id not in {machine.id for machine in self._machines}:
            raise ValueError(f"machine {machine_id} is not served by this OPC UA server")
        return list(self._published_states.get(machine_id, ()))

    async def start(self, values: dict[str, dict[str, int | str]]) -> None:
        """Serve the machines with these values (a restart: what they show now)."""
        if not self._machines or self._server is not None:
            return
        # A plant without OPC UA security is served so on purpose; asyncua's server would warn about it at every start.
        logging.getLogger("asyncua.server.server").setLevel(logging.ERROR)
        security = self._security
        server = Server(user_manager=_OneUser(security.user, password(security)) if security.user else None)
        await server.init()
        server.set_endpoint(self._endpoint)
        server.set_server_name(self._server_name)
        await server.set_application_uri(APPLICATION_URI)
        await self._secure(server)
        for namespace in self.namespaces_ahead:
            await server.register_namespace(namespace)
        variables = await self._add_machines(server, values)
        await server.start()
        async with self._lock:
            self._server, self._variables, self._shown = server, variables, {}
            await self._publish(values)
        log.info("opc ua server listening", endpoint=self._endpoint, machines=len(self._machines),
                 security=f"{security.policy} {security.mode}", user=security.user,
                 namespaces_ahead=len(self.namespaces_ahead))

    async def _secure(self, server: Server) -> None:
        security = self._security
        if security.user is not None:
            server.set_identity_tokens([ua.UserNameIdentityToken])
        if security.policy == "None":
            server.set_security_policy([ua.SecurityPolicyType.NoSecurity])
            return
        assert self._certificate is not None
        certificate_file, key_file = self._certificate
        own = await own_certificate(certificate_file, key_file, APPLICATION_URI, socket.gethostname(), server=True)
        if own.created:
            log.warning("opcua.server_certificate_created", endpoint=self._endpoint, certificate=str(certificate_file),
                        thumbprint=own.thumbprint, hint="list it in the edge's trusted_server_certificates to pin it")
        server.set_security_policy([SECURITY_POLICIES[(security.policy, security.mode)]])
        await server.load_certificate(certificate_file)
        await server.load_private_key(key_file)

    async def _add_machines(self, server: Server, values: dict[str, dict[str, int | str]]
                            ) -> dict[str, dict[str, tuple[ua.NodeId, ua.VariantType, Decimal]]]:
        folders: dict[tuple[str, ...], Node] = {}
        every_variable = {}
        for machine in self._machines:
            source = _opcua_source(machine)
            namespace = await server.register_namespace(source.namespace or DEFAULT_NAMESPACE)
            parent = server.nodes.objects
            for depth in range(1, 3):
                path = (machine.area, machine.line)[:depth]
                if path not in folders:
                    folders[path] = await parent.add_folder(namespace, path[-1])
                parent = folders[path]
            machine_object = await parent.add_object(namespace, machine.id)
            variables = every_variable[machine.id] = {}
            namespaces = await server.get_namespace_array()
            for signal in source.nodes:
                address = source.address(signal)
                if address.namespace_uri is not None and address.namespace_uri not in namespaces:
                    await server.register_namespace(address.namespace_uri)
                    namespaces = await server.get_namespace_array()
                node_id = opcua_node_id(address, namespaces)
                kind = variant_type(machine, signal)
                initial = values.get(machine.id, {}).get(signal, "" if signal == ORDER else 0)
                await machine_object.add_variable(node_id, ua.QualifiedName(signal, namespace),
                                                  ua.Variant(shown_value(initial, kind, source.nodes[signal].scale), kind))
                variables[signal] = (node_id, kind, source.nodes[signal].scale)
        return every_variable

    async def publish(self, values: dict[str, dict[str, int | str]]) -> None:
        """Write the signals of each machine that changed since the last publish."""
        async with self._lock:
            await self._publish(values)

    async def _publish(self, values: dict[str, dict[str, int | str]]) -> None:
        if self._server is None:
            return
        now = datetime.now(UTC)
        for machine_id, signals in values.items():
            variables = self._variables.get(machine_id)
            if variables is None:
                continue
            shown = self._shown.setdefault(machine_id, {})
            for signal, value in signals.items():
                if signal not in variables or shown.get(signal) == value:
                    continue
                node_id, kind, scale = variables[signal]
                data_value = ua.DataValue(ua.Variant(shown_value(value, kind, scale), kind),
                                          SourceTimestamp=now + self.clock_offset, ServerTimestamp=now)
                await self._server.write_attribute_value(node_id, data_value)
                shown[signal] = value
            published = self._published_states.setdefault(machine_id, deque(maxlen=PUBLISHED_STATES_KEPT))
            codes = (shown.get("state"), shown.get("fault"))
            # compared with the last one published, not with what this server showed: a restarted
            # server shows the same state anew, which is no change
            if codes != ((published[-1].state, published[-1].fault) if published else (None, None)):
                published.append(PublishedState(now, *codes))  # type: ignore[arg-type]

    async def stop(self) -> None:
        async with self._lock:
            server, self._server = self._server, None
        if server is not None:
            await server.stop()
