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
flush (all machines together) and deletes what the core confirmed at most every CONFIRM_EVERY_S
(edge/agent.py), a handful of fsyncs per second whatever the number of machines.

Bound: at most `max_rows` rows and `max_bytes` of samples. When full, the rows not yet handed to the
MQTT client are compacted first (edge.compaction: each machine's become one or a few, without the
intermediate counter values that carry no units of their own), counted in `compacted_total`; totals stay
exact. Only if that is not enough, the oldest rows the broker has acknowledged go, counted in
`dropped_delivered_total` (the broker still holds them: lost only if it loses its state too), then the
oldest unsent rows, counted in `dropped_total` (rows in flight stay: paho retransmits them).
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence
import dataclasses
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import TypeVar

from edge.compaction import chunks, compact

QUEUE_FILE = "queue.sqlite"
DROPPED_TOTAL = "dropped_total"
DROPPED_DELIVERED_TOTAL = "dropped_delivered_total"
COMPACTED_TOTAL = "compacted_total"
DEFAULT_MAX_BYTES = 256 * 1024 * 1024
COMPACTED_SAMPLES_PER_ROW = 5_000  # below the core's MES_MAX_SAMPLES
K = TypeVar("K")

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
        """`follows`: the position of the message published before it (kernel.payload.DataMessage.prev).

        The bytes `DataMessage(...).model_dump_json(exclude_none=True)` gives (tests/edge/test_edge_queue.py), put
        together around the stored samples JSON (valid Samples, dumped by edge.buffer.samples_json or by the
        compaction) instead of parsing, validating and dumping them again for every message: that was most of
        the edge's CPU per message."""
        prev = f',"prev":{{"epoch":{follows[0]},"seq":{follows[1]}}}' if follows is not None else ""
        return (f'{{"v":1,"edge_id":{json.dumps(self.edge_id)},"epoch":{self.epoch},"seq":{self.seq},'
                f'"machine":{json.dumps(self.machine)},"historical":{"true" if self.historical else "false"}{prev},'
                f'"samples":{self.samples_json}}}').encode()


@dataclass(frozen=True, kw_only=True)
class QueuedMessage(OutgoingMessage):
    """An outgoing message as stored: its row id is its place in the publish order."""

    id: int
    enqueued_at: datetime


def compaction_of(rows: Sequence[tuple[K, str, str]]) -> tuple[list[tuple[K, str]], list[K]]:
    """Rows (key, machine, samples JSON) in publish order → the rows that stay with their new samples, and
    the keys of those that go. Each machine's rows become as few as hold its compacted samples
    (edge.compaction); the ones that stay are its last, so its messages keep their order."""
    by_machine: dict[str, list[tuple[K, str]]] = {}
    for key, machine, samples in rows:
        by_machine.setdefault(machine, []).append((key, samples))
    stay: list[tuple[K, str]] = []
    gone: list[K] = []
    for machine_rows in by_machine.values():
        if len(machine_rows) < 2:
            continue
        kept = compact([sample for _, samples in machine_rows for sample in json.loads(samples)])
        parts = [json.dumps(part, separators=(",", ":")) for part in chunks(kept, COMPACTED_SAMPLES_PER_ROW)]
        keys = [key for key, _ in machine_rows]
        gone += keys[:len(keys) - len(parts)]
        stay += zip(keys[len(keys) - len(parts):], parts, strict=True)
    return stay, gone


def compact_messages(messages: Sequence[OutgoingMessage]) -> list[OutgoingMessage]:
    """The same compaction over messages held in memory (the disk is full), in their order."""
    stay, gone = compaction_of([(index, m.machine, m.samples_json) for index, m in enumerate(messages)])
    new_samples, dropped = dict(stay), set(gone)
    return [dataclasses.replace(m, samples_json=new_samples.get(index, m.samples_json), historical=True)
            if index in new_samples else m for index, m in enumerate(messages) if index not in dropped]


