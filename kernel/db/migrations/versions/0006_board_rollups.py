"""Hourly rollups that boards read: OEE sums and downtime by reason, per machine and hour.

They are caches, recomputed by the same rules that answer the API (`mes.services.rollups`: state
intervals → `mes.rules.oee.tally`, reasons → `mes.services.downtime.explain`), never a source for
anything else. Each row holds additive sums, so any range of hours, machines or lines adds up, and the
ratios (availability, performance, quality, OEE) are computed from the sums, never averaged. Seconds
are NUMERIC (microsecond-exact), counts BIGINT.
"""

from kernel.db.migrations.ddl import run

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE oee_hourly (
        machine_id              text NOT NULL REFERENCES machines,
        bucket                  timestamptz NOT NULL,
        planned_production_s    numeric NOT NULL,
        planned_downtime_s      numeric NOT NULL,
        unknown_s               numeric NOT NULL,
        run_s                   numeric NOT NULL,
        stopped_s               numeric NOT NULL,
        breakdown_s             numeric NOT NULL,
        microstop_s             numeric NOT NULL,
        failures                integer NOT NULL,
        microstops              integer NOT NULL,
        ideal_s                 numeric NOT NULL,
        total                   bigint NOT NULL,
        good                    bigint NOT NULL,
        energy_wh               numeric NOT NULL,
        refreshed_at            timestamptz NOT NULL,
        PRIMARY KEY (machine_id, bucket)
    )""")
    run("CREATE INDEX oee_hourly_bucket ON oee_hourly (bucket)")
    run("""
    CREATE TABLE downtime_hourly (
        machine_id              text NOT NULL REFERENCES machines,
        bucket                  timestamptz NOT NULL,
        reason_code             text NOT NULL,          -- 'unassigned' when no reason is known
        stop_kind               text NOT NULL CHECK (stop_kind IN ('microstop', 'breakdown', 'setup', 'idle', 'blocked', 'starved')),
        stops                   integer NOT NULL,       -- stops that began in this hour
        seconds                 numeric NOT NULL,       -- their time inside this hour's planned production
        PRIMARY KEY (machine_id, bucket, reason_code, stop_kind)
    )""")
    run("CREATE INDEX downtime_hourly_bucket ON downtime_hourly (bucket)")


def downgrade() -> None:
    run("DROP TABLE downtime_hourly")
    run("DROP TABLE oee_hourly")
