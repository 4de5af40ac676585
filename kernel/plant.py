"""The plant description: one YAML file names every machine (site / area / line / machine) and how
to reach it. The simulators serve it, the edge agent reads it, the core registers its machines.

Only this module parses the file; everything else receives the validated models below.
"""

from __future__ import annotations

from collections import Counter as Tally
from decimal import Decimal
from pathlib import Path
import re
from typing import Annotated, Literal, NamedTuple

import yaml
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from kernel.logs import get_logger
from kernel.signals import COUNTERS, ORDER, ORDER_ID_MAX_LENGTH, SIGNALS, Counter, Signal

log = get_logger(__name__)

Slug = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]

# How far above the machine's fastest credible rate a counter may climb before a step is called an
# implausible jump and quarantined. Generous on purpose: a quarantine needs a person.
PLAUSIBILITY_FACTOR = 10


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Clock(_Strict):
    """Simulated seconds per wall-clock second (1 = real time)."""

    acceleration: Decimal = Field(default=Decimal(1), gt=0)


class Endpoints(_Strict):
    """Where the plant's servers listen. The simulators bind here; the edge connects here."""

    opcua: str = "opc.tcp://127.0.0.1:4840/open-mes/"
    opcua_namespace: str = "urn:open-mes:plant"
    modbus_host: str = "127.0.0.1"
    modbus_port: int = 5020


# Value types of a signal. A counter's type also gives its default width: a signed counter is
# carried as its two's-complement bits (see edge/sources/values.py), so it wraps like an unsigned one.
NumberType = Literal["uint16", "int16", "uint32", "int32", "uint64", "int64", "float32", "float64", "bool"]
ValueType = NumberType | Literal["string"]
TYPE_BITS: dict[str, int] = {"uint16": 16, "int16": 16, "uint32": 32, "int32": 32, "uint64": 64, "int64": 64,
                             "float32": 32, "float64": 64, "bool": 1}
# A float counter does not wrap; its width only bounds the core's counter arithmetic.
FLOAT_COUNTER_WIDTH = 64
CounterWidth = Literal[16, 32, 64]


def counter_width_of(value_type: str) -> int:
    """The width a counter of this type wraps at (floats never wrap)."""
    return FLOAT_COUNTER_WIDTH if value_type.startswith("float") else TYPE_BITS[value_type]


class SignalSettings(_Strict):
    """How a raw value becomes the signal's value: value * scale + offset, kept as a whole number for
    counters (floor: a counter reports completed units only). `width` and `max_rate_per_s` matter for
    counters only; unset, they come from the type and the machine (see parse_plant)."""

    scale: Decimal = Decimal(1)
    offset: Decimal = Decimal(0)
    width: CounterWidth | None = None
    max_rate_per_s: Decimal | None = Field(default=None, gt=0)


WORD_ORDERS = {"big": "ABCD", "little": "CDAB"}


