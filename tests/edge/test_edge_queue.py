import sqlite3
import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from edge.buffer import samples_json
from edge.queue import DiskQueue, OutgoingMessage
from kernel.payload import DataMessage, Position, Sample

SAMPLES = json.dumps([{"ts": "2026-01-01T00:00:00Z", "signal": "good", "value": 7}])


def message(seq: int, epoch: int = 1, historical: bool = False) -> OutgoingMessage:
    return OutgoingMessage(topic="mes/v1/s/a/l/m/data", edge_id="e1", machine="m", epoch=epoch, seq=seq,
                           samples_json=SAMPLES, historical=historical)


@pytest.fixture
def queue(tmp_path: Path):
    q = DiskQueue(tmp_path / "queue.sqlite", max_rows=1000)
    yield q
    q.close()


def seqs(q: DiskQueue) -> list[int]:
    return [row.seq for row in q.peek(0, 10_000)]


def test_peek_returns_rows_in_enqueue_order_and_after_a_cursor(queue):
    queue.enqueue([message(1), message(2)])
    queue.enqueue([message(3)])
    rows = queue.peek(0, 10)
    assert [r.seq for r in rows] == [1, 2, 3]
    assert [r.seq for r in queue.peek(rows[0].id, 10)] == [2, 3]
    assert [r.seq for r in queue.peek(0, 2)] == [1, 2]


def test_only_the_cores_confirmation_takes_rows_out(queue):
    queue.enqueue([message(1), message(2), message(3, epoch=2)])
    queue.peek(0, 10)
    assert seqs(queue) == [1, 2, 3]
    assert queue.confirm("e1", 1, 2) == 2
    assert queue.confirm("e1", 1, 2) == 0  # a second acknowledgment of the same position is harmless
    assert queue.confirm("another-edge", 9, 9) == 0
    assert seqs(queue) == [3] and queue.depth() == 1 and queue.confirmed("e1") == (1, 2)
    assert queue.confirm("e1", 2, 3) == 1 and queue.depth() == 0


def test_the_confirmed_position_survives_reopen(tmp_path):
    path = tmp_path / "q.sqlite"
    q = DiskQueue(path, max_rows=10)
    assert q.confirmed("e1") is None
    q.confirm("e1", 4, 17)
    q.close()
    reopened = DiskQueue(path, max_rows=10)
    assert reopened.confirmed("e1") == (4, 17) and reopened.confirmed("e2") is None
    reopened.close()


def counting(seq: int, value: int, machine: str = "m") -> OutgoingMessage:
    samples = json.dumps([{"ts": f"2026-01-01T00:00:{seq:02d}Z", "signal": "good", "value": value}])
    return OutgoingMessage(topic=f"mes/v1/s/a/l/{machine}/data", edge_id="e1", machine=machine, epoch=1, seq=seq,
                           samples_json=samples)


def test_a_full_queue_compacts_each_machines_unsent_rows_and_keeps_what_counts(tmp_path):
    q = DiskQueue(tmp_path / "q.sqlite", max_rows=2)
    # machine m counts 1, 2, 3, then a PLC reset: 0, 1; machine n counts alongside
    values = [1, 2, 3, 0, 1]
    q.enqueue([counting(seq, value) for seq, value in enumerate(values, start=1)])
    q.enqueue([counting(6, 5, machine="n"), counting(7, 6, machine="n")])
    rows = q.peek(0, 100)
    assert [(row.machine, row.seq) for row in rows] == [("m", 5), ("n", 7)], "each machine's last row stays"
    assert [s["value"] for s in json.loads(rows[0].samples_json)] == [1, 3, 0, 1], "first, both sides of the reset, last"
    assert all(row.historical for row in rows) and q.depth() == 2
    assert (q.dropped_total, q.dropped_delivered_total) == (0, 0)


