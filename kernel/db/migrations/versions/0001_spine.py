"""Spine: machine registry, ingest bookkeeping, raw samples, production intervals, states.

Time-series tables are hypertables when TimescaleDB is present (compressed after a week; raw
samples kept 90 days), plain tables with BRIN indexes otherwise. Counts are BIGINT, energy whole Wh
BIGINT: nothing here is REAL. Queries bucket time through mes_bucket(), which is time_bucket on
TimescaleDB and date_bin (Monday origin, same buckets) on plain PostgreSQL.
"""

from kernel.db.migrations.ddl import autocommit_block, run, use_timescale

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None

TIME_SERIES = {
    # table: (time column, segment-by column for compression)
    "samples": ("ts", "machine_id"),
    "production_intervals": ("end_ts", "machine_id"),
    "machine_states": ("ts", "machine_id"),
    "counter_events": ("ts", "machine_id"),
}


def upgrade() -> None:
    timescale = use_timescale()
    if timescale:
        run("CREATE EXTENSION IF NOT EXISTS timescaledb")

    run("""
    CREATE TABLE machines (
        machine_id      text PRIMARY KEY,
        site            text NOT NULL,
        area            text NOT NULL,
        line            text NOT NULL,
        protocol        text NOT NULL CHECK (protocol IN ('opcua', 'modbus')),
        ideal_cycle_s   numeric NOT NULL CHECK (ideal_cycle_s > 0),
        registered_at   timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE machine_counters (
        machine_id      text NOT NULL REFERENCES machines,
        counter         text NOT NULL CHECK (counter IN ('good', 'scrap', 'energy_wh')),
        width_bits      smallint NOT NULL CHECK (width_bits IN (16, 32, 64)),
        max_rate_per_s  numeric NOT NULL CHECK (max_rate_per_s > 0),
        PRIMARY KEY (machine_id, counter)
    )""")
    run("""
    CREATE TABLE edge_cursors (
        edge_id         text PRIMARY KEY,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL,
        updated_at      timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE ingested_messages (
        edge_id         text NOT NULL,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL,
        machine_id      text NOT NULL,
        received_at     timestamptz NOT NULL,
        historical      boolean NOT NULL,
        sample_count    integer NOT NULL,
        PRIMARY KEY (edge_id, epoch, seq)
    )""")
    run("CREATE INDEX ingested_messages_received_brin ON ingested_messages USING brin (received_at)")
    run("""
    CREATE TABLE counter_state (
        machine_id      text NOT NULL REFERENCES machines,
        counter         text NOT NULL,
        value           bigint NOT NULL,
        ts              timestamptz NOT NULL,
        PRIMARY KEY (machine_id, counter)
    )""")
    run("""
    CREATE TABLE machine_live (
        machine_id      text PRIMARY KEY REFERENCES machines,
        state_code      integer,
        state_ts        timestamptz,
        fault_code      integer,
        fault_ts        timestamptz,
        last_seen       timestamptz NOT NULL
    )""")
    run("""
    CREATE TABLE edge_status (
        edge_id         text PRIMARY KEY,
        online          boolean NOT NULL,
        epoch           bigint,
        machines        text[] NOT NULL DEFAULT '{}',
        changed_at      timestamptz NOT NULL
    )""")
    run("""
    CREATE TABLE dead_letters (
        id              bigserial PRIMARY KEY,
        received_at     timestamptz NOT NULL,
        topic           text NOT NULL,
        payload         bytea NOT NULL,
        reason          text NOT NULL
    )""")
    run("CREATE INDEX dead_letters_received ON dead_letters (received_at)")

    run("""
    CREATE TABLE samples (
        machine_id      text NOT NULL,
        ts              timestamptz NOT NULL,
        signal          text NOT NULL,
        value           bigint NOT NULL,
        edge_id         text NOT NULL,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL
    )""")
    run("""
    CREATE TABLE production_intervals (
        machine_id      text NOT NULL,
        start_ts        timestamptz NOT NULL,
        end_ts          timestamptz NOT NULL,
        good            bigint NOT NULL CHECK (good >= 0),
        scrap           bigint NOT NULL CHECK (scrap >= 0),
        energy_wh       bigint NOT NULL CHECK (energy_wh >= 0),
        edge_id         text NOT NULL,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL,
        CHECK (start_ts <= end_ts),
        PRIMARY KEY (edge_id, epoch, seq, end_ts)
    )""")
    run("""
    CREATE TABLE machine_states (
        machine_id      text NOT NULL,
        ts              timestamptz NOT NULL,
        state_code      integer,
        fault_code      integer,
        edge_id         text NOT NULL,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL
    )""")
    run("""
    CREATE TABLE counter_events (
        machine_id      text NOT NULL,
        counter         text NOT NULL,
        ts              timestamptz NOT NULL,
        kind            text NOT NULL,
        previous_value  bigint,
        value           bigint NOT NULL,
        delta           bigint NOT NULL,
        quarantined     bigint NOT NULL,
        reason          text NOT NULL,
        edge_id         text NOT NULL,
        epoch           bigint NOT NULL,
        seq             bigint NOT NULL,
        review          text NOT NULL DEFAULT 'none' CHECK (review IN ('none', 'pending', 'accepted', 'rejected'))
    )""")
    run("CREATE INDEX samples_machine_ts ON samples (machine_id, ts DESC)")
    run("CREATE INDEX production_intervals_machine_ts ON production_intervals (machine_id, end_ts DESC)")
    run("CREATE INDEX machine_states_machine_ts ON machine_states (machine_id, ts DESC)")
    run("CREATE INDEX counter_events_pending ON counter_events (machine_id, ts) WHERE review = 'pending'")

    if timescale:
        for table, (time_column, segment) in TIME_SERIES.items():
            run(f"SELECT create_hypertable('{table}', by_range('{time_column}', INTERVAL '1 day'), if_not_exists => TRUE)")
            run(f"ALTER TABLE {table} SET (timescaledb.compress, timescaledb.compress_segmentby = '{segment}', "
                f"timescaledb.compress_orderby = '{time_column} DESC')")
            run(f"SELECT add_compression_policy('{table}', INTERVAL '7 days')")
        run("SELECT add_retention_policy('samples', INTERVAL '90 days')")
        run("""
        CREATE FUNCTION mes_bucket(width interval, ts timestamptz) RETURNS timestamptz
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT time_bucket(width, ts) $$""")
    else:
        for table, (time_column, _) in TIME_SERIES.items():
            run(f"CREATE INDEX {table}_{time_column}_brin ON {table} USING brin ({time_column})")
        run("""
        CREATE FUNCTION mes_bucket(width interval, ts timestamptz) RETURNS timestamptz
            LANGUAGE sql IMMUTABLE PARALLEL SAFE AS $$ SELECT date_bin(width, ts, TIMESTAMPTZ '2000-01-03 00:00:00+00') $$""")

    hourly = """
        SELECT {bucket} AS bucket, machine_id,
               sum(good)::bigint AS good, sum(scrap)::bigint AS scrap, sum(energy_wh)::bigint AS energy_wh,
               count(*) AS intervals
        FROM production_intervals
        GROUP BY 1, 2"""
    if timescale:
        with autocommit_block():
            run("CREATE MATERIALIZED VIEW production_hourly WITH (timescaledb.continuous, timescaledb.materialized_only = false) AS"
                + hourly.format(bucket="time_bucket(INTERVAL '1 hour', end_ts)") + " WITH NO DATA")
            run("SELECT add_continuous_aggregate_policy('production_hourly', start_offset => INTERVAL '3 days', "
                "end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '15 minutes')")
    else:
        run("CREATE VIEW production_hourly AS" + hourly.format(bucket="mes_bucket(INTERVAL '1 hour', end_ts)"))


def downgrade() -> None:
    raise NotImplementedError("the first migration is not reversible: drop the database instead")
