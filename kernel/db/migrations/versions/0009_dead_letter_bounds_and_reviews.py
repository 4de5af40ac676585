"""Dead letters keep their size and hash (the stored payload may be cut), and both review queues keep
who decided what, when and why.

`dead_letters.size` and `sha256`: of the payload as received; `payload` holds at most its first 64 KiB
(core/ingest/rows.py), so a 10 MB message costs the table 64 KiB. `edge_id`/`machine_id`: read from the
topic or payload where they could be, for filtering. `review`: `pending` until someone re-ingests the
message (after fixing the plant file) or dismisses it; quarantined `counter_events` are accepted or
rejected (`counter_events.id` names one). Either decision records the principal, the instant and the reason.
"""

from kernel.db.migrations.ddl import run

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    ALTER TABLE dead_letters
        ADD COLUMN size          bigint,
        ADD COLUMN sha256        bytea,
        ADD COLUMN edge_id       text,
        ADD COLUMN machine_id    text,
        ADD COLUMN review        text NOT NULL DEFAULT 'pending'
                                 CHECK (review IN ('pending', 'reingested', 'dismissed')),
        ADD COLUMN reviewed_by   text,
        ADD COLUMN reviewed_at   timestamptz,
        ADD COLUMN review_reason text""")
    run("CREATE INDEX dead_letters_pending ON dead_letters (received_at) WHERE review = 'pending'")
    run("""
    ALTER TABLE counter_events
        ADD COLUMN id            bigserial,
        ADD COLUMN reviewed_by   text,
        ADD COLUMN reviewed_at   timestamptz,
        ADD COLUMN review_reason text""")


def downgrade() -> None:
    run("ALTER TABLE counter_events DROP COLUMN id, DROP COLUMN reviewed_by, DROP COLUMN reviewed_at, DROP COLUMN review_reason")
    run("DROP INDEX dead_letters_pending")
    run("""ALTER TABLE dead_letters DROP COLUMN size, DROP COLUMN sha256, DROP COLUMN edge_id, DROP COLUMN machine_id,
           DROP COLUMN review, DROP COLUMN reviewed_by, DROP COLUMN reviewed_at, DROP COLUMN review_reason""")