class DiskQueue:
    """Not thread-safe: the agent serialises every call through one worker thread."""

    def __init__(self, path: Path, max_rows: int, max_bytes: int = DEFAULT_MAX_BYTES) -> None:
        if max_rows < 1 or max_bytes < 1:
            raise ValueError("max_rows and max_bytes must be at least 1")
        path.parent.mkdir(parents=True, exist_ok=True)
        self.max_rows, self.max_bytes = max_rows, max_bytes
        self._db = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.executescript(SCHEMA)
        self._count_rows()

    def close(self) -> None:
        self._db.close()

    def enqueue(self, messages: Sequence[OutgoingMessage], *, handed_over_through: int = 0,
                delivered_through: int = 0) -> int:
        """Append `messages` in order; enforce the bound. Returns how many old rows were dropped.

        handed_over_through: highest id already given to the MQTT client; delivered_through: highest id
        up to which the broker acknowledged every row. Rows in between (in flight) are never dropped.
        """
        now = datetime.now(timezone.utc).isoformat()
        try:
            return self._enqueue(messages, now, handed_over_through, delivered_through)
        except sqlite3.Error:
            self._count_rows()  # what the rolled-back transaction had counted is gone with it
            raise

    def _count_rows(self) -> None:
        # Kept in memory: count(*) walks the whole table, too slow at every flush of a full queue.
        self._depth, self._bytes = self._db.execute("SELECT count(*), coalesce(sum(length(samples)), 0) FROM outbox").fetchone()

    def _enqueue(self, messages: Sequence[OutgoingMessage], now: str, handed_over_through: int,
                 delivered_through: int) -> int:
        with self._transaction():
            self._db.executemany(
                "INSERT INTO outbox (topic, edge_id, machine, epoch, seq, samples, enqueued_at, historical)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                [(m.topic, m.edge_id, m.machine, m.epoch, m.seq, m.samples_json, now, int(m.historical)) for m in messages],
            )
            self._depth += len(messages)
            self._bytes += sum(len(m.samples_json) for m in messages)
            if not self._over_bound():
                return 0
            self._compact(handed_over_through)
            delivered = self._drop("id <= ?", delivered_through, DROPPED_DELIVERED_TOTAL)
            dropped = self._drop("id > ?", handed_over_through, DROPPED_TOTAL)
        return delivered + dropped

    def _over_bound(self) -> bool:
        return self._depth > self.max_rows or self._bytes > self.max_bytes

    def _compact(self, handed_over_through: int) -> None:
        """Each machine's unsent rows become as few as hold their compacted samples (`compaction_of`)."""
        rows = self._db.execute("SELECT id, machine, samples FROM outbox WHERE id > ? ORDER BY id", (handed_over_through,)).fetchall()
        stay, gone = compaction_of(rows)
        self._db.executemany("UPDATE outbox SET samples = ?, historical = 1 WHERE id = ?", [(samples, row_id) for row_id, samples in stay])
        self._db.executemany("DELETE FROM outbox WHERE id = ?", [(row_id,) for row_id in gone])
        lengths = {row_id: len(samples) for row_id, _, samples in rows}
        self._bytes += sum(len(samples) - lengths[row_id] for row_id, samples in stay) - sum(lengths[row_id] for row_id in gone)
        self._depth -= len(gone)
        self._add_metric(COMPACTED_TOTAL, len(gone))

    def _drop(self, where: str, through: int, metric: str) -> int:
        """The oldest rows matching `where` go, as few as bring the queue within its bound."""
        dropped = 0
        while self._over_bound():
            row = self._db.execute(f"DELETE FROM outbox WHERE id = (SELECT min(id) FROM outbox WHERE {where})"
                                   " RETURNING length(samples)", (through,)).fetchone()
            if row is None:
                break
            self._depth -= 1
            self._bytes -= row[0]
            dropped += 1
        self._add_metric(metric, dropped)
        return dropped

    def _add_metric(self, name: str, value: int) -> None:
        self._db.execute("INSERT INTO metrics (name, value) VALUES (?, ?)"
                         " ON CONFLICT (name) DO UPDATE SET value = value + excluded.value", (name, value))

    def confirm(self, edge_id: str, epoch: int, seq: int) -> int:
        """The core committed every message of `edge_id` up to (epoch, seq): they leave. Returns how many."""
        with self._transaction():
            lengths = self._db.execute("DELETE FROM outbox WHERE edge_id = ? AND (epoch, seq) <= (?, ?) RETURNING length(samples)",
                                       (edge_id, epoch, seq)).fetchall()
            removed = len(lengths)
            self._bytes -= sum(length for (length,) in lengths)
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

    def size_bytes(self) -> int:
        """Bytes of samples queued (what `max_bytes` bounds)."""
        return self._bytes

    @property
    def dropped_total(self) -> int:
        return self._metric(DROPPED_TOTAL)

    @property
    def compacted_total(self) -> int:
        return self._metric(COMPACTED_TOTAL)

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
        if exc_type is None:
            self._db.execute("COMMIT")
        elif self._db.in_transaction:  # SQLite may have rolled back already (a full disk does)
            self._db.execute("ROLLBACK")
