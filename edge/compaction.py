"""Compaction: fewer samples that count the same. Pure.

When the edge's queue is full (a long broker or core outage), the waiting samples of a machine are
compacted instead of whole messages being dropped: a cumulative counter's intermediate values carry no
units of their own — the next value carries them — except the last value before the counter drops (a
PLC reset or a rollover): after a drop only the new value counts, so the units before it live only in
that last value, and the first value after the drop is what shows the drop at all. So a counter keeps
its first value, every value on either side of a drop, and its latest value; every state, fault and
order sample stays. Any reader comparing consecutive kept values counts
the same units as over all of them, and every state change stays where it was.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from kernel.signals import COUNTERS

Sample = dict[str, Any]  # as queued: {"ts": ..., "signal": ..., "value": ...}


def compact(samples: Sequence[Sample]) -> list[Sample]:
    """`samples` in read order (each signal's own order) → the ones to keep, in the same order."""
    keep = [True] * len(samples)
    first: dict[str, int] = {}
    previous: dict[str, int] = {}
    drop_before: dict[str, bool] = {}  # whether the counter dropped onto its previous value
    for index, sample in enumerate(samples):
        signal = sample["signal"]
        if signal not in COUNTERS:
            continue
        before = previous.get(signal)
        if before is None:
            first[signal] = index
        elif sample["value"] >= samples[before]["value"] and not drop_before[signal] and before != first[signal]:
            keep[before] = False  # no drop on either side of it: the value after it carries its units
        drop_before[signal] = before is not None and sample["value"] < samples[before]["value"]
        previous[signal] = index
    return [sample for index, sample in enumerate(samples) if keep[index]]


def chunks(samples: Sequence[Sample], size: int) -> list[list[Sample]]:
    """`samples` cut into messages of at most `size` (below the core's MES_MAX_SAMPLES)."""
    return [list(samples[start:start + size]) for start in range(0, len(samples), size)]
