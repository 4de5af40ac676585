"""A batch of raw MQTT messages → everything to write for it. Pure: no I/O, no clock.

The service loads, inside the batch's write transaction, what the plan needs (`BatchContext`: which
positions were ingested already, dispatch windows, the work orders the batch can touch, the stock its
backflush consumes, with row locks where another writer could change them), calls `plan_batch` once,
and the store writes the plan's rows as they are. The new state is swapped in only after the commit.

What a batch decides, in order: which messages count (sequencing); each counter's deltas (counter
rule); the state changes; the PLC's own order switches, which open and close its dispatch windows and
move the orders' statuses; which work order each counted unit belongs to (attribution); the backflush
of the attributed units (consumption, finished goods, holds); the orders that reached their quantity
and auto-complete; and whether the hourly rollups must be redone from the past. Beside the data, each
machine's connection as the edge statuses report it, a report never replaced by an older one.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import NamedTuple

from pydantic import ValidationError

from core.ingest.rows import (
    CounterEventRow,
    CounterStateRow,
    DeadLetterRow,
    DispatchEnd,
    DispatchRow,
    EdgeCursorRow,
    EdgeStatusEvent,
    EdgeStatusRow,
    IngestedMessage,
    MachineConnectionRow,
    MachineLiveRow,
    ProductionInterval,
    SampleRow,
    StateChangeRow,
    WorkOrderEventRow,
)
from core.rules.assignment import data_refusal, status_refusal
from core.rules.connections import Report, supersedes
from core.rules.counters import NOTEWORTHY, CounterPoint, StepKind, counter_step
from core.rules.placement import DEFAULT_MAX_AHEAD, place
from core.rules.sequencing import EdgeCursor, Ingested, Plausible, Verdict, judge_message, judge_reingested
from inventory.rules.backflush import AttributedUnits, BackflushPlan, LineSide, Material, interval_ref, plan_backflush
from inventory.rules.lots import LotBalance
from kernel.payload import DecodedMessage, EdgeAck, EdgeStatus, decode_data, parse_data_topic, parse_status_topic
from kernel.plant import CounterSpec
from kernel.rules.instants import exact_seconds
from kernel.signals import COUNTERS, ORDER
from mes.rules.attribution import AttributionRow, CountStep, DispatchWindow, attribute, plc_order_verdict
from mes.rules.rollups import late_since
from mes.rules.workorders import (
    WorkOrderAction,
    WorkOrderStatus,
    auto_completes,
    follow_the_plc,
    transition,
)

UNKNOWN_MACHINE = "unknown machine"
PLC, AUTO_COMPLETE = "plc", "auto-complete"  # the actors of the status changes a batch makes


class IngestLimits(NamedTuple):
    """What the core takes from a publisher (MES_* settings; documented in docs/mqtt.md)."""

    max_clock_ahead: timedelta = DEFAULT_MAX_AHEAD  # core.rules.placement
    sequence: Plausible = Plausible()  # core.rules.sequencing
    max_payload_bytes: int = 1024 * 1024
    max_samples: int = 10_000


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
    edge_id: str | None = None  # the edge the plant file assigns it to; None: any (core.rules.assignment)


@dataclass(frozen=True, slots=True)
class LiveCodes:
    state_code: int | None = None
    state_ts: datetime | None = None
    fault_code: int | None = None
    fault_ts: datetime | None = None
    last_seen: datetime | None = None
    plc_order: str | None = None  # the order id the PLC last reported ("" = none; None = never reported)
    plc_order_ts: datetime | None = None


class EdgeStatusNow(NamedTuple):
    online: bool
    epoch: int | None
    machines: list[str]
    changed_at: datetime


class PlcSwitch(NamedTuple):
    """The PLC reported a different order at `ts`: its open window ends there and, unless it now
    reports none, a new one starts."""

    machine_id: str
    ts: datetime
    reported: str
    work_order_id: str | None
    rejected_reason: str | None


class WorkOrderFacts(NamedTuple):
    """What the plan must know of a work order the batch can touch (loaded locked, with its counts so far)."""

    status: str
    quantity: int
    auto_complete: bool
    good: int = 0  # attributed good units before this batch
    last_counted: datetime | None = None  # the last of them


@dataclass(frozen=True)
class BatchContext:
    """What the store loaded for the plan, in the batch's transaction.

    `windows`: every dispatch window per machine still open at the batch's earliest sample or later;
    `work_orders`: the orders of those windows and those the PLCs report, that exist; `materials`,
    `line_side` and `balances`: what their backflush consumes, from where (`None`: do not backflush); `pruned`:
    each edge's key watermark (core.rules.sequencing), read after the keys."""

    already_ingested: Mapping[tuple[str, int, int], Ingested] = field(default_factory=dict)
    windows: Mapping[str, list[DispatchWindow]] = field(default_factory=dict)
    work_orders: Mapping[str, WorkOrderFacts] = field(default_factory=dict)
    materials: Mapping[str, Material] | None = None
    line_side: Mapping[str, LineSide] = field(default_factory=dict)
    balances: Mapping[tuple[str, str], list[LotBalance]] = field(default_factory=dict)
    pruned: Mapping[str, EdgeCursor] = field(default_factory=dict)


