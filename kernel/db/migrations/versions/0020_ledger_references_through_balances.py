"""The ledger's references to items, locations and lots are checked on `lot_balances`, not on every move.

A foreign key is checked row by row: four of them on `stock_moves` (item, from and to location, item +
lot) were more than half of what a move cost to insert (docs/benchmarks.md, backflush), the ingest
writing several moves a counted interval. Every leg of every move already has its balance row, written
by the inserting statement's own trigger (migration 0019): (item, to_location, lot) and (item,
from_location, lot). So the same references are checked on `lot_balances`, where a row is inserted once
per (item, location, lot) and then only updated (its keys unchanged, so no check): `lot_balances`
already references items and locations; it now references lots too. A move naming an unknown item,
location or lot is refused in its statement as before (by the balance row's key), and an item, location
or lot a move names cannot be deleted, its balance row naming it. That holds because a balance row is
never deleted: a trigger refuses it.
"""

from kernel.db.migrations.ddl import run

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

MOVE_REFERENCES = {"stock_moves_item_id_fkey": "(item_id) REFERENCES items",
                   "stock_moves_from_location_fkey": "(from_location) REFERENCES locations",
                   "stock_moves_to_location_fkey": "(to_location) REFERENCES locations",
                   "stock_moves_item_id_lot_fkey": "(item_id, lot) REFERENCES lots"}


def upgrade() -> None:
    # every stored balance row came from moves whose lots were checked by stock_moves_item_id_lot_fkey
    run("ALTER TABLE lot_balances ADD CONSTRAINT lot_balances_item_id_lot_fkey FOREIGN KEY (item_id, lot) REFERENCES lots")
    run("""
    CREATE FUNCTION lot_balances_are_kept() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        RAISE EXCEPTION 'lot balances are never deleted: the ledger''s references to items, locations and lots are checked on them';
    END $$""")
    run("""
    CREATE TRIGGER lot_balances_kept BEFORE DELETE ON lot_balances
        FOR EACH STATEMENT EXECUTE FUNCTION lot_balances_are_kept()""")
    run("ALTER TABLE stock_moves " + ", ".join(f"DROP CONSTRAINT {name}" for name in MOVE_REFERENCES))


def downgrade() -> None:
    run("ALTER TABLE stock_moves " + ", ".join(f"ADD CONSTRAINT {name} FOREIGN KEY {reference}"
                                                for name, reference in MOVE_REFERENCES.items()))
    run("DROP TRIGGER lot_balances_kept ON lot_balances")
    run("DROP FUNCTION lot_balances_are_kept()")
    run("ALTER TABLE lot_balances DROP CONSTRAINT lot_balances_item_id_lot_fkey")
