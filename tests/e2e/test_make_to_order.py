"""Make-to-order on the whole plant: a sales order is promised, explodes into planned work and purchase orders on
every level, is firmed in one action, and the simulated machine then makes the brackets. At each checkpoint (mod16
paused in setup, so nothing is on the way) the work order's remaining quantity and the live plan's on hand,
projected on hand and ATP are exactly what the simulator's ground truth says, read through the HTTP API only.

FRAME = 2 BRACKET + 4 SCREW (made in 2 days); BRACKET = 0.25 kg STEEL + 2 % scrap + 2 SCREW (made in 1 day, on
mod16); STEEL bought in 3 days, 1,000 kg at the line; SCREW bought in 2 days, none on hand. SO-1 wants 1,000
frames in 3 days: promised in 5 (CTP). With G good and S scrap brackets counted (every unit of mod16 is the bracket order's: it runs
from the first unit):
- BRACKET: on hand G (received as made); the order's remaining 2,000 − G is its scheduled receipt; the released
  frame order needs 2,000 now → projected on hand at the end 0.
- STEEL: on hand 1,000 − 0.255 (G + S) (backflushed); the bracket order still needs 0.255 (2,000 − G) → projected
  on hand and cumulative ATP at the end 490 − 0.255 S: scrap is the only thing that moves it.
- SCREW: on hand −2 (G + S) (backflushed from the unknown lot); the firmed purchase order brings 8,000, the orders
  still need 2 (2,000 − G) + 4,000 → short by exactly 2 S, which the plan orders anew.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg
import pytest

from app.plantrun import PlantRun
from core.queries import counter_values
from kernel.signals import COUNTERS, MachineState
from tests.e2e.conftest import run
from tests.e2e.test_spine import assert_exact
from tests.e2e.test_work_orders import caller

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("balances_match_ledger")]

MACHINE = "mod16"
FRAMES, BRACKETS = 1000, 2000
STEEL_ON_HAND = Decimal(1000)
STEEL_PER_BRACKET, SCREWS_PER_BRACKET = Decimal("0.255"), 2


def seed(call):
    for item, kind, cost in (("FRAME", "make", None), ("BRACKET", "make", None), ("STEEL", "buy", "2.00"),
                             ("SCREW", "buy", "0.04")):
        call("POST", "/items", json={"item_id": item, "name": item.title(), "kind": kind, "uom": "pcs",
                                     **({"standard_cost": cost} if cost else {})})
    call("POST", "/items/FRAME/bom", json={"component_item": "BRACKET", "quantity_per": "2"})
    call("POST", "/items/FRAME/bom", json={"component_item": "SCREW", "quantity_per": "4"})
    call("POST", "/items/BRACKET/bom", json={"component_item": "STEEL", "quantity_per": "0.25", "scrap_factor": "0.02"})
    call("POST", "/items/BRACKET/bom", json={"component_item": "SCREW", "quantity_per": "2"})
    for item, days in (("FRAME", 2), ("BRACKET", 1), ("STEEL", 3), ("SCREW", 2)):
        call("PUT", f"/items/{item}/planning", json={"lead_time_days": days})
    call("POST", "/locations", json={"location_id": "line-a-side", "name": "Line A", "kind": "line_side", "line": "line-a"})
    call("POST", "/stock/receipts", json={"item_id": "STEEL", "lot": "S1", "to_location": "line-a-side",
                                          "quantity": str(STEEL_ON_HAND), "source_ref": "GR-S1"})
    call("POST", "/customers", json={"customer_id": "globex", "name": "Globex"})
    call("POST", "/suppliers", json={"supplier_id": "acme", "name": "ACME"})


def totals(record, name):
    return sum((Decimal(bucket[name]) for bucket in record["buckets"]), Decimal(0))


def test_a_sales_order_is_promised_planned_firmed_and_made_and_the_live_plan_follows_every_count_exactly(
        plant, database_url, mqtt_url, tmp_path):
    call = caller(database_url)
    today = datetime.now(UTC).date()
    checked: list[tuple[int, int]] = []

    def plan_of(item):
        return call("GET", f"/planning/runs/live/records/{item}")

    def follows(work_order, good, scrap):
        """The API's view equals what G good and S scrap brackets must give (the module's docstring)."""
        progress = call("GET", f"/work-orders/{work_order}/progress")
        bracket, steel, screw = plan_of("BRACKET"), plan_of("STEEL"), plan_of("SCREW")
        steel_atp = call("GET", "/planning/atp/STEEL")["buckets"]
        made = good + scrap
        expected_steel_end = STEEL_ON_HAND - STEEL_PER_BRACKET * BRACKETS - STEEL_PER_BRACKET * scrap
        return ((progress["good"], progress["scrap"]) == (good, scrap)
                and Decimal(bracket["on_hand"]) == good
                and totals(bracket, "scheduled_receipts") == BRACKETS - good
                and Decimal(bracket["buckets"][-1]["projected_on_hand"]) == 0
                and Decimal(steel["on_hand"]) == STEEL_ON_HAND - STEEL_PER_BRACKET * made
                and totals(steel, "gross_requirements") == STEEL_PER_BRACKET * (BRACKETS - good)
                and Decimal(steel["buckets"][-1]["projected_on_hand"]) == expected_steel_end
                and Decimal(steel_atp[-1]["cumulative_atp"]) == expected_steel_end
                and Decimal(screw["on_hand"]) == -SCREWS_PER_BRACKET * made
                and totals(screw, "planned_receipts") == SCREWS_PER_BRACKET * scrap)

    async def checkpoint(plant_run, work_order):
        """mod16 paused in setup until every unit it made is committed, then the API must follow, exactly."""
        model = plant_run.simulated.model(MACHINE)
        model.set_state(MachineState.SETUP)

        def committed():
            with psycopg.connect(database_url) as conn:
                values = counter_values(conn).get(MACHINE, {})
            shown = plant_run.simulated.counters()[MACHINE]
            return all(values.get(counter) == shown[counter] for counter in COUNTERS)

        await plant_run.wait_for(committed, 30, f"{MACHINE}'s counts committed")
        truth = plant_run.simulated.ground_truth()[MACHINE]
        good, scrap = truth["good"], truth["scrap"]
        await plant_run.wait_for(lambda: follows(work_order, good, scrap), 30,
                                 f"the work order and the live plan at {good} good, {scrap} scrap")
        checked.append((good, scrap))
        model.set_state(MachineState.RUNNING)

    async def scenario():
        async with PlantRun(plant, database_url, mqtt_url, tmp_path) as plant_run:
            await asyncio.to_thread(seed, call)
            due = datetime.combine(today + timedelta(days=3), datetime.min.time(), UTC) + timedelta(hours=12)
            entered = await asyncio.to_thread(call, "POST", "/sales-orders", json={
                "so_id": "SO-1", "customer_id": "globex", "due": due.isoformat(),
                "lines": [{"line": "1", "item_id": "FRAME", "quantity": str(FRAMES), "unit_price": "40"}]})
            (line,) = entered["lines"]
            # no frame to promise (ATP): made from brackets, made a day after the screws (bought in 2 days), in 2 days
            assert (line["promise"]["source"], line["promise"]["date"]) == ("make", str(today + timedelta(days=5))), line
            pegs = await asyncio.to_thread(call, "GET", f"/planning/runs/live/pegging/{line['promise']['demand_id']}")
            planned = {order["id"]: order for order in await asyncio.to_thread(call, "GET", "/planning/runs/live/planned-orders")}
            reached = sorted({(step["depth"], planned[step["supply"]]["item_id"], planned[step["supply"]]["kind"])
                              for step in pegs["down"] if step["supply"] in planned})
            # STEEL's 1,000 kg cover the 510 it needs: no order for it
            assert reached == [(0, "FRAME", "make"), (1, "BRACKET", "make"), (1, "SCREW", "buy"), (2, "SCREW", "buy")]

            firmed = await asyncio.to_thread(call, "POST", "/planning/planned-orders/firm", json={
                "sales_order_id": "SO-1", "document_prefix": "MTO", "supplier_id": "acme"})
            work_orders = {planned[f["planned_order_id"]]["item_id"]: f["work_order_id"] for f in firmed if f["work_order_id"]}
            assert set(work_orders) == {"FRAME", "BRACKET"}
            for item, number in work_orders.items():
                work = await asyncio.to_thread(call, "GET", f"/work-orders/{number}")
                assert work["status"] == "released" and work["components"], work
                assert work["quantity"] == {"FRAME": FRAMES, "BRACKET": BRACKETS}[item]
            bracket_order = work_orders["BRACKET"]
            assert await asyncio.to_thread(follows, bracket_order, 0, 0), "before the first unit"

            await asyncio.to_thread(call, "POST", f"/work-orders/{bracket_order}/start", json={"machine_id": MACHINE})
            plant_run.start_production()
            for _ in range(2):
                await asyncio.sleep(3)
                await checkpoint(plant_run, bracket_order)
            await plant_run.drain()
            return plant_run.comparison()

    assert_exact(run(scenario()))
    assert len(checked) == 2 and 0 < checked[0][0] < checked[1][0], f"each checkpoint counted more: {checked}"