def test_a_queue_that_compaction_cannot_shrink_drops_rows_the_broker_holds_first(tmp_path):
    q = DiskQueue(tmp_path / "q.sqlite", max_rows=3)
    q.enqueue([counting(1, 1), counting(2, 2, machine="n"), counting(3, 3, machine="o")])
    rows = q.peek(0, 3)
    # all three handed over, the first two acknowledged by the broker; one new row each for m and p
    assert q.enqueue([counting(4, 4, machine="p")], handed_over_through=rows[2].id, delivered_through=rows[1].id) == 1
    assert [row.seq for row in q.peek(0, 10)] == [2, 3, 4] and (q.dropped_delivered_total, q.dropped_total) == (1, 0)


def test_the_bound_in_bytes_compacts_too(tmp_path):
    q = DiskQueue(tmp_path / "q.sqlite", max_rows=1000, max_bytes=200)
    q.enqueue([counting(seq, seq) for seq in range(1, 6)])
    assert [row.seq for row in q.peek(0, 10)] == [5] and q.dropped_total == 0


def test_rows_and_the_drop_count_survive_reopen(tmp_path):
    path = tmp_path / "q.sqlite"
    q = DiskQueue(path, max_rows=2)
    q.enqueue([counting(1, 1), counting(2, 2, machine="n")])
    rows = q.peek(0, 2)
    q.enqueue([counting(3, 3, machine="o")], handed_over_through=rows[1].id, delivered_through=rows[1].id)
    q.close()
    reopened = DiskQueue(path, max_rows=2)
    assert seqs(reopened) == [2, 3]
    assert reopened.depth() == 2
    assert reopened.dropped_delivered_total == 1
    reopened.close()


def test_ids_keep_growing_after_the_queue_empties(queue):
    # The publisher's cursor is the last id handed over; a reused id would be skipped.
    queue.enqueue([message(1)])
    (row,) = queue.peek(0, 10)
    queue.confirm("e1", 1, 1)
    queue.enqueue([message(2)])
    assert [r.seq for r in queue.peek(row.id, 10)] == [2]


def test_mark_all_historical_flags_waiting_rows_only(queue):
    queue.enqueue([message(1)])
    queue.mark_all_historical()
    queue.enqueue([message(2)])
    assert [r.historical for r in queue.peek(0, 10)] == [True, False]


def test_payload_is_a_valid_data_message(queue):
    queue.enqueue([message(5, epoch=3, historical=True)])
    (row,) = queue.peek(0, 10)
    decoded = DataMessage.model_validate_json(row.payload())
    assert (decoded.edge_id, decoded.epoch, decoded.seq, decoded.machine, decoded.historical) == ("e1", 3, 5, "m", True)
    assert decoded.prev is None and b"prev" not in row.payload()
    assert DataMessage.model_validate_json(row.payload((2, 9))).prev == Position(epoch=2, seq=9)
    assert decoded.samples[0].value == 7
    assert decoded.samples[0].ts == datetime(2026, 1, 1, tzinfo=timezone.utc)
    assert row.enqueued_at.tzinfo is not None


@pytest.mark.parametrize("follows", [None, (2, 9)])
@pytest.mark.parametrize("historical", [False, True])
def test_payload_is_byte_for_byte_what_the_data_message_model_dumps(queue, follows, historical):
    plus_one = timezone(timedelta(hours=1))
    samples = [Sample(ts=datetime(2026, 1, 1, 0, 0, 0, 250000, tzinfo=timezone.utc), signal="good", value=65533),
               Sample(ts=datetime(2026, 1, 1, 0, 0, 0, 300000, tzinfo=plus_one), signal="order", value="WO-1001"),
               Sample(ts=datetime(2026, 1, 1, tzinfo=timezone.utc), signal="state", value=1)]
    queue.enqueue([OutgoingMessage(topic="t", edge_id="edge-1.a_b", machine="press-01", epoch=3, seq=5,
                                   samples_json=samples_json(samples), historical=historical)])
    (row,) = queue.peek(0, 10)
    model = DataMessage.model_validate_json(row.payload(follows))
    assert row.payload(follows) == model.model_dump_json(exclude_none=True).encode()


def test_the_same_message_identity_cannot_be_enqueued_twice(queue):
    queue.enqueue([message(1)])
    with pytest.raises(sqlite3.IntegrityError):
        queue.enqueue([message(1)])
    assert seqs(queue) == [1]
