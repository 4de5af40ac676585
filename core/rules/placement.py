"""Where a sample goes in time: the timestamp the edge sent, unless it cannot be true. Pure.

A timestamp places a sample in time (attribution to work orders, state intervals, OEE); it never decides
whether the sample's units count, which is the read order's job (core.rules.counters). Two timestamps
cannot be true, and are moved:
- one more than `max_ahead` after the core received the message (a PLC clock stepped forward, a
  sample stamped 2099): it is placed at the receipt, and flagged with how far ahead it was;
- one before the same signal's previous sample (a PLC clock stepped back): it is placed at that
  previous one, so a signal's time never goes back: units are never counted before the order that
  made them started, and a state never ends before it began.
Ambiguity, stated: while a clock that stepped back catches up, its samples pile up at the instant of
the last sample before the step; their units and states are all there, a little late.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import NamedTuple

DEFAULT_MAX_AHEAD = timedelta(minutes=5)


class Placed(NamedTuple):
    ts: datetime
    ahead: timedelta | None  # how far the timestamp was ahead of the receipt, when that moved it


def place(ts: datetime, received_at: datetime, previous: datetime | None, max_ahead: timedelta = DEFAULT_MAX_AHEAD) -> Placed:
    """The instant a sample stamped `ts`, received at `received_at`, is placed at; `previous`: where the same
    signal's previous sample was placed (None: never seen)."""
    ahead = ts - received_at
    placed, flagged = (received_at, ahead) if ahead > max_ahead else (ts, None)
    if previous is not None and placed < previous:
        placed = previous
    return Placed(placed, flagged)
