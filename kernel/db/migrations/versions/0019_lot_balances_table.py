"""`lot_balances`: on hand per (item, location, lot), kept by the ledger's own inserts, locked by its takers.

`stock_on_hand` was a view summing both legs of every stock move, so every batch's backflush paid for the
whole ledger booked before it (docs/benchmarks.md, backflush), and its readers had no row to lock: the
takers locked the item's `lots` rows instead, which left stock booked without a lot unguarded. Now one
statement-level trigger adds each insert's legs to `lot_balances` in the inserting statement (every writer,
the ingest's COPY included, set-based), so the table equals the ledger summed at every commit. A step that
takes stock locks the balance rows it will move first (`inventory.services.balances.lock_balances`).
`stock_on_hand` keeps its columns and reads the table. Filled here from the moves already stored.
"""

from kernel.db.migrations.ddl import run

revision = "0019"
down_revision = "0018"
branch_labels = None
depends_on = None


def upgrade() -> None:
    run("""
    CREATE TABLE lot_balances (
        item_id             text NOT NULL REFERENCES items,
        location_id         text NOT NULL REFERENCES locations,
        lot                 text,                 -- null: booked without a lot (the unknown lot); can be negative
        quantity            numeric NOT NULL
    )""")
    # the unknown lot is one balance per item and location, so null lots must collide
    run("CREATE UNIQUE INDEX lot_balances_key ON lot_balances (item_id, location_id, lot) NULLS NOT DISTINCT")
    run("CREATE INDEX lot_balances_location ON lot_balances (location_id, item_id)")
    run("""
    CREATE FUNCTION add_moves_to_lot_balances() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        -- sorted, so two statements that add to the same balances lock them in the same order
        INSERT INTO lot_balances AS b (item_id, location_id, lot, quantity)
        SELECT item_id, location_id, lot, sum(quantity)
        FROM (SELECT item_id, to_location AS location_id, lot, quantity FROM new_moves WHERE to_location IS NOT NULL
              UNION ALL
              SELECT item_id, from_location, lot, -quantity FROM new_moves WHERE from_location IS NOT NULL) AS legs
        GROUP BY item_id, location_id, lot
        ORDER BY item_id, location_id, lot
        ON CONFLICT (item_id, location_id, lot) DO UPDATE SET quantity = b.quantity + EXCLUDED.quantity;
        RETURN NULL;
    END $$""")
    run("""
    CREATE TRIGGER stock_moves_to_lot_balances AFTER INSERT ON stock_moves
        REFERENCING NEW TABLE AS new_moves FOR EACH STATEMENT EXECUTE FUNCTION add_moves_to_lot_balances()""")
    # CREATE TRIGGER holds stock_moves against inserts until this migration commits, so every move is in
    # the fill below (committed before) or goes through the trigger (after), never both
    run("""
    INSERT INTO lot_balances (item_id, location_id, lot, quantity)
    SELECT item_id, location_id, lot, sum(quantity)
    FROM (SELECT item_id, to_location AS location_id, lot, quantity FROM stock_moves WHERE to_location IS NOT NULL
          UNION ALL
          SELECT item_id, from_location, lot, -quantity FROM stock_moves WHERE from_location IS NOT NULL) AS legs
    GROUP BY item_id, location_id, lot""")
    run("""
    CREATE OR REPLACE VIEW stock_on_hand AS
        SELECT item_id, location_id, lot, quantity FROM lot_balances WHERE quantity <> 0""")


def downgrade() -> None:
    """Back to the view over the ledger."""
    run("""
    CREATE OR REPLACE VIEW stock_on_hand AS
        SELECT item_id, location_id, lot, sum(quantity)::numeric AS quantity
        FROM (
            SELECT item_id, to_location AS location_id, lot, quantity FROM stock_moves WHERE to_location IS NOT NULL
            UNION ALL
            SELECT item_id, from_location, lot, -quantity FROM stock_moves WHERE from_location IS NOT NULL
        ) AS legs
        GROUP BY item_id, location_id, lot
        HAVING sum(quantity) <> 0""")
    run("DROP TRIGGER stock_moves_to_lot_balances ON stock_moves")
    run("DROP FUNCTION add_moves_to_lot_balances()")
    run("DROP TABLE lot_balances")
