"""Pure ingest rules: cumulative counter → delta, and which messages to ingest. No I/O, no clock."""
