"""Each machine's connection as its edge last reported it (`EdgeStatus.connections`): ok, unreachable,
bad_config or stale, the detail (the node or register and the status code), since when, the readings the
edge could not use per reason; which edge said so, in which epoch, at what time of its clock, and when the
core received it. One row per machine, replaced by the ingest only with a newer report
(`core.rules.connections`); what the API and the boards show of it, an offline edge included, is
`mes.rules.connections`.
"""

from kernel.db.migrations.ddl import run

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE machine_connections (
        machine_id      text PRIMARY KEY REFERENCES machines (machine_id),
        status          text NOT NULL CHECK (status IN ('ok', 'unreachable', 'bad_config', 'stale')),
        detail          text NOT NULL,
        since           timestamptz,
        unusable        jsonb NOT NULL DEFAULT '{}',
        edge_id         text NOT NULL,
        epoch           bigint,
        reported_at     timestamptz,
        received_at     timestamptz NOT NULL
    )""")


def downgrade() -> None:
    run("DROP TABLE machine_connections")
