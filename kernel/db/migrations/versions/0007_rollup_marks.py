"""Where the board rollups must be recomputed from.

Whatever writes data about the past (an ingest batch with samples from an edge that kept them through
an outage, or a backlog the broker kept while the core was down; a reason given to an old stop) lowers
`since` to the earliest instant it changed, in its own transaction. The rollup worker takes the mark and
recomputes from there, so no hour stays stale however late its data came. One row at most.
"""

from kernel.db.migrations.ddl import run

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE rollup_marks (
        singleton   boolean PRIMARY KEY DEFAULT true CHECK (singleton),
        since       timestamptz NOT NULL
    )""")


def downgrade() -> None:
    run("DROP TABLE rollup_marks")
