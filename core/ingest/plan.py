"""A batch of raw MQTT messages → everything to write for it. Pure: no I/O, no clock.

The service loads `IngestState` from the database once, asks the database only which positions at
or below an edge's cursor were already ingested, calls `plan_batch`, and writes the plan in one
transaction. The new state is swapped in only after that transaction commits.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import NamedTuple

from pydantic import ValidationError

from core.rules.counters import NOTEWORTHY, CounterPoint, counter_step
from core.rules.sequencing import EdgeCursor, Verdict, judge_message, needs_lookup
from inventory.rules.backflush import BackflushPlan
from mes.rules.attribution import CountStep, DispatchWindow, attribute, plc_order_verdict
from kernel.payload import DataMessage, EdgeStatus, parse_data_topic, parse_status_topic
from kernel.signals import COUNTERS, ORDER
from kernel.plant import CounterSpec

# Column orders of the rows below; core.ingest.store copies them with exactly these names.
MESSAGE_COLUMNS = ("edge_id", "epoch", "seq", "machine_id", "received_at", "historical", "sample_count")
SAMPLE_COLUMNS = ("machine_id", "ts", "signal", "value", "edge_id", "epoch", "seq")
INTERVAL_COLUMNS = ("machine_id", "start_ts", "end_ts", "good", "scrap", "energy_wh", "edge_id", "epoch", "seq")
STATE_COLUMNS = ("machine_id", "ts", "state_code", "fault_code", "edge_id", "epoch", "seq")
EVENT_COLUMNS = ("machine_id", "counter", "ts", "kind", "previous_value", "value", "delta", "quarantined",
                 "reason", "edge_id", "epoch", "seq", "review")
DEAD_LETTER_COLUMNS = ("received_at", "topic", "payload", "reason")
STATUS_EVENT_COLUMNS = ("edge_id", "online", "epoch", "machines", "received_at")
ATTRIBUTION_COLUMNS = ("edge_id", "epoch", "seq", "machine_id", "work_order_id", "good", "scrap", "energy_wh",
                       "first_ts", "last_ts")

UNKNOWN_MACHINE = "unknown machine"


@dataclass(frozen=True, slots=True)
class Incoming:
    topic: str
    payload: bytes
    received_at: datetime


@dataclass(frozen=True, slots=True)
class MachineInfo:
    site: str
    area: str
    line: str
    counters: dict[str, CounterSpec]


@dataclass(frozen=True, slots=True)
class LiveCodes:
    state_code: int | None = None
    state_ts: datetime | None = None
    fault_code: int | None = None
    fault_ts: datetime | None = None
    last_seen: datetime | None = None
    plc_order: str | None = None  # the order id the PLC last reported ("" = none; None = never reported)
    plc_order_ts: datetime | None = None


class PlcSwitch(NamedTuple):
    """The PLC reported a different order at `ts`: its open window ends there and, unless it now
    reports none, a new one starts."""

    machine_id: str
    ts: datetime
    reported: str
    work_order_id: str | None
    rejected_reason: str | None


@dataclass
class IngestState:
    cursors: dict[str, EdgeCursor] = field(default_factory=dict)
    counters: dict[tuple[str, str], CounterPoint] = field(default_factory=dict)
    live: dict[str, LiveCodes] = field(default_factory=dict)

    def copy(self) -> IngestState:
        return IngestState(dict(self.cursors), dict(self.counters), dict(self.live))


@dataclass
class BatchPlan:
    state: IngestState
    messages: list[tuple] = field(default_factory=list)
    samples: list[tuple] = field(default_factory=list)
    intervals: list[tuple] = field(default_factory=list)
    attributions: list[tuple] = field(default_factory=list)
    plc_switches: list[PlcSwitch] = field(default_factory=list)
    backflush: BackflushPlan | None = None  # filled by the service: it needs stock the plan does not hold
    states: list[tuple] = field(default_factory=list)
    events: list[tuple] = field(default_factory=list)
    dead_letters: list[tuple] = field(default_factory=list)
    edge_status: dict[str, tuple] = field(default_factory=dict)
    status_events: list[tuple] = field(default_factory=list)  # every status message: the communication record
    changed_cursors: set[str] = field(default_factory=set)
    changed_counters: set[tuple[str, str]] = field(default_factory=set)
    changed_live: set[str] = field(default_factory=set)
    duplicates: int = 0

    def earliest_change(self) -> datetime | None:
        """The earliest instant this batch's production intervals and state changes speak of."""
        return min((row[1] for rows in (self.intervals, self.states) for row in rows), default=None)


@dataclass(frozen=True, slots=True)
class _Parsed:
    incoming: Incoming
    message: DataMessage


def _validation_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first['ctx'].get('error', first['msg'])}"
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid payload: {where}: {first['msg']}{more}"


