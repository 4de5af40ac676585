"""Forecast accuracy (`planning.rules.forecast_accuracy`): a worked example by hand, the zero-demand cases, properties."""

from __future__ import annotations

from datetime import date, timedelta
from decimal import Decimal

from hypothesis import given
from hypothesis import strategies as st

from planning.rules.forecast_accuracy import ActualDemand, ForecastQuantity, item_accuracy, judged_buckets

D = Decimal
MONDAY = date(2026, 3, 2)


def test_weekly_forecasts_against_the_orders_of_their_weeks():
    """A: week 1 forecast 100, orders 80 (due Mon) + 40 (due Sun) = 120 → |100 − 120| = 20; week 2 forecast 50 + 30
    (two forecasts), orders 60 → 20. E = 40, A = 180, F = 180: accuracy 100 × (1 − 40/180) = 77.78, bias 0.
    Week 3 has not ended on `today` (= week 3's Monday + 3): not judged. An order of A in a week without a forecast
    is not judged. B: forecast 10, no order: A = 0, F = 10 → accuracy 0, bias None. C: forecast 0, no order → 100."""
    weeks = [MONDAY + timedelta(weeks=n) for n in range(4)]
    forecasts = [ForecastQuantity("A", weeks[0], D(100)), ForecastQuantity("A", weeks[1], D(50)),
                 ForecastQuantity("A", weeks[1], D(30)), ForecastQuantity("A", weeks[2], D(70)),
                 ForecastQuantity("B", weeks[0], D(10)), ForecastQuantity("C", weeks[0], D(0))]
    demand = [ActualDemand("A", weeks[0], D(80)), ActualDemand("A", weeks[0] + timedelta(days=6), D(40)),
              ActualDemand("A", weeks[1] + timedelta(days=2), D(60)), ActualDemand("A", weeks[3], D(999)),
              ActualDemand("A", weeks[0] - timedelta(days=1), D(999))]
    buckets = judged_buckets(forecasts, demand, 7, weeks[2] + timedelta(days=3))
    assert [(b.item, b.bucket_start, b.forecast, b.actual) for b in buckets] == [
        ("A", weeks[0], 100, 120), ("A", weeks[1], 80, 60), ("B", weeks[0], 10, 0), ("C", weeks[0], 0, 0)]
    found = {a.item: (a.buckets, a.forecast, a.actual, a.absolute_error, a.accuracy_percent, a.bias_percent)
             for a in item_accuracy(buckets)}
    assert found == {"A": (2, D(180), D(180), D(40), D("77.78"), D("0.00")), "B": (1, D(10), D(0), D(10), D(0), None),
                     "C": (1, D(0), D(0), D(0), D(100), None)}


def test_a_due_day_in_two_overlapping_buckets_counts_once_in_the_later():
    forecasts = [ForecastQuantity("A", MONDAY, D(5)), ForecastQuantity("A", MONDAY + timedelta(days=1), D(5))]
    buckets = judged_buckets(forecasts, [ActualDemand("A", MONDAY + timedelta(days=2), D(7))], 7, MONDAY + timedelta(days=30))
    assert [b.actual for b in buckets] == [0, 7]


quantities = st.decimals(min_value=0, max_value=1000, places=2, allow_nan=False, allow_infinity=False)
days = st.integers(min_value=0, max_value=40).map(lambda n: MONDAY + timedelta(days=n))


@given(st.lists(st.tuples(st.sampled_from("AB"), days, quantities), max_size=10),
       st.lists(st.tuples(st.sampled_from("AB"), days, quantities), max_size=15), st.sampled_from([1, 7]))
def test_accuracy_is_within_0_and_100_and_every_order_counts_at_most_once(forecasts, demand, bucket_days):
    buckets = judged_buckets([ForecastQuantity(*f) for f in forecasts], [ActualDemand(*d) for d in demand], bucket_days,
                             MONDAY + timedelta(days=60))
    for item in "AB":
        assert sum((b.actual for b in buckets if b.item == item), D(0)) <= sum((d[2] for d in demand if d[0] == item), D(0))
        assert sum((b.forecast for b in buckets if b.item == item), D(0)) == sum((f[2] for f in forecasts if f[0] == item), D(0))
    for accuracy in item_accuracy(buckets):
        assert D(0) <= accuracy.accuracy_percent <= D(100)
        assert accuracy.absolute_error >= abs(accuracy.forecast - accuracy.actual)
        assert (accuracy.bias_percent is None) == (accuracy.actual == 0)
