"""Pure business rules of the MES layer: no I/O, no clock. Services load state, call these, commit."""
