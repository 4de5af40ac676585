"""OEE, MTBF, MTTR and energy per good unit by ISO 22400-2. Pure: no I/O, no clock.

`tally` sums one machine's state intervals inside planned production windows (from the shift
calendar, and for a work order its dispatch windows cut by the calendar) with its output, into
`OeeTotals`; totals add up (`combine`) to a line, a day, a work order over machines; `measure`
turns any totals into the ratios. The OEE of a group is therefore computed from its summed times
and counts, never by averaging the ratios of its parts.

Definitions (times counted only inside the planned production windows):
  PPT  planned production time  Σ window lengths
  planned downtime              planned_stop time
  unknown time                  offline or unknown state, or no state known at all: counted neither
                                as running nor as stopped, so it is left out of PBT and reported
  PBT  planned busy time        PPT − planned downtime − unknown time = APT + unplanned downtime
  APT  actual production time   running time (the run time)
  unplanned downtime            stopped time: faults (breakdowns and microstops), idle, blocked,
                                starved, setup
  ideal time                    Σ ideal cycle time × units made, per item (a list of pairs)
  availability = APT / PBT      performance = ideal time / APT      quality = good / total
  OEE = availability × performance × quality
  MTBF = APT / failures         MTTR = breakdown time / failures
  energy per good unit = energy (Wh) / good units

A failure is a breakdown (a fault interval at least as long as the microstop threshold, see
mes.rules.states) that began inside the windows: a breakdown cut by a window is counted once, in
the window where it began. Ambiguity, stated: a breakdown that began outside planned production
(in a break, before the shift) adds its planned-time part to breakdown time and to stopped time
but counts as no failure. Microstops are stopped time too (availability), counted the same way.

Ratios are exact fractions divided once into a Decimal with 28 significant digits, ROUND_HALF_EVEN,
whatever the caller's context: OEE is A × P × Q computed exactly and rounded once, not the product
of the rounded ratios. A ratio is None when its denominator is zero. OEE is 0 when availability or
performance is 0 (nothing ran, or nothing was made) and None only without planned busy time.
Performance may exceed 1 when the ideal cycle time is slower than the machine, or when the counts
include units made outside the windows. MTBF and MTTR are timedelta divided by the failure count,
rounded half-even to the microsecond (Python's timedelta / int). Times and sums stay exact.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from decimal import ROUND_HALF_EVEN, Context, Decimal
from fractions import Fraction
from functools import reduce
from operator import add
from typing import NamedTuple, cast

from kernel.rules.instants import require_aware
from mes.rules.states import Category, StateInterval, StopKind, clip
from kernel.rules.quantities import EXACT, exact_quantity, whole_number
from mes.rules.shifts import Window

_DIVISION = Context(prec=28, rounding=ROUND_HALF_EVEN)
_ZERO = timedelta(0)
_MICROSECOND = timedelta(microseconds=1)


@dataclass(frozen=True, slots=True)
class OeeTotals:
    """Additive sums behind the OEE of a machine, shift, work order or line."""

    planned_production_time: timedelta = _ZERO
    planned_downtime: timedelta = _ZERO
    unknown_time: timedelta = _ZERO
    run_time: timedelta = _ZERO  # APT
    stopped_time: timedelta = _ZERO  # unplanned downtime, breakdowns and microstops included
    breakdown_time: timedelta = _ZERO
    microstop_time: timedelta = _ZERO
    failures: int = 0
    microstops: int = 0
    ideal_seconds: Decimal = field(default_factory=Decimal)
    total: int = 0
    good: int = 0
    energy_wh: Decimal = field(default_factory=Decimal)

    @property
    def planned_busy_time(self) -> timedelta:
        return self.run_time + self.stopped_time

    def __add__(self, other: OeeTotals) -> OeeTotals:
        if not isinstance(other, OeeTotals):
            return NotImplemented
        return OeeTotals(
            self.planned_production_time + other.planned_production_time,
            self.planned_downtime + other.planned_downtime,
            self.unknown_time + other.unknown_time,
            self.run_time + other.run_time,
            self.stopped_time + other.stopped_time,
            self.breakdown_time + other.breakdown_time,
            self.microstop_time + other.microstop_time,
            self.failures + other.failures,
            self.microstops + other.microstops,
            EXACT.add(self.ideal_seconds, other.ideal_seconds),
            self.total + other.total,
            self.good + other.good,
            EXACT.add(self.energy_wh, other.energy_wh),
        )


@dataclass(frozen=True, slots=True)
class Oee:
    availability: Decimal | None
    performance: Decimal | None
    quality: Decimal | None
    oee: Decimal | None
    mtbf: timedelta | None
    mttr: timedelta | None
    energy_per_good_unit: Decimal | None  # Wh



def _windows(planned: Iterable[Window]) -> list[Window]:
    windows = sorted(Window(*window) for window in planned)
    for window in windows:
        require_aware(window.start, "start of a planned production window")
        require_aware(window.end, "end of a planned production window")
        if window.end < window.start:
            raise ValueError(f"planned production window ends before it starts: {window.start.isoformat()}")
    for earlier, later in zip(windows, windows[1:], strict=False):
        if later.start < earlier.end:
            raise ValueError(f"planned production windows overlap at {later.start.isoformat()}: each instant counts once")
    return windows


def _one_machine(intervals: Iterable[StateInterval]) -> list[StateInterval]:
    intervals = sorted(intervals, key=lambda interval: interval.start)
    if len({interval.machine_id for interval in intervals}) > 1:
        raise ValueError("tally one machine at a time, then combine the machines' totals")
    for earlier, later in zip(intervals, intervals[1:], strict=False):
        if later.start < earlier.end:
            raise ValueError(f"state intervals of {later.machine_id} overlap at {later.start.isoformat()}")
    return intervals


def tally(intervals: Iterable[StateInterval], planned: Iterable[Window], output: Iterable[tuple[Decimal | int, int]],
          good: int, energy_wh: Decimal | int) -> OeeTotals:
    """One machine's totals over the planned windows.

    `output` is (ideal cycle time in seconds per unit, units made) per item or work order; the
    total count is the sum of the units. Time in the windows that no interval covers is unknown:
    clip the windows to `now` for a shift still going on.
    """
    intervals = _one_machine(intervals)
    windows = _windows(planned)
    time_in = dict.fromkeys(Category, _ZERO)
    stop_time = dict.fromkeys(StopKind, _ZERO)
    stops_begun = dict.fromkeys(StopKind, 0)
    for window in windows:
        for piece in clip(intervals, window.start, window.end):
            time_in[piece.category] += piece.duration
            if piece.stop is not None:
                stop_time[piece.stop] += piece.duration
                if piece.start == piece.began:  # counted once, where it began
                    stops_begun[piece.stop] += 1

    ideal_seconds, total = Decimal(0), 0
    for ideal_cycle_s, made in output:
        cycle = exact_quantity(ideal_cycle_s, "ideal cycle time")
        if cycle <= 0:
            raise ValueError(f"the ideal cycle time must be positive, not {ideal_cycle_s} s")
        ideal_seconds = EXACT.add(ideal_seconds, EXACT.multiply(cycle, whole_number(made, "units made")))
        total += made
    if whole_number(good, "good units") > total:
        raise ValueError(f"{good} good units is more than the {total} units made")
    energy = exact_quantity(energy_wh, "energy")
    if energy < 0:
        raise ValueError(f"energy cannot be negative, got {energy_wh} Wh")

    planned_production_time = sum((window.duration for window in windows), _ZERO)
    return OeeTotals(
        planned_production_time=planned_production_time,
        planned_downtime=time_in[Category.PLANNED],
        unknown_time=planned_production_time - time_in[Category.RUNNING] - time_in[Category.STOPPED]
        - time_in[Category.PLANNED],
        run_time=time_in[Category.RUNNING],
        stopped_time=time_in[Category.STOPPED],
        breakdown_time=stop_time[StopKind.BREAKDOWN],
        microstop_time=stop_time[StopKind.MICROSTOP],
        failures=stops_begun[StopKind.BREAKDOWN],
        microstops=stops_begun[StopKind.MICROSTOP],
        ideal_seconds=ideal_seconds,
        total=total,
        good=good,
        energy_wh=energy,
    )


def combine(parts: Iterable[OeeTotals]) -> OeeTotals:
    """The totals of a group (machines of a line, shifts of a day): plain sums."""
    return reduce(add, parts, OeeTotals())


def _seconds(duration: timedelta) -> Fraction:
    return Fraction(duration // _MICROSECOND, 1_000_000)


def _decimal(ratio: Fraction | None) -> Decimal | None:
    return None if ratio is None else _DIVISION.divide(Decimal(ratio.numerator), Decimal(ratio.denominator))


def _ratio(numerator: Fraction | int, denominator: Fraction | int) -> Fraction | None:
    return Fraction(numerator) / denominator if denominator else None


def measure(totals: OeeTotals) -> Oee:
    """Availability, performance, quality, OEE, MTBF, MTTR and energy per good unit of the totals."""
    availability = _ratio(_seconds(totals.run_time), _seconds(totals.planned_busy_time))
    performance = _ratio(Fraction(totals.ideal_seconds), _seconds(totals.run_time))
    quality = _ratio(totals.good, totals.total)
    if availability is None:
        oee = None
    elif availability == 0 or performance == 0:
        oee = Fraction(0)
    else:  # run time is positive here, so performance is known
        oee = None if quality is None else availability * cast(Fraction, performance) * quality
    energy_per_good_unit = _ratio(Fraction(totals.energy_wh), totals.good)
    return Oee(
        availability=_decimal(availability),
        performance=_decimal(performance),
        quality=_decimal(quality),
        oee=_decimal(oee),
        mtbf=totals.run_time / totals.failures if totals.failures else None,
        mttr=totals.breakdown_time / totals.failures if totals.failures else None,
        energy_per_good_unit=_decimal(energy_per_good_unit),
    )


class Made(NamedTuple):
    """Units a machine made for one work order (None: unassigned) in one span, and their ideal cycle."""

    work_order_id: str | None
    good: int
    scrap: int
    energy_wh: int
    ideal_cycle_s: Decimal


def tally_machine(intervals: list[StateInterval], windows: list[Window], made: list[Made]) -> OeeTotals:
    """One machine's totals over the windows, with what it made there."""
    return tally(intervals, windows, [(m.ideal_cycle_s, m.good + m.scrap) for m in made],
                 sum(m.good for m in made), sum((Decimal(m.energy_wh) for m in made), Decimal(0)))
