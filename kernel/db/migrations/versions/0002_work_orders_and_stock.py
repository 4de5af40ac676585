"""Master data, work orders with dispatch and production attributed to them, and the stock ledger.

Quantities are NUMERIC (exact; components come in kg, m, pieces), counts of finished units BIGINT.
The ledger is append-only: a trigger refuses UPDATE and DELETE, corrections are new moves.
"""

from kernel.db.migrations.ddl import run

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE items (
        item_id             text PRIMARY KEY,
        name                text NOT NULL,
        kind                text NOT NULL CHECK (kind IN ('make', 'buy')),
        uom                 text NOT NULL,
        shelf_life_days     integer CHECK (shelf_life_days > 0),
        standard_cost       numeric(18, 6) CHECK (standard_cost >= 0),
        created_at          timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE bom_lines (
        id                  bigserial PRIMARY KEY,
        parent_item         text NOT NULL REFERENCES items,
        component_item      text NOT NULL REFERENCES items,
        quantity_per        numeric NOT NULL CHECK (quantity_per > 0),
        scrap_factor        numeric NOT NULL DEFAULT 0 CHECK (scrap_factor >= 0),
        phantom             boolean NOT NULL DEFAULT false,
        effective_from      date,
        effective_to        date,
        CHECK (parent_item <> component_item),
        CHECK (effective_to IS NULL OR effective_from IS NULL OR effective_from < effective_to)
    )""")
    run("CREATE INDEX bom_lines_parent ON bom_lines (parent_item)")
    run("""
    CREATE TABLE work_centres (
        work_centre_id      text PRIMARY KEY,
        name                text NOT NULL,
        hourly_rate         numeric(18, 6) NOT NULL DEFAULT 0 CHECK (hourly_rate >= 0)
    )""")
    run("ALTER TABLE machines ADD COLUMN work_centre_id text REFERENCES work_centres")
    run("""
    CREATE TABLE machine_items (
        machine_id          text NOT NULL REFERENCES machines,
        item_id             text NOT NULL REFERENCES items,
        ideal_cycle_s       numeric NOT NULL CHECK (ideal_cycle_s > 0),
        PRIMARY KEY (machine_id, item_id)
    )""")
    run("""
    CREATE TABLE locations (
        location_id         text PRIMARY KEY,
        name                text NOT NULL,
        kind                text NOT NULL CHECK (kind IN ('warehouse', 'line_side')),
        line                text,
        negative_stock      text NOT NULL DEFAULT 'allow' CHECK (negative_stock IN ('allow', 'block')),
        CHECK ((kind = 'line_side') = (line IS NOT NULL))
    )""")
    run("""
    CREATE TABLE lots (
        item_id             text NOT NULL REFERENCES items,
        lot                 text NOT NULL,
        expires             date,
        received_at         timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (item_id, lot)
    )""")
    run("""
    CREATE TABLE stock_moves (
        id                  bigserial PRIMARY KEY,
        ts                  timestamptz NOT NULL DEFAULT now(),
        item_id             text NOT NULL REFERENCES items,
        lot                 text,
        from_location       text REFERENCES locations,
        to_location         text REFERENCES locations,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        unit_cost           numeric(18, 6),
        reason              text NOT NULL,
        source_ref          text NOT NULL,
        work_order_id       text,
        CHECK (from_location IS NOT NULL OR to_location IS NOT NULL),
        CHECK (from_location IS DISTINCT FROM to_location),
        FOREIGN KEY (item_id, lot) REFERENCES lots
    )""")
    run("CREATE INDEX stock_moves_item ON stock_moves (item_id, ts)")
    run("CREATE INDEX stock_moves_source ON stock_moves (source_ref)")
    run("CREATE INDEX stock_moves_work_order ON stock_moves (work_order_id) WHERE work_order_id IS NOT NULL")
    run("""
    CREATE FUNCTION stock_moves_are_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'stock moves are immutable: post a correcting move instead';
    END $$""")
    run("""
    CREATE TRIGGER stock_moves_immutable BEFORE UPDATE OR DELETE ON stock_moves
        FOR EACH ROW EXECUTE FUNCTION stock_moves_are_immutable()""")
    run("""
    CREATE VIEW stock_on_hand AS
        SELECT item_id, location_id, lot, sum(quantity)::numeric AS quantity
        FROM (
            SELECT item_id, to_location AS location_id, lot, quantity FROM stock_moves WHERE to_location IS NOT NULL
            UNION ALL
            SELECT item_id, from_location, lot, -quantity FROM stock_moves WHERE from_location IS NOT NULL
        ) AS legs
        GROUP BY item_id, location_id, lot
        HAVING sum(quantity) <> 0""")

    run("""
    CREATE TABLE work_orders (
        work_order_id       text PRIMARY KEY,
        item_id             text NOT NULL REFERENCES items,
        quantity            bigint NOT NULL CHECK (quantity > 0),
        due                 date,
        status              text NOT NULL DEFAULT 'planned'
                            CHECK (status IN ('planned', 'released', 'running', 'paused', 'completed', 'closed')),
        over_tolerance      numeric NOT NULL DEFAULT 0 CHECK (over_tolerance >= 0),
        auto_complete       boolean NOT NULL DEFAULT false,
        held_reason         text,
        created_at          timestamptz NOT NULL DEFAULT now(),
        released_at         timestamptz
    )""")
    run("""
    CREATE TABLE work_order_components (
        work_order_id       text NOT NULL REFERENCES work_orders,
        component_item      text NOT NULL REFERENCES items,
        quantity_per_unit   numeric NOT NULL CHECK (quantity_per_unit > 0),
        PRIMARY KEY (work_order_id, component_item)
    )""")
    run("""
    CREATE TABLE work_order_events (
        id                  bigserial PRIMARY KEY,
        work_order_id       text NOT NULL REFERENCES work_orders,
        ts                  timestamptz NOT NULL DEFAULT now(),
        action              text NOT NULL,
        from_status         text NOT NULL,
        to_status           text NOT NULL,
        machine_id          text,
        actor               text
    )""")
    run("""
    CREATE TABLE dispatches (
        id                  bigserial PRIMARY KEY,
        machine_id          text NOT NULL REFERENCES machines,
        work_order_id       text NOT NULL REFERENCES work_orders,
        source              text NOT NULL CHECK (source IN ('api', 'plc')),
        start_ts            timestamptz NOT NULL,
        end_ts              timestamptz,
        CHECK (end_ts IS NULL OR start_ts <= end_ts)
    )""")
    run("""
    CREATE TABLE production_attributions (
        edge_id             text NOT NULL,
        epoch               bigint NOT NULL,
        seq                 bigint NOT NULL,
        machine_id          text NOT NULL REFERENCES machines,
        work_order_id       text REFERENCES work_orders,
        good                bigint NOT NULL CHECK (good >= 0),
        scrap               bigint NOT NULL CHECK (scrap >= 0),
        energy_wh           bigint NOT NULL CHECK (energy_wh >= 0),
        first_ts            timestamptz NOT NULL,
        last_ts             timestamptz NOT NULL
    )""")
    # one row per message and work order; NULL = the unassigned bucket
    run("CREATE UNIQUE INDEX production_attributions_key ON production_attributions (edge_id, epoch, seq, coalesce(work_order_id, ''))")
    run("CREATE INDEX production_attributions_work_order ON production_attributions (work_order_id, last_ts)")
    run("CREATE INDEX production_attributions_last_brin ON production_attributions USING brin (last_ts)")
    run("""
    CREATE TABLE backflush_exceptions (
        id                  bigserial PRIMARY KEY,
        ts                  timestamptz NOT NULL,
        source_ref          text NOT NULL,
        work_order_id       text NOT NULL REFERENCES work_orders,
        item_id             text NOT NULL REFERENCES items,
        location_id         text REFERENCES locations,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        kind                text NOT NULL CHECK (kind IN ('shortage', 'blocked', 'no_location')),
        reason              text NOT NULL,
        resolved            boolean NOT NULL DEFAULT false
    )""")
    run("CREATE INDEX backflush_exceptions_open ON backflush_exceptions (work_order_id) WHERE NOT resolved")
    run("CREATE UNIQUE INDEX dispatches_one_open_per_machine ON dispatches (machine_id, source) WHERE end_ts IS NULL")
    run("CREATE INDEX dispatches_machine_time ON dispatches (machine_id, start_ts)")


def downgrade() -> None:
    raise NotImplementedError("drop the database instead")
