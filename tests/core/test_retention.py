"""Retention on a real PostgreSQL (migration 0021, core.services.retention): day partitions, what goes by age,
and the key watermark that keeps a redelivery of a dropped key a duplicate."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import psycopg
from alembic import command
from sqlalchemy import text

from core.ingest import store
from core.ingest.rows import IngestedMessage
from core.ingest.service import IngestService
from core.queries import recorded_totals
from core.services.retention import RetentionDays, apply_retention
from kernel.db.copy import copy_rows
from kernel.db.migrations import _config, upgrade
from kernel.db.models import make_engine
from tests.core.test_ingest_plan import T0, incoming
from tests.core.test_ingest_service import prepared

DAY = 86_400


def rows(database_url, sql, *args):
    with psycopg.connect(database_url) as conn:
        return conn.execute(sql, args).fetchall()


def partitions(database_url, table):
    return [name for (name,) in rows(database_url, """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
                                                     WHERE i.inhparent = %s::regclass ORDER BY 1""", table)]


def retain(database_url, now, samples=90, messages=90):
    engine = make_engine(database_url)
    try:
        return apply_retention(engine, RetentionDays(samples, messages), now)
    finally:
        engine.dispose()


def test_the_upgrade_keeps_every_row_and_the_job_moves_them_into_their_days(database_url):
    upgrade(database_url, revision="0020")
    with psycopg.connect(database_url) as conn:
        for seq, day in ((1, 0), (2, 1), (3, 1)):
            at = T0 + timedelta(days=day)
            conn.execute("""INSERT INTO ingested_messages (edge_id, epoch, seq, machine_id, received_at, historical,
                                sample_count, first_ts, last_ts) VALUES ('e1', 1, %s, 'm1', %s, false, 1, %s, %s)""",
                         (seq, at, at, at))
            conn.execute("INSERT INTO samples VALUES ('m1', %s, 'good', %s, 'e1', 1, %s)", (at, seq, seq))
        conn.execute("INSERT INTO edge_cursors (edge_id, epoch, seq) VALUES ('e1', 1, 2)")  # seq 3: taken in ahead of it
    upgrade(database_url)
    assert rows(database_url, "SELECT edge_id, epoch, seq FROM ingested_ahead") == [("e1", 1, 3)]
    assert rows(database_url, "SELECT relkind FROM pg_class WHERE relname IN ('samples', 'ingested_messages')") == [("p",), ("p",)]
    assert partitions(database_url, "samples") == ["samples_default"]
    assert rows(database_url, "SELECT count(*) FROM samples_default") == [(3,)]
    # migration 0022: the message's key is no longer a column of the samples, nor of their partitions
    assert rows(database_url, "SELECT attname FROM pg_attribute WHERE attrelid = 'samples_default'::regclass AND attnum > 0"
                              " AND NOT attisdropped ORDER BY attnum") == [("machine_id",), ("ts",), ("signal",), ("value",)]

    done = retain(database_url, T0 + timedelta(days=2))
    assert done.moved == 6 and done.dropped == [] and done.deleted == 0
    days = [f"{T0 + timedelta(days=n):%Y%m%d}" for n in range(6)]
    assert partitions(database_url, "samples") == ["samples_default", *(f"samples_p{day}" for day in days)]
    assert rows(database_url, "SELECT count(*) FROM samples_default") == [(0,)]
    assert rows(database_url, "SELECT seq, tableoid::regclass::text FROM ingested_messages ORDER BY seq") == [
        (1, f"ingested_messages_p{days[0]}"), (2, f"ingested_messages_p{days[1]}"), (3, f"ingested_messages_p{days[1]}")]
    assert retain(database_url, T0 + timedelta(days=2)) == ([], 0, [], 0), "a second round has nothing to do"


def test_old_days_go_and_a_redelivery_of_a_dropped_key_is_still_a_duplicate(database_url, tmp_path):
    prepared(database_url, tmp_path)
    retain(database_url, T0)  # the partitions of T0's day and after exist before ingest
    service = IngestService(database_url)
    try:
        # an edge's history, stamped five days before: it lands in the default partition, never refused
        service.ingest([incoming(1, [(-5 * DAY, "good", 5)], received=0)])
        assert rows(database_url, "SELECT count(*) FROM samples_default") == [(1,)]
        service.ingest([incoming(2, [(0, "good", 10)], received=1), incoming(3, [(1, "good", 15)], received=2)])
        service.ingest([incoming(4, [(2 * DAY, "good", 22)], received=2 * DAY)])

        done = retain(database_url, T0 + timedelta(days=2), samples=1, messages=1)
        day0 = f"{T0:%Y%m%d}"
        assert f"ingested_messages_p{day0}" in done.dropped and f"samples_p{day0}" in done.dropped
        assert done.deleted == 1 and rows(database_url, "SELECT count(*) FROM samples_default") == [(0,)]
        assert rows(database_url, "SELECT seq FROM ingested_messages ORDER BY seq") == [(4,)]
        assert rows(database_url, "SELECT pruned_epoch, pruned_seq FROM edge_cursors") == [(1, 3)]

        before = service.totals.duplicates
        service.ingest([incoming(2, [(1, "good", 15)], received=2 * DAY + 1)])  # the broker's redelivery, keyless now
        assert service.totals.duplicates == before + 1
        assert rows(database_url, "SELECT count(*) FROM dead_letters") == [(0,)]
    finally:
        service.close()
    with psycopg.connect(database_url) as conn:
        assert recorded_totals(conn)["m1"]["good"] == 17, "counts are kept whatever raw rows went"


def test_a_key_beyond_its_edge_s_cursor_is_kept(database_url, tmp_path):
    prepared(database_url, tmp_path)
    retain(database_url, T0)
    with psycopg.connect(database_url) as conn:  # a dead letter taken in again ahead of its edge, and an edge never heard
        for edge, seq in (("e1", 9), ("e2", 1)):
            conn.execute("""INSERT INTO ingested_messages (edge_id, epoch, seq, machine_id, received_at, historical,
                                sample_count) VALUES (%s, 1, %s, 'm1', %s, false, 1)""", (edge, seq, T0))
        conn.execute("INSERT INTO edge_cursors (edge_id, epoch, seq) VALUES ('e1', 1, 5)")
    done = retain(database_url, T0 + timedelta(days=3), messages=1)
    assert f"ingested_messages_p{T0:%Y%m%d}" in done.dropped
    assert rows(database_url, "SELECT edge_id, seq, tableoid::regclass::text FROM ingested_messages ORDER BY 1") == [
        ("e1", 9, "ingested_messages_default"), ("e2", 1, "ingested_messages_default")]
    assert rows(database_url, "SELECT pruned_seq FROM edge_cursors") == [(None,)]
    # the next round deletes nothing of them either
    assert retain(database_url, T0 + timedelta(days=3), messages=1).deleted == 0
    assert len(rows(database_url, "SELECT 1 FROM ingested_messages")) == 2


def test_zero_days_keeps_everything(database_url, tmp_path):
    prepared(database_url, tmp_path)
    retain(database_url, T0)
    with psycopg.connect(database_url) as conn:
        conn.execute("INSERT INTO samples VALUES ('m1', %s, 'good', 1)", (T0,))
    assert retain(database_url, datetime(2030, 1, 1, tzinfo=UTC), samples=0, messages=0).dropped == []
    assert rows(database_url, "SELECT count(*) FROM samples") == [(1,)]


def test_only_positions_that_can_have_a_key_are_looked_up(database_url, tmp_path):
    """A batch's new messages lie beyond their edge's cursor, where no key can be unless a dead letter was taken
    in again there: those alone are looked up beyond it (a look-up probes every day partition)."""
    prepared(database_url, tmp_path)
    engine = make_engine(database_url)
    try:
        with engine.begin() as connection:
            connection.execute(text("INSERT INTO edge_cursors (edge_id, epoch, seq) VALUES ('e1', 1, 5)"))
            taken = [IngestedMessage("e1", 1, seq, "m1", T0, False, 1, T0, T0, None, b"d") for seq in (5, 8)]
            copy_rows(connection, "ingested_messages", taken)
            assert set(store.find_ingested(connection, {("e1", 1, 5), ("e1", 1, 8)})) == {("e1", 1, 5)}
            store.raise_ahead(connection, taken[1:])
            assert set(store.find_ingested(connection, {("e1", 1, 5), ("e1", 1, 8), ("e1", 1, 9)})) == {
                ("e1", 1, 5), ("e1", 1, 8)}
            store.raise_ahead(connection, taken[:1])  # only rises
            assert rows_of(connection, "SELECT seq FROM ingested_ahead") == [(8,)]
    finally:
        engine.dispose()


def rows_of(connection, sql):
    return [tuple(row) for row in connection.execute(text(sql))]


def test_the_downgrade_puts_every_row_back_into_plain_tables(database_url, tmp_path):
    prepared(database_url, tmp_path)
    retain(database_url, T0)
    with psycopg.connect(database_url) as conn:
        for day in (-3, 0):  # one in the default partition, one in its day
            conn.execute("INSERT INTO samples VALUES ('m1', %s, 'good', %s)", (T0 + timedelta(days=day), day + 5))
            conn.execute("""INSERT INTO ingested_messages (edge_id, epoch, seq, machine_id, received_at, historical,
                                sample_count) VALUES ('e1', 1, %s, 'm1', %s, false, 1)""", (day + 5, T0 + timedelta(days=day)))
    command.downgrade(_config(database_url, None), "0020")
    assert rows(database_url, "SELECT relkind FROM pg_class WHERE relname IN ('samples', 'ingested_messages')") == [("r",), ("r",)]
    assert rows(database_url, "SELECT value FROM samples ORDER BY value") == rows(database_url, "SELECT seq FROM ingested_messages ORDER BY seq") == [(2,), (5,)]
    # the samples' key columns are back (migration 0022's downgrade), empty: the values are not restored
    assert rows(database_url, "SELECT count(*) FROM samples WHERE edge_id IS NULL AND epoch IS NULL AND seq IS NULL") == [(2,)]
    upgrade(database_url)
    assert rows(database_url, "SELECT count(*) FROM ingested_messages_default") == [(2,)]
