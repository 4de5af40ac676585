"""The Grafana planner board's plan and KPI panels against what the API answers, on the seeded database of
tests/planning/test_kpis_api.py and one stored plan run: each panel's SQL, expanded as Grafana would, shows
the stored run's rows and the KPI reports' figures (the reports round to 0.01, the panels do not)."""

from __future__ import annotations

from datetime import datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from dashboards.grafana.boards import planner_board
from dashboards.grafana.macros import expand
from dashboards.grafana.panels import panels_of
from tests.planning.test_kpis_api import NOW, TODAY, seed
from tests.support.http import ok

START, END = NOW - timedelta(days=13), NOW + timedelta(days=2)
PANELS = {panel["title"]: panel for _, panel in panels_of(planner_board())}


@pytest.fixture
def shown(api, database_url):
    seed(api)
    run = ok(api.post("/planning/runs", json={"bucket": "day", "buckets": 28}), 201)

    def run_panel(title: str, start: datetime = START, end: datetime = END) -> list[tuple]:
        sql = expand(PANELS[title]["targets"][0]["rawSql"], time_from=start, time_to=end)
        with psycopg.connect(database_url) as conn:
            return conn.execute(sql).fetchall()
    return run_panel, run["run_id"]


def close(got, want: str | None) -> bool:
    return (got is None) == (want is None) and (want is None or abs(Decimal(got) - Decimal(want)) < Decimal("0.005"))


def test_the_plan_panels_show_the_latest_stored_run(api, shown):
    run_panel, run_id = shown
    orders = ok(api.get(f"/planning/runs/{run_id}/planned-orders"))
    exceptions = ok(api.get(f"/planning/runs/{run_id}/exceptions"))
    ((planned, late, below),) = run_panel("Latest plan run")
    assert (planned, late, below) == (len(orders), sum(e["kind"] == "demand_late" for e in exceptions),
                                      sum(e["kind"] == "below_safety_stock" for e in exceptions)) and late > 0
    until = str(TODAY + timedelta(days=7))
    assert [row[0] for row in run_panel("Planned orders to release (latest run)")] == [
        o["id"] for o in sorted(orders, key=lambda o: (o["release"], o["id"])) if o["release"] < until]
    shortages = run_panel("Shortages of the next 7 days (latest run)")
    assert {(row[0], row[1], row[2]) for row in shortages} == {
        (e["item_id"], e["kind"], e["reference"]) for e in exceptions
        if e["kind"] in ("demand_late", "below_safety_stock") and e["on"] < until}
    hits = {row[2]: row[6] for row in shortages if row[1] == "demand_late"}
    assert hits["SO-4/1"] == "SO-4/1" and next(hit for ref, hit in hits.items() if ref.endswith("/screw")).startswith("planned:widget:")


def test_the_kpi_panels_agree_with_the_kpi_reports(api, shown):
    run_panel, _ = shown
    period = {"start": START.isoformat(), "end": END.isoformat()}
    report = ok(api.get("/planning/kpis/on-time-delivery", params=period))["rows"]
    judged, hits = sum(r["judged_vs_due"] for r in report), sum(r["on_time_vs_due"] for r in report)
    ((on_time,),) = run_panel("On-time delivery")
    assert close(on_time, str(Decimal(100 * hits) / judged))

    scores = {r["supplier_id"]: r for r in ok(api.get("/planning/kpis/supplier-scores", params=period))["rows"]}
    rows = run_panel("Supplier scores")
    assert [row[0] for row in rows] == ["zeta", "acme"]
    for supplier, on_time_pct, quality, score in rows:
        expected = scores[supplier]
        assert close(on_time_pct, expected["on_time_pct"]) and close(quality, expected["quality_pct"])
        assert close(score, expected["score"])

    window = {"start": (NOW - timedelta(days=20)).isoformat(), "end": NOW.isoformat(), "bucket": "week"}
    accuracy = {r["item_id"]: r for r in ok(api.get("/planning/kpis/forecast-accuracy", params=window))["rows"]}
    rows = run_panel("Forecast accuracy", NOW - timedelta(days=20), NOW)
    assert [row[0] for row in rows] == sorted(accuracy) == ["steel"]
    for item, forecast, actual, accuracy_pct, bias in rows:
        expected = accuracy[item]
        assert (forecast, actual) == (Decimal(expected["forecast"]), Decimal(expected["actual"]))
        assert close(accuracy_pct, expected["accuracy_pct"]) and close(bias, expected["bias_pct"])
