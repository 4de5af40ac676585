"""`make bench` / `python -m tests.bench`: measured numbers, never assertions.

Two benchmarks, each against a baseline measured in the same run on the same machine:

1. ingest throughput: the core draining a pre-filled broker queue, compared with a raw COPY of exactly
   the same sample rows into a table shaped like `samples` (ratio ingest / COPY);
2. end-to-end latency: simulators → edge agent → broker → core → PostgreSQL at K machines × 1 Hz,
   latency = commit time − the sample's source timestamp.

Results are printed and written to docs/benchmarks.md. See `python -m tests.bench --help`.
"""