@dataclass
class IngestState:
    cursors: dict[str, EdgeCursor] = field(default_factory=dict)
    counters: dict[tuple[str, str], CounterPoint] = field(default_factory=dict)
    live: dict[str, LiveCodes] = field(default_factory=dict)
    connections: dict[str, MachineConnectionRow] = field(default_factory=dict)  # each machine's, as last reported
    # Per edge, the furthest position of record as a dead letter refused for its machine, where it would
    # have been ingested: a message that follows it is not held for it. Never a cursor (a forged dead
    # letter must not turn an edge's real messages into regressions); kept in memory only: after a
    # restart one resend brings it again.
    dead_lettered: dict[str, EdgeCursor] = field(default_factory=dict)

    def copy(self) -> IngestState:
        return IngestState(dict(self.cursors), dict(self.counters), dict(self.live), dict(self.connections),
                           dict(self.dead_lettered))


@dataclass
class BatchPlan:
    state: IngestState
    messages: list[IngestedMessage] = field(default_factory=list)
    samples: list[SampleRow] = field(default_factory=list)
    intervals: list[ProductionInterval] = field(default_factory=list)
    attributions: list[AttributionRow] = field(default_factory=list)
    plc_switches: list[PlcSwitch] = field(default_factory=list)
    dispatches_ended: list[DispatchEnd] = field(default_factory=list)
    dispatches_opened: list[DispatchRow] = field(default_factory=list)
    work_order_events: list[WorkOrderEventRow] = field(default_factory=list)
    backflush: BackflushPlan | None = None
    states: list[StateChangeRow] = field(default_factory=list)
    events: list[CounterEventRow] = field(default_factory=list)
    dead_letters: list[DeadLetterRow] = field(default_factory=list)
    edge_status: dict[str, EdgeStatusNow] = field(default_factory=dict)
    status_events: list[EdgeStatusEvent] = field(default_factory=list)  # every status message: the communication record
    changed_cursors: set[str] = field(default_factory=set)
    changed_counters: set[tuple[str, str]] = field(default_factory=set)
    changed_live: set[str] = field(default_factory=set)
    changed_connections: set[str] = field(default_factory=set)
    rollups_since: datetime | None = None  # the rollups must be redone from here (data about the past)
    duplicates: int = 0
    heard: set[str] = field(default_factory=set)  # edges whose data messages the batch judged
    held: dict[str, int] = field(default_factory=dict)  # edge -> messages set aside until it publishes again

    def acknowledgments(self) -> list[EdgeAck]:
        """What to tell each edge heard from after the commit: how far it is committed, and whether to
        publish again from there."""
        return [EdgeAck(edge_id=edge, epoch=self.state.cursors[edge].epoch, seq=self.state.cursors[edge].seq,
                        resend=edge in self.held)
                for edge in sorted(self.heard) if edge in self.state.cursors]

    def earliest_change(self) -> datetime | None:
        """The earliest instant this batch's production intervals and state changes speak of."""
        return min([*(row.start_ts for row in self.intervals), *(row.ts for row in self.states)], default=None)

    def work_order_statuses(self) -> dict[str, str]:
        """Each work order's status after the batch, for those it changed."""
        return {event.work_order_id: event.to_status for event in self.work_order_events}

    def counter_state_rows(self) -> list[CounterStateRow]:
        return [CounterStateRow(m, c, self.state.counters[m, c].value, self.state.counters[m, c].ts)
                for m, c in sorted(self.changed_counters)]

    def cursor_rows(self) -> list[EdgeCursorRow]:
        return [EdgeCursorRow(e, self.state.cursors[e].epoch, self.state.cursors[e].seq) for e in sorted(self.changed_cursors)]

    def live_rows(self) -> list[MachineLiveRow]:
        return [MachineLiveRow(machine, *_live_fields(self.state.live[machine])) for machine in sorted(self.changed_live)]

    def edge_status_rows(self) -> list[EdgeStatusRow]:
        return [EdgeStatusRow(edge, *status) for edge, status in self.edge_status.items()]

    def connection_rows(self) -> list[MachineConnectionRow]:
        return [self.state.connections[machine] for machine in sorted(self.changed_connections)]

    def take_connection(self, reported: MachineConnectionRow) -> None:
        """A machine's connection as a status reported it, unless what is known is newer (core.rules.connections)."""
        known = self.state.connections.get(reported.machine_id)
        if supersedes(_report(reported), _report(known) if known is not None else None):
            self.state.connections[reported.machine_id] = reported
            self.changed_connections.add(reported.machine_id)

    def quarantined_events(self) -> int:
        return sum(1 for event in self.events if event.quarantined)


