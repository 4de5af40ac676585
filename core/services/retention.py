"""The retention job: `samples` and `ingested_messages` kept for MES_RETENTION_SAMPLES_DAYS and
MES_RETENTION_MESSAGES_DAYS, on plain PostgreSQL and TimescaleDB alike (migration 0021, docs/deploy.md "Retention").

On plain PostgreSQL each table is partitioned by UTC day (core.rules.retention): a round creates today and the
days ahead, moves the rows the default partition caught (an edge's history, a clock that stepped) into their
days, drops the days before the cutoff and deletes the default's rows before it. On TimescaleDB it drops the
chunks before the cutoff. Each step is a transaction of its own: a failed one is tried again next round.

Before message keys go, each edge's key watermark rises to the furthest key dropped, in the same transaction,
and the keys beyond its cursor (a dead letter taken in again ahead of its edge) are kept (core.rules.sequencing):
the table's partitions and the watermark are locked only for that moment, after the rows were read under a
lock that blocks only writes to the day that goes.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, date, datetime, timedelta
from functools import partial
from typing import NamedTuple

from sqlalchemy import text
from sqlalchemy.engine import Connection, Engine

from core.rules import retention
from core.rules.sequencing import EdgeCursor, raised_watermark
from kernel.db.models import make_engine
from kernel.logs import get_logger

log = get_logger("core.retention")

TABLES = {"samples": "ts", "ingested_messages": "received_at"}  # table: the column its day is


class RetentionDays(NamedTuple):
    """Days each table is kept (0: forever): MES_RETENTION_SAMPLES_DAYS, MES_RETENTION_MESSAGES_DAYS."""

    samples: int
    ingested_messages: int


class Retained(NamedTuple):
    """What a round did, for its log line and the tests."""

    created: list[str]
    moved: int  # rows taken out of a default partition into their day
    dropped: list[str]  # partitions (or, on TimescaleDB, tables whose chunks) dropped
    deleted: int  # rows deleted from a default partition


def apply_retention(engine: Engine, days: RetentionDays, now: datetime) -> Retained:
    done = Retained([], 0, [], 0)
    with engine.connect() as connection:
        partitioned = connection.execute(text("SELECT relkind = 'p' FROM pg_class WHERE oid = 'samples'::regclass")).scalar()
    for table, column in TABLES.items():
        before = retention.cutoff(now, getattr(days, table))
        if not partitioned:
            if before is not None:
                with engine.begin() as connection:
                    _drop_rows(connection, table, table, before, partial(_drop_chunks, table=table, column=column, before=before))
                done.dropped.append(table)
            continue
        for day in retention.days_ahead(now):
            with engine.begin() as connection:
                if _create_day(connection, table, column, day):
                    done.created.append(_partition(table, day))
        for day in _default_days(engine, table, column, before):
            with engine.begin() as connection:
                done = done._replace(moved=done.moved + _move_out_of_default(connection, table, column, day))
                done.created.append(_partition(table, day))
        for name, day in _partitions(engine, table):
            if retention.droppable(day, before):
                with engine.begin() as connection:
                    _drop_rows(connection, table, name, before, partial(_drop_table, name=name), whole=True)
                done.dropped.append(name)
        if before is not None:
            with engine.begin() as connection:
                deleted = _drop_rows(connection, table, f"{table}_default", before,
                                     partial(_delete_before, relation=f"{table}_default", column=column, before=before))
                done = done._replace(deleted=done.deleted + deleted)
    return done


def _drop_chunks(connection: Connection, *, table: str, column: str, before: datetime) -> int:
    """TimescaleDB: the chunks before `before` (a UTC midnight, where 1-day chunks begin), and any row of a chunk
    that straddles it (a chunk interval someone changed)."""
    connection.execute(text("SELECT drop_chunks(CAST(:table AS regclass), older_than => :before)"), {"table": table, "before": before})
    return _delete_before(connection, relation=table, column=column, before=before)


def _drop_table(connection: Connection, *, name: str) -> int:
    connection.execute(text(f"DROP TABLE {name}"))
    return 0


def _delete_before(connection: Connection, *, relation: str, column: str, before: datetime) -> int:
    return connection.execute(text(f"DELETE FROM {relation} WHERE {column} < :before"), {"before": before}).rowcount


def _partition(table: str, day: date) -> str:
    return f"{table}_p{day:%Y%m%d}"


def _partitions(engine: Engine, table: str) -> list[tuple[str, date]]:
    """The table's day partitions (the job names them), oldest first."""
    with engine.connect() as connection:
        names = connection.execute(text(
            """SELECT c.relname FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
               WHERE i.inhparent = CAST(:table AS regclass) AND c.relname LIKE :pattern ORDER BY c.relname"""),
            {"table": table, "pattern": f"{table}\\_p%"}).scalars()
        return [(name, datetime.strptime(name.rsplit("_p", 1)[1], "%Y%m%d").date()) for name in names]


def _create_day(connection: Connection, table: str, column: str, day: date) -> bool:
    exists = connection.execute(text("SELECT to_regclass(:name) IS NOT NULL"), {"name": _partition(table, day)}).scalar()
    if exists:
        return False
    _move_out_of_default(connection, table, column, day)
    return True


