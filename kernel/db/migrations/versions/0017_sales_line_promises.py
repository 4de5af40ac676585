"""The promise a sales-order line was given when the order was entered (ATP first, CTP beyond): its date, and
whether it came from stock or a plan (`atp`, `make`, `buy`, `none`). Kept so that on-time delivery is judged
against the promise as well as the due date (planning's KPIs); lines entered before have none."""

from kernel.db.migrations.ddl import run

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("ALTER TABLE sales_order_lines ADD COLUMN promised date, ADD COLUMN promise_source text")


def downgrade() -> None:
    run("ALTER TABLE sales_order_lines DROP COLUMN promised, DROP COLUMN promise_source")
