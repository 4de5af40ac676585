"""Net change (planning/rules/net_change.py): which items are replanned, and that replanning only them gives
exactly the plan a full regeneration gives."""

from dataclasses import replace
from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given, settings
from hypothesis import strategies as st

from inventory.rules.bom import BomLine
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.levels import low_level_codes
from planning.rules.mrp import Demand, Forecast, ItemPlan, ItemPolicy, PlanInput, Supply, plan_parts
from planning.rules.net_change import net_change, replan_order
from tests.planning.test_mrp_properties import plan_inputs

D = Decimal
MONDAY = date(2027, 1, 4)


def parts(plan_input: PlanInput) -> dict[str, ItemPlan]:
    """A full regeneration's parts per item."""
    return {part.record.item: part for part in plan_parts(plan_input)}


def only(plan_input: PlanInput, items: set[str]) -> PlanInput:
    """The input of `items` alone, as the service loads it for the dirty items."""
    return replace(plan_input, on_hand={item: q for item, q in plan_input.on_hand.items() if item in items},
                   demands=[d for d in plan_input.demands if d.item in items],
                   forecasts=[f for f in plan_input.forecasts if f.item in items],
                   receipts=[r for r in plan_input.receipts if r.item in items])


def table_boms() -> dict[str, list[BomLine]]:
    """TABLE = 1 TOP + 4 SCREW; TOP = 6 SCREW; LAMP = 1 BULB (apart)."""
    return {"TABLE": [BomLine("TABLE", "TOP", D(1)), BomLine("TABLE", "SCREW", D(4))],
            "TOP": [BomLine("TOP", "SCREW", D(6))], "LAMP": [BomLine("LAMP", "BULB", D(1))]}


def test_the_dirty_items_and_everything_below_them_in_low_level_code_order():
    """SCREW is below TOP and TABLE (code 2), TOP below TABLE (code 1); LAMP and BULB are apart. A dirty
    TABLE replans TABLE, TOP, SCREW; a dirty TOP, TOP and SCREW; a dirty SCREW and LAMP, LAMP (code 0) then
    BULB (1) then SCREW (2)."""
    boms = table_boms()
    codes = low_level_codes(boms)
    assert replan_order({"TABLE"}, boms, codes) == ["TABLE", "TOP", "SCREW"]
    assert replan_order({"TOP"}, boms, codes) == ["TOP", "SCREW"]
    assert replan_order({"SCREW", "LAMP"}, boms, codes) == ["LAMP", "BULB", "SCREW"]
    assert replan_order(set(), boms, codes) == []
    assert replan_order({"NEW"}, boms, codes) == ["NEW"]


def table_input(on_hand_table: int) -> PlanInput:
    """10 tables wanted on day 3; everything made or bought in 1 day, lot-for-lot."""
    policies = {"TABLE": ItemPolicy(lead_time=ManufactureLeadTime(1)), "TOP": ItemPolicy(lead_time=ManufactureLeadTime(1)),
                "SCREW": ItemPolicy(lead_time=PurchaseLeadTime(1)), "LAMP": ItemPolicy(lead_time=ManufactureLeadTime(1)),
                "BULB": ItemPolicy(lead_time=PurchaseLeadTime(1))}
    return PlanInput(Horizon(MONDAY, "day", 7), MONDAY, table_boms(),
                     {"TABLE": D(on_hand_table), "TOP": D(0), "SCREW": D(100), "LAMP": D(0), "BULB": D(0)}, policies,
                     [Demand("SO-1", "TABLE", MONDAY + timedelta(days=3), D(10), "sales_order")], [], [])


