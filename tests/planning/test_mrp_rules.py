"""MRP: worked examples derived by hand (the same as in docs/planning.md), then properties over random plans."""

from datetime import date, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.bom import BomLine
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.levels import low_level_codes
from planning.rules.lot_sizing import LotSizing
from planning.rules.mrp import (Demand, Forecast, ItemPolicy, Peg, PlanInput, Supply, consume_forecasts, plan,
                                work_order_components_date, work_order_receipt_date)

D = Decimal
MONDAY = date(2027, 1, 4)
WEEKS = Horizon(MONDAY, "week", 6)


def week(index: int) -> date:
    return MONDAY + timedelta(weeks=index)


def day(index: int) -> date:
    return MONDAY + timedelta(days=index)


def boms_of(*lines: BomLine) -> dict[str, list[BomLine]]:
    structure: dict[str, list[BomLine]] = {}
    for line in lines:
        structure.setdefault(line.parent, []).append(line)
    return structure


def rows(record) -> list[tuple[int, ...]]:
    """(gross, scheduled, projected on hand, net, planned receipts, planned releases) per bucket, as ints."""
    return [tuple(int(value) for value in (b.gross_requirements, b.scheduled_receipts, b.projected_on_hand,
                                           b.net_requirements, b.planned_receipts, b.planned_releases))
            for b in record.buckets]


def bolt_plan(sizing: LotSizing):
    """BOLT: 30 on hand, safety stock 10, bought in one week; PO-1 brings 40 in week 1;
    sales-order lines need 20, 25, 0, 30, 15, 10 in weeks 0-5."""
    needs = [20, 25, 0, 30, 15, 10]
    demands = [Demand(f"SO-{n}", "BOLT", week(n), D(q), "sales_order") for n, q in enumerate(needs) if q]
    return plan(PlanInput(
        WEEKS, MONDAY, {}, {"BOLT": D(30)},
        {"BOLT": ItemPolicy(D(10), sizing, PurchaseLeadTime(7))},
        demands, [], [Supply("PO-1", "BOLT", week(1), D(40), "purchase_order")]))


def test_lot_for_lot_orders_each_bucket_its_net_requirement():
    """Week 0: 30 − 20 = 10, at safety stock. Week 1: 10 − 25 = −15, PO-1 is needed now and is due now:
    10 + 40 − 25 = 25. Week 3: 25 − 30 = −5, net 10 − (−5) = 15, ordered (15) and released a week before.
    Week 4: 10 − 15 → net 15; week 5: 10 − 10 → net 10."""
    result = bolt_plan(LotSizing("lot_for_lot"))
    assert rows(result.records["BOLT"]) == [
        (20, 0, 10, 0, 0, 0), (25, 40, 25, 0, 0, 0), (0, 0, 25, 0, 0, 15),
        (30, 0, 10, 15, 15, 15), (15, 0, 10, 15, 15, 10), (10, 0, 10, 10, 10, 0)]
    assert [(o.quantity, o.release, o.receipt) for o in result.planned_orders] == [
        (D(15), week(2), week(3)), (D(15), week(3), week(4)), (D(10), week(4), week(5))]
    assert result.exceptions == []


def test_fixed_order_quantity_orders_whole_lots():
    """Week 3 nets 15: one lot of 50 → 25 − 30 + 50 = 45; weeks 4 and 5 stay above 10 (30, 20)."""
    result = bolt_plan(LotSizing("fixed", quantity=D(50)))
    assert rows(result.records["BOLT"])[3:] == [(30, 0, 45, 15, 50, 0), (15, 0, 30, 0, 0, 0), (10, 0, 20, 0, 0, 0)]
    assert rows(result.records["BOLT"])[2][5] == 50


def test_period_order_quantity_covers_its_periods():
    """Two periods: week 3 nets 15 and also covers week 4's 15 → 30 (released week 2); week 5 nets 10 with no
    later week to cover (released week 4)."""
    result = bolt_plan(LotSizing("period", periods=2))
    assert rows(result.records["BOLT"])[2:] == [(0, 0, 25, 0, 0, 30), (30, 0, 25, 15, 30, 0), (15, 0, 10, 0, 0, 10),
                                                (10, 0, 10, 10, 10, 0)]


def test_minimum_and_multiple_raise_the_lot():
    """Minimum 20, multiple 12: week 3's 15 → 20 → 24 (−5 + 24 = 19); week 4: 19 − 15 = 4, net 6 → 24 (28);
    week 5: 28 − 10 = 18, no order."""
    result = bolt_plan(LotSizing("min_multiple", minimum=D(20), multiple=D(12)))
    assert rows(result.records["BOLT"])[3:] == [(30, 0, 19, 15, 24, 24), (15, 0, 28, 6, 24, 0), (10, 0, 18, 0, 0, 0)]


