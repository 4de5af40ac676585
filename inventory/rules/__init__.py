"""Pure inventory rules: BOM explosion, backflush, lot picking, document lifecycles, valuation, costing,
stock alerts, import validation and KPIs. No I/O, no clock."""