def _report(row: MachineConnectionRow) -> Report:
    return Report(row.edge_id, row.epoch, row.reported_at, row.received_at)


def _connection_rows(status: EdgeStatus, received_at: datetime, registry: Mapping[str, MachineInfo]) -> list[MachineConnectionRow]:
    """The machines' connections a status reports; those of machines the registry does not know have no
    row to go to (their data messages are dead letters, which say so)."""
    reported_at = status.ts if status.ts is not None and status.ts.tzinfo is not None else None
    return [MachineConnectionRow(machine, connection.status, connection.detail, connection.since,
                                 json.dumps(connection.unusable, sort_keys=True), status.edge_id, status.epoch,
                                 reported_at, received_at)
            for machine, connection in sorted(status.connections.items()) if machine in registry]


def _live_fields(live: LiveCodes) -> tuple:
    return (live.state_code, live.state_ts, live.fault_code, live.fault_ts, live.last_seen, live.plc_order, live.plc_order_ts)


@dataclass(frozen=True, slots=True)
class _Parsed:
    incoming: Incoming
    message: DecodedMessage
    # The order it is planned in: an edge's epoch may only grow in arrival order (see parse_batch).
    epoch_floor: int = 0
    # Why it cannot count (its machine unknown, of another edge …), though it names its place in its edge's
    # sequence: it is a dead letter judged in that place, so what the edge publishes after it is not held.
    refusal: _Refused | None = None

    @property
    def digest(self) -> bytes:
        """Of what the message says: a redelivery or a replay has the same."""
        return hashlib.blake2b(self.message.content(), digest_size=16).digest()


def _validation_reason(error: ValidationError) -> str:
    first = error.errors()[0]
    if first["type"] == "json_invalid":
        return f"not JSON: {first['ctx'].get('error', first['msg'])}"
    where = ".".join(str(part) for part in first["loc"]) or "payload"
    more = f" (+{error.error_count() - 1} more)" if error.error_count() > 1 else ""
    return f"invalid payload: {where}: {first['msg']}{more}"


class _Refused(NamedTuple):
    reason: str
    edge_id: str | None = None
    machine_id: str | None = None


def parse(incoming: Incoming, registry: dict[str, MachineInfo], limits: IngestLimits) -> _Parsed | EdgeStatus | _Refused:
    """A data message, an edge status, or why it goes to the dead letters (and whose it was, if known)."""
    size = len(incoming.payload)
    edge_id = parse_status_topic(incoming.topic)
    path = parse_data_topic(incoming.topic) if edge_id is None else None
    machine_id = path[3] if path is not None else None
    if size > limits.max_payload_bytes:
        return _Refused(f"payload too large: {size} bytes, more than MES_MAX_PAYLOAD_BYTES={limits.max_payload_bytes}",
                        edge_id, machine_id)
    if edge_id is not None:
        try:
            status = EdgeStatus.model_validate_json(incoming.payload)
        except ValidationError as error:
            return _Refused(_validation_reason(error), edge_id)
        if status.edge_id != edge_id:
            return _Refused(f"edge_id {status.edge_id!r} does not match the topic", edge_id)
        refusal = status_refusal({m: info.edge_id for m, info in registry.items()}, edge_id,
                                 [*status.machines, *status.connections])
        return _Refused(refusal, edge_id) if refusal else status
    if path is None:
        return _Refused("not a data or status topic")
    try:
        message = decode_data(incoming.payload)
    except ValidationError as error:
        return _Refused(_validation_reason(error), None, machine_id)
    site, area, line, machine_id = path
    def refused(reason: str) -> _Parsed:
        return _Parsed(incoming, message, refusal=_Refused(reason, message.edge_id, machine_id))

    if len(message.samples) > limits.max_samples:
        return refused(f"too many samples: {len(message.samples)}, more than MES_MAX_SAMPLES={limits.max_samples}; "
                       "split them over several messages")
    if message.machine != machine_id:
        return refused(f"payload machine {message.machine!r} does not match topic machine {machine_id!r}")
    info = registry.get(machine_id)
    if info is None:
        return refused(f"{UNKNOWN_MACHINE} {machine_id!r}: not in the plant registry")
    if (info.site, info.area, info.line) != (site, area, line):
        return refused(f"topic path {site}/{area}/{line} does not match the registry's {info.site}/{info.area}/{info.line}")
    refusal = data_refusal(info.edge_id, message.edge_id, machine_id)
    return refused(refusal) if refusal else _Parsed(incoming, message)


