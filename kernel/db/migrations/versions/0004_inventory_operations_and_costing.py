"""Inventory operations (purchase, sales, transfers, stocktake, returns), valuation, costing, alerts.

Documents keep their lines and an audit trail (`document_events`); the stock they move is always
`stock_moves` rows whose `source_ref` names the document. Valuation is its own append-only ledger
(`stock_values`): every move into or out of the plant (not between its locations) is valued exactly
once, by the valuation worker that drains `moves_to_value`, filled set-based by a statement trigger
so the ingest's COPY pays no per-row cost.
"""

from kernel.db.migrations.ddl import run

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("ALTER TABLE locations DROP CONSTRAINT locations_kind_check")
    run("ALTER TABLE locations ADD CONSTRAINT locations_kind_check CHECK (kind IN ('warehouse', 'line_side', 'transit'))")
    run("""ALTER TABLE items
           ADD COLUMN valuation text NOT NULL DEFAULT 'moving_average' CHECK (valuation IN ('moving_average', 'fifo')),
           ADD COLUMN safety_stock numeric CHECK (safety_stock >= 0),
           ADD COLUMN reorder_quantity numeric NOT NULL DEFAULT 0 CHECK (reorder_quantity >= 0),
           ADD COLUMN minimum_order numeric NOT NULL DEFAULT 0 CHECK (minimum_order >= 0),
           ADD COLUMN order_multiple numeric CHECK (order_multiple > 0)""")
    for party in ("supplier", "customer"):
        run(f"""
        CREATE TABLE {party}s (
            {party}_id          text PRIMARY KEY,
            name                text NOT NULL,
            email               text
        )""")
    run("""
    CREATE TABLE approval_thresholds (
        document            text NOT NULL CHECK (document IN ('purchase_order')),
        above_value         numeric NOT NULL CHECK (above_value >= 0),
        approvals           integer NOT NULL CHECK (approvals > 0),
        PRIMARY KEY (document, above_value)
    )""")
    run("INSERT INTO approval_thresholds VALUES ('purchase_order', 0, 1)")
    run("""
    CREATE TABLE purchase_orders (
        po_id               text PRIMARY KEY,
        supplier_id         text NOT NULL REFERENCES suppliers,
        status              text NOT NULL DEFAULT 'draft',
        created_by          text NOT NULL,
        created_at          timestamptz NOT NULL DEFAULT now(),
        due                 date,
        tolerance           numeric NOT NULL DEFAULT 0 CHECK (tolerance >= 0)
    )""")
    run("""
    CREATE TABLE purchase_order_lines (
        po_id               text NOT NULL REFERENCES purchase_orders,
        line                text NOT NULL,
        item_id             text NOT NULL REFERENCES items,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        unit_cost           numeric NOT NULL CHECK (unit_cost >= 0),
        received            numeric NOT NULL DEFAULT 0 CHECK (received >= 0),
        PRIMARY KEY (po_id, line)
    )""")
    run("""
    CREATE TABLE sales_orders (
        so_id               text PRIMARY KEY,
        customer_id         text NOT NULL REFERENCES customers,
        status              text NOT NULL DEFAULT 'open',
        due                 timestamptz NOT NULL,
        created_at          timestamptz NOT NULL DEFAULT now(),
        tolerance           numeric NOT NULL DEFAULT 0 CHECK (tolerance >= 0)
    )""")
    run("""
    CREATE TABLE sales_order_lines (
        so_id               text NOT NULL REFERENCES sales_orders,
        line                text NOT NULL,
        item_id             text NOT NULL REFERENCES items,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        unit_price          numeric NOT NULL CHECK (unit_price >= 0),
        shipped             numeric NOT NULL DEFAULT 0 CHECK (shipped >= 0),
        PRIMARY KEY (so_id, line)
    )""")
    run("""
    CREATE TABLE transfers (
        transfer_id         text PRIMARY KEY,
        from_location       text NOT NULL REFERENCES locations,
        to_location         text NOT NULL REFERENCES locations,
        status              text NOT NULL DEFAULT 'requested',
        requested_by        text NOT NULL,
        created_at          timestamptz NOT NULL DEFAULT now(),
        CHECK (from_location <> to_location)
    )""")
    run("""
    CREATE TABLE transfer_lines (
        transfer_id         text NOT NULL REFERENCES transfers,
        item_id             text NOT NULL REFERENCES items,
        quantity            numeric NOT NULL CHECK (quantity > 0),
        PRIMARY KEY (transfer_id, item_id)
    )""")
    run("""
    CREATE TABLE stocktakes (
        stocktake_id        text PRIMARY KEY,
        location_id         text NOT NULL REFERENCES locations,
        status              text NOT NULL DEFAULT 'counting' CHECK (status IN ('counting', 'posted', 'cancelled')),
        complete            boolean NOT NULL DEFAULT false,
        created_at          timestamptz NOT NULL DEFAULT now()
    )""")
    run("""
    CREATE TABLE stocktake_counts (
        stocktake_id        text NOT NULL REFERENCES stocktakes,
        item_id             text NOT NULL REFERENCES items,
        lot                 text,
        quantity            numeric NOT NULL CHECK (quantity >= 0),
        counted_by          text,
        counted_at          timestamptz NOT NULL DEFAULT now()
    )""")
    run("CREATE UNIQUE INDEX stocktake_counts_key ON stocktake_counts (stocktake_id, item_id, coalesce(lot, ''))")
    run("""
    CREATE TABLE document_events (
        id                  bigserial PRIMARY KEY,
        document            text NOT NULL CHECK (document IN ('purchase_order', 'sales_order', 'transfer', 'stocktake', 'return')),
        document_id         text NOT NULL,
        ts                  timestamptz NOT NULL DEFAULT now(),
        action              text NOT NULL,
        from_status         text,
        to_status           text,
        actor               text,
        note                text
    )""")
    run("CREATE INDEX document_events_document ON document_events (document, document_id, id)")

    # -- valuation --------------------------------------------------------------------------------------
    run("""
    CREATE TABLE item_valuations (
        item_id             text PRIMARY KEY REFERENCES items,
        method              text NOT NULL CHECK (method IN ('moving_average', 'fifo')),
        quantity            numeric NOT NULL,
        value               numeric NOT NULL,
        last_known_cost     numeric,
        layers              jsonb NOT NULL DEFAULT '[]',     -- [[quantity, unit cost, value], ...] as exact strings
        shortfall           jsonb NOT NULL DEFAULT '[]'
    )""")
    run("""
    CREATE TABLE stock_values (
        id                  bigserial PRIMARY KEY,
        move_id             bigint NOT NULL REFERENCES stock_moves,
        ts                  timestamptz NOT NULL,
        item_id             text NOT NULL REFERENCES items,
        kind                text NOT NULL CHECK (kind IN ('receipt', 'issue', 'true_up')),
        quantity            numeric NOT NULL,
        value               numeric NOT NULL,
        unit_cost           numeric,
        revalued_quantity   numeric NOT NULL DEFAULT 0,
        work_order_id       text,
        source_ref          text NOT NULL,
        valued_at           timestamptz NOT NULL DEFAULT now()
    )""")
    run("CREATE INDEX stock_values_item ON stock_values (item_id, id)")
    run("CREATE INDEX stock_values_move ON stock_values (move_id)")
    run("CREATE INDEX stock_values_work_order ON stock_values (work_order_id) WHERE work_order_id IS NOT NULL")
    run("""
    CREATE TRIGGER stock_values_immutable BEFORE UPDATE OR DELETE ON stock_values
        FOR EACH ROW EXECUTE FUNCTION stock_moves_are_immutable()""")
    run("CREATE TABLE moves_to_value (move_id bigint PRIMARY KEY)")
    run("""
    CREATE FUNCTION queue_moves_to_value() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- only moves into or out of the plant change an item's value; between locations they do not
        INSERT INTO moves_to_value SELECT id FROM new_moves WHERE (from_location IS NULL) <> (to_location IS NULL);
        RETURN NULL;
    END $$""")
    run("""
    CREATE TRIGGER stock_moves_to_value AFTER INSERT ON stock_moves
        REFERENCING NEW TABLE AS new_moves FOR EACH STATEMENT EXECUTE FUNCTION queue_moves_to_value()""")

    # -- costing ----------------------------------------------------------------------------------------
    run("""
    CREATE TABLE energy_tariffs (
        tariff_id           text PRIMARY KEY,
        timezone            text NOT NULL,
        default_price_per_kwh numeric NOT NULL CHECK (default_price_per_kwh >= 0)
    )""")
    run("""
    CREATE TABLE energy_tariff_periods (
        id                  bigserial PRIMARY KEY,
        tariff_id           text NOT NULL REFERENCES energy_tariffs ON DELETE CASCADE,
        days                integer[] NOT NULL,
        start_time          time NOT NULL,
        end_time            time NOT NULL,
        price_per_kwh       numeric NOT NULL CHECK (price_per_kwh >= 0)
    )""")
    run("ALTER TABLE work_centres ADD COLUMN tariff_id text REFERENCES energy_tariffs")
    run("""
    CREATE TABLE routings (
        item_id             text PRIMARY KEY REFERENCES items,
        work_centre_id      text NOT NULL REFERENCES work_centres,
        ideal_cycle_s       numeric NOT NULL CHECK (ideal_cycle_s >= 0),
        energy_wh_per_unit  numeric NOT NULL DEFAULT 0 CHECK (energy_wh_per_unit >= 0),
        labour_s_per_unit   numeric NOT NULL DEFAULT 0 CHECK (labour_s_per_unit >= 0),
        labour_rate         numeric NOT NULL DEFAULT 0 CHECK (labour_rate >= 0)
    )""")
    run("""
    CREATE TABLE work_order_labour (
        id                  bigserial PRIMARY KEY,
        work_order_id       text NOT NULL REFERENCES work_orders,
        hours               numeric NOT NULL CHECK (hours > 0),
        rate                numeric NOT NULL CHECK (rate >= 0),
        actor               text,
        ts                  timestamptz NOT NULL DEFAULT now()
    )""")

    # -- alerts (records here; the alerting issue notifies on them) -------------------------------------
    run("""
    CREATE TABLE alert_rules (
        rule_id             text PRIMARY KEY,
        kind                text NOT NULL,
        severity            text NOT NULL CHECK (severity IN ('info', 'warning', 'critical')),
        scope               text NOT NULL DEFAULT 'plant',
        minutes             numeric,
        percent             numeric,
        min_units           integer,
        down_states         text[],
        enabled             boolean NOT NULL DEFAULT true
    )""")
    run("""INSERT INTO alert_rules (rule_id, kind, severity) VALUES
           ('stock-shortage', 'stock_shortage', 'warning'), ('safety-stock', 'safety_stock', 'warning'),
           ('slow-moving', 'slow_moving', 'info'), ('overdue-sales-order', 'overdue_sales_order', 'warning'),
           ('lot-expiring', 'lot_expiring', 'info'), ('lot-expired', 'lot_expired', 'critical')""")
    run("""
    CREATE TABLE alerts (
        alert_id            bigserial PRIMARY KEY,
        kind                text NOT NULL,
        subject             text NOT NULL,
        rule_id             text,
        severity            text NOT NULL,
        status              text NOT NULL CHECK (status IN ('active', 'acknowledged', 'cleared')),
        raised_at           timestamptz NOT NULL,
        detail              text NOT NULL,
        value               numeric,
        acknowledged_by     text,
        acknowledged_at     timestamptz,
        cleared_at          timestamptz
    )""")
    run("CREATE UNIQUE INDEX alerts_one_open ON alerts (kind, subject) WHERE status <> 'cleared'")
    run("""
    CREATE TABLE alert_events (
        id                  bigserial PRIMARY KEY,
        alert_id            bigint NOT NULL REFERENCES alerts,
        event               text NOT NULL,
        at                  timestamptz NOT NULL,
        by                  text,
        note                text
    )""")


def downgrade() -> None:
    raise NotImplementedError("drop the database instead")
