"""Report by exception: which samples go into the next message of each machine. Pure logic, no I/O."""

from __future__ import annotations

import heapq
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime

from edge.sources.base import Reading
from kernel.payload import Sample


@dataclass
class _LastSeen:
    value: int
    ts: datetime


class SampleBuffer:
    """Keeps the last value of every signal and the samples not yet put in a message."""

    def __init__(self) -> None:
        self._last: dict[tuple[str, str], _LastSeen] = {}
        self._pending: dict[str, dict[str, list[Sample]]] = {}

    def observe(self, reading: Reading) -> bool:
        """Record a reading; queue it only when the value changed. True when queued."""
        key = (reading.machine_id, reading.signal)
        last = self._last.get(key)
        if last is not None and last.value == reading.value:
            # Unchanged: remember when it was last confirmed, so the next snapshot is as fresh as possible.
            last.ts = max(last.ts, reading.ts)
            return False
        self._last[key] = _LastSeen(reading.value, reading.ts)
        self._add(reading.machine_id, Sample(ts=reading.ts, signal=reading.signal, value=reading.value))
        return True

    def snapshot(self) -> None:
        """Queue every known signal that has nothing pending, so each message stream periodically
        restates the full state (a signal that never changes would otherwise never be sent again).
        The sample carries the time the value was last confirmed by the PLC, not the time of the
        snapshot: the edge only vouches for what it saw."""
        for (machine_id, signal), last in self._last.items():
            if signal not in self._pending.get(machine_id, {}):
                self._add(machine_id, Sample(ts=last.ts, signal=signal, value=last.value))

    def drain(self) -> dict[str, list[Sample]]:
        """Pending samples per machine; clears them. Each signal's samples stay in the order they were
        read (the order the core counts them in, whatever their timestamps say: a PLC clock can step
        back), and the signals are interleaved by timestamp as far as that order allows."""
        drained = {
            machine_id: list(heapq.merge(*by_signal.values(), key=lambda s: s.ts))
            for machine_id, by_signal in self._pending.items()
        }
        self._pending = {}
        return {machine_id: samples for machine_id, samples in drained.items() if samples}

    def _add(self, machine_id: str, sample: Sample) -> None:
        self._pending.setdefault(machine_id, {}).setdefault(sample.signal, []).append(sample)


def samples_json(samples: Iterable[Sample]) -> str:
    return json.dumps([sample.model_dump(mode="json") for sample in samples], separators=(",", ":"))
