"""When the hourly rollups (oee_hourly, downtime_hourly) must be redone from the past. Pure."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from kernel.rules.instants import require_aware

# Every round redoes at least the last hour (`rollup_hours` >= 1): data newer than that needs no mark.
ALWAYS_REDONE = timedelta(hours=1)
HOUR = timedelta(hours=1)  # the rollups' bucket: UTC hours


def late_since(earliest: datetime, now: datetime) -> datetime | None:
    """`earliest` when data about that instant is older than what every round redoes anyway, else None:
    only late data marks the rollups (a mark every batch would serialise the cores on its row)."""
    return earliest if earliest < now - ALWAYS_REDONE else None


def hours_between(since: datetime, until: datetime) -> list[datetime]:
    """The UTC hours that [since, until] touches, as their starts."""
    start = require_aware(since, "since").astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    until = require_aware(until, "until")
    hours: list[datetime] = []
    while start <= until and (not hours or start < until):
        hours.append(start)
        start += HOUR
    return hours
