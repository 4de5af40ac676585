"""Inventory: items and BOMs, locations, lots and the stock ledger, purchasing, sales, transfers,
stocktakes, valuation and standard costs, imports and reports."""
