"""The mark (`rollup_marks`, migration 0007) that tells the rollup worker how far back to recompute.

Writers of data about the past lower it in their own transaction; the worker takes it (`take_mark`) in
a short transaction of its own before refreshing, and puts it back if the refresh fails.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

_MARK = """INSERT INTO rollup_marks (since) VALUES (%(since)s)
           ON CONFLICT (singleton) DO UPDATE SET since = least(rollup_marks.since, EXCLUDED.since)"""
TAKE_MARK = "DELETE FROM rollup_marks RETURNING since"


def mark_changed(execute: Callable, since: datetime) -> None:
    """Record that the rollups must be recomputed from `since` (lowering the mark, never raising it), in
    the caller's transaction. `execute(sql, params)`: a psycopg cursor's or connection's execute, or
    SQLAlchemy's `Connection.exec_driver_sql`."""
    execute(_MARK, {"since": since})