@dataclass
class ParsedBatch:
    data: list[_Parsed] = field(default_factory=list)
    edge_status: dict[str, EdgeStatusNow] = field(default_factory=dict)
    status_events: list[EdgeStatusEvent] = field(default_factory=list)
    connections: list[MachineConnectionRow] = field(default_factory=list)  # every status's, in arrival order
    dead_letters: list[DeadLetterRow] = field(default_factory=list)

    def counted(self) -> list[_Parsed]:
        """The data messages that can count (the others only take their place in the sequence)."""
        return [p for p in self.data if p.refusal is None]

    def refusals(self) -> list[str]:
        """Why each message of the batch that will be a dead letter whatever its place is one."""
        return [row.reason for row in self.dead_letters] + [p.refusal.reason for p in self.data if p.refusal]

    def reported_orders(self) -> set[str]:
        """Order ids the PLCs report in this batch: work orders the plan must know."""
        return {s.value for p in self.counted() for s in p.message.samples if s.signal == ORDER and s.value}

    def machines(self) -> set[str]:
        """The machines whose data is in this batch."""
        return {p.message.machine for p in self.counted()}

    def earliest_sample(self) -> datetime | None:
        """How far back the dispatch windows must reach to attribute this batch: no sample is placed
        before its timestamp or its receipt, whichever is earlier (core.rules.placement)."""
        return min((min(p.incoming.received_at, *(s.ts for s in p.message.samples)) for p in self.counted()), default=None)

    def positions_to_look_up(self, cursors: dict[str, EdgeCursor]) -> set[tuple[str, int, int]]:
        """Positions the database must say whether it ingested: every message's (a re-ingested dead letter
        may lie beyond its edge's cursor), and each message's predecessor beyond the cursor (one the core
        has is not waited for)."""
        positions = {(p.message.edge_id, p.message.epoch, p.message.seq) for p in self.data}
        for p in self.data:
            cursor, prev = cursors.get(p.message.edge_id), p.message.prev
            if prev is not None and (cursor is None or EdgeCursor(prev.epoch, prev.seq) > cursor):
                positions.add((p.message.edge_id, prev.epoch, prev.seq))
        return positions


def parse_batch(batch: Iterable[Incoming], registry: dict[str, MachineInfo], limits: IngestLimits = IngestLimits()) -> ParsedBatch:
    parsed = ParsedBatch()
    for incoming in batch:
        result = parse(incoming, registry, limits)
        if isinstance(result, _Refused):
            parsed.dead_letters.append(DeadLetterRow.of(incoming.received_at, incoming.topic, incoming.payload,
                                                        result.reason, edge_id=result.edge_id, machine_id=result.machine_id))
        elif isinstance(result, EdgeStatus):
            parsed.edge_status[result.edge_id] = EdgeStatusNow(result.online, result.epoch, result.machines, incoming.received_at)
            parsed.status_events.append(EdgeStatusEvent(result.edge_id, *parsed.edge_status[result.edge_id]))
            parsed.connections.extend(_connection_rows(result, incoming.received_at, registry))
        else:
            parsed.data.append(result)
    parsed.data = _in_planning_order(parsed.data)
    return parsed


