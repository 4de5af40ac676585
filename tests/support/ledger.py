"""The stock ledger summed, against `lot_balances` (docs/ARCHITECTURE.md, invariant 10: balances = the ledger)."""

from __future__ import annotations

from decimal import Decimal

import psycopg

MISMATCHES = """
    WITH legs AS (
        SELECT item_id, to_location AS location_id, lot, quantity FROM stock_moves WHERE to_location IS NOT NULL
        UNION ALL
        SELECT item_id, from_location, lot, -quantity FROM stock_moves WHERE from_location IS NOT NULL),
    summed AS (SELECT item_id, location_id, lot, sum(quantity) AS quantity FROM legs GROUP BY item_id, location_id, lot)
    SELECT coalesce(s.item_id, b.item_id), coalesce(s.location_id, b.location_id), coalesce(s.lot, b.lot),
           coalesce(s.quantity, 0), coalesce(b.quantity, 0)
    FROM summed s FULL JOIN lot_balances b
      ON b.item_id = s.item_id AND b.location_id = s.location_id AND b.lot IS NOT DISTINCT FROM s.lot
    WHERE coalesce(s.quantity, 0) <> coalesce(b.quantity, 0)
    ORDER BY 1, 2, 3"""


def balance_mismatches(database_url: str) -> list[tuple[str, str, str | None, Decimal, Decimal]]:
    """(item, location, lot, ledger summed, table) wherever they differ; [] when the schema has no balances yet."""
    with psycopg.connect(database_url) as conn:
        if conn.execute("SELECT to_regclass('lot_balances')").fetchone() == (None,):
            return []
        return [tuple(row) for row in conn.execute(MISMATCHES)]
