"""Cumulative PLC counter → exact production delta. The one rule every count in the system passes.

A PLC counter only ever climbs, wraps to 0 past 2**width - 1 (rollover), or drops to a small value
when the PLC is reset. The edge reports the value it sees; this rule compares it with the last value
the core accepted and says how many units it means. It never guesses silently: anything it cannot
explain (a climb faster than the machine can produce) is quarantined with its quantity and a reason.

Order, not time, decides what counts: the rule gets each counter's values in the edge's read order
(the message sequence and each message's sample order) and compares each with the one before it. A
timestamp never makes a value count or not count (a PLC clock can step either way); it only tells how
much time passed, for jump detection, and the caller passes that time in (`elapsed`), measured
between seq-consecutive samples and bounded by the core's own clock.

Ambiguity, stated: a drop is read as a rollover when the wrapped distance is within what the machine
can produce in the elapsed time AND within half the counter range; otherwise as a reset. A reset
taken while the counter sat in its top half within one plausible step of the maximum therefore reads
as a rollover. A reset is visible only if the first value read after it is below the last value
read before it (the simulators hold a reset counter at zero long enough for that). A 16-bit counter
must be sampled at least once per half range (32,768 units).
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from decimal import Decimal
from enum import Enum
from typing import NamedTuple

from kernel.rules.instants import exact_seconds


# A step may always be this many units, however short the elapsed time: two samples stamped in the
# same millisecond can legitimately differ by a unit or two.
STEP_FLOOR = 10


class StepKind(str, Enum):
    BASELINE = "baseline"  # first value ever seen: the starting point, counts nothing
    NORMAL = "normal"
    DUPLICATE = "duplicate"  # same timestamp, same value
    ROLLOVER = "rollover"
    RESET = "reset"
    JUMP = "jump"  # more than the machine can produce: quarantined, baseline moves on
    OUT_OF_RANGE = "out_of_range"  # value does not fit the counter width: quarantined, baseline kept


NOTEWORTHY = frozenset({StepKind.ROLLOVER, StepKind.RESET, StepKind.JUMP, StepKind.OUT_OF_RANGE})


# NamedTuples rather than dataclasses: built once per sample on the ingest hot path.
class CounterPoint(NamedTuple):
    value: int
    ts: datetime


class Step(NamedTuple):
    kind: StepKind
    delta: int  # units counted as production
    quarantined: int  # units held for a person to accept or reject
    point: CounterPoint | None  # the counter's accepted point after this sample

    @property
    def reason(self) -> str:
        return _REASONS[self.kind]


_REASONS = {
    StepKind.BASELINE: "first value seen for this counter",
    StepKind.NORMAL: "",
    StepKind.DUPLICATE: "same value at the same timestamp",
    StepKind.ROLLOVER: "counter wrapped past its maximum",
    StepKind.RESET: "counter dropped: PLC reset, counting from zero",
    StepKind.JUMP: "climb larger than the machine can produce in the elapsed time",
    StepKind.OUT_OF_RANGE: "value does not fit the configured counter width",
}


def plausible_step(max_rate_per_s: Decimal, elapsed_s: Decimal) -> int:
    """Largest step the machine can credibly make in `elapsed_s` seconds."""
    return STEP_FLOOR + math.ceil(max_rate_per_s * max(elapsed_s, Decimal(0)))


def counter_step(last: CounterPoint | None, sample: CounterPoint, width: int, max_rate_per_s: Decimal,
                 elapsed: timedelta | None = None) -> Step:
    """The step from `last` (the value accepted before, in read order) to `sample`. `elapsed`: the time
    the machine had to make the climb; default the two timestamps' difference (never less than 0)."""
    modulus = 1 << width
    if sample.value >= modulus:
        return Step(StepKind.OUT_OF_RANGE, 0, sample.value, last)
    if last is None:
        return Step(StepKind.BASELINE, 0, 0, sample)
    climb = sample.value - last.value
    if climb == 0 and sample.ts == last.ts:
        return Step(StepKind.DUPLICATE, 0, 0, last)
    if 0 <= climb <= STEP_FLOOR:
        return Step(StepKind.NORMAL, climb, 0, sample)  # within what any elapsed time allows

    limit = plausible_step(max_rate_per_s, exact_seconds(sample.ts - last.ts if elapsed is None else elapsed))
    if climb >= 0:
        if climb > limit:
            return Step(StepKind.JUMP, 0, climb, sample)
        return Step(StepKind.NORMAL, climb, 0, sample)

    wrapped = climb + modulus
    if wrapped <= min(limit, modulus // 2):
        return Step(StepKind.ROLLOVER, wrapped, 0, sample)
    if sample.value <= limit:
        return Step(StepKind.RESET, sample.value, 0, sample)
    return Step(StepKind.JUMP, 0, sample.value, sample)
