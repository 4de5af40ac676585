"""When the hourly rollups (oee_hourly, downtime_hourly) must be redone from the past. Pure."""

from __future__ import annotations

from datetime import datetime, timedelta

# Every round redoes at least the last hour (`rollup_hours` >= 1): data newer than that needs no mark.
ALWAYS_REDONE = timedelta(hours=1)


def late_since(earliest: datetime, now: datetime) -> datetime | None:
    """`earliest` when data about that instant is older than what every round redoes anyway, else None:
    only late data marks the rollups (a mark every batch would serialise the cores on its row)."""
    return earliest if earliest < now - ALWAYS_REDONE else None
