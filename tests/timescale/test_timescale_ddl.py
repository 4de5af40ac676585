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
INSERT INTO production_intervals (machine_id, start_ts, end_ts, good, scrap, energy_wh, edge_id, epoch, seq) VALUES
    ('m1', '2026-01-05 08:09+00', '2026-01-05 08:10+00', 10, 1, 300, 'e1', 1, 1),
    ('m1', '2026-01-05 08:49+00', '2026-01-05 08:50+00', 5, 0, 200, 'e1', 1, 2),
    ('m1', '2026-01-05 09:00+00', '2026-01-05 09:01+00', 7, 2, 100, 'e1', 1, 3);
-- statement
SELECT bucket, good, scrap, energy_wh FROM production_hourly ORDER BY bucket;
-- statement
SELECT mes_bucket(INTERVAL '15 minutes', TIMESTAMPTZ '2026-01-05 08:52+00') AS bucket;
"""

TIME_SERIES = ["counter_events", "machine_states", "production_intervals", "samples"]


def test_schema_timescale_ddl_runs_on_timescaledb(tmp_path: Path) -> None:
    node_runner_or_skip()
    hypertables, aggregates, jobs, _, hourly, bucket = run_sql(tmp_path, offline_sql(timescale=True), CHECKS + ROLLUP_CHECK)
    assert hypertables == [{"hypertable_name": name, "compression_enabled": True} for name in TIME_SERIES]
    assert aggregates == [{"view_name": "production_hourly"}]
    assert jobs == [
        *({"proc_name": "policy_compression", "hypertable_name": name} for name in TIME_SERIES),
        {"proc_name": "policy_refresh_continuous_aggregate", "hypertable_name": "production_hourly"},
        {"proc_name": "policy_retention", "hypertable_name": "samples"},
    ]
    # real-time aggregation: fresh intervals show in the hourly rollup before any refresh ran
    assert [(int(r["good"]), int(r["scrap"]), int(r["energy_wh"])) for r in hourly] == [(15, 1, 500), (7, 2, 100)]
    assert bucket[0]["bucket"].startswith("2026-01-05") and "08:45" in bucket[0]["bucket"]


def test_late_data_reaches_production_hourly_when_the_rollups_refresh_the_marked_range(tmp_path: Path) -> None:
    """The policy materializes the last 3 days; intervals 5 days late land below the watermark, where the
    real-time part of the aggregate does not look, until the statement the rollup worker runs for a mark."""
    from mes.services.rollups import REFRESH_PRODUCTION_HOURLY

    node_runner_or_skip()
    late = "2026-01-01 08:10+00"
    insert = ("INSERT INTO production_intervals (machine_id, start_ts, end_ts, good, scrap, energy_wh, edge_id, epoch, seq) "
              "VALUES ('m1', '{ts}', '{ts}', {good}, 0, 0, 'e1', 1, {seq})")
    checks = "\n-- statement\n".join([
        "",
        insert.format(ts="2026-01-06 08:10+00", good=3, seq=1),
        "CALL refresh_continuous_aggregate('production_hourly', NULL, NULL)",  # as the policy did, up to date
        insert.format(ts=late, good=7, seq=2),  # five days late
        f"SELECT good FROM production_hourly WHERE bucket = '{late[:13]}:00+00'",
        REFRESH_PRODUCTION_HOURLY.replace("%(since)s", f"'{late[:13]}:00+00'"),
        f"SELECT good FROM production_hourly WHERE bucket = '{late[:13]}:00+00'",
    ])
    *_, before, _, after = run_sql(tmp_path, offline_sql(timescale=True), CHECKS + checks)
    assert before == [], "hidden below the materialization watermark"
    assert [int(row["good"]) for row in after] == [7]
