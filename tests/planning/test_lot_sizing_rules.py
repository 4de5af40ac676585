"""Lot sizing and lead times: worked cases, then properties over random rules and requirements."""

from datetime import date
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime, purchase_lead_time, release_date
from planning.rules.lot_sizing import LotSizing, lots

D = Decimal


@pytest.mark.parametrize("sizing, requirement, expected", [
    (LotSizing("lot_for_lot"), D("7.5"), [D("7.5")]),
    (LotSizing("fixed", quantity=D(40)), D(90), [D(40)] * 3),
    (LotSizing("min_multiple", minimum=D(25), multiple=D(10)), D(7), [D(30)]),
    (LotSizing("min_multiple", minimum=D(25), multiple=D(10)), D(31), [D(40)]),
    (LotSizing("lot_for_lot", multiple=D(6), maximum=D(20)), D(50), [D(18), D(18), D(18)]),
    (LotSizing("lot_for_lot", minimum=D(10), maximum=D(25)), D(52), [D(25), D(25), D(10)]),
])
def test_lots(sizing, requirement, expected):
    assert lots(requirement, sizing) == expected


@pytest.mark.parametrize("kwargs, error", [
    ({"rule": "fixed"}, "needs a quantity"),
    ({"rule": "eoq"}, "must be one of"),
    ({"minimum": D(30), "maximum": D(20)}, "leaves no lot"),
    ({"multiple": D(8), "maximum": D(5)}, "leaves no lot"),
    ({"periods": 0}, "at least 1"),
    ({"minimum": D(-1)}, "must not be negative"),
])
def test_bad_lot_sizing_is_refused(kwargs, error):
    with pytest.raises(ValueError, match=error):
        LotSizing(**kwargs)


def test_manufacturing_lead_time_adds_the_run_in_whole_days():
    """100 units × 36 s = 3600 s on 8 h (28800 s) a day → 0.125 → 1 day, plus 2 fixed = 3; 1000 units → 2 + 2 = 4."""
    lead = ManufactureLeadTime(2, D(36), D(28800))
    assert (lead.days_for(D(100)), lead.days_for(D(1000)), lead.days_for(D(0))) == (3, 4, 2)
    assert release_date(date(2027, 1, 8), D(100), lead, "GEAR") == date(2027, 1, 5)


def test_the_items_own_purchase_lead_time_wins_over_its_suppliers():
    assert purchase_lead_time(3, 10) == PurchaseLeadTime(3)
    assert purchase_lead_time(None, 10) == PurchaseLeadTime(10)
    assert purchase_lead_time(None, None) is None
    with pytest.raises(ValueError, match="item 'GEAR' has no lead time"):
        release_date(date(2027, 1, 8), D(1), None, "GEAR")


def test_a_lead_time_reaching_before_any_calendar_date_is_a_clear_error_naming_the_item():
    for lead in (PurchaseLeadTime(10**6), ManufactureLeadTime(0, D(10**9), D(1))):
        with pytest.raises(ValueError, match="item 'GEAR': a lead time of"):
            release_date(date(2027, 1, 8), D(10**6), lead, "GEAR")


positive = st.decimals(min_value=D("0.01"), max_value=D(500), places=2)


@st.composite
def sizings(draw):
    rule = draw(st.sampled_from(["lot_for_lot", "fixed", "period", "min_multiple"]))
    if rule == "fixed":
        return LotSizing("fixed", quantity=draw(positive))
    multiple = draw(st.none() | positive)
    minimum = draw(st.decimals(min_value=D(0), max_value=D(200), places=2))
    sizing = LotSizing(rule, periods=draw(st.integers(1, 4)), minimum=minimum, multiple=multiple)
    smallest = sizing.smallest_lot
    factor = draw(st.none() | st.integers(1, 5))
    if factor is None:
        return sizing
    unit = multiple or D(1)
    return LotSizing(rule, periods=sizing.periods, minimum=minimum, multiple=multiple,
                     maximum=max(smallest, unit) * factor)


@given(sizings(), positive)
def test_no_lot_breaks_its_rule_and_together_they_cover_the_requirement(sizing, requirement):
    orders = lots(requirement, sizing)
    assert sum(orders) >= requirement
    for order in orders:
        if sizing.rule == "fixed":
            assert order == sizing.quantity
            continue
        assert order >= sizing.minimum
        if sizing.multiple is not None:
            assert order % sizing.multiple == 0
        if sizing.maximum is not None:
            assert order <= sizing.maximum
    if sizing.rule == "lot_for_lot" and sizing.minimum == 0 and sizing.multiple is None and sizing.maximum is None:
        assert orders == [requirement]
