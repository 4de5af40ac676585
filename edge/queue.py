"""Store-and-forward: every outgoing data message waits in SQLite until the core has committed it.

Schema (`<state_dir>/queue.sqlite`):
    outbox(id, topic, edge_id, machine, epoch, seq, samples, enqueued_at, historical)
        id           publish order. AUTOINCREMENT so an id is never reused, even after the table
                     empties: the publisher remembers the last id it handed to MQTT.
        samples      JSON array of Sample objects (kernel.payload), each signal's in the order it was read.
        historical   1 when the message waited out a broker outage or an agent restart.
    metrics(name, value)   what must survive restarts: dropped_total, dropped_delivered_total, and the
                           position the core last confirmed per edge (confirmed_epoch/<edge_id>, confirmed_seq/<edge_id>).

A row leaves when the core's acknowledgment (kernel.payload.EdgeAck) passes its position, not at the
broker's PUBACK: a broker that loses its state, or fails while the core is down, then loses nothing.

Durability: WAL with synchronous=FULL, so a message the agent has enqueued survives a power cut,
not only a crash of the process. The price is one fsync per commit; the agent commits once per
flush (all machines together) and once per batch of PUBACKs, a handful of fsyncs per second.

Bound: at most `max_rows` rows. When full, the oldest rows the broker has acknowledged go first, counted
in `dropped_delivered_total` (the broker still holds them: lost only if it loses its state too); then
the oldest rows not yet handed to the MQTT client, counted in `dropped_total` (rows in flight stay: paho
retransmits them after a reconnect).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

from kernel.payload import DataMessage, Position

QUEUE_FILE = "queue.sqlite"
DROPPED_TOTAL = "dropped_total"
DROPPED_DELIVERED_TOTAL = "dropped_delivered_total"

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    id          INTEGER PRIMARY KEY AUTOINCREMENT,
    topic       TEXT    NOT NULL,
    edge_id     TEXT    NOT NULL,
    machine     TEXT    NOT NULL,
    epoch       INTEGER NOT NULL,
    seq         INTEGER NOT NULL,
    samples     TEXT    NOT NULL,
    enqueued_at TEXT    NOT NULL,
    historical  INTEGER NOT NULL DEFAULT 0,
    UNIQUE (edge_id, epoch, seq)
);
CREATE TABLE IF NOT EXISTS metrics (
    name  TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
"""


@dataclass(frozen=True)
class OutgoingMessage:
    """A data message the agent wants delivered."""

    topic: str
    edge_id: str
    machine: str
    epoch: int
    seq: int
    samples_json: str
    historical: bool = False

    @property
    def position(self) -> tuple[int, int]:
        return self.epoch, self.seq

    def payload(self, follows: tuple[int, int] | None = None) -> bytes:
        """`follows`: the position of the message published before it (kernel.payload.DataMessage.prev)."""
        message = DataMessage(
            edge_id=self.edge_id,
            epoch=self.epoch,
            seq=self.seq,
            machine=self.machine,
            historical=self.historical,
            prev=Position(epoch=follows[0], seq=follows[1]) if follows is not None else None,
            samples=json.loads(self.samples_json),
        )
        return message.model_dump_json(exclude_none=True).encode()


@dataclass(frozen=True, kw_only=True)
class QueuedMessage(OutgoingMessage):
    """An outgoing message as stored: its row id is its place in the publish order."""

    id: int
    enqueued_at: datetime


def rows_over_bound(depth: int, max_rows: int) -> int:
    """How many rows must go so that at most `max_rows` remain."""
    return max(0, depth - max_rows)


