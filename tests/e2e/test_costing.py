"""A work order's actual cost, live from the plant, against the same cost computed here independently
from the raw intervals, states and moves."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_EVEN, Decimal

import pytest

from tests.e2e.test_spine import assert_exact, produce, query
from tests.e2e.test_work_orders import caller

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("balances_match_ledger")]

DEFAULT_PRICE, PEAK_PRICE = Decimal("0.12"), Decimal("0.31")
HOURLY_RATE, LABOUR = Decimal("36.50"), (Decimal("1.5"), Decimal("22"))
STEEL_COST, SCREW_COST = Decimal("2.40"), Decimal("0.05")


def seed(call):
    """Brackets on mod16's line, components received at known costs, a work centre with an hourly rate."""
    for item in ({"item_id": "bracket", "name": "Bracket", "kind": "make", "uom": "pcs"},
                 {"item_id": "steel", "name": "Steel", "kind": "buy", "uom": "kg", "standard_cost": "2.00"},
                 {"item_id": "screw", "name": "Screw", "kind": "buy", "uom": "pcs", "standard_cost": "0.04"}):
        call("POST", "/items", json=item)
    call("POST", "/items/bracket/bom", json={"component_item": "steel", "quantity_per": "0.25", "scrap_factor": "0.02"})
    call("POST", "/items/bracket/bom", json={"component_item": "screw", "quantity_per": "2"})
    call("POST", "/locations", json={"location_id": "line-a-side", "name": "Line A", "kind": "line_side", "line": "line-a"})
    for item, lot, quantity, cost in (("steel", "S1", "500", STEEL_COST), ("screw", "B1", "100", SCREW_COST)):
        call("POST", "/stock/receipts", json={"item_id": item, "lot": lot, "to_location": "line-a-side", "quantity": quantity,
                                              "unit_cost": str(cost), "source_ref": f"GR-{lot}"})
    call("POST", "/work-centres", json={"work_centre_id": "press", "name": "Press", "hourly_rate": str(HOURLY_RATE)})
    call("PATCH", "/machines/mod16", json={"work_centre_id": "press"})
    call("PUT", "/items/bracket/routing", json={"work_centre_id": "press", "ideal_cycle_s": "0.1", "energy_wh_per_unit": "20"})
    call("POST", "/work-orders", json={"work_order_id": "WO-C", "item_id": "bracket", "quantity": 100_000})
    call("POST", "/work-orders/WO-C/release")


def tariff_with_a_peak_from(call, peak_from: datetime):
    call("PUT", "/energy-tariffs/default", json={
        "timezone": "UTC", "default_price_per_kwh": str(DEFAULT_PRICE),
        "periods": [{"days": [peak_from.weekday()], "start": peak_from.time().isoformat(),
                     "end": (peak_from + timedelta(hours=1)).time().isoformat(), "price_per_kwh": str(PEAK_PRICE)}]})


def money(amount: Decimal) -> Decimal:
    return amount.quantize(Decimal("0.000001"), rounding=ROUND_HALF_EVEN)


def test_a_work_orders_actual_cost_is_its_material_energy_machine_time_and_labour(plant, database_url, mqtt_url, tmp_path):
    call = caller(database_url)
    peak_from = datetime.now(UTC)

    async def during(plant_run):
        nonlocal peak_from
        await asyncio.to_thread(seed, call)
        peak_from = (datetime.now(UTC) + timedelta(seconds=5)).replace(microsecond=0)  # the peak starts mid-run
        await asyncio.to_thread(tariff_with_a_peak_from, call, peak_from)
        await asyncio.to_thread(call, "POST", "/work-orders/WO-C/start", json={"machine_id": "mod16"})
        await asyncio.to_thread(call, "POST", "/work-orders/WO-C/labour", json={"hours": str(LABOUR[0]), "rate": str(LABOUR[1])})
        await asyncio.sleep(max(0.0, (peak_from - datetime.now(UTC)).total_seconds()) + 4)  # into the peak
        await asyncio.to_thread(call, "POST", "/work-orders/WO-C/complete")

    assert_exact(produce(plant, database_url, mqtt_url, tmp_path, during))
    cost = call("GET", "/work-orders/WO-C/cost")

    # material: every backflushed quantity at its item's one receipt cost (the unknown lot too: last known cost)
    unit_cost = {"steel": STEEL_COST, "screw": SCREW_COST}
    moves = query(database_url, "SELECT item_id, quantity FROM stock_moves WHERE work_order_id = 'WO-C' AND reason = 'backflush'")
    material = sum((money(quantity * unit_cost[item]) for item, quantity in moves), Decimal(0))
    # energy: each interval's Wh at the price when it was counted
    intervals = query(database_url, "SELECT last_ts, energy_wh FROM production_attributions WHERE work_order_id = 'WO-C'")
    peak = lambda ts: peak_from <= ts < peak_from + timedelta(hours=1)  # noqa: E731
    energy = sum((wh * (PEAK_PRICE if peak(ts) else DEFAULT_PRICE) / 1000 for ts, wh in intervals), Decimal(0))
    assert any(peak(ts) for ts, wh in intervals if wh) and any(not peak(ts) for ts, wh in intervals if wh), "both prices used"
    # machine time: running states inside the order's dispatch window
    ((start, end),) = query(database_url, "SELECT start_ts, end_ts FROM dispatches WHERE work_order_id = 'WO-C'")
    states = query(database_url, "SELECT ts, state_code FROM machine_states WHERE machine_id = 'mod16' ORDER BY ts")
    running = timedelta(0)
    for (ts, code), (next_ts, _) in zip(states, [*states[1:], (end, None)], strict=True):
        if code == 1:
            running += max(timedelta(0), min(next_ts, end) - max(ts, start))
    machine = money(Decimal(running // timedelta(microseconds=1)) / 1_000_000 * HOURLY_RATE / 3600)
    labour = LABOUR[0] * LABOUR[1]

    actual = {name: Decimal(cost["actual"][name]) for name in ("material", "energy", "machine", "labour", "total")}
    assert actual == {"material": material, "energy": energy, "machine": machine, "labour": labour,
                      "total": material + energy + machine + labour}
    (good,) = query(database_url, "SELECT sum(good) FROM production_attributions WHERE work_order_id = 'WO-C'")[0]
    assert Decimal(cost["actual"]["unit_cost"]) == money(actual["total"] / good)
    assert Decimal(cost["finished_goods_value"]) + Decimal(cost["not_absorbed"]) == actual["total"]
    assert Decimal(cost["finished_goods_value"]) > 0, "finished goods were valued as they were received"
    standard = {name: Decimal(value) for name, value in cost["standard_per_unit"].items()}
    assert standard == {"material": Decimal("0.59"), "energy": Decimal("0.0024"), "machine": Decimal("0.001014"),
                        "labour": 0, "total": Decimal("0.593414")}  # 0.255 × 2 + 2 × 0.04; 20 Wh × 0.12; 0.1 s × 36.5 / 3600
    variances = {name: Decimal(value) for name, value in cost["variances"].items()}
    assert variances["total"] == actual["total"] - good * standard["total"]
