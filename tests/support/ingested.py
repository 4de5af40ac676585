"""Writes the rows the ingest would write, for tests of what is derived from them."""

from __future__ import annotations

from datetime import datetime, timedelta

import psycopg


class Ingested:
    """Writes what the ingest would, for edge-1."""

    def __init__(self, url: str):
        self.conn = psycopg.connect(url, autocommit=True)
        self.seq = 0

    def _next(self) -> int:
        self.seq += 1
        return self.seq

    def state(self, machine: str, ts: datetime, state: int, fault: int = 0) -> None:
        self.conn.execute("INSERT INTO machine_states VALUES (%s, %s, %s, %s, 'edge-1', 1, %s)",
                          (machine, ts, state, fault, self._next()))

    def heard(self, machine: str, start: datetime, end: datetime, every: timedelta) -> None:
        """A data message from the machine every `every` in [start, end)."""
        ts = start
        while ts < end:
            self.conn.execute("INSERT INTO ingested_messages VALUES ('edge-1', 1, %s, %s, %s, false, 1)", (self._next(), machine, ts))
            ts += every

    def message(self, machine: str, first_ts: datetime, last_ts: datetime, received_at: datetime) -> None:
        """A data message whose samples were placed from `first_ts` to `last_ts`."""
        self.conn.execute("""INSERT INTO ingested_messages (edge_id, epoch, seq, machine_id, received_at, historical,
                                                             sample_count, first_ts, last_ts)
                             VALUES ('edge-1', 1, %s, %s, %s, false, 2, %s, %s)""",
                          (self._next(), machine, received_at, first_ts, last_ts))

    def edge_status(self, ts: datetime, online: bool, edge: str = "edge-1", machines: tuple[str, ...] = ()) -> None:
        self.conn.execute("INSERT INTO edge_status_events (edge_id, online, epoch, machines, received_at) VALUES (%s, %s, 1, %s, %s)",
                          (edge, online, list(machines), ts))

    def made(self, machine: str, last_ts: datetime, good: int, scrap: int, energy_wh: int, work_order: str | None = None) -> None:
        self.conn.execute("INSERT INTO production_attributions VALUES ('edge-1', 1, %s, %s, %s, %s, %s, %s, %s, %s)",
                          (self._next(), machine, work_order, good, scrap, energy_wh, last_ts, last_ts))

    def count(self, table: str) -> int:
        return self.conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