def test_maximum_splits_the_lot():
    """Lot-for-lot with maximum 10 and multiple 5: week 3's 15 → 10 + 5, week 5's 10 → 10."""
    result = bolt_plan(LotSizing("lot_for_lot", multiple=D(5), maximum=D(10)))
    assert [(o.quantity, o.receipt) for o in result.planned_orders] == [
        (D(10), week(3)), (D(5), week(3)), (D(10), week(4)), (D(5), week(4)), (D(10), week(5))]


def table_plan():
    """TABLE (made in 7 days) = 1 TOP + 4 SCREW; TOP (made in 7 days, minimum lot 12) = 6 SCREW;
    SCREW (bought, same day, multiples of 100): SO-1 wants 10 tables in week 2. On hand: 2 TOP, 50 SCREW."""
    boms = boms_of(BomLine("TABLE", "TOP", D(1)), BomLine("TABLE", "SCREW", D(4)), BomLine("TOP", "SCREW", D(6)))
    policies = {
        "TABLE": ItemPolicy(lead_time=ManufactureLeadTime(7)),
        "TOP": ItemPolicy(lot_sizing=LotSizing("min_multiple", minimum=D(12)), lead_time=ManufactureLeadTime(7)),
        "SCREW": ItemPolicy(lot_sizing=LotSizing("min_multiple", multiple=D(100)), lead_time=PurchaseLeadTime(0)),
    }
    return plan(PlanInput(Horizon(MONDAY, "week", 4), MONDAY, boms, {"TOP": D(2), "SCREW": D(50)}, policies,
                          [Demand("SO-1", "TABLE", date(2027, 1, 20), D(10), "sales_order")], [], []))


def test_two_levels_net_a_shared_component_once_at_its_lowest_level():
    """Codes: TABLE 0, TOP 1, SCREW 2 (under TABLE directly and under TOP).
    TABLE: 10 due week 2 → planned 10 received week 2, released week 1 → 10 TOP and 40 SCREW in week 1.
    TOP: 2 − 10 = −8 → minimum 12, received week 1, released week 0 → 72 SCREW in week 0.
    SCREW, netted once with both: week 0: 50 − 72 = −22 → 100 (multiple), on hand 78; week 1: 78 − 40 = 38."""
    result = table_plan()
    assert {item: r.low_level_code for item, r in result.records.items()} == {"TABLE": 0, "TOP": 1, "SCREW": 2}
    assert rows(result.records["TABLE"]) == [(0, 0, 0, 0, 0, 0), (0, 0, 0, 0, 0, 10), (10, 0, 0, 10, 10, 0), (0, 0, 0, 0, 0, 0)]
    assert rows(result.records["TOP"]) == [(0, 0, 2, 0, 0, 12), (10, 0, 4, 8, 12, 0), (0, 0, 4, 0, 0, 0), (0, 0, 4, 0, 0, 0)]
    assert rows(result.records["SCREW"]) == [(72, 0, 78, 22, 100, 100), (40, 0, 38, 0, 0, 0), (0, 0, 38, 0, 0, 0),
                                             (0, 0, 38, 0, 0, 0)]
    assert result.exceptions == []


def test_pegging_links_the_sales_order_to_every_supply_below_it():
    result = table_plan()
    assert result.pegs == [
        Peg("planned:TABLE:1", "SO-1", "TABLE", D(10)),
        Peg("on_hand:TOP", "planned:TABLE:1/TOP", "TOP", D(2)),
        Peg("planned:TOP:1", "planned:TABLE:1/TOP", "TOP", D(8)),
        Peg("on_hand:SCREW", "planned:TOP:1/SCREW", "SCREW", D(50)),
        Peg("planned:SCREW:1", "planned:TOP:1/SCREW", "SCREW", D(22)),
        Peg("planned:SCREW:1", "planned:TABLE:1/SCREW", "SCREW", D(40)),
    ]


