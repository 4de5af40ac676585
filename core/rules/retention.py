"""Which days of a time-series table the retention job keeps, creates and drops. Pure: `now` is passed in.

Days are UTC days, the partitions' and the TimescaleDB chunks' alike (a 1-day chunk starts at a UTC midnight). A
table kept `days` days keeps every row of the last `days` whole days and of today; `days` 0 keeps everything.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta

AHEAD_DAYS = 3  # days created ahead: a job that stops for less leaves no row in the default partition


def day_start(day: date) -> datetime:
    return datetime.combine(day, time(), UTC)


def cutoff(now: datetime, days: int) -> datetime | None:
    """Rows before this instant may go (None: kept forever)."""
    if days <= 0:
        return None
    return day_start(now.astimezone(UTC).date() - timedelta(days=days))


def days_ahead(now: datetime, ahead: int = AHEAD_DAYS) -> list[date]:
    """Today and the `ahead` days after it: the partitions that must exist before their rows come."""
    today = now.astimezone(UTC).date()
    return [today + timedelta(days=n) for n in range(ahead + 1)]


def droppable(day: date, before: datetime | None) -> bool:
    """Whether the whole of `day` lies before the cutoff."""
    return before is not None and day_start(day + timedelta(days=1)) <= before
