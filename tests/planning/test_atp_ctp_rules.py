"""ATP and CTP: worked examples derived by hand (the same as in docs/planning.md), then properties."""

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from inventory.rules.bom import BomLine
from planning.rules.atp import available_to_promise, earliest_promise, plan_atp
from planning.rules.ctp import CtpContext, Routing, capable_to_promise, rough_cut_free_time
from planning.rules.horizon import Horizon
from planning.rules.lead_times import ManufactureLeadTime, PurchaseLeadTime
from planning.rules.mrp import Demand, Forecast, ItemPolicy, PlanInput, Supply, plan

D = Decimal
MONDAY = date(2027, 1, 4)
WEEKS = [MONDAY + timedelta(weeks=n) for n in range(4)]


def test_discrete_and_cumulative_atp_with_look_ahead():
    """10 on hand; 20 arrive in weeks 1 and 3; booked 5, 22, 0, 10. Balances: 5, 3, 3, 13. Week 1 books 2 more
    than it receives, taken from week 0 by the look-ahead: discrete 3, 0, 0, 10; cumulative 3, 3, 3, 13."""
    atp = available_to_promise(WEEKS, D(10), [D(0), D(20), D(0), D(20)], [D(5), D(22), D(0), D(10)])
    assert [(b.supply, b.booked, b.discrete_atp, b.cumulative_atp) for b in atp] == [
        (10, 5, 3, 3), (20, 22, 0, 3), (0, 0, 0, 3), (20, 10, 10, 13)]
    assert earliest_promise(atp, D(3), MONDAY) == MONDAY
    assert earliest_promise(atp, D(5), MONDAY) == WEEKS[3]
    assert earliest_promise(atp, D(14), MONDAY) is None


def test_atp_of_a_plan_books_orders_but_not_the_forecast():
    """CHAIR: 8 on hand, PO-1 brings 10 in week 2; SO-1 books 6 in week 0; a forecast of 4 in week 1 is not booked."""
    result = plan(PlanInput(Horizon(MONDAY, "week", 4), MONDAY, {}, {"CHAIR": D(8)},
                            {"CHAIR": ItemPolicy(lead_time=PurchaseLeadTime(7))},
                            [Demand("SO-1", "CHAIR", MONDAY, D(6), "sales_order")],
                            [Forecast("F-1", "CHAIR", WEEKS[1], D(4))],
                            [Supply("PO-1", "CHAIR", WEEKS[2], D(10), "purchase_order")]))
    assert [(b.supply, b.booked, b.cumulative_atp) for b in plan_atp(result, "CHAIR")] == [
        (8, 6, 2), (0, 0, 2), (10, 0, 12), (0, 0, 12)]


def ctp_context(available_per_day: Decimal) -> CtpContext:
    """DESK = 2 LEG + 1 TOP, made in 1 day on centre SAW at 60 s a desk; LEG: 10 on hand, bought in 3 days;
    TOP: 100 on hand. Nothing booked. Day buckets for 10 days."""
    boms = {"DESK": [BomLine("DESK", "LEG", D(2)), BomLine("DESK", "TOP", D(1))]}
    policies = {"DESK": ItemPolicy(lead_time=ManufactureLeadTime(1)), "LEG": ItemPolicy(lead_time=PurchaseLeadTime(3)),
                "TOP": ItemPolicy(lead_time=PurchaseLeadTime(5))}
    horizon = Horizon(MONDAY, "day", 10)
    result = plan(PlanInput(horizon, MONDAY, boms, {"LEG": D(10), "TOP": D(100)}, policies, [], [], []))
    free = rough_cut_free_time(horizon, {"SAW": [available_per_day] * 10}, [("SAW", MONDAY, D(1800))])
    return CtpContext(result, MONDAY, boms, policies, {"DESK": Routing("SAW", D(60))}, free)


def test_ctp_makes_from_components_on_hand_and_bought():
    """5 desks: 10 LEG and 5 TOP are there today; 300 s on SAW, which has 3600 s a day less 1800 s already
    loaded today → fits today; +1 day's lead time → Tuesday.
    20 desks: 40 LEG, only 10 on hand → buy, Thursday (3 days); 1200 s from Thursday → ready Friday."""
    context = ctp_context(D(3600))
    assert capable_to_promise(context, "DESK", D(5), MONDAY)[2:4] == (MONDAY + timedelta(days=1), "make")
    assert capable_to_promise(context, "DESK", D(20), MONDAY)[2:4] == (MONDAY + timedelta(days=4), "make")


def test_ctp_finds_no_date_without_capacity():
    """100 desks need 6000 s; SAW has 600 s a day for 10 days, 1800 s of it loaded → 4200 s: no date."""
    promise = capable_to_promise(ctp_context(D(600)), "DESK", D(100), MONDAY)
    assert (promise.date, promise.source) == (None, "none")
    assert "work centre SAW" in promise.reasons[0]


def test_ctp_answers_atp_first():
    """5 TOP are on hand: promised on the wanted date from ATP, nothing made."""
    promise = capable_to_promise(ctp_context(D(3600)), "TOP", D(5), MONDAY + timedelta(days=2))
    assert (promise.date, promise.source) == (MONDAY + timedelta(days=2), "atp")


amounts = st.integers(0, 50).map(D)


@given(st.integers(-20, 50).map(D), st.lists(st.tuples(amounts, amounts), min_size=1, max_size=12))
def test_cumulative_atp_never_exceeds_on_hand_plus_receipts_and_never_falls(on_hand, flows):
    starts = [MONDAY + timedelta(days=n) for n in range(len(flows))]
    atp = available_to_promise(starts, on_hand, [r for r, _ in flows], [b for _, b in flows])
    received = on_hand
    for index, bucket in enumerate(atp):
        received += flows[index][0]
        assert bucket.cumulative_atp <= received
        assert bucket.cumulative_atp == sum(b.discrete_atp for b in atp[:index + 1])
        if index:
            assert bucket.discrete_atp >= 0
    assert atp[-1].cumulative_atp == on_hand + sum(r - b for r, b in flows)


@given(st.lists(amounts, min_size=1, max_size=6),
       st.lists(st.tuples(st.sampled_from(["SAW", "LATHE"]), st.integers(-3, 9), amounts), max_size=10))
def test_free_time_is_available_time_less_the_load_never_negative(available, loads):
    horizon = Horizon(MONDAY, "day", len(available))
    free = rough_cut_free_time(horizon, {"SAW": available},
                               [(centre, MONDAY + timedelta(days=offset), seconds) for centre, offset, seconds in loads])
    for index, seconds in enumerate(free["SAW"]):
        loaded = sum(s for centre, offset, s in loads
                     if centre == "SAW" and horizon.bucket_of(MONDAY + timedelta(days=offset)) == index)
        assert seconds == max(available[index] - loaded, 0)
    assert all(seconds == 0 for seconds in free.get("LATHE", []))