class ModbusRegister(SignalSettings):
    """`address` is the 0-based PDU address (what goes on the wire), in `table`."""

    address: int = Field(ge=0, le=65535)
    address_is_pdu: bool = Field(default=False, description="an address in 40001-49999 is meant as it is written")
    table: Literal["holding", "input", "coil", "discrete"] = "holding"
    # "string": ASCII, two characters per register, first character in the high byte, padded with NUL
    type: ValueType = "uint32"
    # Byte order of the whole value, A = most significant byte: ABCD big-endian, CDAB word-swapped,
    # BADC byte-swapped, DCBA little-endian. `word_order` is the older spelling (big = ABCD, little = CDAB).
    byte_order: Literal["ABCD", "CDAB", "BADC", "DCBA"] | None = None
    word_order: Literal["big", "little"] = "big"
    length: int = Field(default=ORDER_ID_MAX_LENGTH // 2, ge=1, le=125, description="registers of a string")

    @property
    def order(self) -> str:
        return self.byte_order or WORD_ORDERS[self.word_order]

    @property
    def register_count(self) -> int:
        """How many 16-bit registers (or bits, in a coil or discrete table) the value takes."""
        if self.type == "string":
            return self.length
        return max(1, TYPE_BITS[self.type] // 16)

    @model_validator(mode="after")
    def _fits_its_table(self) -> ModbusRegister:
        bits = self.table in ("coil", "discrete")
        if bits != (self.type == "bool"):
            raise ValueError(f"a {self.type} cannot be read from the {self.table} table: coils and discrete inputs "
                             "hold type bool, holding and input registers every other type")
        if self.address + self.register_count > 65536:
            raise ValueError(f"register {self.address} with {self.register_count} words runs past address 65535")
        return self

    @model_validator(mode="before")
    @classmethod
    def _pdu_address(cls, fields: object) -> object:
        if not isinstance(fields, dict) or fields.get("address_is_pdu"):
            return fields
        address = fields.get("address")
        number = int(address) if isinstance(address, int | str) and str(address).isdigit() else None
        if number is not None and (40001 <= number <= 49999 or 400001 <= number <= 465536):
            base = 40001 if number <= 49999 else 400001
            raise ValueError(
                f"address {address} looks like a 4xxxx register number; write the 0-based PDU address instead "
                f"(here {number - base}: the number minus {base}) and choose the table with `table` (holding, "
                "input, coil, discrete). If the device really uses PDU address "
                f"{number} (SunSpec meters do), add `address_is_pdu: true`.")
        return fields


# An OPC UA address: the standard NodeId strings `ns=<index>;<i|s|g|b>=<id>` and
# `nsu=<namespace uri>;<i|s|g|b>=<id>` (without ns/nsu: namespace 0), or the short form: a string
# identifier (or a YAML integer: a numeric identifier) inside the source's `namespace`.
NODE_ID = re.compile(r"^(?:(?P<ns>ns|nsu)=(?P<namespace>[^;]*);)?(?P<kind>[isgb])=(?P<identifier>.*)$", re.DOTALL)


class NodeAddress(NamedTuple):
    """A node as the plant file names it; the namespace index of a URI is resolved on each connect."""

    namespace_uri: str | None  # set unless the index is given
    namespace_index: int | None
    kind: Literal["i", "s", "g", "b"]
    identifier: str | int

    def __str__(self) -> str:
        where = f"nsu={self.namespace_uri}" if self.namespace_uri is not None else f"ns={self.namespace_index}"
        return f"{where};{self.kind}={self.identifier}"


def parse_node_address(node: str | int, namespace: str | None) -> NodeAddress:
    if isinstance(node, bool):
        raise ValueError(f"node {node!r} is not a NodeId")
    if isinstance(node, int):
        if node < 0 or namespace is None:
            raise ValueError(f"numeric node {node} needs `namespace` (or write it as ns=<index>;i={node})")
        return NodeAddress(namespace, None, "i", node)
    match = NODE_ID.match(node)
    if match is None:
        if namespace is None:
            raise ValueError(f"node {node!r} is a short form: give the source a `namespace`, or write ns=<index>;s={node}")
        return NodeAddress(namespace, None, "s", node)
    kind, identifier = match["kind"], match["identifier"]
    if kind == "i":
        if not identifier.isdigit():
            raise ValueError(f"node {node!r}: a numeric identifier (i=) must be a whole number")
        identifier = int(identifier)
    if match["ns"] == "nsu":
        if not match["namespace"]:
            raise ValueError(f"node {node!r}: nsu= needs a namespace URI")
        return NodeAddress(match["namespace"], None, kind, identifier)  # type: ignore[arg-type]
    index = match["namespace"] if match["ns"] else "0"
    if not index.isdigit():
        raise ValueError(f"node {node!r}: ns= takes a namespace index (a number); use nsu= for a URI")
    return NodeAddress(None, int(index), kind, identifier)  # type: ignore[arg-type]


class OpcUaNode(SignalSettings):
    node: str | int
    # unset: the DataType the server gives the node (read on every connect)
    type: ValueType | None = None


class OpcUaSecurity(_Strict):
    """How the edge secures its session. The client certificate and key are created on first use
    when absent (their thumbprint is logged, to trust the edge on the PLC). A server certificate is
    accepted only when it is in `trusted_server_certificates` (files or folders of DER/PEM files);
    with none listed, any is accepted and its thumbprint logged. The password never sits in the
    file: it is read from the environment variable `password_env` or the file `password_file` at
    every connect."""

    policy: Literal["None", "Basic256Sha256", "Aes128_Sha256_RsaOaep", "Aes256_Sha256_RsaPss"] = "None"
    mode: Literal["None", "Sign", "SignAndEncrypt"] = "None"
    certificate: Path | None = None
    private_key: Path | None = None
    trusted_server_certificates: tuple[Path, ...] = ()
    user: str | None = None
    password_env: str | None = None
    password_file: Path | None = None

    @model_validator(mode="after")
    def _consistent(self) -> OpcUaSecurity:
        if (self.policy == "None") != (self.mode == "None"):
            raise ValueError("security: a policy needs a mode (Sign or SignAndEncrypt), and mode None goes with policy None")
        if self.policy != "None" and (self.certificate is None or self.private_key is None):
            raise ValueError("security: a policy needs `certificate` and `private_key` paths (created there when absent)")
        if self.user is not None and (self.password_env is None) == (self.password_file is None):
            raise ValueError("security: a user needs exactly one of `password_env` and `password_file`")
        if self.user is None and (self.password_env or self.password_file):
            raise ValueError("security: a password needs a `user`")
        return self


class OpcUaSource(_Strict):
    protocol: Literal["opcua"] = "opcua"
    # unset in the file: the plant's `endpoints.opcua` (parse_plant fills it in)
    endpoint: str = ""
    security: OpcUaSecurity = OpcUaSecurity()
    # The namespace URI of the short forms; standard NodeId strings need none.
    namespace: str | None = None
    # signal -> a NodeId (any form above), or an object with `node` and the signal's settings
    nodes: dict[Signal, OpcUaNode]
    # 0 = subscriptions only; > 0 = poll every N ms (fallback for servers without subscriptions)
    poll_ms: int = Field(default=0, ge=0)
    sampling_ms: int = Field(default=100, ge=0)

    @field_validator("nodes", mode="before")
    @classmethod
    def _plain_nodes(cls, nodes: object) -> object:
        if isinstance(nodes, dict):
            return {signal: {"node": node} if isinstance(node, str | int) else node for signal, node in nodes.items()}
        return nodes

    @model_validator(mode="after")
    def _nodes_parse(self) -> OpcUaSource:
        for node in self.nodes.values():
            parse_node_address(node.node, self.namespace)
        return self

    def address(self, signal: str) -> NodeAddress:
        return parse_node_address(self.nodes[signal].node, self.namespace)  # type: ignore[index]


class ModbusSource(_Strict):
    protocol: Literal["modbus"] = "modbus"
    # unset in the file: the plant's `endpoints.modbus_host` and `modbus_port` (parse_plant fills them in)
    host: str = ""
    port: int = Field(default=0, ge=0, le=65535)
    device_id: int = Field(ge=0, le=255, description="the unit id; 0 and 248-255 too, which gateways use")
    registers: dict[Signal, ModbusRegister]
    poll_ms: int = Field(default=500, gt=0)
    # Unnamed registers a single read may span between two named ones. 0 (the default) never reads a
    # register the map does not name: strict devices refuse such reads (exception 2).
    max_gap: int = Field(default=0, ge=0, le=123)


Source = Annotated[OpcUaSource | ModbusSource, Field(discriminator="protocol")]


class Simulation(_Strict):
    """What a simulated PLC does. Ground truth comes from these rules, not from the counters."""

    scrap_rate: Decimal = Field(default=Decimal("0.03"), ge=0, le=1)
    energy_wh_per_cycle: Decimal = Field(default=Decimal("1.5"), ge=0)
    idle_power_w: Decimal = Field(default=Decimal(200), ge=0)
    mtbf_s: Decimal | None = Field(default=None, gt=0, description="mean time between failures; none = never fails")
    mttr_s: Decimal = Field(default=Decimal(20), gt=0)
    plc_reset_probability: Decimal = Field(default=Decimal(0), ge=0, le=1, description="chance a repair ends in a counter reset")
    seed: int | None = None
    # The simulated OPC UA server's own certificate (DER) and key (PEM), created there on its first run,
    # for an endpoint whose `security` has a policy. Machines of one endpoint give the same (or none).
    server_certificate: Path | None = None
    server_private_key: Path | None = None

    @model_validator(mode="after")
    def _certificate_with_key(self) -> Simulation:
        if (self.server_certificate is None) != (self.server_private_key is None):
            raise ValueError("simulation: server_certificate and server_private_key go together")
        return self


class MachineSpec(_Strict):
    """A machine as written in the file (inside a line)."""

    id: Slug
    edge_id: Slug | None = Field(default=None, description="the edge agent that reads it; none = the plant's edge_id")
    protocol: Literal["opcua", "modbus"]
    ideal_cycle_s: Decimal = Field(gt=0)
    counter_width: Literal[16, 32] = 32
    counter_start: int = Field(default=0, ge=0)
    word_order: Literal["big", "little"] = "big"
    device_id: int | None = Field(default=None, ge=0, le=255)
    # The machine's rated power: the energy counter's plausibility limit when its signal sets none.
    rated_power_w: Decimal | None = Field(default=None, gt=0)
    simulation: Simulation = Simulation()
    source: Source | None = None


class LineSpec(_Strict):
    id: Slug
    machines: list[MachineSpec]


class AreaSpec(_Strict):
    id: Slug
    lines: list[LineSpec]


class PasswordSource(_Strict):
    """Where an MQTT password is read from: an environment variable or a file (first line), never the
    plant file itself. Neither: a broker the project starts makes one up (`mes demo`, the tests)."""

    password_env: str | None = Field(default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")
    password_file: Path | None = None

    @model_validator(mode="after")
    def _one_source(self) -> PasswordSource:
        if self.password_env and self.password_file:
            raise ValueError("give password_env or password_file, not both")
        return self


class CoreIdentity(PasswordSource):
    username: Slug = "mes-core"


class EdgeIdentity(PasswordSource):
    id: Slug
    username: Slug | None = Field(default=None, description="default: the edge id")

    @property
    def login(self) -> str:
        return self.username or self.id


class MqttIdentities(_Strict):
    """Who may connect to the broker. Every edge that machines name has an identity (username = its id
    unless listed here with another); the core has one of its own."""

    core: CoreIdentity = CoreIdentity()
    edges: list[EdgeIdentity] = []


class CounterSpec(_Strict):
    """What the core needs to turn a cumulative counter into deltas."""

    width: CounterWidth
    max_rate_per_s: Decimal


class Machine(_Strict):
    """A machine with its place in the ISA-95 hierarchy and a resolved source."""

    site: Slug
    area: Slug
    line: Slug
    id: Slug
    edge_id: Slug
    protocol: Literal["opcua", "modbus"]
    ideal_cycle_s: Decimal
    counter_width: Literal[16, 32]
    counter_start: int
    simulation: Simulation
    source: Source
    counters: dict[Counter, CounterSpec]

    @property
    def path(self) -> tuple[str, str, str, str]:
        return (self.site, self.area, self.line, self.id)

    @model_validator(mode="after")
    def _start_fits_width(self) -> Machine:
        if self.counter_start >= 2**self.counter_width:
            raise ValueError(f"counter_start {self.counter_start} does not fit in {self.counter_width} bits")
        return self


class Plant(_Strict):
    site: Slug
    clock: Clock = Clock()
    endpoints: Endpoints = Endpoints()
    edge_id: Slug = "edge-1"
    mqtt: MqttIdentities = MqttIdentities()
    machines: tuple[Machine, ...]

    def machine(self, machine_id: str) -> Machine:
        for machine in self.machines:
            if machine.id == machine_id:
                return machine
        raise KeyError(machine_id)

    def machines_of(self, edge_id: str) -> tuple[Machine, ...]:
        """The machines the plant file assigns to an edge."""
        return tuple(machine for machine in self.machines if machine.edge_id == edge_id)

    def edge_identities(self) -> tuple[EdgeIdentity, ...]:
        """One identity per edge: those the file lists, then every other edge a machine names."""
        listed = {identity.id: identity for identity in self.mqtt.edges}
        named = dict.fromkeys(machine.edge_id for machine in self.machines)
        return tuple(listed.get(edge, EdgeIdentity(id=edge)) for edge in {**listed, **named})

    @model_validator(mode="after")
    def _logins_unique(self) -> Plant:
        logins = [self.mqtt.core.username, *(identity.login for identity in self.edge_identities())]
        repeated = sorted({login for login in logins if logins.count(login) > 1})
        if repeated:
            raise ValueError(f"MQTT usernames must be unique (the core's and every edge's); repeated: {', '.join(repeated)}")
        return self


class PlantFile(_Strict):
    site: Slug
    clock: Clock = Clock()
    endpoints: Endpoints = Endpoints()
    edge_id: Slug = "edge-1"
    mqtt: MqttIdentities = MqttIdentities()
    areas: list[AreaSpec]


def modbus_register_map(width: int, word_order: str) -> dict[str, ModbusRegister]:
    """The simulators' register layout: each number gets two registers (16-bit values use the first),
    then the order id as a string of ORDER_ID_MAX_LENGTH characters."""
    kind = "uint16" if width == 16 else "uint32"
    layout = {"good": 0, "scrap": 2, "energy_wh": 4, "state": 6, "fault": 8}
    numbers = {
        signal: ModbusRegister(
            address=address,
            type=kind if signal in COUNTERS else "uint16",
            word_order=word_order,  # type: ignore[arg-type]
        )
        for signal, address in layout.items()
    }
    return numbers | {ORDER: ModbusRegister(address=10, type="string")}


def _default_source(spec: MachineSpec, endpoints: Endpoints, device_id: int) -> Source:
    if spec.protocol == "opcua":
        return OpcUaSource(
            endpoint=endpoints.opcua,
            namespace=endpoints.opcua_namespace,
            nodes={signal: f"{spec.id}.{signal}" for signal in SIGNALS},
        )
    return ModbusSource(
        host=endpoints.modbus_host,
        port=endpoints.modbus_port,
        device_id=device_id,
        registers=modbus_register_map(spec.counter_width, spec.word_order),
        # The simulators serve the word after each 16-bit value too: one read per machine, as before.
        max_gap=1,
    )


def _with_plant_endpoints(source: Source, endpoints: Endpoints) -> Source:
    """The source with the plant's endpoints where the file gives none of its own."""
    if isinstance(source, OpcUaSource):
        return source if source.endpoint else source.model_copy(update={"endpoint": endpoints.opcua})
    return source.model_copy(update={"host": source.host or endpoints.modbus_host, "port": source.port or endpoints.modbus_port})


def plausible_rates(spec: MachineSpec, acceleration: Decimal) -> dict[str, Decimal]:
    """Fastest credible climb per wall-clock second of each counter, times PLAUSIBILITY_FACTOR: counts
    from the ideal cycle time; energy from the rated power, else from what the `simulation:` block
    draws (see `energy_limit_is_simulated`)."""
    cycles_per_s = acceleration / spec.ideal_cycle_s
    if spec.rated_power_w is not None:
        energy_per_s = spec.rated_power_w * acceleration / 3600
    else:
        sim = spec.simulation
        energy_per_s = cycles_per_s * sim.energy_wh_per_cycle + sim.idle_power_w * acceleration / 3600
    return {
        "good": cycles_per_s * PLAUSIBILITY_FACTOR,
        "scrap": cycles_per_s * PLAUSIBILITY_FACTOR,
        "energy_wh": energy_per_s * PLAUSIBILITY_FACTOR,
    }


def energy_limit_is_simulated(spec: MachineSpec) -> bool:
    """True when a real machine's energy limit would come from the simulation defaults: one with a
    source of its own, neither `rated_power_w` nor a `simulation:` block. Such a file is still read
    (it was before rated_power_w existed), with a warning; a later release may refuse it."""
    return spec.rated_power_w is None and spec.source is not None and "simulation" not in spec.model_fields_set


def signal_settings(source: Source, signal: str) -> tuple[SignalSettings | None, str | None]:
    """The settings of a signal in its source and the value type the file gives it (None: not given)."""
    settings: SignalSettings | None
    if isinstance(source, OpcUaSource):
        settings = source.nodes.get(signal)  # type: ignore[call-overload]
        return settings, settings.type if isinstance(settings, OpcUaNode) else None
    settings = source.registers.get(signal)  # type: ignore[call-overload]
    given = isinstance(settings, ModbusRegister) and "type" in settings.model_fields_set
    return settings, settings.type if given else None  # type: ignore[union-attr]


def counter_spec(spec: MachineSpec, source: Source, counter: str, default_rate: Decimal) -> CounterSpec:
    """A counter's width: its signal's `width`, else its type's, else the machine's `counter_width`."""
    settings, value_type = signal_settings(source, counter)
    if value_type in ("string", "bool"):
        raise ValueError(f"machine {spec.id}: counter {counter} cannot be of type {value_type}")
    type_width = counter_width_of(value_type) if value_type else None
    width = (settings.width if settings else None) or type_width or spec.counter_width
    if type_width is not None and value_type and not value_type.startswith("float") and width > type_width:
        raise ValueError(f"machine {spec.id}: counter {counter} of type {value_type} cannot wrap at {width} bits")
    if settings is not None and settings.max_rate_per_s:
        rate = settings.max_rate_per_s
    else:
        rate = default_rate
        if settings is not None and counter == "energy_wh" and energy_limit_is_simulated(spec):
            log.warning("plant.energy_limit_from_simulation_defaults", machine=spec.id, max_rate_per_s=str(rate),
                        hint="give the machine `rated_power_w` or the energy signal `max_rate_per_s`")
    return CounterSpec(width=width, max_rate_per_s=rate)  # type: ignore[arg-type]


def parse_plant(document: dict) -> Plant:
    raw = PlantFile.model_validate(document)
    machines: list[Machine] = []
    next_device_id = 1
    for area in raw.areas:
        for line in area.lines:
            for spec in line.machines:
                device_id = next_device_id if spec.device_id is None else spec.device_id
                if spec.protocol == "modbus":
                    next_device_id = max(next_device_id, device_id) + 1
                rates = plausible_rates(spec, raw.clock.acceleration)
                source = _with_plant_endpoints(spec.source, raw.endpoints) if spec.source else \
                    _default_source(spec, raw.endpoints, device_id)
                machines.append(
                    Machine(
                        site=raw.site,
                        area=area.id,
                        line=line.id,
                        id=spec.id,
                        edge_id=spec.edge_id or raw.edge_id,
                        protocol=spec.protocol,
                        ideal_cycle_s=spec.ideal_cycle_s,
                        counter_width=spec.counter_width,
                        counter_start=spec.counter_start,
                        simulation=spec.simulation,
                        source=source,
                        counters={c: counter_spec(spec, source, c, rates[c]) for c in COUNTERS},
                    )
                )
    duplicated = sorted(i for i, times in Tally(m.id for m in machines).items() if times > 1)
    if duplicated:
        raise ValueError(f"machine ids must be unique in a plant; repeated: {', '.join(duplicated)}")
    return Plant(site=raw.site, clock=raw.clock, endpoints=raw.endpoints, edge_id=raw.edge_id, mqtt=raw.mqtt,
                 machines=tuple(machines))


def load_plant(path: str | Path) -> Plant:
    with open(path, encoding="utf-8") as handle:
        # libyaml's loader where PyYAML has it: a plant of thousands of machines loads in a fraction of the time
        return parse_plant(yaml.load(handle, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)))


DEMO_PLANT = Path(__file__).resolve().parent.parent / "simulators" / "plants" / "demo.yaml"
