"""Retention: `samples` and `ingested_messages` can be dropped by age, on plain PostgreSQL too.

On plain PostgreSQL both become tables partitioned by day (`samples` by `ts`, `ingested_messages` by
`received_at`), each with a default partition: a row whose day has no partition yet (an edge's history days
old, a clock that stepped) lands there and is never refused. The table as it was becomes that default
partition, so the upgrade copies nothing; the retention job (core.services.retention) creates the days ahead,
moves the default partition's rows into their days and drops the days older than MES_RETENTION_* allow. On
TimescaleDB `samples` stays a hypertable and `ingested_messages` becomes one; the job drops their chunks, so
the settings hold on both (the fixed 90-day policy of 0001 goes).

`ingested_messages` loses its primary key: a key of a partitioned table must hold the partition column, which
would make it no key of a position at all. A position is ingested once because the batch that ingests it
looks its key up under its machines' locks (core.ingest.store), as before; the index stays.

Each edge gets a key watermark (`edge_cursors.pruned_epoch`, `pruned_seq`): the furthest position whose key
the job dropped, raised in the transaction that drops it (core.rules.sequencing). A key lookup probes every day
partition, so the ingest looks up only positions that can have a key: at or below the edge's cursor, or at or
below the furthest dead letter taken in again ahead of it (`ingested_ahead`, filled here from the keys stored).

What is kept forever, because a count, a cost or a stock figure is derived from it: production_intervals,
production_attributions (work-order counts, auto-complete, costing, backflush's `source_ref`),
production_hourly, machine_states and counter_events (downtime and the review of quarantined steps), the stock
ledger. docs/deploy.md, "Retention".
"""

from kernel.db.migrations.ddl import run, use_timescale

revision = "0021"
down_revision = "0020"
branch_labels = None
depends_on = None

PARTITIONED = {"samples": "ts", "ingested_messages": "received_at"}  # table: the day it is kept by

INDEXES = {
    "samples": {"samples_machine_ts": "(machine_id, ts DESC)", "samples_ts_brin": "USING brin (ts)"},
    "ingested_messages": {
        "ingested_messages_key": "(edge_id, epoch, seq)",
        "ingested_messages_received_brin": "USING brin (received_at)",
        "ingested_messages_machine_received": "(machine_id, received_at)",
        "ingested_messages_machine_last_ts": "(machine_id, last_ts)",
    },
}


def upgrade() -> None:
    run("ALTER TABLE edge_cursors ADD COLUMN pruned_epoch bigint, ADD COLUMN pruned_seq bigint")
    run("""
    CREATE TABLE ingested_ahead (
        edge_id         text PRIMARY KEY,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL
    )""")
    # the keys dead letters taken in again left beyond their edges' cursors, before this table kept them
    run("""
    INSERT INTO ingested_ahead
    SELECT DISTINCT ON (m.edge_id) m.edge_id, m.epoch, m.seq FROM ingested_messages m LEFT JOIN edge_cursors c USING (edge_id)
    WHERE c.edge_id IS NULL OR (m.epoch, m.seq) > (c.epoch, c.seq)
    ORDER BY m.edge_id, m.epoch DESC, m.seq DESC""")
    if use_timescale():
        run("SELECT remove_retention_policy('samples', if_exists => TRUE)")
        run("ALTER TABLE ingested_messages DROP CONSTRAINT ingested_messages_pkey")
        run("CREATE INDEX ingested_messages_key ON ingested_messages (edge_id, epoch, seq)")
        run("DROP INDEX ingested_messages_received_brin")
        run("SELECT create_hypertable('ingested_messages', by_range('received_at', INTERVAL '1 day'), migrate_data => TRUE)")
        return
    for table, column in PARTITIONED.items():
        run(f"ALTER TABLE {table} RENAME TO {table}_default")
        for index in INDEXES[table]:
            run(f"ALTER INDEX IF EXISTS {index} RENAME TO {index.replace(table, f'{table}_default', 1)}")
        run(f"CREATE TABLE {table} (LIKE {table}_default INCLUDING DEFAULTS INCLUDING CONSTRAINTS) PARTITION BY RANGE ({column})")
        run(f"ALTER TABLE {table} ATTACH PARTITION {table}_default DEFAULT")
        # the default's indexes of the same definition become the partitions' own: nothing is rebuilt for them
        for index, definition in INDEXES[table].items():
            run(f"CREATE INDEX {index} ON {table} {definition}")
    run("ALTER TABLE ingested_messages_default DROP CONSTRAINT ingested_messages_pkey")


def downgrade() -> None:
    timescale = use_timescale()
    for table in PARTITIONED:
        run(f"CREATE TABLE {table}_kept (LIKE {table} INCLUDING DEFAULTS INCLUDING CONSTRAINTS)")
        run(f"INSERT INTO {table}_kept SELECT * FROM {table}")
        run(f"DROP TABLE {table}")
        run(f"ALTER TABLE {table}_kept RENAME TO {table}")
    run("ALTER TABLE ingested_messages ADD PRIMARY KEY (edge_id, epoch, seq)")
    for table, indexes in INDEXES.items():
        for index, definition in indexes.items():
            if index != "ingested_messages_key":
                run(f"CREATE INDEX {index} ON {table} {definition}")
    if timescale:
        run("SELECT create_hypertable('samples', by_range('ts', INTERVAL '1 day'), migrate_data => TRUE)")
        run("ALTER TABLE samples SET (timescaledb.compress, timescaledb.compress_segmentby = 'machine_id', "
            "timescaledb.compress_orderby = 'ts DESC')")
        run("SELECT add_compression_policy('samples', INTERVAL '7 days')")
        run("SELECT add_retention_policy('samples', INTERVAL '90 days')")
    run("DROP TABLE ingested_ahead")
    run("ALTER TABLE edge_cursors DROP COLUMN pruned_epoch, DROP COLUMN pruned_seq")
