"""The board's planner page: `/board/planner` (the page, public like the board's) and `/board/planner/data` (its
snapshot as JSON, read with the board's key). What each list means: `dashboards.services.planner`. The page's
ATP look-up reads `GET /planning/atp/{item_id}` with the same key. Quantities and percentages are decimal
strings, never floats."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import date, datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kernel.http import Db
from dashboards.services import planner as service
from planning.api.plans import ShortBucketOut

router = APIRouter(tags=["board"])


class AtRiskOut(BaseModel):
    demand_id: str = Field(description="the sales-order line, <so_id>/<line>")
    item_id: str
    due: date
    covered_on: date | None = Field(description="when the plan's supply reaches it; null: not within the horizon")
    quantity: Decimal


class LateDemandOut(BaseModel):
    demand_id: str
    due: date
    covered_on: date | None
    quantity: Decimal
    orders_hit: list[str] = Field(description="the order the demand belongs to, then the sales-order lines above it")


class ShortageOut(BaseModel):
    item_id: str
    late_demands: list[LateDemandOut]
    below_safety_stock: list[ShortBucketOut]


class ToFirmOut(BaseModel):
    id: str
    item_id: str
    kind: str
    quantity: Decimal
    release: date
    receipt: date
    release_past_due: bool


class OnTimeOut(BaseModel):
    judged: int
    on_time: int
    percent: Decimal | None


class LateLineOut(BaseModel):
    so_id: str
    line: str
    item_id: str
    due: datetime
    completed_at: datetime | None


class SupplierOut(BaseModel):
    supplier_id: str
    on_time_percent: Decimal | None
    quality_percent: Decimal | None
    score: Decimal | None


class ForecastOut(BaseModel):
    item_id: str
    buckets: int
    forecast: Decimal
    actual: Decimal
    accuracy_percent: Decimal
    bias_percent: Decimal | None


class KpisOut(BaseModel):
    window_days: int
    on_time_vs_due: OnTimeOut
    on_time_vs_promise: OnTimeOut = Field(description="judged: 0 while sales-order lines store no promise date")
    late_lines: list[LateLineOut]
    suppliers: list[SupplierOut] = Field(description="best score first")
    forecasts: list[ForecastOut] = Field(description="least accurate first")


class PlannerOut(BaseModel):
    generated_at: datetime
    days: int
    at_risk: list[AtRiskOut]
    shortages: list[ShortageOut]
    to_firm: list[ToFirmOut]
    kpis: KpisOut


def planner_out(board: service.PlannerBoard) -> PlannerOut:
    found = board.kpis
    return PlannerOut(
        generated_at=board.generated_at, days=board.days,
        at_risk=[AtRiskOut(demand_id=e.reference, item_id=e.item, due=e.on, covered_on=e.to, quantity=e.quantity)
                 for e in board.at_risk],
        shortages=[ShortageOut(item_id=s.item, below_safety_stock=[ShortBucketOut(**bucket) for bucket in s.below_safety_stock],
                               late_demands=[LateDemandOut(demand_id=d.demand_id, due=d.due, covered_on=d.covered_on,
                                                           quantity=d.quantity, orders_hit=d.orders_hit)
                                             for d in s.late_demands]) for s in board.shortages],
        to_firm=[ToFirmOut(id=o.id, item_id=o.item, kind=o.kind, quantity=o.quantity, release=o.release, receipt=o.receipt,
                           release_past_due=o.release_past_due) for o in board.to_firm],
        kpis=KpisOut(window_days=service.KPI_WINDOW.days, on_time_vs_due=OnTimeOut(**found.on_time_vs_due._asdict()),
                     on_time_vs_promise=OnTimeOut(**found.on_time_vs_promise._asdict()),
                     late_lines=[LateLineOut(so_id=line.order, line=line.line, item_id=line.item, due=line.due,
                                             completed_at=line.completed_at) for line in found.late_lines],
                     suppliers=[SupplierOut(supplier_id=s.supplier, on_time_percent=s.on_time_percent,
                                            quality_percent=s.quality_percent, score=s.score) for s in found.suppliers],
                     forecasts=[ForecastOut(item_id=a.item, buckets=a.buckets, forecast=a.forecast, actual=a.actual,
                                            accuracy_percent=a.accuracy_percent, bias_percent=a.bias_percent)
                                for a in found.forecasts]))


@router.get("/board/planner/data", response_model=PlannerOut)
def data(db: Db, days: Annotated[int, Query(ge=1, le=service.HORIZON_DAYS, description="the window from today")] = 7
         ) -> PlannerOut:
    """The planner page's snapshot now: orders at risk, shortages of the next `days` with the orders they hit,
    planned orders to firm within `days`, and the KPIs of the last 30 days."""
    return planner_out(service.snapshot(db, days=days))
