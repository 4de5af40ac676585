"""The TimescaleDB path of the schema runs on real TimescaleDB (2.23, in PGlite under Node).

No TimescaleDB server is installable here, so run_sql.mjs executes the DDL in PGlite, a WASM build
of PostgreSQL 17 with the timescaledb extension, and the checks query timescaledb_information.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

HERE = Path(__file__).resolve().parent
RUNNER = HERE / "run_sql.mjs"
PGLITE_PACKAGE = HERE / "node_modules" / "@unni-craftsman" / "pglite" / "package.json"
MIN_NODE_MAJOR = 20

SAMPLE_DDL = """
-- statement
CREATE TABLE machine_counts (
    machine_id BIGINT NOT NULL,
    ts TIMESTAMPTZ NOT NULL,
    good BIGINT NOT NULL,
    scrap BIGINT NOT NULL,
    PRIMARY KEY (machine_id, ts)
);
-- statement
SELECT create_hypertable('machine_counts', by_range('ts', INTERVAL '1 day'), if_not_exists => TRUE);
-- statement
ALTER TABLE machine_counts SET (timescaledb.compress, timescaledb.compress_segmentby = 'machine_id');
-- statement
SELECT add_compression_policy('machine_counts', INTERVAL '7 days');
-- statement
SELECT add_retention_policy('machine_counts', INTERVAL '400 days');
-- statement
CREATE MATERIALIZED VIEW machine_counts_hourly WITH (timescaledb.continuous) AS
SELECT machine_id, time_bucket(INTERVAL '1 hour', ts) AS bucket, sum(good) AS good, sum(scrap) AS scrap
FROM machine_counts
GROUP BY machine_id, bucket
WITH NO DATA;
-- statement
SELECT add_continuous_aggregate_policy('machine_counts_hourly',
    start_offset => INTERVAL '3 hours', end_offset => INTERVAL '1 hour', schedule_interval => INTERVAL '5 minutes');
-- statement
INSERT INTO machine_counts VALUES (1, '2026-01-05 08:10+00', 10, 1), (1, '2026-01-05 08:50+00', 5, 0);
-- statement
CALL refresh_continuous_aggregate('machine_counts_hourly', NULL, NULL);
"""

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

SAMPLE_AGGREGATE_CHECK = """
-- statement
SELECT machine_id, bucket, good, scrap FROM machine_counts_hourly;
"""


def node_runner_or_skip() -> None:
    node, npm = shutil.which("node"), shutil.which("npm")
    if node is None or npm is None:
        pytest.skip("node and npm are needed to run TimescaleDB in PGlite (install Node.js 20+)")
    version = subprocess.run([node, "--version"], capture_output=True, text=True, check=True).stdout.strip()
    if int(version.lstrip("v").split(".")[0]) < MIN_NODE_MAJOR:
        pytest.skip(f"PGlite with TimescaleDB needs Node.js {MIN_NODE_MAJOR}+, found {version}")
    if PGLITE_PACKAGE.exists():
        return
    installed = subprocess.run(
        [npm, "ci", "--no-audit", "--no-fund"], cwd=HERE, capture_output=True, text=True, timeout=300
    )
    if installed.returncode != 0:
        pytest.skip(f"npm ci failed in {HERE} (offline?):\n{installed.stderr[-2000:]}")


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


def test_sample_timescale_ddl_creates_hypertable_aggregate_and_policies(tmp_path: Path) -> None:
    node_runner_or_skip()
    hypertables, aggregates, jobs, hourly = run_sql(tmp_path, SAMPLE_DDL, CHECKS + SAMPLE_AGGREGATE_CHECK)
    assert hypertables == [{"hypertable_name": "machine_counts", "compression_enabled": True}]
    assert aggregates == [{"view_name": "machine_counts_hourly"}]
    assert jobs == [
        {"proc_name": "policy_compression", "hypertable_name": "machine_counts"},
        {"proc_name": "policy_refresh_continuous_aggregate", "hypertable_name": "machine_counts_hourly"},
        {"proc_name": "policy_retention", "hypertable_name": "machine_counts"},
    ]
    # BIGINT sums arrive as strings or numbers depending on size; compare as integers.
    assert [(int(row["good"]), int(row["scrap"])) for row in hourly] == [(15, 1)]


def test_schema_timescale_ddl_runs_on_timescaledb(tmp_path: Path) -> None:
    try:
        from core.db.migrations import offline_sql
    except ImportError as missing:
        pytest.skip(f"core.db.migrations.offline_sql is not available yet ({missing}); the sample DDL test covers the runner")
    node_runner_or_skip()
    hypertables, aggregates, jobs = run_sql(tmp_path, offline_sql(timescale=True), CHECKS)
    assert hypertables, "the Timescale schema created no hypertable"
    refreshed = {job["hypertable_name"] for job in jobs if job["proc_name"] == "policy_refresh_continuous_aggregate"}
    assert {aggregate["view_name"] for aggregate in aggregates} <= refreshed, "a continuous aggregate has no refresh policy"
