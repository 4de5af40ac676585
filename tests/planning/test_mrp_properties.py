"""MRP properties over random multi-level plans: balances, lot-size rules, pegging, safety stock, levels."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.rules.bom import BomLine
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.lot_sizing import LotSizing
from planning.rules.mrp import Demand, Forecast, ItemPolicy, PlanInput, Supply, plan
from planning.rules.pegging import orders_of, pegged_down, pegged_up

D = Decimal
START = date(2027, 1, 4)
quantities = st.integers(1, 60).map(D)


@st.composite
def lot_sizings(draw):
    rule = draw(st.sampled_from(["lot_for_lot", "fixed", "period", "min_multiple"]))
    if rule == "fixed":
        return LotSizing("fixed", quantity=draw(quantities))
    multiple = draw(st.none() | st.integers(1, 12).map(D))
    minimum = draw(st.integers(0, 30).map(D))
    maximum = draw(st.none() | st.integers(3, 6))
    unit = multiple or D(1)
    smallest = LotSizing(minimum=minimum, multiple=multiple).smallest_lot
    return LotSizing(rule, periods=draw(st.integers(1, 3)), minimum=minimum, multiple=multiple,
                     maximum=None if maximum is None else max(smallest, unit) * maximum)


@st.composite
def plan_inputs(draw):
    horizon = Horizon(START, draw(st.sampled_from(["day", "week"])), draw(st.integers(1, 8)))
    levels = [[f"L{level}-{n}" for n in range(draw(st.integers(1, 3)))] for level in range(draw(st.integers(1, 4)))]
    boms: dict[str, list[BomLine]] = {}
    for depth, level in enumerate(levels[:-1]):
        below = [item for lower in levels[depth + 1:] for item in lower]
        for parent in level:
            for component in draw(st.lists(st.sampled_from(below), max_size=3, unique=True)):
                boms.setdefault(parent, []).append(
                    BomLine(parent, component, D(draw(st.integers(1, 3))),
                            draw(st.sampled_from([D(0), D("0.1"), D("0.25")]))))
    items = [item for level in levels for item in level]
    policies = {}
    for item in items:
        lead = (ManufactureLeadTime(draw(st.integers(0, 6)), D(draw(st.integers(0, 90))), D(28800)) if item in boms
                else PurchaseLeadTime(draw(st.integers(0, 10))))
        policies[item] = ItemPolicy(D(draw(st.integers(0, 20))), draw(lot_sizings()), lead)
    span = horizon.days * horizon.count
    dates = st.integers(-3, span + 2).map(lambda offset: START + timedelta(days=offset))
    demands = [Demand(f"SO-{n}", draw(st.sampled_from(items)), draw(dates), draw(quantities), "sales_order")
               for n in range(draw(st.integers(0, 8)))]
    forecasts = [Forecast(f"F-{n}", draw(st.sampled_from(items)), draw(dates), draw(quantities))
                 for n in range(draw(st.integers(0, 3)))]
    receipts = [Supply(f"PO-{n}", draw(st.sampled_from(items)), draw(dates), draw(quantities), "purchase_order")
                for n in range(draw(st.integers(0, 5)))]
    on_hand = {item: D(draw(st.integers(0, 40))) for item in items}
    return PlanInput(horizon, START, boms, on_hand, policies, demands, forecasts, receipts)


@settings(max_examples=150, deadline=None)
@given(plan_inputs())
def test_every_item_balances_bucket_by_bucket(given_input):
    result = plan(given_input)
    for record in result.records.values():
        balance = record.on_hand
        for bucket in record.buckets:
            balance += bucket.scheduled_receipts + bucket.planned_receipts - bucket.gross_requirements
            assert bucket.projected_on_hand == balance
        assert record.buckets[-1].projected_on_hand == record.on_hand + sum(
            b.scheduled_receipts + b.planned_receipts - b.gross_requirements for b in record.buckets)


@settings(max_examples=150, deadline=None)
@given(plan_inputs())
def test_no_planned_order_breaks_its_lot_size_rule(given_input):
    result = plan(given_input)
    for order in result.planned_orders:
        sizing = given_input.policies[order.item].lot_sizing
        if sizing.rule == "fixed":
            assert order.quantity == sizing.quantity
            continue
        assert order.quantity >= sizing.minimum
        assert sizing.multiple is None or order.quantity % sizing.multiple == 0
        assert sizing.maximum is None or order.quantity <= sizing.maximum


@settings(max_examples=150, deadline=None)
@given(plan_inputs())
def test_pegging_covers_every_demand_exactly_once_with_no_more_supply_than_exists(given_input):
    result = plan(given_input)
    pegged_to_demand: dict[str, Decimal] = {}
    pegged_from_supply: dict[str, Decimal] = {}
    for peg in result.pegs:
        pegged_to_demand[peg.demand] = pegged_to_demand.get(peg.demand, D(0)) + peg.quantity
        pegged_from_supply[peg.supply] = pegged_from_supply.get(peg.supply, D(0)) + peg.quantity
    assert len({demand.id for demand in result.demands}) == len(result.demands)
    for demand in result.demands:
        assert pegged_to_demand.get(demand.id, D(0)) == demand.quantity
    supplies = {supply.id: supply for supply in result.supplies}
    assert len(supplies) == len(result.supplies)
    for supply_id, quantity in pegged_from_supply.items():
        assert quantity <= supplies[supply_id].quantity
    for demand in result.demands:
        if demand.kind == "sales_order":
            down = pegged_down(demand.id, result.pegs, orders_of(result.demands))
            assert sum(step.peg.quantity for step in down if step.depth == 0) == demand.quantity
            for step in down:
                assert any(up.peg.demand == demand.id for up in pegged_up(step.peg.supply, result.pegs, orders_of(result.demands)))


@settings(max_examples=150, deadline=None)
@given(plan_inputs())
def test_projected_on_hand_stays_at_safety_stock_unless_a_receipt_must_be_expedited(given_input):
    result = plan(given_input)
    expedited = {exception.item for exception in result.exceptions if exception.kind == "expedite"}
    for item, record in result.records.items():
        if item not in expedited:
            assert all(bucket.projected_on_hand >= record.safety_stock for bucket in record.buckets)


@settings(max_examples=100, deadline=None)
@given(plan_inputs())
def test_components_are_netted_below_all_their_parents(given_input):
    result = plan(given_input)
    for parent, lines in given_input.boms.items():
        for line in lines:
            assert result.records[line.component].low_level_code > result.records[parent].low_level_code
