"""`production_hourly` becomes a table the writers of production intervals keep, in their own transactions.

It was a view over every production interval on plain PostgreSQL, so a board's hourly query scanned the whole
history (docs/benchmarks.md, boards: 10× the history, several times slower), and a continuous aggregate on
TimescaleDB, which needed refreshing whenever late data landed. Now each write of intervals adds its hours
(`core.rules.hourly`, `core.ingest.store.write_intervals`): the same columns, exact at every commit, a few rows
per machine and hour on both engines. Filled here from the intervals already stored.
"""

from kernel.db.migrations.ddl import run

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    DO $$ BEGIN
        -- a continuous aggregate is dropped as a materialized view; the catalog exists only with TimescaleDB
        IF to_regclass('timescaledb_information.continuous_aggregates') IS NOT NULL THEN
            IF EXISTS (SELECT FROM timescaledb_information.continuous_aggregates WHERE view_name = 'production_hourly') THEN
                DROP MATERIALIZED VIEW production_hourly;
            END IF;
        END IF;
        DROP VIEW IF EXISTS production_hourly;
    END $$""")
    run("""
    CREATE TABLE production_hourly (
        bucket          timestamptz NOT NULL,
        machine_id      text NOT NULL,
        good            bigint NOT NULL,
        scrap           bigint NOT NULL,
        energy_wh       bigint NOT NULL,
        intervals       bigint NOT NULL,
        PRIMARY KEY (machine_id, bucket)
    )""")
    run("CREATE INDEX production_hourly_bucket ON production_hourly (bucket)")
    run("""
    INSERT INTO production_hourly (bucket, machine_id, good, scrap, energy_wh, intervals)
    SELECT mes_bucket(INTERVAL '1 hour', end_ts), machine_id, sum(good), sum(scrap), sum(energy_wh), count(*)
    FROM production_intervals GROUP BY 1, 2""")


def downgrade() -> None:
    """Back to the view, on either engine (a view reads the same rows as the continuous aggregate did)."""
    run("DROP TABLE production_hourly")
    run("""
    CREATE VIEW production_hourly AS
        SELECT mes_bucket(INTERVAL '1 hour', end_ts) AS bucket, machine_id,
               sum(good)::bigint AS good, sum(scrap)::bigint AS scrap, sum(energy_wh)::bigint AS energy_wh,
               count(*) AS intervals
        FROM production_intervals
        GROUP BY 1, 2""")