def parse(incoming: Incoming, registry: dict[str, MachineInfo]) -> _Parsed | EdgeStatus | str:
    """A data message, an edge status, or the reason it goes to the dead letters."""
    edge_id = parse_status_topic(incoming.topic)
    if edge_id is not None:
        try:
            status = EdgeStatus.model_validate_json(incoming.payload)
        except ValidationError as error:
            return _validation_reason(error)
        if status.edge_id != edge_id:
            return f"edge_id {status.edge_id!r} does not match the topic"
        return status
    path = parse_data_topic(incoming.topic)
    if path is None:
        return "not a data or status topic"
    try:
        message = DataMessage.model_validate_json(incoming.payload)
    except ValidationError as error:
        return _validation_reason(error)
    site, area, line, machine_id = path
    if message.machine != machine_id:
        return f"payload machine {message.machine!r} does not match topic machine {machine_id!r}"
    info = registry.get(machine_id)
    if info is None:
        return f"{UNKNOWN_MACHINE} {machine_id!r}: not in the plant registry"
    if (info.site, info.area, info.line) != (site, area, line):
        return f"topic path {site}/{area}/{line} does not match the registry's {info.site}/{info.area}/{info.line}"
    return _Parsed(incoming, message)


@dataclass
class ParsedBatch:
    data: list[_Parsed] = field(default_factory=list)
    edge_status: dict[str, tuple] = field(default_factory=dict)
    status_events: list[tuple] = field(default_factory=list)
    dead_letters: list[tuple] = field(default_factory=list)

    def reported_orders(self) -> set[str]:
        """Order ids the PLCs report in this batch: the work orders the plan must know the status of."""
        return {s.value for p in self.data for s in p.message.samples if s.signal == ORDER and s.value}

    def earliest_sample(self) -> datetime | None:
        """How far back the dispatch windows must reach to attribute this batch."""
        return min((min(s.ts for s in p.message.samples) for p in self.data), default=None)

    def positions_to_look_up(self, cursors: dict[str, EdgeCursor]) -> set[tuple[str, int, int]]:
        """Positions that may have been ingested by an earlier batch: the only ones the database must answer."""
        return {
            (p.message.edge_id, p.message.epoch, p.message.seq)
            for p in self.data
            if needs_lookup(cursors.get(p.message.edge_id), EdgeCursor(p.message.epoch, p.message.seq))
        }


def parse_batch(batch: Iterable[Incoming], registry: dict[str, MachineInfo]) -> ParsedBatch:
    parsed = ParsedBatch()
    for incoming in batch:
        result = parse(incoming, registry)
        if isinstance(result, str):
            parsed.dead_letters.append((incoming.received_at, incoming.topic, incoming.payload, result))
        elif isinstance(result, EdgeStatus):
            parsed.edge_status[result.edge_id] = (result.online, result.epoch, result.machines, incoming.received_at)
            parsed.status_events.append((result.edge_id, *parsed.edge_status[result.edge_id]))
        else:
            parsed.data.append(result)
    # Within a batch, put each edge's messages back in sequence order: a reordering inside the
    # batch is then no regression at all.
    parsed.data.sort(key=lambda p: (p.message.edge_id, p.message.epoch, p.message.seq))
    return parsed


def plan_batch(
    parsed: ParsedBatch,
    state: IngestState,
    registry: dict[str, MachineInfo],
    already_ingested: set[tuple[str, int, int]],
    windows: dict[str, list[DispatchWindow]] | None = None,
    order_statuses: dict[str, str] | None = None,
) -> BatchPlan:
    """`windows`: dispatch windows per machine, reaching back to `parsed.earliest_sample()`;
    `order_statuses`: status of each work order in `parsed.reported_orders()` that exists."""
    # copied: the PLC's own order switches open and close windows as the batch goes
    windows = {machine: list(machine_windows) for machine, machine_windows in (windows or {}).items()}
    order_statuses = order_statuses or {}
    plan = BatchPlan(state=state.copy(), dead_letters=list(parsed.dead_letters), edge_status=dict(parsed.edge_status),
                     status_events=list(parsed.status_events))
    ingested_now: set[tuple[str, int, int]] = set()
    for item in parsed.data:
        message = item.message
        key = (message.edge_id, message.epoch, message.seq)
        verdict, reason = judge_message(
            plan.state.cursors.get(message.edge_id),
            EdgeCursor(message.epoch, message.seq),
            key in already_ingested or key in ingested_now,
        )
        if verdict is Verdict.DUPLICATE:
            plan.duplicates += 1
        elif verdict is Verdict.REJECT:
            plan.dead_letters.append((item.incoming.received_at, item.incoming.topic, item.incoming.payload, reason))
        else:
            ingested_now.add(key)
            plan.state.cursors[message.edge_id] = EdgeCursor(message.epoch, message.seq)
            plan.changed_cursors.add(message.edge_id)
            _ingest_message(plan, message, item.incoming.received_at, registry[message.machine],
                            windows.setdefault(message.machine, []), order_statuses)
    return plan


