"""The plant description: one YAML file names every machine (site / area / line / machine) and how
to reach it. The simulators serve it, the edge agent reads it, the core registers its machines.

Only this module parses the file; everything else receives the validated models below.
"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Annotated, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, model_validator

from kernel.signals import COUNTERS, ORDER, ORDER_ID_MAX_LENGTH, SIGNALS, Counter, Signal

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


class ModbusRegister(_Strict):
    address: int = Field(ge=0, le=65535)
    # "string": ASCII, two characters per register, first character in the high byte, padded with NUL
    type: Literal["uint16", "uint32", "string"] = "uint32"
    word_order: Literal["big", "little"] = "big"
    scale: Decimal = Decimal(1)
    length: int = Field(default=ORDER_ID_MAX_LENGTH // 2, ge=1, le=125, description="registers of a string")

    @property
    def width(self) -> int:
        """How many 16-bit registers the value takes."""
        return {"uint16": 1, "uint32": 2}.get(self.type, self.length)


class OpcUaSource(_Strict):
    protocol: Literal["opcua"] = "opcua"
    endpoint: str
    namespace: str
    # signal -> string identifier of the node inside `namespace`
    nodes: dict[Signal, str]
    # 0 = subscriptions only; > 0 = poll every N ms (fallback for servers without subscriptions)
    poll_ms: int = Field(default=0, ge=0)
    sampling_ms: int = Field(default=100, ge=0)


class ModbusSource(_Strict):
    protocol: Literal["modbus"] = "modbus"
    host: str
    port: int
    device_id: int = Field(ge=1, le=247)
    registers: dict[Signal, ModbusRegister]
    poll_ms: int = Field(default=500, gt=0)


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


class MachineSpec(_Strict):
    """A machine as written in the file (inside a line)."""

    id: Slug
    edge_id: Slug | None = Field(default=None, description="the edge agent that reads it; none = the plant's edge_id")
    protocol: Literal["opcua", "modbus"]
    ideal_cycle_s: Decimal = Field(gt=0)
    counter_width: Literal[16, 32] = 32
    counter_start: int = Field(default=0, ge=0)
    word_order: Literal["big", "little"] = "big"
    device_id: int | None = Field(default=None, ge=1, le=247)
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

    width: Literal[16, 32, 64]
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
    )


def plausible_rates(spec: MachineSpec, acceleration: Decimal) -> dict[str, Decimal]:
    """Fastest credible climb per wall-clock second of each counter, times PLAUSIBILITY_FACTOR."""
    sim = spec.simulation
    cycles_per_s = acceleration / spec.ideal_cycle_s
    energy_per_s = cycles_per_s * sim.energy_wh_per_cycle + sim.idle_power_w * acceleration / 3600
    return {
        "good": cycles_per_s * PLAUSIBILITY_FACTOR,
        "scrap": cycles_per_s * PLAUSIBILITY_FACTOR,
        "energy_wh": energy_per_s * PLAUSIBILITY_FACTOR,
    }


def parse_plant(document: dict) -> Plant:
    raw = PlantFile.model_validate(document)
    machines: list[Machine] = []
    next_device_id = 1
    for area in raw.areas:
        for line in area.lines:
            for spec in line.machines:
                device_id = spec.device_id or next_device_id
                if spec.protocol == "modbus":
                    next_device_id = max(next_device_id, device_id) + 1
                rates = plausible_rates(spec, raw.clock.acceleration)
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
                        source=spec.source or _default_source(spec, raw.endpoints, device_id),
                        counters={c: CounterSpec(width=spec.counter_width, max_rate_per_s=rates[c]) for c in COUNTERS},
                    )
                )
    ids = [m.id for m in machines]
    duplicated = sorted({i for i in ids if ids.count(i) > 1})
    if duplicated:
        raise ValueError(f"machine ids must be unique in a plant; repeated: {', '.join(duplicated)}")
    return Plant(site=raw.site, clock=raw.clock, endpoints=raw.endpoints, edge_id=raw.edge_id, mqtt=raw.mqtt,
                 machines=tuple(machines))


def load_plant(path: str | Path) -> Plant:
    with open(path, encoding="utf-8") as handle:
        return parse_plant(yaml.safe_load(handle))


DEMO_PLANT = Path(__file__).resolve().parent.parent / "simulators" / "plants" / "demo.yaml"
