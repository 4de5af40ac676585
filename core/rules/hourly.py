"""What each machine made per UTC hour (`production_hourly`), from the production intervals a write adds. Pure.

An interval belongs to the hour of its end, as the boards have always bucketed it (the hour its units were
counted in). The hours are added to the stored ones in the same transaction as the intervals, so the table
always equals the intervals summed: on plain PostgreSQL and on TimescaleDB alike, late data included, and a
board's hourly query reads a few rows per machine and hour however long the history.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime
from typing import NamedTuple, Protocol


class Counted(Protocol):
    """What an interval tells the hourly totals (`core.ingest.rows.ProductionInterval` has it)."""

    @property
    def machine_id(self) -> str: ...
    @property
    def end_ts(self) -> datetime: ...
    @property
    def good(self) -> int: ...
    @property
    def scrap(self) -> int: ...
    @property
    def energy_wh(self) -> int: ...


class ProductionHour(NamedTuple):
    """`production_hourly`: one machine's units and energy in one UTC hour, and how many intervals made them."""

    bucket: datetime
    machine_id: str
    good: int
    scrap: int
    energy_wh: int
    intervals: int


def hour_of(instant: datetime) -> datetime:
    """The UTC hour an instant falls in (its start)."""
    return instant.astimezone(UTC).replace(minute=0, second=0, microsecond=0)


def hourly_totals(intervals: Iterable[Counted]) -> list[ProductionHour]:
    """The intervals summed per machine and hour of their end, in (hour, machine) order."""
    totals: dict[tuple[datetime, str], list[int]] = {}
    for interval in intervals:
        sums = totals.setdefault((hour_of(interval.end_ts), interval.machine_id), [0, 0, 0, 0])
        sums[0] += interval.good
        sums[1] += interval.scrap
        sums[2] += interval.energy_wh
        sums[3] += 1
    return [ProductionHour(bucket, machine, *sums) for (bucket, machine), sums in sorted(totals.items())]
