"""The live board's arithmetic (what each figure means: `dashboards.services.board`). Pure: no I/O, no
clock; `now` is passed in.

- period: the current shift, else the day so far in the calendar's timezone;
- live spans: the parts of the period the hourly rollup does not hold yet, derived live;
- rate: good units per hour over the last 15 min, or since the first production when that is shorter;
- figures: a machine's counts, rate and OEE totals; a line's and the plant's are their machines' sums,
  measured again (ratios are not added).
Rates are Decimal quotients to 28 significant digits, never floats; counts are integers.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from decimal import Context, Decimal
from typing import NamedTuple

from mes.rules.oee import Oee, OeeTotals, combine, measure
from mes.rules.shifts import ShiftCalendar, Window, shift_at

RATE_WINDOW = timedelta(minutes=15)
ROLLED_UP_HOUR = timedelta(hours=1)  # the span of one `oee_hourly` row
_HOUR_SECONDS = Decimal(3600)
_DIVISION = Context(prec=28)


class Period(NamedTuple):
    kind: str  # "shift" or "day"
    name: str | None  # the shift's name
    start: datetime  # UTC


@dataclass(frozen=True, slots=True)
class Figures:
    """Output and OEE of a machine, a line or the plant over the period."""

    good: int
    scrap: int
    rate_per_hour: Decimal | None  # None: nothing to measure a rate over
    totals: OeeTotals
    measures: Oee

    @classmethod
    def of(cls, good: int, scrap: int, rate_per_hour: Decimal | None, totals: OeeTotals) -> Figures:
        return cls(good, scrap, rate_per_hour, totals, measure(totals))

    @classmethod
    def summed(cls, parts: Iterable[Figures]) -> Figures:
        parts = list(parts)
        rates = [part.rate_per_hour for part in parts if part.rate_per_hour is not None]
        return cls.of(sum(part.good for part in parts), sum(part.scrap for part in parts),
                      sum(rates, Decimal(0)) if rates else None, combine(part.totals for part in parts))


def board_period(calendar: ShiftCalendar, now: datetime) -> Period:
    """The current shift; else (no shift defined, or between shifts) the day so far in the calendar's timezone."""
    shift = shift_at(calendar, now) if calendar.shifts else None
    if shift is not None:
        return Period("shift", shift.name, shift.start)
    midnight = datetime.combine(now.astimezone(calendar.timezone).date(), time(0), calendar.timezone)
    return Period("day", None, midnight.astimezone(UTC))


def live_spans(start: datetime, now: datetime, rolled_up: Iterable[datetime]) -> list[Window]:
    """The parts of [start, now) outside the rolled-up hours, in order; each hour [hour, hour + 1 h) lies inside [start, now)."""
    spans, cursor = [], start
    for hour in sorted(rolled_up):
        if cursor < hour:
            spans.append(Window(cursor, hour))
        cursor = max(cursor, hour + ROLLED_UP_HOUR)
    if cursor < now:
        spans.append(Window(cursor, now))
    return spans


def rate_per_hour(good: int, since: datetime | None, now: datetime) -> Decimal | None:
    """Good units per hour over [since, now); None without such a span."""
    if since is None or since >= now:
        return None
    microseconds = (now - since) // timedelta(microseconds=1)
    return _DIVISION.divide(Decimal(good) * _HOUR_SECONDS * 1_000_000, Decimal(microseconds))


def recent_rate(recent_good: int, first_production: datetime | None, now: datetime) -> Decimal | None:
    """The rate of the `recent_good` units made in the RATE_WINDOW before `now`, measured over the time
    since the machine's first production when that is shorter (a machine that just started is not
    under-rated); None before any production."""
    return rate_per_hour(recent_good, max(now - RATE_WINDOW, first_production or now), now)
