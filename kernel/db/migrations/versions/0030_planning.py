"""Planning's own tables: each item's planning parameters, and the forecasts MRP consumes.

`item_planning` holds what MRP needs beyond the item master: the lead time (purchase days for a bought item,
the fixed part for a made one), the planning safety stock (when null the item's own `safety_stock` counts)
and the lot-sizing rule with its modifiers. `planning_forecasts` are independent demand per item and bucket
start, consumed by the sales orders of the same bucket.
"""

from kernel.db.migrations.ddl import run

revision = "0030"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE item_planning (
        item_id         text PRIMARY KEY REFERENCES items (item_id),
        lead_time_days  integer CHECK (lead_time_days >= 0),
        safety_stock    numeric CHECK (safety_stock >= 0),
        lot_rule        text NOT NULL DEFAULT 'lot_for_lot'
                        CHECK (lot_rule IN ('lot_for_lot', 'fixed', 'period', 'min_multiple')),
        lot_quantity    numeric CHECK (lot_quantity > 0),
        lot_periods     integer NOT NULL DEFAULT 1 CHECK (lot_periods >= 1),
        lot_minimum     numeric NOT NULL DEFAULT 0 CHECK (lot_minimum >= 0),
        lot_multiple    numeric CHECK (lot_multiple > 0),
        lot_maximum     numeric CHECK (lot_maximum > 0),
        updated_at      timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE planning_forecasts (
        id              bigserial PRIMARY KEY,
        item_id         text NOT NULL REFERENCES items (item_id),
        bucket_start    date NOT NULL,
        quantity        numeric NOT NULL CHECK (quantity >= 0),
        created_at      timestamptz NOT NULL DEFAULT now()
    )""")
    run("CREATE INDEX planning_forecasts_item ON planning_forecasts (item_id, bucket_start)")


def downgrade() -> None:
    run("DROP TABLE planning_forecasts")
    run("DROP TABLE item_planning")
