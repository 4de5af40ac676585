"""Narrower `samples` rows: the message's key (`edge_id`, `epoch`, `seq`) is no longer repeated on every sample.

The key of a message, with its machine and the period its samples were placed in (`first_ts`, `last_ts`), is in
`ingested_messages`; nothing that counts, costs or reviews reads a sample's key (counting works on the message
as it arrives, review on `counter_events`, which keep theirs). A sample row goes from about 125 to 92 bytes.

On plain PostgreSQL the columns go from the partitioned table and so from every day partition; on TimescaleDB
from the hypertable and its chunks, compressed ones too (neither column is a segment-by or order-by column).
Both only mark the columns dropped: no row is rewritten, the space comes back as rows are written and dropped.

Downgrade adds the columns back, nullable and empty: the old values are not restored.
"""

from kernel.db.migrations.ddl import run

revision = "0022"
down_revision = "0021"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("ALTER TABLE samples DROP COLUMN edge_id, DROP COLUMN epoch, DROP COLUMN seq")


def downgrade() -> None:
    run("ALTER TABLE samples ADD COLUMN edge_id text, ADD COLUMN epoch bigint, ADD COLUMN seq bigint")
