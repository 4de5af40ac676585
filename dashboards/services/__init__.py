"""The built-in board's snapshot, read in one database snapshot."""
