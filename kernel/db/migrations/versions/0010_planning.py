"""Planning's own tables: each item's planning parameters, and the forecasts MRP consumes.

`item_planning` holds what MRP needs beyond the item master: the lead time (purchase days for a bought item,
the fixed part for a made one), the planning safety stock (when null the item's own `safety_stock` counts)
and the lot-sizing rule with its modifiers. `planning_forecasts` are independent demand per item and bucket
start, consumed by the sales orders of the same bucket. A stored run (`POST /planning/runs`) keeps what the plan
was when it ran: `planning_runs` and its rows (per item and bucket, planned orders, exception messages, pegs
with the order a dependent demand belongs to, so pegging walks the levels of a stored run too).
"""

from kernel.db.migrations.ddl import run

revision = "0010"
down_revision = "0009"
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
    run("""
    CREATE TABLE planning_runs (
        run_id          bigserial PRIMARY KEY,
        created_at      timestamptz NOT NULL DEFAULT now(),
        today           date NOT NULL,
        start           date NOT NULL,
        bucket          text NOT NULL CHECK (bucket IN ('day', 'week')),
        buckets         integer NOT NULL CHECK (buckets BETWEEN 1 AND 366)
    )""")
    run("""
    CREATE TABLE planning_records (
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        item_id             text NOT NULL,
        bucket_start        date NOT NULL,
        low_level_code      integer NOT NULL,
        on_hand             numeric NOT NULL,
        safety_stock        numeric NOT NULL,
        gross_requirements  numeric NOT NULL,
        scheduled_receipts  numeric NOT NULL,
        projected_on_hand   numeric NOT NULL,
        net_requirements    numeric NOT NULL,
        planned_receipts    numeric NOT NULL,
        planned_releases    numeric NOT NULL,
        PRIMARY KEY (run_id, item_id, bucket_start)
    )""")
    run("""
    CREATE TABLE planning_planned_orders (
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        planned_order_id    text NOT NULL,
        item_id             text NOT NULL,
        kind                text NOT NULL CHECK (kind IN ('make', 'buy')),
        quantity            numeric NOT NULL,
        release             date NOT NULL,
        receipt             date NOT NULL,
        release_past_due    boolean NOT NULL,
        expected            date NOT NULL,
        PRIMARY KEY (run_id, planned_order_id)
    )""")
    run("""
    CREATE TABLE planning_exceptions (
        id                  bigserial PRIMARY KEY,
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        kind                text NOT NULL,
        item_id             text NOT NULL,
        reference           text NOT NULL,
        on_date             date NOT NULL,
        to_date             date,
        quantity            numeric NOT NULL,
        message             text NOT NULL
    )""")
    run("CREATE INDEX planning_exceptions_run ON planning_exceptions (run_id)")
    run("""
    CREATE TABLE planning_pegs (
        id                  bigserial PRIMARY KEY,
        run_id              bigint NOT NULL REFERENCES planning_runs ON DELETE CASCADE,
        supply              text NOT NULL,
        demand              text NOT NULL,
        demand_of_order     text,
        item_id             text NOT NULL,
        quantity            numeric NOT NULL
    )""")
    run("CREATE INDEX planning_pegs_run ON planning_pegs (run_id)")


def downgrade() -> None:
    for table in ("planning_pegs", "planning_exceptions", "planning_planned_orders", "planning_records", "planning_runs"):
        run(f"DROP TABLE {table}")
    run("DROP TABLE planning_forecasts")
    run("DROP TABLE item_planning")
