"""The mark (`rollup_marks`, migration 0007) that tells the rollup worker how far back to recompute.

Writers of data about the past lower it in their own transaction. The worker reads it (`READ_MARK`, no
lock: a writer never waits for a refresh) and clears it (`CLEAR_MARK`) only after the refresh it asked
for has committed, and only if no writer has lowered or restated it since: its row version (`xmin`) is
the one read. A refresh that fails, or a worker killed in the middle of one, leaves the mark for the next.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

_MARK = """INSERT INTO rollup_marks (since) VALUES (%(since)s)
           ON CONFLICT (singleton) DO UPDATE SET since = least(rollup_marks.since, EXCLUDED.since)"""
READ_MARK = "SELECT since, CAST(xmin AS text) AS version FROM rollup_marks"
CLEAR_MARK = "DELETE FROM rollup_marks WHERE CAST(xmin AS text) = :version"


def mark_changed(execute: Callable, since: datetime) -> None:
    """Record that the rollups must be recomputed from `since` (lowering the mark, never raising it), in
    the caller's transaction. `execute(sql, params)`: a psycopg cursor's or connection's execute, or
    SQLAlchemy's `Connection.exec_driver_sql`."""
    execute(_MARK, {"since": since})