def _in_planning_order(data: list[_Parsed]) -> list[_Parsed]:
    """Each edge's messages in sequence order, as if each had come in a batch of its own, only reordered
    within an epoch: a reordering there is no regression at all. A message of an older epoch that arrived
    after a newer epoch's first message is planned after that epoch, so it is a duplicate or an epoch
    regression exactly as in a later batch."""
    newest: dict[str, int] = {}
    floored = []
    for item in data:
        edge = item.message.edge_id
        newest[edge] = max(newest.get(edge, 0), item.message.epoch)
        floored.append(replace(item, epoch_floor=newest[edge]))
    return sorted(floored, key=lambda p: (p.message.edge_id, p.epoch_floor, p.message.epoch != p.epoch_floor,
                                          p.message.epoch, p.message.seq))


def plan_batch(
    parsed: ParsedBatch,
    state: IngestState,
    registry: dict[str, MachineInfo],
    already_ingested: set[tuple[str, int, int]] | None = None,
    windows: Mapping[str, list[DispatchWindow]] | None = None,
    order_statuses: Mapping[str, str] | None = None,
    *,
    context: BatchContext | None = None,
    now: datetime | None = None,
    limits: IngestLimits = IngestLimits(),
    reingest: bool = False,
) -> BatchPlan:
    """Everything the batch writes. The store's loads arrive in `context`; without one, the short forms
    `already_ingested` (positions, their content unknown), `windows` and `order_statuses` (each order's
    status, nothing else known of it) make it, for callers without a database. `now` decides whether the
    batch wrote about the past (for the rollups); without it, nothing is marked. `reingest`: the batch is
    dead letters a person takes in again (core.services.review): only their keys judge them
    (`judge_reingested`), the edges' cursors neither judge nor follow them, and no edge is acknowledged."""
    if context is None:
        context = BatchContext(dict.fromkeys(already_ingested or (), Ingested(None)), windows or {},
                               {order: WorkOrderFacts(status, 0, False) for order, status in (order_statuses or {}).items()})
    planner = _Planner(context, state, parsed, limits.max_clock_ahead)
    for item in parsed.data:
        message = item.message
        key = (message.edge_id, message.epoch, message.seq)
        digest = item.digest
        earlier = planner.ingested(key)
        pruned = context.pruned.get(message.edge_id)
        if reingest:
            verdict, reason = judge_reingested(earlier, digest, pruned, EdgeCursor(message.epoch, message.seq))
        else:
            verdict, reason = judge_message(
                planner.plan.state.cursors.get(message.edge_id),
                EdgeCursor(message.epoch, message.seq),
                earlier,
                digest,
                limits.sequence,
                EdgeCursor(message.prev.epoch, message.prev.seq) if message.prev is not None else None,
                planner.plan.state.dead_lettered.get(message.edge_id),
                message.prev is not None and planner.was_ingested((message.edge_id, message.prev.epoch, message.prev.seq)),
                pruned,
            )
            planner.plan.heard.add(message.edge_id)
        if verdict is Verdict.DUPLICATE:
            planner.plan.duplicates += 1
        elif verdict is Verdict.HOLD:
            planner.plan.held[message.edge_id] = planner.plan.held.get(message.edge_id, 0) + 1
        elif item.refusal is not None:
            # a dead letter whatever its place; where it would have been ingested, what follows it is not held for it
            planner.plan.dead_letters.append(DeadLetterRow.of(item.incoming.received_at, item.incoming.topic,
                                                              item.incoming.payload, item.refusal.reason,
                                                              edge_id=item.refusal.edge_id,
                                                              machine_id=item.refusal.machine_id))
            if verdict is Verdict.ACCEPT and not reingest:
                planner.plan.state.dead_lettered[message.edge_id] = EdgeCursor(message.epoch, message.seq)
        elif verdict is Verdict.REJECT:
            planner.plan.dead_letters.append(DeadLetterRow.of(item.incoming.received_at, item.incoming.topic,
                                                              item.incoming.payload, reason, edge_id=message.edge_id,
                                                              machine_id=message.machine))
        else:
            planner.ingest(message, item.incoming.received_at, registry[message.machine], digest, moves_cursor=not reingest)
    planner.plan.dead_letters.sort(key=lambda row: row.received_at)  # in the order they came, however refused
    return planner.finish(now)


