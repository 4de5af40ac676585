"""Machine state changes and communication events → contiguous state intervals. Pure: no I/O, no clock.

The core stores a row each time a machine reports a different state or fault code, and hears the
machine through its messages (data and heartbeats) and through its edge's retained status, whose
`online: false` is also the broker's Last Will. From these this rule derives, per machine, intervals
that are contiguous, never overlap, and cover [first event, `until`) exactly, each with a category:

  running   state 1
  stopped   idle 2, fault 3, blocked 4, starved 5, setup 6: the machine could have run and did not
  planned   planned_stop 7
  offline   the core does not know the state: communication lost ("offline"), or the machine
            reported no state or a code outside `MachineState` ("unknown"). Counted neither as
            running nor as stopped.

Communication loss. A change observation and a contact with `online=True` are evidence that the
machine was heard at their `ts`; a contact with `online=False` (Last Will or clean stop) says it
was lost.
  * Last Will: offline from its `ts` until the first evidence strictly after it. Evidence at the
    very instant of the Last Will does not end it.
  * Silence: when no evidence follows the last one for more than `offline_after`, the machine is
    offline from that last evidence + `offline_after` until the next evidence (or `until`).
    Ambiguity, stated: offline begins after the timeout, not at the last message: the edge reports
    by exception, so until the timeout the silence means "no change" and the last state stands.
  * Offline overrides the reported state. After coming back the machine is in the last state it
    reported (even one reported inside the offline time, e.g. from the edge's disk queue) until it
    reports another.

Ambiguity, stated: the state and the fault code of one sample pass through the core as two rows at
the same `ts` (one per signal: the first carries one new code and one old). At an instant with
several rows, each code is the one that differs from the code before that instant; if that still
leaves two candidates the code is unknown (None) until the next report. Input order never matters.

Adjacent pieces with the same state and fault code are one interval: a heartbeat restating the
state does not split it, but a new fault code during a fault starts a new stop (a different
failure), and a stop interrupted by communication loss counts as two stops: the core cannot tell
whether the machine was repaired in between.

Stops are classified on the whole interval, before any clipping (`stop` keeps the result through
`clip`): a stop shorter than the microstop threshold (default 2 min; exactly 2 min is not micro) is
a microstop, whatever stopped it, except setup, which is always setup (a changeover, even a short
one, is not a small stop). A longer fault is a breakdown; a longer idle, blocked or starved stop
keeps its state's name. The last interval ends at `until`: a stop still going on then is classified
by its length so far.

Durations are timedelta, exact to the microsecond; nothing is rounded here. Run time in seconds
(`running_seconds`, what costing prices) is a Decimal, exact to the microsecond too.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from itertools import groupby, pairwise
from typing import NamedTuple

from kernel.rules.instants import require_aware
from kernel.signals import MachineState
from mes.rules.shifts import Window, union

MICROSTOP_THRESHOLD = timedelta(minutes=2)
_MICROSECOND = timedelta(microseconds=1)

OFFLINE = "offline"  # communication lost
UNKNOWN = "unknown"  # no state reported yet, or a code outside MachineState


class Category(str, Enum):
    RUNNING = "running"
    STOPPED = "stopped"
    PLANNED = "planned"
    OFFLINE = "offline"


class StopKind(str, Enum):
    MICROSTOP = "microstop"
    BREAKDOWN = "breakdown"  # a fault at least as long as the microstop threshold
    SETUP = "setup"
    IDLE = "idle"
    BLOCKED = "blocked"
    STARVED = "starved"


_CATEGORY = {
    "running": Category.RUNNING,
    "idle": Category.STOPPED,
    "fault": Category.STOPPED,
    "blocked": Category.STOPPED,
    "starved": Category.STOPPED,
    "setup": Category.STOPPED,
    "planned_stop": Category.PLANNED,
    OFFLINE: Category.OFFLINE,
    UNKNOWN: Category.OFFLINE,
}
_LONG_STOP = {"fault": StopKind.BREAKDOWN, "idle": StopKind.IDLE, "blocked": StopKind.BLOCKED, "starved": StopKind.STARVED}


class StateChange(NamedTuple):
    """A machine_states row: the state and fault codes the machine reported from `ts` on."""

    ts: datetime
    state_code: int | None
    fault_code: int | None


class Contact(NamedTuple):
    """The machine was heard at `ts` (online=True: a message, a heartbeat, an online status) or lost (Last Will)."""

    ts: datetime
    online: bool


@dataclass(frozen=True, slots=True)
class StateInterval:
    machine_id: str
    start: datetime
    end: datetime
    state: str  # a MachineState name, "offline" or "unknown"
    fault_code: int | None
    category: Category
    stop: StopKind | None  # classified on the whole interval; None unless the category is stopped
    began: datetime  # start of the whole interval: earlier than `start` when clip cut it

    def __post_init__(self) -> None:
        for name in ("start", "end", "began"):
            require_aware(getattr(self, name), name)
        if not self.began <= self.start <= self.end:
            raise ValueError(f"state interval of {self.machine_id} must satisfy began <= start <= end")

    @property
    def duration(self) -> timedelta:
        return self.end - self.start



def state_name(state_code: int | None) -> str:
    return MachineState.NAMES.get(state_code, UNKNOWN) if state_code is not None else UNKNOWN


def classify_stop(interval: StateInterval, microstop_threshold: timedelta = MICROSTOP_THRESHOLD) -> StopKind | None:
    """What kind of stop a whole interval is; None when it is not a stop. Classify before clipping."""
    if interval.category is not Category.STOPPED:
        return None
    if interval.state == "setup":
        return StopKind.SETUP
    if interval.duration < microstop_threshold:
        return StopKind.MICROSTOP
    return _LONG_STOP[interval.state]


def derive_intervals(machine_id: str, changes: Iterable[StateChange], contacts: Iterable[Contact], until: datetime,
                     offline_after: timedelta, microstop_threshold: timedelta = MICROSTOP_THRESHOLD) -> list[StateInterval]:
    """The machine's state intervals from its first change or contact up to `until`, in order.

    Events at or after `until` are ignored. Pass the last change before the period of interest too:
    before the first change the state is unknown.
    """
    require_aware(until, "until")
    if offline_after <= timedelta(0):
        raise ValueError(f"the offline timeout must be positive, not {offline_after}")
    changes = [c for c in changes if require_aware(c.ts, "state change time") < until]
    contacts = [c for c in contacts if require_aware(c.ts, "contact time") < until]
    reported = _reported_codes(changes)
    heard = sorted({c.ts for c in changes} | {c.ts for c in contacts if c.online})
    lost = sorted(c.ts for c in contacts if not c.online)
    if not heard and not lost:
        return []
    offline = _offline_periods(heard, lost, until, offline_after)
    first = min(heard[:1] + lost[:1])
    boundaries = sorted({first, until} | {ts for ts, _ in reported} | {ts for period in offline for ts in period})
    reported_at = [ts for ts, _ in reported]
    offline_from = [start for start, _ in offline]

    pieces: list[tuple[datetime, datetime, tuple[str, int | None]]] = []
    for start, end in pairwise(boundaries):
        lost_period = bisect_right(offline_from, start) - 1
        report = bisect_right(reported_at, start) - 1
        codes: tuple[str, int | None]
        if lost_period >= 0 and start < offline[lost_period][1]:
            codes = (OFFLINE, None)
        elif report < 0:
            codes = (UNKNOWN, None)
        else:
            state_code, fault_code = reported[report][1]
            codes = (state_name(state_code), fault_code)
        if pieces and pieces[-1][2] == codes:
            pieces[-1] = (pieces[-1][0], end, codes)
        else:
            pieces.append((start, end, codes))
    return [_interval(machine_id, start, end, state, fault, microstop_threshold) for start, end, (state, fault) in pieces]


def _interval(machine_id: str, start: datetime, end: datetime, state: str, fault_code: int | None,
              microstop_threshold: timedelta) -> StateInterval:
    interval = StateInterval(machine_id, start, end, state, fault_code, _CATEGORY[state], None, start)
    return replace(interval, stop=classify_stop(interval, microstop_threshold))


def _reported_codes(changes: list[StateChange]) -> list[tuple[datetime, tuple[int | None, int | None]]]:
    """One (state, fault) pair per instant, resolving the rows a single sample leaves at one instant."""
    reported: list[tuple[datetime, tuple[int | None, int | None]]] = []
    before: tuple[int | None, int | None] = (None, None)
    for ts, group in groupby(sorted(changes, key=lambda c: c.ts), key=lambda c: c.ts):
        rows = list(group)
        before = (_resolve({row.state_code for row in rows}, before[0]), _resolve({row.fault_code for row in rows}, before[1]))
        reported.append((ts, before))
    return reported


def _resolve(candidates: set[int | None], before: int | None) -> int | None:
    if len(candidates) > 1:
        candidates = candidates - {before}
    return next(iter(candidates)) if len(candidates) == 1 else None


def _offline_periods(heard: list[datetime], lost: list[datetime], until: datetime,
                     offline_after: timedelta) -> list[Window]:
    """Merged, sorted [start, end) periods without communication."""
    periods = []
    for last, following in pairwise([*heard, until]):
        if following - last > offline_after:
            periods.append((last + offline_after, following))
    for lost_at in lost:
        back = bisect_right(heard, lost_at)
        periods.append((lost_at, heard[back] if back < len(heard) else until))
    return union(periods)


def clip(intervals: Iterable[StateInterval], start: datetime, end: datetime) -> list[StateInterval]:
    """The parts of `intervals` inside [start, end), empty parts dropped; `began` and `stop` are kept."""
    require_aware(start, "start")
    require_aware(end, "end")
    return [
        replace(interval, start=max(interval.start, start), end=min(interval.end, end))
        for interval in intervals
        if interval.start < end and start < interval.end
    ]


def running_seconds(intervals: Iterable[StateInterval], windows: Iterable[tuple[datetime, datetime]]) -> Decimal:
    """Seconds the machine's `intervals` were running inside `windows`, exact to the microsecond. An
    instant inside several windows (an order dispatched by the API while its PLC reports it) counts once."""
    running = [interval for interval in intervals if interval.category is Category.RUNNING]
    ran = sum((part.duration for window in union(windows) for part in clip(running, window.start, window.end)), timedelta(0))
    return Decimal(ran // _MICROSECOND) / 1_000_000


def unplanned_stops(intervals: list[StateInterval], windows: Iterable[Window]) -> Iterator[tuple[StateInterval, bool]]:
    """The pieces of unplanned stops inside the windows, each with whether its stop began there
    (a stop is counted once, where it began; its time wherever it falls)."""
    for window in windows:
        for piece in clip(intervals, window.start, window.end):
            if piece.category is Category.STOPPED:
                yield piece, piece.start == piece.began
