"""Where in time each ingested message's samples were placed, how far ahead a clock was, and its digest.

`first_ts`/`last_ts`: the earliest and latest instant the message's samples were placed at (the
core's placement rule, core/rules/placement.py): what a message covers, for judging whether a machine
was heard from in a period, whenever the message arrived. `clock_ahead_s`: set when a sample's
timestamp was further ahead of the core's clock than the allowed skew and was placed at the receipt:
the largest such lead, in seconds. `digest`: of the message's content (core/ingest/plan.py), which
tells a redelivery (same) from a publisher reusing the position (other: dead-lettered as a conflicting
duplicate). Rows written before this migration have them NULL.
"""

from kernel.db.migrations.ddl import run

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    ALTER TABLE ingested_messages
        ADD COLUMN first_ts      timestamptz,
        ADD COLUMN last_ts       timestamptz,
        ADD COLUMN clock_ahead_s numeric,
        ADD COLUMN digest        bytea""")
    run("CREATE INDEX ingested_messages_machine_last_ts ON ingested_messages (machine_id, last_ts)")


def downgrade() -> None:
    run("DROP INDEX ingested_messages_machine_last_ts")
    run("ALTER TABLE ingested_messages DROP COLUMN first_ts, DROP COLUMN last_ts, DROP COLUMN clock_ahead_s, DROP COLUMN digest")
