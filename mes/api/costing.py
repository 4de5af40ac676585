"""A work order's cost: labour booked on it, and its actual cost so far against the standard."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from decimal import Decimal

from fastapi import APIRouter
from pydantic import BaseModel, Field

from inventory.api.costing import CostOut
from kernel.auth import Caller
from kernel.http import Db, In, NamedInBody, Out
from mes.services import costing

router = APIRouter()


class LabourIn(In):
    hours: Decimal = Field(gt=0)
    rate: Decimal = Field(ge=0, description="per hour")
    actor: NamedInBody = None


class ActualOut(CostOut):
    good: int
    scrap: int
    unit_cost: Decimal | None = Field(description="total / good units: scrap is absorbed by the good units")


class VariancesOut(Out):
    material: Decimal
    energy: Decimal
    machine: Decimal
    labour: Decimal
    yield_: Decimal = Field(serialization_alias="yield", description="the standard cost of the units scrapped")
    total: Decimal = Field(description="actual total − good × standard total")


class WorkOrderCostOut(BaseModel):
    work_order_id: str
    actual: ActualOut
    run_seconds: Decimal
    energy_wh: int
    standard_per_unit: CostOut | None
    variances: VariancesOut | None
    finished_goods_value: Decimal = Field(description="what the order's finished-goods receipts were valued at")
    not_absorbed: Decimal = Field(description="actual total − finished_goods_value: cost the receipts did not carry yet")
    notes: list[str]


@router.post("/work-orders/{work_order_id}/labour", status_code=201)
def book_labour(work_order_id: str, body: LabourIn, db: Db, caller: Caller) -> dict:
    return costing.book_labour(db, work_order_id, body.hours, body.rate, caller.name)


@router.get("/work-orders/{work_order_id}/cost", response_model=WorkOrderCostOut, response_model_by_alias=True)
def work_order_cost(work_order_id: str, db: Db):
    """Actual cost so far (material valued from backflush, energy at the tariff, run time at the
    hourly rate, labour), the standard, the variances, and the finished goods' value."""
    return costing.work_order_costing(db, work_order_id)
