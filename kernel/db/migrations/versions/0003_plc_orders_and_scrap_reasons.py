"""The PLC's own order id as dispatch windows, and scrap classified by reason.

A PLC window may name an order that cannot count (unknown here, not released, closed): it keeps the
id the PLC reported and why it counts for no order, and its units go to the unassigned bucket.
"""

from kernel.db.migrations.ddl import run

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("ALTER TABLE machine_live ADD COLUMN plc_order text, ADD COLUMN plc_order_ts timestamptz")
    run("ALTER TABLE dispatches ALTER COLUMN work_order_id DROP NOT NULL")
    run("ALTER TABLE dispatches ADD COLUMN reported_order text, ADD COLUMN rejected_reason text")
    run("""ALTER TABLE dispatches ADD CONSTRAINT dispatches_order_named CHECK (
               (source = 'api' AND work_order_id IS NOT NULL AND reported_order IS NULL)
            OR (source = 'plc' AND reported_order IS NOT NULL AND (work_order_id IS NULL) = (rejected_reason IS NOT NULL)))""")
    run("""
    CREATE TABLE scrap_reasons (
        code                text PRIMARY KEY CHECK (code ~ '^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$'),
        description         text NOT NULL,
        active              boolean NOT NULL DEFAULT true
    )""")
    run("""
    CREATE TABLE scrap_classifications (
        id                  bigserial PRIMARY KEY,
        work_order_id       text NOT NULL REFERENCES work_orders,
        reason_code         text NOT NULL REFERENCES scrap_reasons,
        quantity            bigint NOT NULL CHECK (quantity <> 0),
        comment             text,
        actor               text,
        ts                  timestamptz NOT NULL DEFAULT now()
    )""")
    run("CREATE INDEX scrap_classifications_work_order ON scrap_classifications (work_order_id)")


def downgrade() -> None:
    raise NotImplementedError("drop the database instead")
