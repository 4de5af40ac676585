"""plan_backflush: attributed intervals → ledger moves and exceptions. Worked cases, then a property."""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.backflush import AttributedUnits, LineSide, Material, plan_backflush
from inventory.rules.lots import LotBalance, NegativeStockPolicy

T = datetime(2026, 11, 22, 8, 0, tzinfo=UTC)
BRACKET = Material("bracket", 30, {"steel": Decimal("0.255"), "screw": Decimal(2)})
SIDE = {"press-01": LineSide("line-1-side", NegativeStockPolicy.ALLOW)}
STEEL = [LotBalance("C-17", Decimal("20"), date(2026, 12, 5), T), LotBalance("C-18", Decimal("15"), date(2026, 12, 1), T)]
SCREWS = [LotBalance("S-1", Decimal(1000), None, T)]


def units(ref, good, scrap, machine="press-01", work_order="WO-1", minutes=0):
    return AttributedUnits(ref, machine, work_order, good, scrap, T + timedelta(minutes=minutes))


def test_components_come_from_the_earliest_expiring_lot_first_and_good_units_go_into_the_order_lot():
    plan = plan_backflush([units("i1", 58, 2)], {"WO-1": BRACKET}, SIDE,
                          {("steel", "line-1-side"): STEEL, ("screw", "line-1-side"): SCREWS})
    steel = [(m.lot, m.quantity) for m in plan.moves if m.item_id == "steel"]
    assert steel == [("C-18", Decimal(15)), ("C-17", Decimal("0.3"))]  # 60 × 0.255 = 15.3 kg
    assert [(m.lot, m.quantity) for m in plan.moves if m.item_id == "screw"] == [("S-1", Decimal(120))]
    (receipt,) = [m for m in plan.moves if m.item_id == "bracket"]
    assert (receipt.lot, receipt.quantity, receipt.to_location, receipt.from_location) == ("FG-WO-1", 58, "line-1-side", None)
    assert plan.new_lots == {("bracket", "FG-WO-1"): date(2026, 12, 22)}
    assert plan.exceptions == [] and plan.held == {}
    assert {m.source_ref for m in plan.moves} == {"i1"}


def test_balances_carry_from_one_interval_to_the_next_and_a_shortage_is_consumed_from_an_unknown_lot():
    plan = plan_backflush([units("i1", 100, 0), units("i2", 100, 0, minutes=1)], {"WO-1": BRACKET}, SIDE,
                          {("steel", "line-1-side"): STEEL, ("screw", "line-1-side"): SCREWS})
    steel = [(m.source_ref, m.lot, m.quantity) for m in plan.moves if m.item_id == "steel"]
    assert steel == [("i1", "C-18", Decimal(15)), ("i1", "C-17", Decimal("10.5")),
                     ("i2", "C-17", Decimal("9.5")), ("i2", None, Decimal("16.0"))]
    (shortage,) = plan.exceptions
    assert (shortage.kind, shortage.item_id, shortage.quantity, shortage.source_ref) == ("shortage", "steel", Decimal(16), "i2")


def test_a_blocking_location_consumes_only_what_it_holds_and_holds_the_order():
    side = {"press-01": LineSide("line-1-side", NegativeStockPolicy.BLOCK)}
    plan = plan_backflush([units("i1", 10, 0)], {"WO-1": BRACKET}, side, {("steel", "line-1-side"): STEEL})
    assert [m.quantity for m in plan.moves if m.item_id == "screw"] == []
    (blocked,) = plan.exceptions
    assert (blocked.kind, blocked.item_id, blocked.quantity) == ("blocked", "screw", Decimal(20))
    assert plan.held == {"WO-1": "short of screw at line-1-side"}


def test_a_line_without_a_line_side_location_records_everything_as_exceptions():
    plan = plan_backflush([units("i1", 4, 1, machine="welder-01")], {"WO-1": BRACKET}, SIDE, {})
    assert plan.moves == []
    assert sorted((e.item_id, e.quantity) for e in plan.exceptions) == [
        ("bracket", Decimal(4)), ("screw", Decimal(10)), ("steel", Decimal("1.275"))]
    assert {e.kind for e in plan.exceptions} == {"no_location"}


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 50)), min_size=1, max_size=30),
       st.decimals(min_value=0, max_value=500, places=3))
def test_any_split_into_intervals_consumes_exactly_units_times_the_per_unit_quantity(counts, stock):
    intervals = [units(f"i{n}", good, scrap, minutes=n) for n, (good, scrap) in enumerate(counts)]
    plan = plan_backflush(intervals, {"WO-1": BRACKET}, SIDE,
                          {("steel", "line-1-side"): [LotBalance("C-1", stock, None, T)]})
    made = sum(good + scrap for good, scrap in counts)
    consumed = {item: sum((m.quantity for m in plan.moves if m.item_id == item), Decimal(0)) for item in ("steel", "screw")}
    assert consumed == {"steel": made * Decimal("0.255"), "screw": made * 2}
    from_lot = sum((m.quantity for m in plan.moves if m.lot == "C-1"), Decimal(0))
    assert from_lot == min(stock, made * Decimal("0.255")), "a lot never gives more than it holds"
    assert sum(m.quantity for m in plan.moves if m.item_id == "bracket") == sum(good for good, _ in counts)
