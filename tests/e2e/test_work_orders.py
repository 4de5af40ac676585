"""Machine counts attributed to work orders while the plant runs, through the real API."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from fastapi.testclient import TestClient

from app.api import create_app
from kernel.signals import MachineState
from app.plantrun import MesProcess, PlantRun
from tests.e2e.conftest import run, write_plant
from tests.e2e.test_spine import assert_exact, produce, query
from tests.support.auth import as_admin

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("balances_match_ledger")]


def caller(database_url):
    """The API as a client calls it: fails the test on any error status."""

    def call(method, path, **kwargs):
        with TestClient(create_app(database_url)) as api:
            as_admin(api, database_url)
            response = api.request(method, path, **kwargs)
        assert response.status_code < 300, response.text
        return response.json()

    return call


def seed_bracket_order(call):
    """Brackets (0.25 kg steel + 2% scrap, 2 screws) on line A: steel in two lots, too few screws; WO-1 released."""
    for item in ({"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs", "shelf_life_days": 30},
                 {"item_id": "steel", "name": "Steel", "kind": "buy", "uom": "kg"},
                 {"item_id": "screw", "name": "Screw", "kind": "buy", "uom": "pcs"}):
        call("POST", "/items", json=item)
    call("POST", "/items/bracket/bom", json={"component_item": "steel", "quantity_per": "0.25", "scrap_factor": "0.02"})
    call("POST", "/items/bracket/bom", json={"component_item": "screw", "quantity_per": "2"})
    call("POST", "/locations", json={"location_id": "line-a-side", "name": "Line A", "kind": "line_side", "line": "line-a"})
    for lot, quantity, expires in (("late", "100", "2027-06-01"), ("early", "10", "2027-01-01")):
        call("POST", "/stock/receipts", json={"item_id": "steel", "lot": lot, "to_location": "line-a-side",
                                              "quantity": quantity, "expires": expires, "source_ref": f"GR-{lot}"})
    call("POST", "/stock/receipts", json={"item_id": "screw", "lot": "S1", "to_location": "line-a-side",
                                          "quantity": "150", "source_ref": "GR-S1"})
    call("POST", "/work-orders", json={"work_order_id": "WO-1", "item_id": "bracket", "quantity": 100_000})
    call("POST", "/work-orders/WO-1/release")


def test_a_work_order_switch_mid_run_splits_the_counts_at_the_switch(plant, database_url, mqtt_url, tmp_path):
    call = caller(database_url)

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


def test_backflush_and_receipt_are_exact_once_per_interval_even_with_the_core_killed(plant, database_url, mqtt_url, tmp_path):
    call = caller(database_url)
    core = MesProcess.core(database_url, mqtt_url, write_plant(plant, tmp_path), tmp_path / "core.log")

    async def during(plant_run):
        await asyncio.to_thread(seed_bracket_order, call)
        await asyncio.to_thread(call, "POST", "/work-orders/WO-1/start", json={"machine_id": "mod16"})
        await asyncio.sleep(4)
        core.kill()
        await asyncio.sleep(2)
        core.start()
        await asyncio.sleep(4)

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during, core=core))

    ((good, scrap),) = query(database_url, "SELECT sum(good), sum(scrap) FROM production_attributions WHERE work_order_id = 'WO-1'")
    made = good + scrap
    consumed = dict(query(database_url, """SELECT item_id, sum(quantity) FROM stock_moves
                                           WHERE reason = 'backflush' AND work_order_id = 'WO-1' GROUP BY 1"""))
    assert consumed == {"steel": made * Decimal("0.255"), "screw": made * 2}, "consumed = (good + scrap) × qty per × (1 + scrap)"
    assert query(database_url, """SELECT count(*) FROM (SELECT source_ref, item_id, lot FROM stock_moves
                                  WHERE work_order_id = 'WO-1' GROUP BY 1, 2, 3 HAVING count(*) > 1) AS twice""") == [(0,)]
    received = query(database_url, "SELECT quantity FROM stock_on_hand WHERE item_id = 'bracket' AND lot = 'FG-WO-1'")
    assert received == [(good,)], "finished goods on hand = good units reported"
    steel_by_lot = dict(query(database_url, "SELECT coalesce(lot, '?'), quantity FROM stock_on_hand WHERE item_id = 'steel'"))
    assert "early" not in steel_by_lot, "the earlier-expiring lot is used up first"
    assert sum(steel_by_lot.values()) == Decimal(110) - consumed["steel"], "on hand = Σ moves"
    screws_short = query(database_url, "SELECT sum(quantity) FROM backflush_exceptions WHERE item_id = 'screw' AND kind = 'shortage'")
    assert screws_short == [(max(Decimal(0), made * 2 - 150),)]

    def lots(direction, item, lot):
        traced = call("GET", f"/lots/{item}/{lot}/trace", params={"direction": direction})["lots"]
        return {(entry["item_id"], entry["lot"]) for entry in traced}

    assert lots("back", "bracket", "FG-WO-1") >= {("steel", "early"), ("steel", "late"), ("screw", "S1")}
    assert lots("forward", "steel", "early") == {("bracket", "FG-WO-1")}
    if made * 2 > 150:
        assert ("screw", None) in lots("back", "bracket", "FG-WO-1"), "the unknown lot shows in the trace"
        assert {e["kind"] for e in call("GET", "/backflush/exceptions", params={"work_order_id": "WO-1"})} == {"shortage"}


def test_unassigned_production_reassigned_to_an_order_is_backflushed_exactly_once(plant, database_url, mqtt_url, tmp_path):
    call = caller(database_url)

    async def during(plant_run):
        await asyncio.to_thread(seed_bracket_order, call)
        await asyncio.sleep(3)  # the operator forgot to start the order: mod16's counts are unassigned
        await asyncio.to_thread(call, "POST", "/work-orders/WO-1/start", json={"machine_id": "mod16"})
        await asyncio.sleep(3)

    comparison = produce(plant, database_url, mqtt_url, tmp_path, during)
    assert_exact(comparison)
    ((started,),) = query(database_url, "SELECT start_ts FROM dispatches WHERE work_order_id = 'WO-1'")
    ((since,),) = query(database_url, "SELECT min(first_ts) FROM production_attributions WHERE machine_id = 'mod16'")
    period = {"machine_id": "mod16", "work_order_id": "WO-1", "start": since.isoformat(), "end": started.isoformat(),
              "actor": "supervisor"}
    moved = call("POST", "/production/reassign", json=period)
    assert moved["intervals"] > 0 and moved["good"] > 0

    recorded = comparison["mod16"]["recorded"]
    made = recorded["good"] + recorded["scrap"]
    assert query(database_url, "SELECT count(*) FROM production_attributions WHERE machine_id = 'mod16' AND work_order_id IS NULL") == [(0,)]
    consumed = dict(query(database_url, "SELECT item_id, sum(quantity) FROM stock_moves WHERE reason = 'backflush' GROUP BY 1"))
    assert consumed == {"steel": made * Decimal("0.255"), "screw": made * 2}, "every unit of the machine backflushed once"
    assert query(database_url, "SELECT quantity FROM stock_on_hand WHERE lot = 'FG-WO-1'") == [(recorded["good"],)]
    with TestClient(create_app(database_url)) as api:
        as_admin(api, database_url)
        again = api.post("/production/reassign", json=period)
    assert again.status_code == 409 and "overlaps" in again.json()["detail"]


def test_the_plcs_own_order_id_wins_over_the_api_and_an_unknown_id_leaves_its_units_unassigned(plant, database_url, mqtt_url, tmp_path):
    """opc32 (OPC UA) and mod16 (Modbus) report order ids through the edge. The API runs WO-API on opc32
    throughout; the PLCs' ids take over while they report one. Changeovers happen with the machine in
    setup, as on a real line: good and scrap then split exactly by the order each unit was made for."""
    call = caller(database_url)

    async def changeover(plant_run, orders: dict[str, str]):
        models = {machine: plant_run.simulated.model(machine) for machine in orders}
        for model in models.values():
            model.set_state(MachineState.SETUP)
        await asyncio.sleep(1.5)  # > two Modbus polls: every unit made so far is counted
        for machine, order in orders.items():
            models[machine].set_order(order)
        await asyncio.sleep(1.5)
        for model in models.values():
            model.set_state(MachineState.RUNNING)
        await asyncio.sleep(3)

    async def scenario():
        async with PlantRun(plant, database_url, mqtt_url, tmp_path) as plant_run:
            await asyncio.to_thread(call, "POST", "/items", json={"item_id": "widget", "name": "Widget", "kind": "make", "uom": "pcs"})
            for number in ("WO-API", "WO-P1", "WO-P2"):
                await asyncio.to_thread(call, "POST", "/work-orders", json={"work_order_id": number, "item_id": "widget", "quantity": 10_000})
                await asyncio.to_thread(call, "POST", f"/work-orders/{number}/release")
            await asyncio.to_thread(call, "POST", "/work-orders/WO-API/start", json={"machine_id": "opc32"})
            plant_run.start_production()
            await asyncio.sleep(2)
            await changeover(plant_run, {"opc32": "WO-P1", "mod16": "WO-P1"})
            assert (await asyncio.to_thread(call, "GET", "/work-orders/WO-P1"))["status"] == "running"
            await changeover(plant_run, {"opc32": "WO-P2", "mod16": "GHOST"})
            await changeover(plant_run, {"opc32": "", "mod16": ""})
            await plant_run.drain()
            return plant_run.comparison(), plant_run.simulated.ground_truth()

    comparison, truth = run(scenario())
    assert_exact(comparison)

    def recorded(machine):
        rows = query(database_url, """SELECT work_order_id, sum(good), sum(scrap) FROM production_attributions
                                      WHERE machine_id = %s GROUP BY 1""", machine)
        return {order: (good, scrap) for order, good, scrap in rows}

    def made(machine, *plc_orders):
        return tuple(sum(truth[machine]["by_order"].get(o, {}).get(c, 0) for o in plc_orders) for c in ("good", "scrap"))

    assert recorded("opc32") == {"WO-API": made("opc32", ""), "WO-P1": made("opc32", "WO-P1"), "WO-P2": made("opc32", "WO-P2")}
    assert recorded("mod16") == {None: made("mod16", "", "GHOST"), "WO-P1": made("mod16", "WO-P1")}
    assert all(good > 0 for good, _ in recorded("opc32").values())

    statuses = {row["work_order_id"]: row["status"] for row in call("GET", "/work-orders")}
    assert statuses == {"WO-API": "running", "WO-P1": "paused", "WO-P2": "paused"}, "the orders follow their PLCs"
    (ghost,) = [d for d in call("GET", "/machines/mod16/dispatches") if d["reported_order"] == "GHOST"]
    assert ghost["work_order_id"] is None and "not a work order here" in ghost["rejected_reason"]
    unassigned = {row["machine_id"]: row for row in call("GET", "/production/unassigned")}
    assert unassigned["mod16"]["plc_reported"] == ["GHOST"]