def test_valve_receipts_expedite_cancel_and_a_late_demand():
    """VALVE, day buckets from Monday, 5 on hand: SO-7 wants 8 on Tuesday, SO-8 4 on Friday. PO-A (10) is due
    Thursday, PO-B (6) Friday. Tuesday: 5 − 8 = −3 → PO-A is needed Tuesday (expedite); 7 left covers Friday,
    so PO-B is never needed (cancel). Until PO-A arrives the projection is −3, below safety stock (0), and SO-7
    is covered only on Thursday."""
    result = plan(PlanInput(
        Horizon(MONDAY, "day", 5), MONDAY, {}, {"VALVE": D(5)}, {"VALVE": ItemPolicy(lead_time=PurchaseLeadTime(2))},
        [Demand("SO-7", "VALVE", day(1), D(8), "sales_order"), Demand("SO-8", "VALVE", day(4), D(4), "sales_order")],
        [], [Supply("PO-A", "VALVE", day(3), D(10), "purchase_order"), Supply("PO-B", "VALVE", day(4), D(6), "purchase_order")]))
    assert [b.projected_on_hand for b in result.records["VALVE"].buckets] == [5, -3, -3, 7, 9]
    assert [(e.kind, e.reference, e.on, e.to, e.quantity) for e in result.exceptions] == [
        ("expedite", "PO-A", day(3), day(1), D(10)),
        ("cancel", "PO-B", day(4), None, D(6)),
        ("below_safety_stock", "VALVE", day(1), None, D(3)),
        ("below_safety_stock", "VALVE", day(2), None, D(3)),
        ("demand_late", "SO-7", day(1), day(3), D(8)),
    ]
    assert result.planned_orders == []


def test_defer_and_release_past_due():
    """GASKET: PO-C (5) due Monday, first needed Thursday → defer to Thursday. SEAL: nothing on hand, bought in
    3 days, SO-9 wants 2 on Tuesday → planned for Tuesday, released the Saturday before (past due): it can
    arrive Thursday at the earliest, so SO-9 is late."""
    result = plan(PlanInput(
        Horizon(MONDAY, "day", 5), MONDAY, {}, {},
        {"GASKET": ItemPolicy(lead_time=PurchaseLeadTime(1)), "SEAL": ItemPolicy(lead_time=PurchaseLeadTime(3))},
        [Demand("SO-10", "GASKET", day(3), D(5), "sales_order"), Demand("SO-9", "SEAL", day(1), D(2), "sales_order")],
        [], [Supply("PO-C", "GASKET", day(0), D(5), "purchase_order")]))
    assert [(e.kind, e.reference, e.on, e.to) for e in result.exceptions] == [
        ("defer", "PO-C", day(0), day(3)),
        ("demand_late", "SO-9", day(1), day(3)),
        ("release_past_due", "planned:SEAL:1", day(-2), day(3)),
    ]
    (order,) = result.planned_orders
    assert (order.release, order.receipt, order.expected, order.release_past_due) == (day(-2), day(1), day(3), True)
    assert rows(result.records["SEAL"])[0][5] == 2  # released today


def test_forecast_is_consumed_by_the_orders_of_its_bucket():
    """Week 0: forecast 50, orders 30 → 20 of the forecast stand (50 in all). Week 1: forecast 10, orders 25 →
    the forecast is consumed, the orders alone count (25). Nothing carries from one week to the other."""
    orders = [Demand("SO-1", "PUMP", day(1), D(30), "sales_order"), Demand("SO-2", "PUMP", week(1), D(25), "sales_order")]
    forecasts = [Forecast("F-0", "PUMP", week(0), D(50)), Forecast("F-1", "PUMP", week(1), D(10))]
    assert consume_forecasts(WEEKS, orders, forecasts) == [Demand("F-0", "PUMP", week(0), D(20), "forecast")]
    result = plan(PlanInput(WEEKS, MONDAY, {}, {"PUMP": D(100)}, {}, orders, forecasts, []))
    assert [b.gross_requirements for b in result.records["PUMP"].buckets][:2] == [50, 25]


def test_dependent_demand_takes_the_scrap_factor_and_a_phantom_passes_through():
    """KIT (phantom, lead time 0) = 2 PIN with 10 % scrap; LAMP = 1 KIT. 5 lamps → 5 KIT → 5 × 2 × 1.1 = 11 PIN,
    on the lamp's release day."""
    boms = boms_of(BomLine("LAMP", "KIT", D(1), phantom=True), BomLine("KIT", "PIN", D(2), D("0.1")))
    result = plan(PlanInput(
        Horizon(MONDAY, "day", 7), MONDAY, boms, {},
        {"LAMP": ItemPolicy(lead_time=ManufactureLeadTime(2)), "PIN": ItemPolicy(lead_time=PurchaseLeadTime(0))},
        [Demand("SO-1", "LAMP", day(5), D(5), "sales_order")], [], []))
    assert [b.gross_requirements for b in result.records["PIN"].buckets] == [0, 0, 0, D("11.0"), 0, 0, 0]
    assert [o.item for o in result.planned_orders] == ["LAMP", "KIT", "PIN"]