def plan_counted(origin: tuple[str, int, int], units: CountStep, context: BatchContext, state: IngestState,
                 now: datetime) -> BatchPlan:
    """Units counted outside any message — an accepted quarantined step (core.services.review) — planned as a
    message's are, by the same planner: one interval under `origin`, attributed to the window that holds
    its instant, backflushed, the orders it brings to their quantity auto-completed, the rollups marked."""
    planner = _Planner(context, state, ParsedBatch(), DEFAULT_MAX_AHEAD)
    planner.count(origin, units.machine_id, units.ts, units.ts, [units])
    return planner.finish(now)


# What a sample's signal adds to in `_Planner.ingest`: a counter's index in COUNTERS (the order of CountStep's units).
_COUNTER_INDEX = {counter: index for index, counter in enumerate(COUNTERS)}
_NO_TIME = timedelta(0)
_NEVER_HEARD = LiveCodes()


def _placed_before(live: LiveCodes, signal: str) -> datetime | None:
    """Where a code's or the order's previous sample was placed: a signal's time never goes back (a
    counter's: its accepted point's)."""
    if signal == ORDER:
        return live.plc_order_ts
    return live.state_ts if signal == "state" else live.fault_ts


def attributions(origin: tuple[str, int, int], steps: list[CountStep], windows: list[DispatchWindow]) -> list[AttributionRow]:
    """The rows of `attribute(steps, windows)` under `origin`. A machine with no window (most messages of a
    plant running no work order) gets its one unassigned bucket without the rule's search for windows."""
    if windows:
        return [AttributionRow(*origin, *attribution) for attribution in attribute(steps, windows)]
    machine_id = steps[0].machine_id
    return [AttributionRow(*origin, machine_id, None, sum(step.good for step in steps), sum(step.scrap for step in steps),
                           sum(step.energy_wh for step in steps), min(step.ts for step in steps), max(step.ts for step in steps))]