def _default_days(engine: Engine, table: str, column: str, before: datetime | None) -> list[date]:
    """The days the default partition holds rows of that are kept: each gets its partition."""
    with engine.connect() as connection:
        return list(connection.execute(text(
            f"""SELECT DISTINCT CAST(({column} AT TIME ZONE 'UTC') AS date) FROM {table}_default
                WHERE CAST(:before AS timestamptz) IS NULL OR {column} >= :before ORDER BY 1"""),
            {"before": before}).scalars())


def _move_out_of_default(connection: Connection, table: str, column: str, day: date) -> int:
    """The day's partition created, with the default's rows of that day moved into it: a partition cannot be
    created while the default holds rows of its range. The table is locked first, whole: creating a partition
    locks the parent, and a batch that holds it and writes into the default must not wait for a lock taken before."""
    start = retention.day_start(day)
    bounds = {"start": start, "end": start + timedelta(days=1)}
    connection.execute(text(f"LOCK TABLE {table} IN ACCESS EXCLUSIVE MODE"))
    connection.execute(text(
        f"""CREATE TEMP TABLE moving ON COMMIT DROP AS
            WITH moved AS (DELETE FROM {table}_default WHERE {column} >= :start AND {column} < :end RETURNING *)
            SELECT * FROM moved"""), bounds)
    connection.execute(text(
        f"CREATE TABLE {_partition(table, day)} PARTITION OF {table} FOR VALUES FROM ('{start.isoformat()}') "
        f"TO ('{bounds['end'].isoformat()}')"))
    return connection.execute(text(f"INSERT INTO {table} SELECT * FROM moving")).rowcount


def _drop_rows(connection: Connection, table: str, relation: str, before: datetime, drop: Callable[[Connection], int],
               *, whole: bool = False) -> int:
    """`drop(connection)` removes `relation`'s rows before `before` (`whole`: the relation itself) and says how many
    rows it deleted; for message keys, the watermarks rise first and the keys that stay are put back. Returns the
    rows deleted for good (0 for a whole relation: its rows are not counted)."""
    if table != "ingested_messages":
        return drop(connection)
    where = {"before": before}
    # the rows read here cannot change until the commit (a taken-in dead letter could add one of an old day)
    connection.execute(text(f"LOCK TABLE {relation} IN SHARE MODE"))
    # core.rules.sequencing.prunable: a key at or below its edge's cursor may go, the others are kept
    furthest = connection.execute(text(
        f"""SELECT DISTINCT ON (m.edge_id) m.edge_id, m.epoch, m.seq FROM {relation} m JOIN edge_cursors c USING (edge_id)
            WHERE m.received_at < :before AND (m.epoch, m.seq) <= (c.epoch, c.seq)
            ORDER BY m.edge_id, m.epoch DESC, m.seq DESC"""), where).all()
    if not furthest and not whole:
        return 0  # nothing may go: the rows before the cutoff are all kept ones, left where they are
    connection.execute(text(
        f"""CREATE TEMP TABLE kept_keys ON COMMIT DROP AS
            SELECT m.* FROM {relation} m LEFT JOIN edge_cursors c USING (edge_id)
            WHERE m.received_at < :before AND (c.edge_id IS NULL OR (m.epoch, m.seq) > (c.epoch, c.seq))"""), where)
    # now every reader of the keys waits until the watermarks and the drop commit together (find_pruned)
    connection.execute(text("LOCK TABLE ingested_messages IN ACCESS EXCLUSIVE MODE"))
    watermarks = {edge: EdgeCursor(epoch, seq) if epoch is not None else None
                  for edge, epoch, seq in connection.execute(text(
                      "SELECT edge_id, pruned_epoch, pruned_seq FROM edge_cursors WHERE edge_id = ANY(:edges) FOR UPDATE"),
                      {"edges": [row.edge_id for row in furthest]})}
    raised = [(edge, raised_watermark(watermarks.get(edge), EdgeCursor(epoch, seq))) for edge, epoch, seq in furthest]
    if raised:
        connection.execute(text("UPDATE edge_cursors SET pruned_epoch = :epoch, pruned_seq = :seq WHERE edge_id = :edge"),
                           [{"edge": edge, "epoch": mark.epoch, "seq": mark.seq} for edge, mark in raised if mark is not None])
    deleted = drop(connection)
    put_back = connection.execute(text("INSERT INTO ingested_messages SELECT * FROM kept_keys")).rowcount
    return 0 if whole else deleted - put_back


class Retention:
    """The core's job (app/core_process.py): a round every MES_RETENTION_EVERY_S, in connections of its own."""

    def __init__(self, database_url: str, days: RetentionDays):
        self.engine = make_engine(database_url)
        self.days = days

    def round(self) -> None:
        done = apply_retention(self.engine, self.days, datetime.now(UTC))
        if done.created or done.moved or done.dropped or done.deleted:
            log.info("retention", created=done.created, moved=done.moved, dropped=done.dropped, deleted=done.deleted)

    def close(self) -> None:
        self.engine.dispose()