class DiskQueue:
    """Not thread-safe: the agent serialises every call through one worker thread."""

    def __init__(self, path: Path, max_rows: int) -> None:
        if max_rows < 1:
            raise ValueError("max_rows must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        # Kept in memory: count(*) walks the whole table, too slow at every flush of a full queue.
        self._depth = self._db.execute("SELECT count(*) FROM outbox").fetchone()[0]

    def close(self) -> None:
        self._db.close()

    def enqueue(self, messages: Sequence[OutgoingMessage], *, handed_over_through: int = 0,
                delivered_through: int = 0) -> int:
        """Append `messages` in order; enforce the bound. Returns how many old rows were dropped.

        handed_over_through: highest id already given to the MQTT client; delivered_through: highest id
        up to which the broker acknowledged every row. Rows in between (in flight) are never dropped.
        """
        now = datetime.now(timezone.utc).isoformat()
        with self._transaction():
            self._db.executemany(
                "INSERT INTO outbox (topic, edge_id, machine, epoch, seq, samples, enqueued_at, historical)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(m.topic, m.edge_id, m.machine, m.epoch, m.seq, m.samples_json, now, int(m.historical)) for m in messages],
            )
            depth = self._depth + len(messages)
            excess = rows_over_bound(depth, self.max_rows)
            if not excess:
                self._depth = depth
                return 0
            delivered = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id <= ? ORDER BY id LIMIT ?)",
                (delivered_through, excess),
            ).rowcount
            dropped = self._db.execute(
                "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox WHERE id > ? ORDER BY id LIMIT ?)",
                (handed_over_through, excess - delivered),
            ).rowcount if excess > delivered else 0
            self._add_metric(DROPPED_DELIVERED_TOTAL, delivered)
            self._add_metric(DROPPED_TOTAL, dropped)
        self._depth = depth - delivered - dropped
        return delivered + dropped

    def _add_metric(self, name: str, value: int) -> None:
        self._db.execute("INSERT INTO metrics (name, value) VALUES (?, ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, value))

    def confirm(self, edge_id: str, epoch: int, seq: int) -> int:
        """The core committed every message of `edge_id` up to (epoch, seq): they leave. Returns how many."""
        with self._transaction():
            removed = self._db.execute("DELETE FROM outbox WHERE edge_id = ? AND (epoch, seq) <= (?, ?)",
                                       (edge_id, epoch, seq)).rowcount
            self._db.executemany("INSERT INTO metrics (name, value) VALUES (?, ?)"
                                 " ON CONFLICT (name) DO UPDATE SET value = excluded.value",
                                 [(f"confirmed_epoch/{edge_id}", epoch), (f"confirmed_seq/{edge_id}", seq)])
        self._depth -= removed
        return removed

    def confirmed(self, edge_id: str) -> tuple[int, int] | None:
        """The position the core last confirmed for `edge_id`, kept across restarts."""
        epoch, seq = self._metric(f"confirmed_epoch/{edge_id}"), self._metric(f"confirmed_seq/{edge_id}")
        return (epoch, seq) if epoch else None

    def peek(self, after_id: int = 0, limit: int = 100) -> list[QueuedMessage]:
        """The oldest rows after `after_id`, in publish order. Nothing is removed."""
        rows = self._db.execute(
            "SELECT id, topic, edge_id, machine, epoch, seq, samples, enqueued_at, historical"
            " FROM outbox WHERE id > ? ORDER BY id LIMIT ?",
            (after_id, limit),
        ).fetchall()
        return [
            QueuedMessage(id=row[0], topic=row[1], edge_id=row[2], machine=row[3], epoch=row[4], seq=row[5],
                          samples_json=row[6], enqueued_at=datetime.fromisoformat(row[7]), historical=bool(row[8]))
            for row in rows
        ]

    def mark_all_historical(self) -> None:
        """Whatever waits now will reach the broker late: after an outage or from an earlier run."""
        with self._transaction():
            self._db.execute("UPDATE outbox SET historical = 1 WHERE historical = 0")

    def depth(self) -> int:
        return self._depth

    @property
    def dropped_total(self) -> int:
        return self._metric(DROPPED_TOTAL)

    @property
    def dropped_delivered_total(self) -> int:
        return self._metric(DROPPED_DELIVERED_TOTAL)

    def _metric(self, name: str) -> int:
        row = self._db.execute("SELECT value FROM metrics WHERE name = ?", (name,)).fetchone()
        return row[0] if row else 0

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db)


class _Transaction:
    def __init__(self, db: sqlite3.Connection) -> None:
        self._db = db

    def __enter__(self) -> None:
        self._db.execute("BEGIN IMMEDIATE")

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        self._db.execute("COMMIT" if exc_type is None else "ROLLBACK")