def _ingest_message(plan: BatchPlan, message: DataMessage, received_at: datetime, info: MachineInfo,
                    windows: list[DispatchWindow], order_statuses: dict[str, str]) -> None:
    """`windows` is this machine's list, updated in place when the PLC switches orders."""
    machine_id = message.machine
    origin = (message.edge_id, message.epoch, message.seq)
    plan.messages.append((*origin, machine_id, received_at, message.historical, len(message.samples)))
    deltas = dict.fromkeys(COUNTERS, 0)
    steps: dict[datetime, dict[str, int]] = {}  # counted units by timestamp, for attribution
    start_ts: datetime | None = None
    end_ts: datetime | None = None
    live = plan.state.live.get(machine_id, LiveCodes())
    live_before = live

    for sample in sorted(message.samples, key=lambda s: s.ts):
        if sample.signal == ORDER:
            # Kept as dispatch windows, not as samples: the samples table holds numbers.
            live = _apply_order(plan, live, windows, machine_id, sample.value, sample.ts, order_statuses)
            continue
        plan.samples.append((machine_id, sample.ts, sample.signal, sample.value, *origin))
        if sample.signal in deltas:
            key = (machine_id, sample.signal)
            spec = info.counters[sample.signal]
            last = plan.state.counters.get(key)
            step = counter_step(last, CounterPoint(sample.value, sample.ts), spec.width, spec.max_rate_per_s)
            if step.point is not last:
                plan.state.counters[key] = step.point
                plan.changed_counters.add(key)
            if step.delta:
                deltas[sample.signal] += step.delta
                at_ts = steps.setdefault(sample.ts, dict.fromkeys(COUNTERS, 0))
                at_ts[sample.signal] += step.delta
                start_ts = min(start_ts or last.ts, last.ts)
                end_ts = max(end_ts or sample.ts, sample.ts)
            if step.kind in NOTEWORTHY:
                plan.events.append((
                    machine_id, sample.signal, sample.ts, step.kind.value, last.value if last else None,
                    sample.value, step.delta, step.quarantined, step.reason, *origin,
                    "pending" if step.quarantined else "none",
                ))
        else:
            live = _apply_code(plan, live, machine_id, sample.signal, sample.value, sample.ts, origin)

    live = replace(live, last_seen=max(live.last_seen or received_at, received_at))
    if live != live_before:
        plan.state.live[machine_id] = live
        plan.changed_live.add(machine_id)
    if start_ts is not None:
        plan.intervals.append((machine_id, start_ts, end_ts, deltas["good"], deltas["scrap"], deltas["energy_wh"], *origin))
        counted = [CountStep(machine_id, ts, units["good"], units["scrap"], units["energy_wh"]) for ts, units in steps.items()]
        plan.attributions.extend((*origin, *attribution) for attribution in attribute(counted, windows))


def _apply_order(plan: BatchPlan, live: LiveCodes, windows: list[DispatchWindow], machine_id: str, reported: str,
                 ts: datetime, order_statuses: dict[str, str]) -> LiveCodes:
    """An order id sample: a PLC switch when it changes what the PLC reports. Every message's
    samples are applied before its steps are attributed, so units counted at or after `ts` go to the
    new window and earlier ones to the old, wherever the switch falls in the message."""
    if live.plc_order_ts is not None and ts < live.plc_order_ts:
        return live  # older than what is known: the later value already stands
    updated = replace(live, plc_order=reported, plc_order_ts=ts)
    if reported == (live.plc_order or ""):
        return updated
    work_order, rejected = plc_order_verdict(reported, order_statuses.get(reported)) if reported else (None, None)
    plan.plc_switches.append(PlcSwitch(machine_id, ts, reported, work_order, rejected))
    windows[:] = [replace(w, end=ts) if w.source == "plc" and w.end is None else w for w in windows]
    if reported:
        windows.append(DispatchWindow(machine_id, work_order, ts, None, "plc"))
    return updated


def _apply_code(plan: BatchPlan, live: LiveCodes, machine_id: str, signal: str, value: int, ts: datetime,
                origin: tuple[str, int, int]) -> LiveCodes:
    """A state or fault code sample: a state-change row when it changes what the machine reports."""
    current, current_ts = (live.state_code, live.state_ts) if signal == "state" else (live.fault_code, live.fault_ts)
    if current_ts is not None and ts < current_ts:
        return live  # older than what is known: the later value already stands
    updated = replace(live, state_code=value, state_ts=ts) if signal == "state" else replace(live, fault_code=value, fault_ts=ts)
    if value != current:
        plan.states.append((machine_id, ts, updated.state_code, updated.fault_code, *origin))
    return updated
