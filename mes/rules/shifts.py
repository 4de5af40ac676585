"""Shift calendar → concrete shifts and planned production time. Pure: no I/O, no clock.

A calendar has a timezone, shift patterns and planned non-production periods. A pattern is a name,
the weekdays it starts on (0 = Monday … 6 = Sunday, in the calendar's timezone), a start and an end
wall-clock time, and breaks inside it. An end at or before the start means the shift ends the next
day (22:00–06:00); an end equal to the start makes a 24-hour shift. Break times are wall-clock times
inside the shift, after midnight for a night shift's breaks taken after midnight.

Planned production time of a period = the time of its shifts, minus their breaks, minus the planned
non-production periods (holidays, planned maintenance: aware datetimes, half-open), inside the
period. Every instant is counted once: shifts of one calendar may not overlap (refused), breaks of
one shift may not overlap (refused), non-production periods may overlap each other.

Ambiguity, stated: wall-clock times become instants the way Python does with fold=0 (PEP 495). A
time that happens twice when clocks go back means its first occurrence; a time that does not exist
when clocks go forward is read with the offset before the change (02:30 in a skipped 02:00–03:00
hour is 03:30 on the new clock). A shift therefore lasts its real elapsed time: a 22:00–06:00 night
shift is 7 h on the night clocks go forward and 9 h on the night they go back. A shift or break
wholly inside a skipped hour is empty.

Ambiguity, stated: a non-production period does not remove shifts from `shift_instances` or
`shift_at` (a holiday still has its "early" shift, with no planned production time); breaks
belong to their shift, so `shift_at` during a break answers that shift.

Everything returned is in UTC. Durations are timedelta, exact to the microsecond.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from typing import NamedTuple

from kernel.rules.instants import require_aware

_DAY = timedelta(days=1)
_MICROSECOND = timedelta(microseconds=1)


class Window(NamedTuple):
    """The half-open time span [start, end)."""

    start: datetime
    end: datetime

    @property
    def duration(self) -> timedelta:
        return self.end - self.start


def _require_wall_time(value: time, what: str) -> None:
    if not isinstance(value, time):
        raise TypeError(f"{what} must be a time of day, not {type(value).__name__}")
    if value.tzinfo is not None:
        raise ValueError(f"{what} is a wall-clock time in the calendar's timezone and must not carry its own")


def _after(start: time, later: time) -> timedelta:
    """How long after `start` the wall clock next shows `later` (0 when equal), ignoring clock changes."""
    return (datetime.combine(date.min, later) - datetime.combine(date.min, start)) % _DAY


@dataclass(frozen=True, slots=True)
class Break:
    start: time
    end: time


@dataclass(frozen=True, slots=True)
class ShiftPattern:
    name: str
    weekdays: frozenset[int]  # the days the shift starts on: 0 = Monday … 6 = Sunday
    start: time
    end: time
    breaks: tuple[Break, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "weekdays", frozenset(self.weekdays))
        object.__setattr__(self, "breaks", tuple(self.breaks))
        if not self.name:
            raise ValueError("a shift needs a name")
        if not self.weekdays or not set(self.weekdays) <= set(range(7)):
            raise ValueError(f"shift {self.name!r} needs weekdays among 0 (Monday) to 6 (Sunday), not {sorted(self.weekdays)}")
        _require_wall_time(self.start, f"start of shift {self.name!r}")
        _require_wall_time(self.end, f"end of shift {self.name!r}")
        previous_end = timedelta(0)
        for offset, length in sorted(self.break_offsets()):
            if offset < previous_end:
                raise ValueError(f"breaks of shift {self.name!r} overlap")
            if offset + length > self.length:
                raise ValueError(f"every break of shift {self.name!r} must lie inside {self.start}–{self.end}")
            previous_end = offset + length

    @property
    def length(self) -> timedelta:
        """Wall-clock length: 24 h when the end equals the start."""
        return _after(self.start, self.end) or _DAY

    def break_offsets(self) -> list[tuple[timedelta, timedelta]]:
        """(wall-clock time after the shift's start, length) of each break."""
        offsets = []
        for pause in self.breaks:
            _require_wall_time(pause.start, f"start of a break of shift {self.name!r}")
            _require_wall_time(pause.end, f"end of a break of shift {self.name!r}")
            if pause.start == pause.end:
                raise ValueError(f"a break of shift {self.name!r} starts and ends at {pause.start}")
            offsets.append((_after(self.start, pause.start), _after(pause.start, pause.end)))
        return offsets


@dataclass(frozen=True, slots=True)
class NonProduction:
    """Planned non-production: a holiday, planned maintenance. Half-open [start, end)."""

    start: datetime
    end: datetime
    reason: str = ""

    def __post_init__(self) -> None:
        require_aware(self.start, "start of a non-production period")
        require_aware(self.end, "end of a non-production period")
        if self.end < self.start:
            raise ValueError(f"non-production period {self.reason!r} ends before it starts")


@dataclass(frozen=True, slots=True)
class ShiftCalendar:
    timezone: tzinfo  # e.g. ZoneInfo("Europe/Berlin"), built by the caller
    shifts: tuple[ShiftPattern, ...]
    non_production: tuple[NonProduction, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "shifts", tuple(self.shifts))
        object.__setattr__(self, "non_production", tuple(self.non_production))
        if not isinstance(self.timezone, tzinfo):
            raise TypeError(f"the calendar's timezone must be a tzinfo such as ZoneInfo, not {type(self.timezone).__name__}")


@dataclass(frozen=True, slots=True)
class ShiftInstance:
    name: str
    day: date  # the local date the shift starts on
    start: datetime  # UTC
    end: datetime  # UTC
    breaks: tuple[Window, ...]  # UTC, in order


def _instant(calendar: ShiftCalendar, wall: datetime) -> datetime:
    return wall.replace(tzinfo=calendar.timezone).astimezone(UTC)


def _instance(calendar: ShiftCalendar, pattern: ShiftPattern, day: date) -> ShiftInstance:
    # Clamped into the shift: next to an hour the clocks skip, a later wall time can be an earlier instant.
    wall_start = datetime.combine(day, pattern.start)
    start = _instant(calendar, wall_start)
    end = max(start, _instant(calendar, wall_start + pattern.length))
    breaks = []
    for offset, length in sorted(pattern.break_offsets()):
        break_start = min(max(start, _instant(calendar, wall_start + offset)), end)
        breaks.append(Window(break_start, min(max(break_start, _instant(calendar, wall_start + offset + length)), end)))
    return ShiftInstance(pattern.name, day, start, end, tuple(breaks))


def _require_period(start: datetime, end: datetime) -> None:
    require_aware(start, "start")
    require_aware(end, "end")
    if end < start:
        raise ValueError(f"the period ends ({end.isoformat()}) before it starts ({start.isoformat()})")


def shift_instances(calendar: ShiftCalendar, start: datetime, end: datetime) -> list[ShiftInstance]:
    """The whole (not clipped) shifts that share an instant with [start, end), in order.

    Raises ValueError naming two shifts of the calendar that overlap.
    """
    _require_period(start, end)
    if start == end:
        return []
    # A shift lasts at most a day, so the one containing `start` began at most a day before it.
    day = start.astimezone(calendar.timezone).date() - _DAY
    last_day = end.astimezone(calendar.timezone).date()
    found = []
    while day <= last_day:
        for pattern in calendar.shifts:
            if day.weekday() in pattern.weekdays:
                shift = _instance(calendar, pattern, day)
                if shift.start < shift.end and shift.start < end and start < shift.end:
                    found.append(shift)
        day += _DAY
    found.sort(key=lambda shift: (shift.start, shift.end))
    for earlier, later in zip(found, found[1:], strict=False):
        if later.start < earlier.end:
            raise ValueError(f"shifts {earlier.name!r} of {earlier.day} and {later.name!r} of {later.day} overlap")
    return found


def shift_at(calendar: ShiftCalendar, ts: datetime) -> ShiftInstance | None:
    """The shift `ts` falls in (breaks included), or None between shifts."""
    require_aware(ts, "time")
    found = shift_instances(calendar, ts, ts + _MICROSECOND)
    return found[0] if found else None


def union(windows: Iterable[tuple[datetime, datetime]]) -> list[Window]:
    """The instants inside any of `windows`, as disjoint windows in order: windows that overlap or touch
    become one, empty ones are dropped."""
    merged: list[Window] = []
    for start, end in sorted(windows):
        if merged and start <= merged[-1].end:
            merged[-1] = Window(merged[-1].start, max(merged[-1].end, end))
        elif start < end:
            merged.append(Window(start, end))
    return merged


def intersect(first: list[Window], second: list[Window]) -> list[Window]:
    """The instants in both lists of disjoint, ordered windows."""
    found, i, j = [], 0, 0
    while i < len(first) and j < len(second):
        begin, finish = max(first[i].start, second[j].start), min(first[i].end, second[j].end)
        if begin < finish:
            found.append(Window(begin, finish))
        if first[i].end <= second[j].end:
            i += 1
        else:
            j += 1
    return found


def _subtract(window: Window, holes: Iterable[Window]) -> list[Window]:
    pieces = [window]
    for hole in holes:
        pieces = [
            piece
            for whole in pieces
            for piece in (Window(whole.start, min(whole.end, hole.start)), Window(max(whole.start, hole.end), whole.end))
            if piece.start < piece.end
        ]
    return pieces


def planned_production_windows(calendar: ShiftCalendar, start: datetime, end: datetime) -> list[Window]:
    """The planned production time inside [start, end) as disjoint windows in order, one or more per shift."""
    holes = [Window(period.start, period.end) for period in calendar.non_production]
    windows = []
    for shift in shift_instances(calendar, start, end):
        inside = Window(max(shift.start, start), min(shift.end, end))
        windows.extend(_subtract(inside, [*shift.breaks, *holes]))
    return windows


def planned_production_time(calendar: ShiftCalendar, start: datetime, end: datetime) -> timedelta:
    return sum((window.duration for window in planned_production_windows(calendar, start, end)), timedelta(0))


_ALL_DAY = ShiftPattern("all day", frozenset(range(7)), time(0), time(0))


def planned_windows(calendar: ShiftCalendar, start: datetime, end: datetime) -> list[tuple[ShiftInstance | None, list[Window]]]:
    """Planned production windows inside [start, end), per shift; one group (None) when no shift is defined."""
    if end <= start:
        return []
    if not calendar.shifts:
        whole_days = ShiftCalendar(calendar.timezone, (_ALL_DAY,), calendar.non_production)
        return [(None, planned_production_windows(whole_days, start, end))]
    return [(shift, planned_production_windows(calendar, max(shift.start, start), min(shift.end, end)))
            for shift in shift_instances(calendar, start, end)]
