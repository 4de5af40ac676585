"""Backflush quantities: worked cases, then the issue's acceptance as properties.

Acceptance (issue 3): each component consumed = Σ(good + scrap) × quantity per × (1 + scrap factor)
exactly, and the ledger balances (on hand = Σ moves).
"""

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.backflush import consumption, expiry, finished_goods_lot
from inventory.rules.bom import BomLine, explode
from inventory.rules.lots import UNKNOWN_LOT, LotBalance, NegativeStockPolicy, allocate

D = Decimal
ON = date(2026, 12, 1)


def test_120_loaves_take_30_6_kg_of_flour():
    per_unit = explode("BREAD", {"BREAD": [BomLine("BREAD", "FLOUR", D("0.25"), D("0.02"))]}, ON)
    assert consumption(120, per_unit) == {"FLOUR": D("30.6")}


def test_scrap_units_consume_like_good_ones():
    # an interval of 95 good + 5 scrap consumes for 100
    assert consumption(95 + 5, {"FLOUR": D("0.255"), "BAG": D(1)}) == {"FLOUR": D("25.5"), "BAG": D(100)}


def test_no_units_consume_nothing():
    assert consumption(0, {"FLOUR": D("0.255")}) == {}


@pytest.mark.parametrize("units, per_unit, error", [
    (-1, {"FLOUR": D(1)}, ValueError),
    (2.0, {"FLOUR": D(1)}, TypeError),
    (2, {"FLOUR": 0.255}, TypeError),  # a float quantity is refused, never converted
    (2, {"FLOUR": D(0)}, ValueError),
])
def test_invalid_inputs_are_refused(units, per_unit, error):
    with pytest.raises(error):
        consumption(units, per_unit)


def test_finished_goods_lot_is_named_after_the_work_order():
    assert finished_goods_lot("WO-1042") == "FG-WO-1042"
    with pytest.raises(ValueError):
        finished_goods_lot("  ")


def test_expiry_counts_shelf_life_days_from_production():
    assert expiry(date(2026, 12, 1), 5) == date(2026, 12, 6)
    assert expiry(date(2026, 12, 30), 30) == date(2027, 1, 29)
    assert expiry(date(2026, 12, 1), None) is None
    with pytest.raises(ValueError):
        expiry(date(2026, 12, 1), 0)


# --- properties -------------------------------------------------------------------------------

per_unit_quantities = st.dictionaries(
    st.sampled_from(["FLOUR", "SALT", "BAG", "YEAST", "FOAM"]),
    st.decimals(min_value=D("0.000001"), max_value=D(10_000), places=6),
    max_size=5,
)
units = st.integers(0, 100_000)


def add(*consumptions: dict[str, Decimal]) -> dict[str, Decimal]:
    total: dict[str, Decimal] = {}
    for quantities in consumptions:
        for component, quantity in quantities.items():
            total[component] = total.get(component, D(0)) + quantity
    return total


@given(units, units, per_unit_quantities)
def test_consumption_is_additive(a, b, per_unit):
    assert add(consumption(a, per_unit), consumption(b, per_unit)) == consumption(a + b, per_unit)


@given(st.lists(st.tuples(st.integers(0, 500), st.integers(0, 50)), max_size=30),
       st.lists(st.tuples(st.sampled_from(["FLOUR", "SALT", "BAG"]),
                          st.decimals(min_value=D("0.001"), max_value=D(100), places=3),
                          st.decimals(min_value=D(0), max_value=D("0.25"), places=4)), min_size=1, max_size=4))
def test_per_interval_backflush_equals_the_issue_formula_for_the_run(intervals, rows):
    """Σ over intervals of consumption(good + scrap) == Σ(good + scrap) × quantity per × (1 + scrap factor)."""
    per_unit = explode("BREAD", {"BREAD": [BomLine("BREAD", c, q, s) for c, q, s in rows]}, ON)
    run_units = sum(good + scrap for good, scrap in intervals)
    expected: dict[str, Decimal] = {}
    if run_units:
        for component, quantity, scrap_factor in rows:
            expected[component] = expected.get(component, D(0)) + run_units * quantity * (1 + scrap_factor)
    assert add(*(consumption(good + scrap, per_unit) for good, scrap in intervals)) == expected


@given(st.integers(1, 10**9), st.decimals(min_value=D("0.000000001"), max_value=D(1), places=27))
def test_no_rounding_even_past_28_significant_digits(units, quantity):
    [consumed] = consumption(units, {"RESIN": quantity}).values()
    in_units_of_1e_27 = units * int(quantity.scaleb(27))  # Python ints never round
    assert consumed == D(f"{in_units_of_1e_27}E-27")  # parsing a string never rounds either


@given(st.lists(st.integers(0, 200), max_size=25),
       st.lists(st.decimals(min_value=D(0), max_value=D(60), places=2), max_size=5),
       st.sampled_from(NegativeStockPolicy))
def test_interval_by_interval_backflush_keeps_the_ledger_balanced(intervals, lot_quantities, policy):
    """Lots start with receipts; each interval's picks become moves out. On hand = Σ moves, lot by lot."""
    per_unit = {"FLOUR": D("0.255")}
    received = {f"F-{i}": quantity for i, quantity in enumerate(lot_quantities)}
    moves: list[tuple[str | None, Decimal]] = list(received.items())  # receipts in, picks out (negative)
    on_hand = dict(received)
    consumed = shortage = D(0)
    for interval_units in intervals:
        need = consumption(interval_units, per_unit).get("FLOUR", D(0))
        lots = [LotBalance(lot, quantity, ON + timedelta(days=i), datetime(2026, 11, 1, tzinfo=UTC))
                for i, (lot, quantity) in enumerate(on_hand.items()) if lot is not UNKNOWN_LOT]
        allocation = allocate(need, lots, policy)
        for pick in allocation.picks:
            moves.append((pick.lot, -pick.quantity))
            on_hand[pick.lot] = on_hand.get(pick.lot, D(0)) - pick.quantity
            consumed += pick.quantity
        shortage += allocation.shortage

    for lot, balance in on_hand.items():
        assert balance == sum((quantity for moved_lot, quantity in moves if moved_lot == lot), D(0))
        if lot is not UNKNOWN_LOT:
            assert balance >= 0  # only the unknown lot ever goes negative
    run_need = sum(intervals) * D("0.255")
    if policy is NegativeStockPolicy.ALLOW:
        assert consumed == run_need
        assert -on_hand.get(UNKNOWN_LOT, D(0)) == shortage
    else:
        assert consumed == min(run_need, sum(received.values(), D(0)))
