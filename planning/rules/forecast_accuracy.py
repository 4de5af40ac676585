"""Forecast accuracy per item: the forecasts against the demand that came. Pure: no I/O, no clock.

A forecast covers its bucket [bucket_start, bucket_start + bucket length) (a day or a week, as the plan buckets
it). The actual demand of a bucket is what the sales-order lines of the item ordered with their due day inside
it (cancelled orders left out by the service): the demand, not what was shipped, which supply may have held
back. A due day inside several forecast buckets of the item (forecasts a day apart on weekly buckets) counts once,
in the latest of them; demand outside every bucket of a forecast is not judged (nobody forecast that period).
Several forecasts of one bucket start add up. Only buckets that have ended (their end on or before `today`) are
judged: a bucket under way still gains orders.

Per item, over its judged buckets (F = Σ forecast, A = Σ actual, E = Σ |forecast − actual| per bucket):
    accuracy % = 100 × max(0, 1 − E / A)          (1 − weighted absolute percentage error, floored at 0)
    bias %     = 100 × (F − A) / A                 (positive: forecast too high)
With no actual demand (A = 0): accuracy is 100 when nothing was forecast either (F = 0), else 0; bias is None.
Percentages are rounded once, half to even, to 0.01 (`inventory.rules.performance.percent`). The error is
absolute per bucket before summing, so a bucket over and a bucket under do not cancel out in the accuracy;
they do in the bias, which is what the bias is for.
"""

from __future__ import annotations

from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable
from datetime import date
from decimal import Decimal, localcontext
from typing import NamedTuple

from inventory.rules.performance import HUNDRED, ZERO, percent
from kernel.rules.quantities import EXACT, non_negative_quantity


class ForecastQuantity(NamedTuple):
    item: str
    bucket_start: date
    quantity: Decimal


class ActualDemand(NamedTuple):
    item: str
    due: date
    quantity: Decimal


class BucketAccuracy(NamedTuple):
    item: str
    bucket_start: date
    forecast: Decimal
    actual: Decimal


class ItemAccuracy(NamedTuple):
    item: str
    buckets: int
    forecast: Decimal
    actual: Decimal
    absolute_error: Decimal
    accuracy_percent: Decimal
    bias_percent: Decimal | None


def judged_buckets(forecasts: Iterable[ForecastQuantity], demand: Iterable[ActualDemand], bucket_days: int,
                   today: date) -> list[BucketAccuracy]:
    """Forecast and actual demand per item and ended bucket, by item then bucket start."""
    if bucket_days < 1:
        raise ValueError(f"a bucket lasts at least one day, not {bucket_days}")
    forecast: dict[str, dict[date, Decimal]] = defaultdict(lambda: defaultdict(Decimal))
    with localcontext(EXACT):
        for row in forecasts:
            forecast[row.item][row.bucket_start] += non_negative_quantity(row.quantity, f"forecast of {row.item}")
        starts = {item: sorted(found) for item, found in forecast.items()}
        actual: dict[tuple[str, date], Decimal] = defaultdict(Decimal)
        for need in demand:
            quantity = non_negative_quantity(need.quantity, f"demand of {need.item}")
            item_starts = starts.get(need.item, [])
            index = bisect_right(item_starts, need.due) - 1
            if index >= 0 and (need.due - item_starts[index]).days < bucket_days:  # differences never overflow
                actual[(need.item, item_starts[index])] += quantity
    return [BucketAccuracy(item, start, forecast[item][start], actual.get((item, start), ZERO))
            for item in sorted(starts) for start in starts[item] if (today - start).days >= bucket_days]


def item_accuracy(buckets: Iterable[BucketAccuracy]) -> list[ItemAccuracy]:
    """Accuracy and bias per item of its judged buckets (formulas in the module's docstring), by item."""
    counts: dict[str, int] = defaultdict(int)
    sums: dict[str, list[Decimal]] = defaultdict(lambda: [ZERO, ZERO, ZERO])
    with localcontext(EXACT):
        for bucket in buckets:
            counts[bucket.item] += 1
            entry = sums[bucket.item]
            entry[0] += bucket.forecast
            entry[1] += bucket.actual
            entry[2] += abs(bucket.forecast - bucket.actual)
    return [ItemAccuracy(item, counts[item], forecast, actual, error, accuracy_percent(forecast, actual, error),
                         percent(forecast - actual, actual))
            for item, (forecast, actual, error) in sorted(sums.items())]


def accuracy_percent(forecast: Decimal, actual: Decimal, absolute_error: Decimal) -> Decimal:
    """100 × max(0, 1 − E / A); with A = 0: 100 when F = 0, else 0."""
    if actual == 0:
        return HUNDRED if forecast == 0 else ZERO
    error = percent(absolute_error, actual)
    assert error is not None
    return max(HUNDRED - error, ZERO)
