"""The KPIs the plan is judged by, as report frames (`GET /planning/kpis/{name}`) and as the planner board's
figures. Formulas: `inventory.rules.performance` (on-time delivery, supplier scores) and
`planning.rules.forecast_accuracy`; what is read: `inventory.services.performance` and, for the forecasts,
`planning_forecasts` against the sales-order lines of orders not cancelled, by their due day (UTC, as the plan
buckets them). Each report reads in one unit of work and commits once, writing nothing.

Periods: the calendar months (in `tz`) of the due instant (on-time delivery) or of the receipt and return
(supplier scores); forecast accuracy judges the forecasts whose bucket starts in [start, end).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import pandas as pd
from sqlalchemy import text
from sqlalchemy.orm import Session

from inventory.rules.performance import LineDelivery, OnTime, SupplierScore, on_time, supplier_scores
from inventory.services import performance
from planning.rules.forecast_accuracy import ActualDemand, ForecastQuantity, ItemAccuracy, item_accuracy, judged_buckets
from planning.rules.horizon import BucketSize

BUCKET_DAYS: dict[BucketSize, int] = {"day": 1, "week": 7}

ON_TIME_COLUMNS = ["period", "lines", "judged_vs_due", "on_time_vs_due", "on_time_vs_due_pct", "judged_vs_promise",
                   "on_time_vs_promise", "on_time_vs_promise_pct"]
SUPPLIER_COLUMNS = ["period", "supplier_id", "received_value", "judged_value", "on_time_value", "returned_value",
                    "on_time_pct", "quality_pct", "score"]
ACCURACY_COLUMNS = ["item_id", "buckets", "forecast", "actual", "absolute_error", "accuracy_pct", "bias_pct"]


@dataclass(frozen=True, slots=True)
class KpiParameters:
    start: datetime
    end: datetime
    as_of: datetime
    tz: tzinfo = UTC
    bucket: BucketSize = "week"


def _month(instant: datetime, tz: tzinfo) -> str:
    return instant.astimezone(tz).strftime("%Y-%m")


def on_time_delivery(session: Session, p: KpiParameters) -> pd.DataFrame:
    """Per month of the due instant: lines judged and on time, against the due instant and against the promise."""
    by_month: dict[str, list[LineDelivery]] = defaultdict(list)
    for line in performance.deliveries(session, p.start, p.end, p.as_of, p.tz):
        by_month[_month(line.due, p.tz)].append(line)
    session.commit()
    rows = []
    for month, lines in sorted(by_month.items()):
        due, promise = on_time(line.on_time_vs_due for line in lines), on_time(line.on_time_vs_promise for line in lines)
        rows.append((month, len(lines), *due, *promise))
    return pd.DataFrame(rows, columns=ON_TIME_COLUMNS, dtype=object)


def supplier_performance(session: Session, p: KpiParameters) -> pd.DataFrame:
    """Per month and supplier: value received, on time, returned; on-time %, quality %, score."""
    receipts, returns = performance.supplier_receipts(session, p.start, p.end)
    session.commit()
    months = sorted({_month(r.received_at, p.tz) for r in receipts} | {_month(r.returned_at, p.tz) for r in returns})
    rows: list[tuple[object, ...]] = []
    for month in months:
        scored = supplier_scores([r for r in receipts if _month(r.received_at, p.tz) == month],
                                 [r for r in returns if _month(r.returned_at, p.tz) == month], p.tz)
        rows.extend((month, *score) for score in scored)
    return pd.DataFrame(rows, columns=SUPPLIER_COLUMNS, dtype=object)


def forecast_accuracies(session: Session, p: KpiParameters) -> list[ItemAccuracy]:
    """Read in the caller's unit of work (nothing committed here)."""
    forecasts = [ForecastQuantity(*row) for row in session.execute(text(
        "SELECT item_id, bucket_start, quantity FROM planning_forecasts WHERE bucket_start >= :start AND bucket_start < :end"),
        {"start": p.start.astimezone(UTC).date(), "end": p.end.astimezone(UTC).date()})]
    demand = [ActualDemand(item, due.astimezone(UTC).date(), quantity) for item, due, quantity in session.execute(text(
        """SELECT l.item_id, o.due, l.quantity FROM sales_order_lines l JOIN sales_orders o USING (so_id)
           WHERE o.status <> 'cancelled' AND l.item_id IN (SELECT item_id FROM planning_forecasts)"""))]
    return item_accuracy(judged_buckets(forecasts, demand, BUCKET_DAYS[p.bucket], p.as_of.astimezone(UTC).date()))


def forecast_accuracy(session: Session, p: KpiParameters) -> pd.DataFrame:
    """Per item: forecast, actual demand, absolute error, accuracy % and bias % of its ended buckets."""
    found = forecast_accuracies(session, p)
    session.commit()
    return pd.DataFrame(found, columns=ACCURACY_COLUMNS, dtype=object)


REPORTS: dict[str, Callable[[Session, KpiParameters], pd.DataFrame]] = {
    "on-time-delivery": on_time_delivery,
    "supplier-scores": supplier_performance,
    "forecast-accuracy": forecast_accuracy,
}


def report(session: Session, name: str, parameters: KpiParameters) -> pd.DataFrame:
    if name not in REPORTS:
        raise ValueError(f"there is no KPI report {name!r}; they are {', '.join(REPORTS)}")
    return REPORTS[name](session, parameters)


@dataclass(frozen=True, slots=True)
class Kpis:
    """The planner board's KPIs over one window."""

    on_time_vs_due: OnTime
    on_time_vs_promise: OnTime
    late_lines: list[LineDelivery]
    suppliers: list[SupplierScore]
    forecasts: list[ItemAccuracy]


def board_kpis(session: Session, p: KpiParameters) -> Kpis:
    """The window's on-time delivery (with the lines judged late), supplier scores best first, forecast accuracy
    worst first; read without committing (the board's snapshot commits once)."""
    lines = performance.deliveries(session, p.start, p.end, p.as_of, p.tz)
    suppliers = sorted(performance.scores(session, p.start, p.end, p.tz),
                       key=lambda s: (s.score is None, -(s.score or 0), s.supplier))
    forecasts = sorted(forecast_accuracies(session, p), key=lambda a: (a.accuracy_percent, a.item))
    return Kpis(on_time(line.on_time_vs_due for line in lines), on_time(line.on_time_vs_promise for line in lines),
                [line for line in lines if line.on_time_vs_due is False], suppliers, forecasts)
