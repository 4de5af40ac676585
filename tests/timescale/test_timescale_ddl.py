"""The TimescaleDB path of the schema runs on real TimescaleDB (2.23, in PGlite under Node).

No TimescaleDB server is installable here, so run_sql.mjs executes the DDL in PGlite, a WASM build
of PostgreSQL 17 with the timescaledb extension, and the checks query timescaledb_information.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

from kernel.db.migrations import offline_sql
from tests.support.node import NpmInstallFailed, node_with_packages

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_sql.mjs"

CHECKS = """
-- statement
SELECT hypertable_name, compression_enabled FROM timescaledb_information.hypertables ORDER BY hypertable_name;
-- statement
SELECT view_name FROM timescaledb_information.continuous_aggregates ORDER BY view_name;
-- statement
SELECT proc_name, hypertable_name FROM timescaledb_information.jobs
WHERE proc_name IN ('policy_compression', 'policy_retention', 'policy_refresh_continuous_aggregate')
ORDER BY proc_name, hypertable_name;
"""

def node_runner_or_skip() -> None:
    try:
        node_with_packages(HERE, "TimescaleDB in PGlite")
    except NpmInstallFailed as failed:
        pytest.skip(f"{failed} (offline?)")


def run_sql(tmp_path: Path, schema_sql: str, checks_sql: str) -> list[list[dict]]:
    """Rows of each check, after the schema ran; fails the test with the statement that broke."""
    schema_file = tmp_path / "schema.sql"
    checks_file = tmp_path / "checks.sql"
    schema_file.write_text(schema_sql)
    checks_file.write_text(checks_sql)
    finished = subprocess.run(
        ["node", str(RUNNER), str(schema_file), str(checks_file)], cwd=HERE, capture_output=True, text=True, timeout=180
    )
    if finished.returncode != 0:
        pytest.fail(f"TimescaleDB DDL failed:\n{finished.stderr}", pytrace=False)
    return [check["rows"] for check in json.loads(finished.stdout)["checks"]]


ROLLUP_CHECK = """
-- statement
SELECT relkind FROM pg_class WHERE relname = 'production_hourly';
-- statement
SELECT mes_bucket(INTERVAL '15 minutes', TIMESTAMPTZ '2026-01-05 08:52+00') AS bucket;
"""

TIME_SERIES = ["counter_events", "machine_states", "production_intervals", "samples"]

# samples of two days written before migration 0022, with their message's key, in compressed chunks
BEFORE_NARROWING = """
-- statement
INSERT INTO samples VALUES ('m1', '2026-01-05 08:00+00', 'good', 1, 'e1', 1, 1), ('m1', '2026-01-07 08:00+00', 'good', 2, 'e1', 1, 2);
-- statement
SELECT count(compress_chunk(chunk)) FROM show_chunks('samples') AS chunk;
"""

# what the retention job (core.services.retention) runs on TimescaleDB, on rows of two days; a narrow sample
# written into a compressed chunk
RETENTION_CHECK = """
-- statement
INSERT INTO ingested_messages (edge_id, epoch, seq, machine_id, received_at, historical, sample_count)
VALUES ('e1', 1, 1, 'm1', '2026-01-05 08:00+00', false, 1), ('e1', 1, 2, 'm1', '2026-01-07 08:00+00', false, 1);
-- statement
INSERT INTO samples VALUES ('m1', '2026-01-07 09:00+00', 'good', 3);
-- statement
SELECT count(*) AS dropped FROM drop_chunks(CAST('ingested_messages' AS regclass), older_than => TIMESTAMPTZ '2026-01-06 00:00+00');
-- statement
SELECT count(*) AS dropped FROM drop_chunks(CAST('samples' AS regclass), older_than => TIMESTAMPTZ '2026-01-06 00:00+00');
-- statement
SELECT (SELECT array_agg(seq ORDER BY seq) FROM ingested_messages) AS keys, (SELECT array_agg(value ORDER BY value) FROM samples) AS samples;
-- statement
SELECT column_name FROM information_schema.columns WHERE table_name = 'edge_cursors' AND column_name LIKE 'pruned%' ORDER BY 1;
-- statement
SELECT column_name FROM information_schema.columns WHERE table_name = 'samples' ORDER BY ordinal_position;
-- statement
SELECT count(*) AS compressed FROM timescaledb_information.chunks WHERE hypertable_name = 'samples' AND is_compressed;
"""


def test_schema_timescale_ddl_runs_on_timescaledb(tmp_path: Path) -> None:
    """Hypertables with compression, `ingested_messages` a hypertable too whose chunks the retention job drops (migration
    0021: the job, not a policy, drops by age, so MES_RETENTION_* hold and the key watermark rises first), and
    `production_hourly` a plain table (migration 0018: the writers of intervals keep it, so no continuous aggregate
    and no refresh policy is left). Migration 0022 drops the samples' key columns from compressed chunks too."""
    node_runner_or_skip()
    schema = offline_sql(timescale=True)
    narrowing = schema.rindex("BEGIN;", 0, schema.index("ALTER TABLE samples DROP COLUMN edge_id"))  # 0022's transaction
    hypertables, aggregates, jobs, hourly, bucket, *retention = run_sql(
        tmp_path, schema[:narrowing] + BEFORE_NARROWING + schema[narrowing:], CHECKS + ROLLUP_CHECK + RETENTION_CHECK)
    assert hypertables == sorted([*({"hypertable_name": name, "compression_enabled": True} for name in TIME_SERIES),
                                  {"hypertable_name": "ingested_messages", "compression_enabled": False}],
                                 key=lambda row: row["hypertable_name"])
    assert aggregates == []
    assert jobs == [{"proc_name": "policy_compression", "hypertable_name": name} for name in TIME_SERIES]
    _, _, dropped_keys, dropped_samples, left, pruned, sample_columns, compressed = retention
    assert dropped_keys == dropped_samples == [{"dropped": 1}]
    assert left == [{"keys": [2], "samples": [2, 3]}]
    assert pruned == [{"column_name": "pruned_epoch"}, {"column_name": "pruned_seq"}]
    assert sample_columns == [{"column_name": name} for name in ("machine_id", "ts", "signal", "value")]
    assert compressed == [{"compressed": 1}]
    assert hourly == [{"relkind": "r"}]
    assert bucket[0]["bucket"].startswith("2026-01-05") and "08:45" in bucket[0]["bucket"]