class _Planner:
    """One batch's planning: the plan grows message by message, windows and statuses move with it."""

    def __init__(self, context: BatchContext, state: IngestState, parsed: ParsedBatch, max_clock_ahead: timedelta):
        self.context = context
        self.max_clock_ahead = max_clock_ahead
        self.plan = BatchPlan(state=state.copy(), dead_letters=list(parsed.dead_letters), edge_status=dict(parsed.edge_status),
                              status_events=list(parsed.status_events))
        for reported in parsed.connections:
            self.plan.take_connection(reported)
        self.ingested_now: dict[tuple[str, int, int], Ingested] = {}
        # copied: the PLC's own order switches open and close windows as the batch goes
        self.windows = {machine: list(machine_windows) for machine, machine_windows in context.windows.items()}
        self.statuses = {order: facts.status for order, facts in context.work_orders.items()}
        self._opened: dict[str, int] = {}  # machine -> index in plan.dispatches_opened of its open PLC window

    def ingested(self, key: tuple[str, int, int]) -> Ingested | None:
        """The position's ingestion, in this batch or before."""
        return self.ingested_now.get(key) or self.context.already_ingested.get(key)

    def was_ingested(self, key: tuple[str, int, int]) -> bool:
        return self.ingested(key) is not None

    def ingest(self, message: DecodedMessage, received_at: datetime, info: MachineInfo, digest: bytes, *,
               moves_cursor: bool = True) -> None:
        """One accepted message. Its samples are taken in the order the edge read them: that order, not
        their timestamps, decides what each counter value means (core.rules.counters); each timestamp is
        only placed in time (core.rules.placement), so a PLC clock that steps neither freezes nor drops
        a unit."""
        plan = self.plan
        self.ingested_now[message.edge_id, message.epoch, message.seq] = Ingested(digest)
        if moves_cursor:
            plan.state.cursors[message.edge_id] = EdgeCursor(message.epoch, message.seq)
            plan.changed_cursors.add(message.edge_id)
        machine_id = message.machine
        windows = self.windows.setdefault(machine_id, [])
        origin = (message.edge_id, message.epoch, message.seq)
        steps: dict[datetime, list[int]] = {}  # counted units by placed instant (in COUNTERS order), for attribution
        start_ts: datetime | None = None
        end_ts: datetime | None = None
        first_ts: datetime | None = None
        last_ts: datetime | None = None
        ahead: timedelta | None = None
        live = plan.state.live.get(machine_id, _NEVER_HEARD)
        live_before = live
        # The time the machine had since the core last heard from it: what a counter's climb is judged
        # against when its own timestamps cannot say (a clock that stepped back places samples together).
        heard_gap = received_at - live_before.last_seen if live_before.last_seen is not None else None
        # Looked up once a message, not once a sample: this loop is the ingest's per-sample cost.
        counters, changed_counters, samples = plan.state.counters, plan.changed_counters, plan.samples
        specs, max_ahead = info.counters, self.max_clock_ahead

        for sample in message.samples:
            signal, value = sample.signal, sample.value
            index = _COUNTER_INDEX.get(signal)
            if index is not None:
                key = (machine_id, signal)
                last = counters.get(key)
                ts, flagged = place(sample.ts, received_at, last.ts if last is not None else None, max_ahead)
            else:
                last = None
                ts, flagged = place(sample.ts, received_at, _placed_before(live, signal), max_ahead)
            if flagged is not None:
                ahead = flagged if ahead is None else max(ahead, flagged)
            if first_ts is None or ts < first_ts:
                first_ts = ts
            if last_ts is None or ts > last_ts:
                last_ts = ts
            if signal == ORDER:
                # Kept as dispatch windows, not as samples: the samples table holds numbers.
                live = self._apply_order(live, windows, machine_id, value, ts)
                continue
            samples.append(SampleRow(machine_id, ts, signal, value))
            if index is None:
                live = self._apply_code(live, machine_id, signal, value, ts, origin)
                continue
            spec = specs[signal]
            elapsed = ts - last.ts if last is not None else _NO_TIME
            if heard_gap is not None and heard_gap > elapsed:
                elapsed = heard_gap
            step = counter_step(last, CounterPoint(value, ts), spec.width, spec.max_rate_per_s, elapsed)
            if step.point is not last:
                counters[key] = step.point
                changed_counters.add(key)
            if step.delta:
                at_ts = steps.get(ts)
                if at_ts is None:
                    at_ts = steps[ts] = [0, 0, 0]
                at_ts[index] += step.delta
                if start_ts is None or last.ts < start_ts:
                    start_ts = last.ts
                if end_ts is None or ts > end_ts:
                    end_ts = ts
            if step.kind is not StepKind.NORMAL and step.kind in NOTEWORTHY:
                plan.events.append(CounterEventRow(
                    machine_id, signal, ts, step.kind.value, last.value if last else None,
                    value, step.delta, step.quarantined, step.reason, *origin,
                    "pending" if step.quarantined else "none",
                ))

        plan.messages.append(IngestedMessage(*origin, machine_id, received_at, message.historical, len(message.samples),
                                             first_ts, last_ts, exact_seconds(ahead) if ahead is not None else None,
                                             digest))
        if live.last_seen is None or received_at > live.last_seen:
            live = replace(live, last_seen=received_at)
        if live != live_before:
            plan.state.live[machine_id] = live
            plan.changed_live.add(machine_id)
        if start_ts is not None and end_ts is not None:
            self.count(origin, machine_id, start_ts, end_ts,
                       [CountStep(machine_id, ts, *units) for ts, units in steps.items()])

    def count(self, origin: tuple[str, int, int], machine_id: str, start_ts: datetime, end_ts: datetime,
              steps: list[CountStep]) -> None:
        """One production interval of counted units under `origin`, each step attributed to the window holding it."""
        good = scrap = energy_wh = 0
        for step in steps:
            good, scrap, energy_wh = good + step.good, scrap + step.scrap, energy_wh + step.energy_wh
        self.plan.intervals.append(ProductionInterval(machine_id, start_ts, end_ts, good, scrap, energy_wh, *origin))
        self.plan.attributions.extend(attributions(origin, steps, self.windows.setdefault(machine_id, [])))

    def finish(self, now: datetime | None) -> BatchPlan:
        """What follows from everything counted: backflush, auto-complete, the rollup mark."""
        self.backflush()
        self.auto_complete()
        earliest = self.plan.earliest_change()
        self.plan.rollups_since = late_since(earliest, now) if earliest is not None and now is not None else None
        return self.plan

    def _apply_order(self, live: LiveCodes, windows: list[DispatchWindow], machine_id: str, reported: str,
                     ts: datetime) -> LiveCodes:
        """An order id sample: a PLC switch when it changes what the PLC reports. Every message's
        samples are applied before its steps are attributed, so units counted at or after `ts` go to the
        new window and earlier ones to the old, wherever the switch falls in the message."""
        updated = replace(live, plc_order=reported, plc_order_ts=ts)
        if reported == (live.plc_order or ""):
            return updated
        work_order, rejected = plc_order_verdict(reported, self.statuses.get(reported)) if reported else (None, None)
        self.plan.plc_switches.append(PlcSwitch(machine_id, ts, reported, work_order, rejected))
        left = [w.work_order for w in windows if w.source == PLC and w.end is None and w.work_order is not None]
        windows[:] = [replace(w, end=ts) if w.source == PLC and w.end is None else w for w in windows]
        self._end_plc_window(machine_id, ts)
        if reported:
            windows.append(DispatchWindow(machine_id, work_order, ts, None, PLC))
            self._opened[machine_id] = len(self.plan.dispatches_opened)
            self.plan.dispatches_opened.append(DispatchRow(machine_id, work_order, PLC, ts, None, reported, rejected))
        for order in left:
            self._follow(order, ts, machine_id, leaving=True)
        if work_order is not None:
            self._follow(work_order, ts, machine_id, leaving=False)
        return updated

    def _end_plc_window(self, machine_id: str, ts: datetime) -> None:
        """The machine's open PLC window ends at `ts`: one this batch opened, else the one stored."""
        index = self._opened.pop(machine_id, None)
        if index is None:
            self.plan.dispatches_ended.append(DispatchEnd(machine_id, None, PLC, ts))
        else:
            self.plan.dispatches_opened[index] = self.plan.dispatches_opened[index]._replace(end_ts=ts)

    def _follow(self, work_order: str, ts: datetime, machine_id: str, *, leaving: bool) -> None:
        """The order the PLC left pauses unless a window still runs it; the one it starts starts or resumes."""
        if work_order not in self.statuses:
            return  # not loaded: no status to move
        still = any(w.work_order == work_order and w.end is None for ws in self.windows.values() for w in ws)
        action = follow_the_plc(WorkOrderStatus(self.statuses[work_order]), leaving=leaving, still_dispatched=still)
        if action is not None:
            self._step(work_order, ts, action, machine_id, PLC)

    def _step(self, work_order: str, ts: datetime, action: WorkOrderAction, machine_id: str | None, actor: str) -> None:
        before = self.statuses[work_order]
        after = transition(WorkOrderStatus(before), action).value
        self.statuses[work_order] = after
        self.plan.work_order_events.append(WorkOrderEventRow(work_order, ts, action.value, before, after, machine_id, actor))

    def _apply_code(self, live: LiveCodes, machine_id: str, signal: str, value: int, ts: datetime,
                    origin: tuple[str, int, int]) -> LiveCodes:
        """A state or fault code sample: a state-change row when it changes what the machine reports."""
        current = live.state_code if signal == "state" else live.fault_code
        updated = replace(live, state_code=value, state_ts=ts) if signal == "state" else replace(live, fault_code=value, fault_ts=ts)
        if value != current:
            self.plan.states.append(StateChangeRow(machine_id, ts, updated.state_code, updated.fault_code, *origin))
        return updated

    def backflush(self) -> None:
        """Consumption and finished goods for every unit counted for a work order, in one pass over the batch."""
        if self.context.materials is None:
            return
        units = [AttributedUnits(interval_ref(row.edge_id, row.epoch, row.seq), row.machine_id, row.work_order_id,
                                 row.good, row.scrap, row.last_ts)
                 for row in self.plan.attributions if row.work_order_id is not None and row.good + row.scrap > 0]
        if units:
            self.plan.backflush = plan_backflush(units, self.context.materials, self.context.line_side, self.context.balances)

    def auto_complete(self) -> None:
        """Orders set to auto-complete whose good units reached their quantity complete when the counted
        units reached it (the source time), and their API windows end there."""
        made: dict[str, tuple[int, datetime]] = {}
        for row in self.plan.attributions:
            if row.work_order_id is not None:
                good, last = made.get(row.work_order_id, (0, row.last_ts))
                made[row.work_order_id] = (good + row.good, max(last, row.last_ts))
        for order, (good, last) in sorted(made.items()):
            facts = self.context.work_orders.get(order)
            if facts is None:
                continue
            reached_at = max(last, facts.last_counted or last)
            if auto_completes(WorkOrderStatus(self.statuses[order]), facts.quantity, facts.good + good, facts.auto_complete):
                self._step(order, reached_at, WorkOrderAction.COMPLETE, None, AUTO_COMPLETE)
                self.plan.dispatches_ended.append(DispatchEnd(None, order, "api", reached_at))

