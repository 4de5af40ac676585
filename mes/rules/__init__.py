"""Pure production rules: attribution, work-order lifecycle and progress, state intervals, shifts, OEE,
alerts. No I/O, no clock."""
