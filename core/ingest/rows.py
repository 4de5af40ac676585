"""What an ingest batch writes: one NamedTuple per table, its fields the table's columns in order.

The plan (core/ingest/plan.py) builds these; the store (core/ingest/store.py) copies them as they are,
so no code indexes a row by position and a column cannot be written into the wrong place.
(`production_attributions` rows are `mes.rules.attribution.AttributionRow`: re-assignment writes them too.)
"""

from __future__ import annotations

import hashlib
from datetime import datetime
from decimal import Decimal
from typing import NamedTuple


class IngestedMessage(NamedTuple):
    """`ingested_messages`: the key that makes a message count once, when the core received it, and the
    period its samples were placed in (`clock_ahead_s`: how far ahead a clamped timestamp was), and the
    digest of its content, which tells a redelivery from a reuse of its position."""

    edge_id: str
    epoch: int
    seq: int
    machine_id: str
    received_at: datetime
    historical: bool
    sample_count: int
    first_ts: datetime
    last_ts: datetime
    clock_ahead_s: Decimal | None
    digest: bytes


class SampleRow(NamedTuple):
    """`samples`: every numeric sample as the edge sent it, at the instant it was placed at. Without its
    message's key (migration 0022): that is the message's row (`IngestedMessage`: machine, first_ts..last_ts)."""

    machine_id: str
    ts: datetime
    signal: str
    value: int


# SampleRow's columns' types: the samples, most of the ingest's rows, go in by binary COPY.
SAMPLE_TYPES = ("text", "timestamptz", "text", "int8")


class ProductionInterval(NamedTuple):
    """`production_intervals`: what one message counted, from the last counted value before it to its last step."""

    machine_id: str
    start_ts: datetime
    end_ts: datetime
    good: int
    scrap: int
    energy_wh: int
    edge_id: str
    epoch: int
    seq: int


class StateChangeRow(NamedTuple):
    """`machine_states`: the codes a machine reports from `ts` on, written when one of them changes."""

    machine_id: str
    ts: datetime
    state_code: int | None
    fault_code: int | None
    edge_id: str
    epoch: int
    seq: int


class CounterEventRow(NamedTuple):
    """`counter_events`: a noteworthy counter step (rollover, reset, jump…); quarantined ones wait for review."""

    machine_id: str
    counter: str
    ts: datetime
    kind: str
    previous_value: int | None
    value: int
    delta: int
    quarantined: int
    reason: str
    edge_id: str
    epoch: int
    seq: int
    review: str


# What a dead letter keeps of its payload: enough to read any real message, not a 10 MB one.
STORED_PAYLOAD_BYTES = 64 * 1024


class DeadLetterRow(NamedTuple):
    """`dead_letters`: a message that could not be used, with its raw bytes (at most the first
    STORED_PAYLOAD_BYTES), its size and hash as received, and why."""

    received_at: datetime
    topic: str
    payload: bytes
    reason: str
    size: int
    sha256: bytes
    edge_id: str | None
    machine_id: str | None

    @classmethod
    def of(cls, received_at: datetime, topic: str, payload: bytes, reason: str, *, edge_id: str | None = None,
           machine_id: str | None = None) -> DeadLetterRow:
        return cls(received_at, topic, payload[:STORED_PAYLOAD_BYTES], reason, len(payload),
                   hashlib.sha256(payload).digest(), edge_id, machine_id)


class EdgeStatusEvent(NamedTuple):
    """`edge_status_events`: every status an edge published (the communication record)."""

    edge_id: str
    online: bool
    epoch: int | None
    machines: list[str]
    received_at: datetime


class EdgeStatusRow(NamedTuple):
    """`edge_status`: an edge's latest status."""

    edge_id: str
    online: bool
    epoch: int | None
    machines: list[str]
    changed_at: datetime


class MachineConnectionRow(NamedTuple):
    """`machine_connections`: a machine's connection as an edge last reported it (`EdgeStatus.connections`),
    `unusable` its counts of readings that could not be used per reason, as JSON."""

    machine_id: str
    status: str
    detail: str
    since: datetime | None
    unusable: str
    edge_id: str
    epoch: int | None
    reported_at: datetime | None
    received_at: datetime


class CounterStateRow(NamedTuple):
    """`counter_state`: the last raw value the core accepted per machine and counter."""

    machine_id: str
    counter: str
    value: int
    ts: datetime


class EdgeCursorRow(NamedTuple):
    """`edge_cursors`: the highest (epoch, seq) ingested per edge."""

    edge_id: str
    epoch: int
    seq: int


class MachineLiveRow(NamedTuple):
    """`machine_live`: the codes and order id a machine reports now, and when it was last heard."""

    machine_id: str
    state_code: int | None
    state_ts: datetime | None
    fault_code: int | None
    fault_ts: datetime | None
    last_seen: datetime | None
    plc_order: str | None
    plc_order_ts: datetime | None


class DispatchRow(NamedTuple):
    """`dispatches`: a PLC's own dispatch window, opened (and maybe closed again) inside the batch."""

    machine_id: str
    work_order_id: str | None
    source: str
    start_ts: datetime
    end_ts: datetime | None
    reported_order: str | None
    rejected_reason: str | None


class DispatchEnd(NamedTuple):
    """A window open before the batch that the batch closes: the PLC's on `machine_id` (source 'plc'), or
    the API's windows of `work_order_id` when auto-complete ends the order (source 'api')."""

    machine_id: str | None
    work_order_id: str | None
    source: str
    end_ts: datetime


class WorkOrderEventRow(NamedTuple):
    """`work_order_events`: a status change of a work order, who made it and when (the source time)."""

    work_order_id: str
    ts: datetime
    action: str
    from_status: str
    to_status: str
    machine_id: str | None
    actor: str
