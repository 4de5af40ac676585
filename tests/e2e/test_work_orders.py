"""Machine counts attributed to work orders while the plant runs, through the real API."""

from __future__ import annotations

import asyncio

import pytest
from fastapi.testclient import TestClient

from mes.api.app import create_app
from tests.e2e.test_spine import assert_exact, produce, query

pytestmark = pytest.mark.slow


def test_a_work_order_switch_mid_run_splits_the_counts_at_the_switch(plant, database_url, mqtt_url, tmp_path):
    def call(method, path, **kwargs):
        with TestClient(create_app(database_url)) as api:
            response = api.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    async def during(plant_run):
        await asyncio.to_thread(call, "POST", "/items", json={"item_id": "widget", "name": "Widget", "kind": "make", "uom": "pcs"})
        for number in ("WO-A", "WO-B"):
            await asyncio.to_thread(call, "POST", "/work-orders", json={"work_order_id": number, "item_id": "widget", "quantity": 10_000})
            await asyncio.to_thread(call, "POST", f"/work-orders/{number}/release")
        await asyncio.to_thread(call, "POST", "/work-orders/WO-A/start", json={"machine_id": "mod16"})
        await asyncio.sleep(4)
        await asyncio.to_thread(call, "POST", "/work-orders/WO-B/start", json={"machine_id": "mod16"})  # changeover
        await asyncio.sleep(4)

    comparison = produce(plant, database_url, mqtt_url, tmp_path, during)
    assert_exact(comparison)

    (switch,) = query(database_url, "SELECT start_ts FROM dispatches WHERE work_order_id = 'WO-B'")[0]
    rows = query(database_url, """SELECT work_order_id, sum(good), sum(scrap), sum(energy_wh), min(first_ts), max(last_ts)
                                  FROM production_attributions WHERE machine_id = 'mod16' GROUP BY 1""")
    by_order = {row[0]: row[1:] for row in rows}
    # what mod16 counted before WO-A started, if its first poll came that early, is unassigned
    assert {"WO-A", "WO-B"} <= set(by_order) <= {None, "WO-A", "WO-B"}
    assert by_order["WO-A"][0] > 0 and by_order["WO-B"][0] > 0
    assert by_order["WO-A"][4] < switch <= by_order["WO-B"][3], "counts split at the switch"
    recorded = comparison["mod16"]["recorded"]
    assert [sum(row[i] for row in by_order.values()) for i in range(3)] == [recorded["good"], recorded["scrap"], recorded["energy_wh"]]
    # every other machine had no work order: all of its production is in the unassigned bucket
    unassigned = {row["machine_id"]: row for row in call("GET", "/production/unassigned")}
    for machine, entry in comparison.items():
        if machine != "mod16":
            assert unassigned[machine]["good"] == entry["recorded"]["good"]
    progress = call("GET", "/work-orders/WO-A/progress")
    assert progress["good"] == by_order["WO-A"][0] and progress["scrap"] == by_order["WO-A"][1]
