"""COPY: how rows reach PostgreSQL in bulk (the ingest's append-only tables, the ledger, the valuation)."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import psycopg


def copy_rows(cur: psycopg.Cursor, table: str, columns: Sequence[str], rows: Iterable[tuple]) -> None:
    """COPY `rows` (tuples in the order of `columns`) into `table`; nothing happens for no rows."""
    rows = list(rows)
    if not rows:
        return
    with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row(row)
