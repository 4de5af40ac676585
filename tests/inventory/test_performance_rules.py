"""Delivery performance rules (`inventory.rules.performance`): worked examples derived by hand, and properties."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.performance import (SalesLine, Shipment, SupplierReceipt, SupplierReturn, line_deliveries, on_time,
                                         percent, rank_suppliers, supplier_scores)

T = datetime(2026, 3, 2, 12, tzinfo=UTC)
D = Decimal


def test_lines_are_filled_in_line_order_and_judged_against_due_and_promise():
    """SO-1 due T: line 1 (10 A) and line 2 (5 A), promised T's day and the day after. Shipments of A: 8 at T − 1 h,
    7 at T + 1 day. Line 1 fills 8 then 2 → complete at T + 1 day: late against T, late against its promise (T's day);
    line 2 takes the other 5 at T + 1 day: late against T, on time against its promise (the next day).
    SO-2 due T + 10 days, nothing shipped, judged as of T + 2 days: not judged yet."""
    lines = [SalesLine("SO-1", "1", "A", D(10), T, T.date()), SalesLine("SO-1", "2", "A", D(5), T, T.date() + timedelta(days=1)),
             SalesLine("SO-2", "1", "B", D(3), T + timedelta(days=10))]
    shipments = [Shipment("SO-1", "A", T - timedelta(hours=1), D(8)), Shipment("SO-1", "A", T + timedelta(days=1), D(7))]
    found = line_deliveries(lines, shipments, T + timedelta(days=2))
    assert [(f.order, f.line, f.completed_at, f.on_time_vs_due, f.on_time_vs_promise) for f in found] == [
        ("SO-1", "1", T + timedelta(days=1), False, False), ("SO-1", "2", T + timedelta(days=1), False, True),
        ("SO-2", "1", None, None, None)]
    assert on_time(f.on_time_vs_due for f in found) == (2, 0, D("0.00"))
    assert on_time(f.on_time_vs_promise for f in found) == (2, 1, D("50.00"))


def test_a_line_due_and_not_shipped_is_late_and_one_shipped_before_due_is_on_time():
    lines = [SalesLine("SO-1", "1", "A", D(4), T), SalesLine("SO-2", "1", "A", D(4), T)]
    found = line_deliveries(lines, [Shipment("SO-2", "A", T, D(4))], T + timedelta(seconds=1))
    assert [(f.order, f.on_time_vs_due) for f in found] == [("SO-1", False), ("SO-2", True)]
    assert on_time([]) == (0, 0, None)


def test_supplier_scores_weigh_value_and_rank_the_better_supplier_first():
    """acme: 100 on time + 100 late (due day 2) → 50 % on time; 20 of 200 returned → quality 90 %; score 45.
    globex: 50 on time, nothing returned → 100 %, 100 %, 100. initech: a receipt without due date, 10 returned
    of 40 → on time None, quality 75, score 75."""
    due = date(2026, 3, 2)
    receipts = [SupplierReceipt("acme", T, due, D(100)), SupplierReceipt("acme", T + timedelta(days=1), due, D(100)),
                SupplierReceipt("globex", T, due, D(50)), SupplierReceipt("initech", T, None, D(40))]
    returns = [SupplierReturn("acme", T, D(20)), SupplierReturn("initech", T, D(10))]
    scores = {s.supplier: (s.on_time_percent, s.quality_percent, s.score) for s in supplier_scores(receipts, returns)}
    assert scores == {"acme": (D(50), D(90), D(45)), "globex": (D(100), D(100), D(100)), "initech": (None, D(75), D(75))}
    assert rank_suppliers(["acme", "initech", "globex", "nobody"], {k: v[2] for k, v in scores.items()}) == [
        "globex", "initech", "acme", "nobody"]


def test_percent_rounds_once_half_to_even():
    assert percent(1, 3) == D("33.33")
    assert percent(1, 8) == D("12.50")
    assert percent(1, 800) == D("0.12")  # 0.125: half to even
    assert percent(3, 800) == D("0.38")  # 0.375: half to even
    assert percent(1, 0) is None


quantities = st.decimals(min_value=0, max_value=10_000, places=3, allow_nan=False, allow_infinity=False)
instants = st.integers(min_value=-5 * 86400, max_value=5 * 86400).map(lambda s: T + timedelta(seconds=s))


@given(st.lists(st.tuples(st.sampled_from(["SO-1", "SO-2"]), st.sampled_from(["1", "2"]), st.sampled_from(["A", "B"]),
                          quantities, instants), max_size=8, unique_by=lambda t: (t[0], t[1])),
       st.lists(st.tuples(st.sampled_from(["SO-1", "SO-2"]), st.sampled_from(["A", "B"]), instants, quantities), max_size=8),
       instants)
def test_on_time_is_a_percentage_of_the_judged_lines(lines, shipments, as_of):
    found = line_deliveries([SalesLine(o, line, item, q, due, due.date()) for o, line, item, q, due in lines],
                            [Shipment(*s) for s in shipments], as_of)
    assert len(found) == len(lines)
    for verdicts in ([f.on_time_vs_due for f in found], [f.on_time_vs_promise for f in found]):
        result = on_time(verdicts)
        assert result.on_time <= result.judged <= len(found)
        assert result.percent is None if result.judged == 0 else D(0) <= result.percent <= D(100)
    for f in found:
        assert (f.completed_at is None and as_of <= f.due) == (f.on_time_vs_due is None)


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), instants, st.none() | st.just(T.date()), quantities), max_size=10),
       st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), instants, quantities), max_size=10))
def test_supplier_scores_stay_between_0_and_100_and_ranking_follows_the_score(receipts, returns):
    scores = supplier_scores([SupplierReceipt(*r) for r in receipts], [SupplierReturn(*r) for r in returns])
    for score in scores:
        for value in (score.on_time_percent, score.quality_percent, score.score):
            assert value is None or D(0) <= value <= D(100)
        assert score.on_time_value <= score.judged_value <= score.received_value
    by_supplier = {s.supplier: s.score for s in scores}
    ranked = rank_suppliers(["a", "b", "c"], by_supplier)
    shown = [by_supplier.get(s) for s in ranked]
    scored = [value for value in shown if value is not None]
    assert scored == sorted(scored, reverse=True)
    assert shown[len(scored):] == [None] * (len(shown) - len(scored))
