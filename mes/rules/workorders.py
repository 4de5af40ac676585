"""Work order lifecycle and live progress.

Lifecycle: planned → released → running ⇄ paused → completed → closed. A paused order may be
completed without resuming (the last units were made before the pause); nothing leaves `closed`.

Progress is computed from integer counts. The ratios it reports are Decimals divided at 28
significant digits in a fixed context, whatever the caller's context: exact whenever the quotient
fits (400/1000 = 0.4), rounded half-even at the 28th digit otherwise (1/3). Nothing is quantized for
display here. The tolerance limit and the projected finish are computed with exact fractions.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Context, Decimal
from enum import Enum
from fractions import Fraction

from kernel.rules.lifecycle import InvalidTransition, Lifecycle  # noqa: F401  (raised by transition)

_DIVISION = Context(prec=28)
_SECONDS_PER_HOUR = 3600
_MICROSECONDS_PER_SECOND = 1_000_000


class WorkOrderStatus(str, Enum):
    PLANNED = "planned"
    RELEASED = "released"  # BOM snapshot taken; may be dispatched to a machine
    RUNNING = "running"
    PAUSED = "paused"
    COMPLETED = "completed"  # no more production; still open for corrections and re-assignment
    CLOSED = "closed"  # final


class WorkOrderAction(str, Enum):
    RELEASE = "release"
    START = "start"
    PAUSE = "pause"
    RESUME = "resume"
    COMPLETE = "complete"
    CLOSE = "close"


_S, _A = WorkOrderStatus, WorkOrderAction
LIFECYCLE: dict[WorkOrderStatus, dict[WorkOrderAction, WorkOrderStatus]] = {
    _S.PLANNED: {_A.RELEASE: _S.RELEASED},
    _S.RELEASED: {_A.START: _S.RUNNING},
    _S.RUNNING: {_A.PAUSE: _S.PAUSED, _A.COMPLETE: _S.COMPLETED},
    _S.PAUSED: {_A.RESUME: _S.RUNNING, _A.COMPLETE: _S.COMPLETED},
    _S.COMPLETED: {_A.CLOSE: _S.CLOSED},
    _S.CLOSED: {},
}


WORK_ORDER_LIFECYCLE = Lifecycle("work order", WorkOrderAction, LIFECYCLE)


def transition(status: WorkOrderStatus, action: WorkOrderAction | str) -> WorkOrderStatus:
    """The status after `action`; InvalidTransition says which actions the status allows instead."""
    return WORK_ORDER_LIFECYCLE.after(status, action)


def most_good_allowed(quantity: int, tolerance: Decimal) -> int:
    """The most good units the order may make: its quantity plus the over-production tolerance, rounded down.

    A tolerance of 0.05 on 1,000 units allows 1,050.
    """
    return math.floor(quantity * (1 + Fraction(tolerance)))


@dataclass(frozen=True, slots=True)
class Progress:
    good: int
    scrap: int
    yield_fraction: Decimal | None  # good / (good + scrap), 0..1; None before anything was made
    percent_complete: Decimal  # 100 × good / quantity; passes 100 when over-producing
    rate_per_hour: Decimal | None  # good units per hour over the recent window; None without a window
    projected_finish: datetime | None  # None when done, not producing, or beyond the calendar
    most_good_allowed: int
    over_tolerance: bool  # more good units than the tolerance allows


def progress(quantity: int, good: int, scrap: int, window_good: int, window_seconds: Decimal, now: datetime,
             tolerance: Decimal) -> Progress:
    """Where a work order stands, projecting its finish from the good units made in the recent window.

    The projection assumes the recent rate holds: it is `now` plus the remaining units at that rate,
    rounded up to the microsecond so that unfinished work always finishes after `now`.
    """
    if quantity <= 0:
        raise ValueError(f"quantity must be positive, not {quantity}")
    if min(good, scrap, window_good) < 0 or window_seconds < 0 or tolerance < 0:
        raise ValueError("counts, the window and the tolerance cannot be negative")
    made = good + scrap
    rate = (
        _DIVISION.divide(Decimal(window_good * _SECONDS_PER_HOUR), window_seconds) if window_seconds else None
    )
    allowed = most_good_allowed(quantity, tolerance)
    return Progress(
        good=good,
        scrap=scrap,
        yield_fraction=_DIVISION.divide(Decimal(good), Decimal(made)) if made else None,
        percent_complete=_DIVISION.divide(Decimal(100 * good), Decimal(quantity)),
        rate_per_hour=rate,
        projected_finish=_projected_finish(quantity - good, window_good, window_seconds, now),
        most_good_allowed=allowed,
        over_tolerance=good > allowed,
    )


def _projected_finish(remaining: int, window_good: int, window_seconds: Decimal, now: datetime) -> datetime | None:
    if remaining <= 0 or window_good == 0 or window_seconds == 0:
        return None
    # From the raw window rather than the rounded hourly rate, exactly, then rounded up.
    microseconds = math.ceil(remaining * Fraction(window_seconds) * _MICROSECONDS_PER_SECOND / window_good)
    try:
        return now + timedelta(microseconds=microseconds)
    except OverflowError:
        return None


def should_auto_complete(quantity: int, good: int, auto_complete: bool) -> bool:
    """An order set to auto-complete completes once its good units reach its quantity."""
    return auto_complete and good >= quantity


def auto_completes(status: WorkOrderStatus, quantity: int, good: int, auto_complete: bool) -> bool:
    """Whether an order in `status` with `good` units counted completes by itself now."""
    return should_auto_complete(quantity, good, auto_complete) and _A.COMPLETE in LIFECYCLE[status]


def follow_the_plc(status: WorkOrderStatus, *, leaving: bool, still_dispatched: bool) -> WorkOrderAction | None:
    """The step an order takes when a PLC reports it (start, or resume) or reports another order after it
    (pause, unless a window still runs it elsewhere); None when its status allows no such step."""
    allowed = LIFECYCLE[status]
    if leaving:
        return _A.PAUSE if _A.PAUSE in allowed and not still_dispatched else None
    return next((action for action in (_A.START, _A.RESUME) if action in allowed), None)


UNCLASSIFIED = "unclassified"  # scrap counted by the machine that no one has given a reason yet


def scrap_by_reason(total_scrap: int, classified: Mapping[str, int]) -> dict[str, int]:
    """An order's scrap per reason: what was classified, and the unclassified rest (always listed)."""
    rest = total_scrap - sum(classified.values())
    return {reason: units for reason, units in sorted(classified.items()) if units} | {UNCLASSIFIED: rest}


def classify_scrap(total_scrap: int, classified: Mapping[str, int], reason: str, quantity: int) -> dict[str, int]:
    """The classification after giving `quantity` scrapped units a reason (a negative quantity takes
    units back from it, to re-classify them). Machines count scrap; people say why: a reason can
    never hold fewer than 0 units, and all reasons together never more than the machine counted."""
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity == 0:
        raise ValueError(f"quantity must be a whole number of units other than 0, not {quantity!r}")
    if reason == UNCLASSIFIED:
        raise ValueError(f"{UNCLASSIFIED!r} is what remains; give units another reason, or take them back from one")
    after = dict(classified)
    after[reason] = after.get(reason, 0) + quantity
    if after[reason] < 0:
        raise ValueError(f"only {classified.get(reason, 0)} units have the reason {reason!r}; cannot take back {-quantity}")
    unclassified = total_scrap - sum(after.values())
    if unclassified < 0:
        raise ValueError(f"only {total_scrap - sum(classified.values())} scrapped units are unclassified; cannot classify {quantity}")
    return after
