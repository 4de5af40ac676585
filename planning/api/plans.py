"""Planning over HTTP: item planning parameters, forecasts, the live plan (run_id `live`), its pegging,
exceptions and 7-day shortages, ATP, promise inquiries, firming. Reading the live plan reads the maintained plan
(`planning.services.live`: brought up to date by net change first), or computes it at the read for a horizon
other than the maintained one; `POST /planning/runs` keeps a run to read back as it was."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field, model_validator

from kernel.auth import Caller
from kernel.http import Db, Id, In, NamedInBody, Quantity
from kernel.rules.refusals import Conflict, NotFound, as_invalid
from planning.rules.lot_sizing import LotSizing
from planning.rules.pegging import pegged_down, pegged_up
from planning.services import live as maintained
from planning.services import plans

router = APIRouter()
LIVE = "live"


class LotSizingIn(In):
    rule: Literal["lot_for_lot", "fixed", "period", "min_multiple"] = "lot_for_lot"
    quantity: Decimal | None = Field(default=None, description="fixed: the lot")
    periods: int = Field(default=1, description="period: how many buckets one order covers")
    minimum: Decimal = Decimal(0)
    multiple: Decimal | None = None
    maximum: Decimal | None = Field(default=None, description="above it an order is split")


class ItemPlanningIn(In):
    lead_time_days: int | None = Field(default=None, ge=0,
                                       description="bought: purchase lead time; made: the fixed part, the run is added")
    safety_stock: Decimal | None = Field(default=None, ge=0, description="none: the item's own safety stock")
    lot_sizing: LotSizingIn = LotSizingIn()


class ItemPlanningOut(BaseModel):
    item_id: str
    lead_time_days: int | None
    safety_stock: Decimal | None
    lot_sizing: LotSizingIn


class ForecastIn(In):
    item_id: Id
    bucket_start: date
    quantity: Decimal = Field(description="never negative")


class ForecastOut(BaseModel):
    id: int
    item_id: str
    bucket_start: date
    quantity: Decimal


class InquiryLineIn(In):
    item_id: Id
    quantity: Quantity
    wanted: date


class InquiryIn(In):
    lines: list[InquiryLineIn] = Field(min_length=1)


SUBMIT = "submit the purchase orders too: the approval thresholds decide approved at once or waiting for approvers"


class FirmIn(In):
    document_id: Id = Field(description="the new work order's or purchase order's id")
    actor: NamedInBody = None
    supplier_id: Id | None = Field(default=None, description="a bought item's supplier")
    submit: bool = Field(default=False, description=SUBMIT)


class FirmManyIn(In):
    sales_order_id: Id | None = Field(default=None, description="every planned order pegged to this sales order's lines")
    planned_order_ids: list[str] | None = Field(default=None, min_length=1, max_length=1000,
                                                description="or these planned orders")
    document_prefix: Id = Field(description="the new orders are <prefix>-1, <prefix>-2, … in the order firmed")
    supplier_id: Id | None = Field(default=None, description="the supplier of a bought item not in `suppliers`")
    suppliers: dict[Id, Id] = Field(default_factory=dict, description="item id → its supplier, for bought items")
    submit: bool = Field(default=False, description=SUBMIT)

    @model_validator(mode="after")
    def one_selection(self) -> "FirmManyIn":
        if (self.sales_order_id is None) == (self.planned_order_ids is None):
            raise ValueError("name either sales_order_id or planned_order_ids")
        return self


class BucketOut(BaseModel):
    start: date
    gross_requirements: Decimal
    scheduled_receipts: Decimal
    projected_on_hand: Decimal
    net_requirements: Decimal
    planned_receipts: Decimal
    planned_releases: Decimal


class RecordOut(BaseModel):
    item_id: str
    low_level_code: int
    on_hand: Decimal
    safety_stock: Decimal
    buckets: list[BucketOut]


class PlannedOrderOut(BaseModel):
    id: str
    item_id: str
    kind: Literal["make", "buy"]
    quantity: Decimal
    release: date = Field(description="receipt − lead time; before today when past due")
    receipt: date = Field(description="when the plan needs it")
    release_past_due: bool
    expected: date = Field(description="when it can arrive at the earliest")


class ExceptionOut(BaseModel):
    kind: Literal["expedite", "defer", "cancel", "release_past_due", "below_safety_stock", "demand_late"]
    item_id: str
    reference: str = Field(description="the receipt, planned order or demand; the item for below_safety_stock")
    on: date
    to: date | None = Field(description="where to move it (expedite, defer), or when supply arrives")
    quantity: Decimal
    message: str


class PegOut(BaseModel):
    depth: int
    supply: str
    demand: str
    item_id: str
    quantity: Decimal


class PeggingOut(BaseModel):
    id: str
    down: list[PegOut] = Field(description="from a demand: the supplies below it, level by level")
    up: list[PegOut] = Field(description="from a supply: the demands above it, level by level")


class AtpBucketOut(BaseModel):
    start: date
    supply: Decimal
    booked: Decimal
    discrete_atp: Decimal
    cumulative_atp: Decimal


class AtpOut(BaseModel):
    item_id: str
    buckets: list[AtpBucketOut]


class PromiseLineOut(BaseModel):
    item_id: str
    quantity: Decimal
    promise: date | None = Field(description="none: not within the horizon (see reasons)")
    source: Literal["atp", "make", "buy", "none"]
    reasons: list[str]


class PromiseOut(BaseModel):
    lines: list[PromiseLineOut]


class RunOut(BaseModel):
    run_id: str
    start: date
    bucket: str
    buckets: int
    items: int
    planned_orders: int
    exceptions: int


class FirmOut(BaseModel):
    planned_order_id: str
    work_order_id: str | None
    purchase_order_id: str | None


class LateDemandOut(BaseModel):
    demand_id: str
    due: date
    covered_on: date | None
    quantity: Decimal
    order_id: str | None = Field(description="the work order or planned order this is a component need of")
    sales_order_lines: list[str] = Field(description="the sales-order lines (demand ids) it delays, through the pegging")


class ShortPlannedOrderOut(BaseModel):
    id: str
    kind: Literal["make", "buy"]
    quantity: Decimal
    release: date
    receipt: date


class ShortBucketOut(BaseModel):
    start: date
    short_of_safety_stock: Decimal


class ShortageOut(BaseModel):
    item_id: str
    late_demands: list[LateDemandOut]
    below_safety_stock: list[ShortBucketOut]
    orders_hit: list[str] = Field(description="the work and planned orders and sales-order lines its late demands hit")
    planned_orders: list[ShortPlannedOrderOut] = Field(description="the item's planned orders to release in the window")


class RunIn(In):
    start: date | None = Field(default=None, description="the first bucket's day; today (UTC) when left out")
    bucket: Literal["day", "week"] = "day"
    buckets: int = Field(default=28, description="at most 366")


def _live(db: Db, start: date | None, bucket: str, buckets: int):
    now = datetime.now(UTC)
    return plans.live_plan(db, start or now.date(), bucket, buckets, now)  # type: ignore[arg-type]


def _view(db: Db, run_id: str, start: date | None, bucket: str, buckets: int):
    """The live plan (the maintained one, or computed now for another horizon) or a stored run (its own horizon)."""
    if run_id == LIVE:
        now = datetime.now(UTC)
        if maintained.serves(start, bucket, buckets, now):
            return maintained.view(db, now)
        return plans.live_view(_live(db, start, bucket, buckets))
    return plans.stored_view(db, run_id)


Start = Query(default=None, description="the first bucket's day; today (UTC) when left out")
Bucket = Query(default="day", description="day or week")
Buckets = Query(default=28, description="how many buckets (at most 366)")


def _planning_out(row) -> dict:
    return {"item_id": row.item_id, "lead_time_days": row.lead_time_days, "safety_stock": row.safety_stock,
            "lot_sizing": {"rule": row.lot_rule, "quantity": row.lot_quantity, "periods": row.lot_periods,
                           "minimum": row.lot_minimum, "multiple": row.lot_multiple, "maximum": row.lot_maximum}}


@router.put("/items/{item_id}/planning", response_model=ItemPlanningOut)
def set_item_planning(item_id: str, body: ItemPlanningIn, db: Db):
    with as_invalid():
        sizing = LotSizing(**body.lot_sizing.model_dump())
    row = plans.set_item_planning(db, item_id, lead_time_days=body.lead_time_days, safety_stock=body.safety_stock,
                                  lot_sizing=sizing)
    return _planning_out(row)


@router.post("/planning/forecasts", status_code=201, response_model=ForecastOut)
def add_forecast(body: ForecastIn, db: Db):
    return plans.add_forecast(db, body.item_id, body.bucket_start, body.quantity)


@router.post("/planning/runs", status_code=201, response_model=RunOut)
def run(body: RunIn, db: Db):
    """A full regeneration, kept: its rows are read back at /planning/runs/{run_id}/… as they were."""
    view = plans.store_run(db, _live(db, body.start, body.bucket, body.buckets))
    horizon = view.plan.horizon
    return {"run_id": view.run_id, "start": horizon.start, "bucket": horizon.bucket, "buckets": horizon.count,
            "items": len(view.plan.records), "planned_orders": len(view.plan.planned_orders),
            "exceptions": len(view.plan.exceptions)}


@router.post("/planning/runs/live/regenerate", response_model=RunOut)
def regenerate_live(db: Db):
    """The maintained live plan regenerated in full now (today, day buckets, 28 of them), whatever net change
    has brought into it: what the planner job also does on its schedule."""
    now = datetime.now(UTC)
    run = maintained.regenerate_live(db, now)
    view = plans.run_view(db, run.run_id, LIVE, run.horizon)
    return {"run_id": LIVE, "start": run.horizon.start, "bucket": run.horizon.bucket, "buckets": run.horizon.count,
            "items": len(view.plan.records), "planned_orders": len(view.plan.planned_orders),
            "exceptions": len(view.plan.exceptions)}


@router.get("/planning/runs/{run_id}/records/{item_id}", response_model=RecordOut)
def record(run_id: str, item_id: str, db: Db, start: date | None = Start, bucket: str = Bucket, buckets: int = Buckets):
    now = datetime.now(UTC)
    if run_id == LIVE and maintained.serves(start, bucket, buckets, now):
        found = maintained.record(db, now, item_id)
    else:
        found = _view(db, run_id, start, bucket, buckets).plan.records.get(item_id)
    if found is None:
        raise NotFound(f"item {item_id!r} is not in the plan")
    return {"item_id": found.item, "low_level_code": found.low_level_code, "on_hand": found.on_hand,
            "safety_stock": found.safety_stock,
            "buckets": [{"start": b.start, "gross_requirements": b.gross_requirements,
                         "scheduled_receipts": b.scheduled_receipts, "projected_on_hand": b.projected_on_hand,
                         "net_requirements": b.net_requirements, "planned_receipts": b.planned_receipts,
                         "planned_releases": b.planned_releases} for b in found.buckets]}


@router.get("/planning/runs/{run_id}/planned-orders", response_model=list[PlannedOrderOut])
def planned_orders(run_id: str, db: Db, start: date | None = Start, bucket: str = Bucket, buckets: int = Buckets):
    live = _view(db, run_id, start, bucket, buckets)
    return [{"id": o.id, "item_id": o.item, "kind": o.kind, "quantity": o.quantity, "release": o.release,
             "receipt": o.receipt, "release_past_due": o.release_past_due, "expected": o.expected}
            for o in live.plan.planned_orders]


@router.get("/planning/runs/{run_id}/exceptions", response_model=list[ExceptionOut])
def exceptions(run_id: str, db: Db, start: date | None = Start, bucket: str = Bucket, buckets: int = Buckets):
    live = _view(db, run_id, start, bucket, buckets)
    return [{"kind": e.kind, "item_id": e.item, "reference": e.reference, "on": e.on, "to": e.to,
             "quantity": e.quantity, "message": e.message} for e in live.plan.exceptions]


@router.get("/planning/runs/{run_id}/pegging/{order_or_demand_id:path}", response_model=PeggingOut)
def pegging(run_id: str, order_or_demand_id: str, db: Db, start: date | None = Start, bucket: str = Bucket,
            buckets: int = Buckets):
    """Down: the supplies below a demand, level by level; up: the demands above a supply."""
    live = _view(db, run_id, start, bucket, buckets)
    if not live.names(db, order_or_demand_id):
        raise NotFound(f"{order_or_demand_id!r} is neither a demand nor a supply of the plan")

    def steps(found):
        return [{"depth": s.depth, "supply": s.peg.supply, "demand": s.peg.demand, "item_id": s.peg.item,
                 "quantity": s.peg.quantity} for s in found]
    return {"id": order_or_demand_id,
            "down": steps(pegged_down(order_or_demand_id, live.plan.pegs, live.order_of)),
            "up": steps(pegged_up(order_or_demand_id, live.plan.pegs, live.order_of))}


@router.get("/planning/shortages", response_model=list[ShortageOut])
def shortages(db: Db, days: int = Query(default=7, ge=1, le=366, description="the window from today"),
              bucket: str = Bucket, buckets: int = Buckets):
    """What runs short within `days`, from a plan over the whole horizon (later orders place demand in the window)."""
    now = datetime.now(UTC)
    view = (maintained.view(db, now) if maintained.serves(None, bucket, buckets, now)
            else plans.live_view(_live(db, None, bucket, buckets)))
    return plans.shortages(view, now.date(), days)


@router.get("/planning/atp/{item_id}", response_model=AtpOut)
def atp(item_id: str, db: Db, start: date | None = Start, bucket: str = Bucket, buckets: int = Buckets):
    now = datetime.now(UTC)
    found = (maintained.atp(db, now, item_id) if maintained.serves(start, bucket, buckets, now)
             else plans.atp(_live(db, start, bucket, buckets), item_id))
    return {"item_id": item_id, "buckets": [b._asdict() for b in found]}


@router.post("/planning/promise", response_model=PromiseOut)
def promise(body: InquiryIn, db: Db, start: date | None = Start, bucket: str = Bucket, buckets: int = Buckets):
    """Promise dates per line (ATP first, CTP beyond), without booking anything."""
    live = _live(db, start, bucket, buckets)
    answers = plans.promise(live, [(line.item_id, line.quantity, line.wanted) for line in body.lines])
    return {"lines": [{"item_id": a.item, "quantity": a.quantity, "promise": a.date, "source": a.source,
                       "reasons": list(a.reasons)} for a in answers]}


@router.post("/planning/planned-orders/firm", status_code=201, response_model=list[FirmOut])
def firm_many(body: FirmManyIn, db: Db, caller: Caller, start: date | None = Start, bucket: str = Bucket,
              buckets: int = Buckets):
    """Planned orders (every one pegged to a sales order, or those listed) made firm in one action and one commit,
    or none: make orders as released work orders (BOM snapshot taken), buy orders as draft purchase orders."""
    live = _live(db, start, bucket, buckets)
    chosen = (plans.pegged_to_sales_order(db, live, body.sales_order_id) if body.sales_order_id is not None
              else body.planned_order_ids or [])
    if not chosen:
        raise Conflict(f"no planned order is pegged to sales order {body.sales_order_id!r}")
    documents = [f"{body.document_prefix}-{number}" for number in range(1, len(chosen) + 1)]
    return plans.firm_many(db, live, chosen, documents, caller.name, body.suppliers, body.supplier_id, datetime.now(UTC),
                           body.submit)


@router.post("/planning/planned-orders/{planned_order_id}/firm", status_code=201, response_model=FirmOut)
def firm(planned_order_id: str, body: FirmIn, db: Db, caller: Caller, start: date | None = Start, bucket: str = Bucket,
         buckets: int = Buckets):
    """The planned order (of the plan read with the same start, bucket and buckets) as a released work order (BOM
    snapshot taken) or a draft purchase order, pegged where the planned order was at the next read."""
    live = _live(db, start, bucket, buckets)
    return plans.firm(db, live, planned_order_id, body.document_id, caller.name, body.supplier_id, datetime.now(UTC),
                      body.submit)