def test_released_work_order_components_and_receipts_count():
    """WO-1 (running) brings 6 more FRAMEs on Wednesday and still needs 12 TUBEs today (its component need, passed
    in as a demand); 10 TUBEs on hand → 2 short today."""
    result = plan(PlanInput(
        Horizon(MONDAY, "day", 3), MONDAY, {}, {"TUBE": D(10)},
        {"TUBE": ItemPolicy(lead_time=PurchaseLeadTime(0))},
        [Demand("WO-1/TUBE", "TUBE", day(0), D(12), "work_order", "WO-1")], [],
        [Supply("WO-1", "FRAME", day(2), D(6), "work_order")]))
    assert rows(result.records["TUBE"])[0] == (12, 0, 0, 2, 2, 2)
    assert [b.scheduled_receipts for b in result.records["FRAME"].buckets] == [0, 0, 6]


def test_a_bom_cycle_names_its_items():
    boms = boms_of(BomLine("A", "B", D(1)), BomLine("B", "C", D(1)), BomLine("C", "A", D(1)))
    with pytest.raises(ValueError, match="BOM cycle: A → B → C → A"):
        low_level_codes(boms)


def test_a_missing_lead_time_names_the_item():
    with pytest.raises(ValueError, match="item 'NUT' has no lead time"):
        plan(PlanInput(WEEKS, MONDAY, {}, {}, {}, [Demand("SO-1", "NUT", week(1), D(1), "sales_order")], [], []))


def test_the_horizon_refuses_too_many_buckets():
    with pytest.raises(ValueError, match="at most 366"):
        Horizon(MONDAY, "day", 367)


def test_a_work_orders_receipt_date():
    """Running: at the projected finish (its due date while it has no rate); released or paused: at its due date;
    never before today."""
    assert work_order_receipt_date("running", day(5), day(2), MONDAY) == day(2)
    assert work_order_receipt_date("running", day(5), None, MONDAY) == day(5)
    assert work_order_receipt_date("released", day(5), day(2), MONDAY) == day(5)
    assert work_order_receipt_date("paused", day(-3), None, MONDAY) == MONDAY


def test_a_work_orders_components_are_needed_when_it_starts():
    """Running or paused: now, as it consumes them. Released or planned, due day 5: 100 units at 36 s on a centre
    with 8 h a day take 3600 / 28800 s → 1 day, plus 2 fixed: needed from day 2; due tomorrow, they are needed now
    (never before today); an item without a lead time: now."""
    three_days = ManufactureLeadTime(2, D(36), D(28800))
    assert work_order_components_date("running", day(5), D(100), three_days, "kit", MONDAY) == MONDAY
    assert work_order_components_date("paused", day(5), D(100), three_days, "kit", MONDAY) == MONDAY
    assert work_order_components_date("released", day(5), D(100), three_days, "kit", MONDAY) == day(2)
    assert work_order_components_date("planned", day(1), D(100), three_days, "kit", MONDAY) == MONDAY
    assert work_order_components_date("released", day(5), D(100), None, "kit", MONDAY) == MONDAY


@given(st.lists(st.tuples(st.integers(-2, 50), st.integers(1, 40)), max_size=8),
       st.lists(st.tuples(st.integers(0, 5), st.integers(0, 40)), max_size=8))
def test_consumed_forecasts_leave_each_bucket_the_larger_of_orders_and_forecast(orders, forecasts):
    order_demands = [Demand(f"SO-{n}", "PUMP", day(offset), D(quantity), "sales_order")
                     for n, (offset, quantity) in enumerate(orders)]
    forecast_rows = [Forecast(f"F-{n}", "PUMP", week(index), D(quantity)) for n, (index, quantity) in enumerate(forecasts)]
    remaining = consume_forecasts(WEEKS, order_demands, forecast_rows)
    for bucket in range(WEEKS.count):
        ordered = sum((d.quantity for d in order_demands if WEEKS.bucket_of(d.due) == bucket), D(0))
        forecast = sum((f.quantity for f in forecast_rows if WEEKS.bucket_of(f.bucket_start) == bucket), D(0))
        left = sum((d.quantity for d in remaining if WEEKS.bucket_of(d.due) == bucket), D(0))
        assert ordered + left == max(ordered, forecast)


def test_two_lines_of_one_component_make_one_dependent_demand():
    """CRATE = 4 NAIL + 2 NAIL (two lines, e.g. lid and base): 3 crates → one demand of 18 NAIL, pegged once."""
    boms = boms_of(BomLine("CRATE", "NAIL", D(4)), BomLine("CRATE", "NAIL", D(2)))
    result = plan(PlanInput(
        Horizon(MONDAY, "day", 3), MONDAY, boms, {"NAIL": D(100)},
        {"CRATE": ItemPolicy(lead_time=ManufactureLeadTime(1)), "NAIL": ItemPolicy(lead_time=PurchaseLeadTime(0))},
        [Demand("SO-1", "CRATE", day(2), D(3), "sales_order")], [], []))
    assert [(d.id, d.quantity) for d in result.demands if d.item == "NAIL"] == [("planned:CRATE:1/NAIL", D(18))]
