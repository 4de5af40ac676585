"""Production → work order: which work order each counted unit belongs to.

A dispatch window says "this work order ran on this machine from `start` until `end`" (half-open:
the start instant belongs to the window, the end instant does not; an open window has no end yet).
A counter step belongs to the window of its own machine that contains the step's timestamp. The
PLC may report its own order id; where such a PLC window and a window dispatched through the API
cover the same instant, the PLC window wins. A step no window covers goes to the unassigned bucket
(`work_order=None`), which a supervisor re-assigns by adding a window and attributing again.

A PLC window whose reported order is not one production can count for (unknown here, not yet
released, or closed) still wins, with no work order: the PLC says the machine is making something
else than the API's order, so its units go to the unassigned bucket with the reported id beside
them, rather than to an order they do not belong to.

Ambiguity, stated: a step is attributed at the timestamp of the sample that counted it. Units made
between the previous sample and a switch at T, but first counted by a sample at or after T, go to
the new work order: the split is as fine as the edge's sampling. Feed counter steps, not whole
production intervals, when a switch may fall inside one message.

Two windows of the same source overlapping on one machine is bad data with no right answer: the
rule refuses it rather than pick one. A window whose end equals its start contains no instant and
overlaps nothing.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from itertools import combinations
from typing import Literal, NamedTuple

Source = Literal["plc", "api"]
SOURCES: tuple[Source, ...] = ("plc", "api")  # in order of precedence: the PLC knows what it is making


# Statuses in which a work order may receive counted units: released (its BOM snapshot is taken)
# up to completed (units made after completion are over-production, and still real).
COUNTABLE_STATUSES = ("released", "running", "paused", "completed")


def plc_order_verdict(reported: str, status: str | None) -> tuple[str | None, str | None]:
    """(work order the PLC window counts for, why it counts for none) for an order id a PLC
    reported; `status` is that work order's status, None when there is no such order here."""
    if status is None:
        return None, f"the PLC reports order {reported!r}, which is not a work order here"
    if status not in COUNTABLE_STATUSES:
        return None, f"the PLC reports order {reported!r}, which is {status}: it cannot receive production"
    return reported, None


@dataclass(frozen=True, slots=True)
class DispatchWindow:
    machine_id: str
    work_order: str | None  # None only for a PLC window whose reported order cannot count (see above)
    start: datetime
    end: datetime | None  # None: still running
    source: Source

    def __post_init__(self) -> None:
        if self.source not in SOURCES:
            raise ValueError(f"dispatch source must be one of {', '.join(SOURCES)}, not {self.source!r}")
        if self.work_order is None and self.source != "plc":
            raise ValueError(f"a dispatch window through the API needs a work order ({self.machine_id})")
        if self.end is not None and self.end < self.start:
            raise ValueError(f"dispatch window of {self.work_order} on {self.machine_id} ends before it starts")

    def contains(self, ts: datetime) -> bool:
        return self.start <= ts and (self.end is None or ts < self.end)

    def is_empty(self) -> bool:
        return self.end == self.start

    def __str__(self) -> str:
        return f"{self.source} {self.work_order} on {self.machine_id} [{self.start.isoformat()}, {_show(self.end)})"


# NamedTuples rather than dataclasses: one per counter step on the ingest path.
class CountStep(NamedTuple):
    """What one counter sample counted, or several counters' steps already summed at one timestamp."""

    machine_id: str
    ts: datetime
    good: int
    scrap: int
    energy_wh: int


class Attribution(NamedTuple):
    machine_id: str
    work_order: str | None  # None: the unassigned bucket
    good: int
    scrap: int
    energy_wh: int
    first_ts: datetime
    last_ts: datetime


class AttributionRow(NamedTuple):
    """A message's units given to one work order (None: unassigned), as `production_attributions` holds them."""

    edge_id: str
    epoch: int
    seq: int
    machine_id: str
    work_order_id: str | None
    good: int
    scrap: int
    energy_wh: int
    first_ts: datetime
    last_ts: datetime


def _show(end: datetime | None) -> str:
    return "open" if end is None else end.isoformat()


def _overlap(a: DispatchWindow, b: DispatchWindow) -> bool:
    return (b.end is None or a.start < b.end) and (a.end is None or b.start < a.end)


def overlaps(windows: Iterable[DispatchWindow]) -> list[tuple[DispatchWindow, DispatchWindow]]:
    """Pairs of windows of the same machine and source that share an instant: data attribution refuses."""
    # A machine has a handful of windows in any period attributed at once: comparing all pairs is enough.
    by_lane: dict[tuple[str, str], list[DispatchWindow]] = {}
    for window in windows:
        if not window.is_empty():
            by_lane.setdefault((window.machine_id, window.source), []).append(window)
    return [pair for lane in by_lane.values() for pair in combinations(lane, 2) if _overlap(*pair)]


def work_order_at(machine_windows: Iterable[DispatchWindow], ts: datetime) -> str | None:
    """The work order a machine was running at `ts`, given only that machine's windows: PLC first, then API."""
    found: dict[str, str | None] = {}
    for window in machine_windows:
        if window.contains(ts):
            found[window.source] = window.work_order
    return next((found[source] for source in SOURCES if source in found), None)


def attribute(steps: Iterable[CountStep], windows: Iterable[DispatchWindow]) -> list[Attribution]:
    """Sum the steps per machine and work order, in the order each pair first appears in `steps`.

    Raises ValueError naming the windows when two of the same machine and source overlap.
    """
    windows = list(windows)
    conflicts = overlaps(windows)
    if conflicts:
        raise ValueError("overlapping dispatch windows: " + "; ".join(f"{a} and {b}" for a, b in conflicts))
    by_machine: dict[str, list[DispatchWindow]] = {}
    for window in windows:
        by_machine.setdefault(window.machine_id, []).append(window)

    totals: dict[tuple[str, str | None], Attribution] = {}
    for step in steps:
        key = (step.machine_id, work_order_at(by_machine.get(step.machine_id, ()), step.ts))
        so_far = totals.get(key)
        if so_far is None:
            totals[key] = Attribution(*key, step.good, step.scrap, step.energy_wh, step.ts, step.ts)
        else:
            totals[key] = Attribution(
                *key, so_far.good + step.good, so_far.scrap + step.scrap, so_far.energy_wh + step.energy_wh,
                min(so_far.first_ts, step.ts), max(so_far.last_ts, step.ts),
            )
    return list(totals.values())