def test_a_change_travels_down_only_while_the_dependent_demand_changes():
    """With 12 tables on hand nothing is made: SO-1 is covered. One table more (13) changes TABLE's record
    but not its planned orders (none), so TOP and SCREW keep their parts: only TABLE is replanned. With 4
    tables, 6 are made (released day 2): TOP's and SCREW's dependent demand changes and both are replanned,
    SCREW netting 6 × 4 + 6 × 6 = 60 of its 100."""
    before = parts(table_input(12))
    after_one_more = net_change(before, only(table_input(13), {"TABLE"}), {"TABLE"}, low_level_codes(table_boms()))
    assert set(after_one_more) == {"TABLE"}
    assert after_one_more["TABLE"] == parts(table_input(13))["TABLE"]

    after_short = net_change(before, only(table_input(4), {"TABLE"}), {"TABLE"}, low_level_codes(table_boms()))
    assert set(after_short) == {"TABLE", "TOP", "SCREW"}
    assert after_short == {item: part for item, part in parts(table_input(4)).items() if item in after_short}
    assert sum(d.quantity for d in after_short["SCREW"].demands) == 60


@st.composite
def changes(draw, plan_input: PlanInput):
    """A change to one or two items' input: on hand, a sales-order line added or dropped, a receipt's
    quantity, a forecast, a work order's component need."""
    items = sorted(plan_input.policies)
    span = plan_input.horizon.days * plan_input.horizon.count
    day = st.integers(-2, span + 1).map(lambda offset: MONDAY + timedelta(days=offset))
    touched = set(draw(st.lists(st.sampled_from(items), min_size=1, max_size=2, unique=True)))
    on_hand, demands = dict(plan_input.on_hand), list(plan_input.demands)
    forecasts, receipts = list(plan_input.forecasts), list(plan_input.receipts)
    for number, item in enumerate(sorted(touched)):
        kind = draw(st.sampled_from(["on_hand", "add_demand", "drop_demand", "receipt", "forecast", "work_order"]))
        tag = f"{draw(st.integers(0, 10**6))}-{number}"
        if kind == "on_hand":
            on_hand[item] = D(draw(st.integers(0, 60)))
        elif kind == "add_demand":
            demands.append(Demand(f"SO-x{tag}", item, draw(day), D(draw(st.integers(1, 40))), "sales_order"))
        elif kind == "drop_demand":
            demands = [d for d in demands if d.item != item or draw(st.booleans())]
        elif kind == "receipt":
            receipts = [r if r.item != item else replace(r, quantity=D(draw(st.integers(0, 50)))) for r in receipts]
            receipts.append(Supply(f"WO-x{tag}", item, draw(day), D(draw(st.integers(1, 30))), "work_order"))
        elif kind == "forecast":
            forecasts.append(Forecast(f"F-x{tag}", item, draw(day), D(draw(st.integers(0, 30)))))
        else:
            demands.append(Demand(f"WO-y{tag}/{item}", item, MONDAY, D(draw(st.integers(1, 20))), "work_order", f"WO-y{tag}"))
    return touched, replace(plan_input, on_hand=on_hand, demands=demands, forecasts=forecasts, receipts=receipts)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_net_change_after_any_changes_equals_a_full_regeneration(data):
    """Any sequence of changes, each brought into the plan by net change from the plan before it, leaves
    exactly the parts (records, planned orders, demands, supplies, pegs, exceptions) of a full
    regeneration from the changed input, phantoms included."""
    current = data.draw(plan_inputs())
    components = sorted({line.component for lines in current.boms.values() for line in lines})
    if components:  # some of them phantoms: their demand passes to their own components the same day
        phantoms = data.draw(st.sets(st.sampled_from(components), max_size=2))
        current = replace(current, boms={parent: [replace(line, phantom=line.component in phantoms) for line in lines]
                                         for parent, lines in current.boms.items()})
    maintained = parts(current)
    codes = {item: part.record.low_level_code for item, part in maintained.items()}
    for _ in range(data.draw(st.integers(1, 4))):
        dirty, current = data.draw(changes(current))
        maintained = {**maintained, **net_change(maintained, only(current, dirty), dirty, codes)}
        assert maintained == parts(current)
