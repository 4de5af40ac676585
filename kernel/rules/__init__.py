"""Pure rules every domain shares: exact quantities, aware instants, status lifecycles, refusals. No I/O."""
