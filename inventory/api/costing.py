"""Valuation and standard cost: item values and the valuation ledger, energy tariffs, routings, standard cost."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime, time
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from kernel.http import Db, In, Out
from inventory.api.valued import ValuedDb
from inventory.services import costing, masterdata, valuation

router = APIRouter()


class TariffPeriodIn(In):
    days: list[int] = Field(min_length=1, description="weekdays the period starts on, 0 = Monday … 6 = Sunday")
    start: time = Field(description="local wall time, inclusive")
    end: time = Field(description="local wall time, exclusive; before start: crosses midnight")
    price_per_kwh: Decimal = Field(ge=0)


class TariffIn(In):
    timezone: str = Field(description="IANA zone whose wall clock the periods read, e.g. Europe/Paris")
    default_price_per_kwh: Decimal = Field(ge=0)
    periods: list[TariffPeriodIn] = []


class TariffOut(TariffIn):
    tariff_id: str


class RoutingIn(In):
    work_centre_id: str
    ideal_cycle_s: Decimal = Field(ge=0)
    energy_wh_per_unit: Decimal = Field(default=Decimal(0), ge=0)
    labour_s_per_unit: Decimal = Field(default=Decimal(0), ge=0)
    labour_rate: Decimal = Field(default=Decimal(0), ge=0, description="per hour")


class RoutingOut(RoutingIn, Out):
    item_id: str


class CostOut(Out):
    material: Decimal
    energy: Decimal
    machine: Decimal
    labour: Decimal
    total: Decimal


class ItemValueOut(BaseModel):
    item_id: str
    method: str
    quantity: Decimal
    value: Decimal
    last_known_cost: Decimal | None = Field(description="moving average: the average; FIFO: the latest receipt's cost")


class ValueEntryOut(BaseModel):
    id: int
    move_id: int
    ts: datetime
    item_id: str
    kind: str
    quantity: Decimal
    value: Decimal
    unit_cost: Decimal | None
    revalued_quantity: Decimal
    work_order_id: str | None
    source_ref: str


@router.put("/energy-tariffs/{tariff_id}", response_model=TariffOut)
def put_tariff(tariff_id: str, body: TariffIn, db: Db):
    """Create or replace a tariff. `default` prices every machine whose work centre names none."""
    masterdata.put_tariff(db, tariff_id, body.timezone, body.default_price_per_kwh,
                          [(p.days, p.start, p.end, p.price_per_kwh) for p in body.periods])
    return TariffOut(tariff_id=tariff_id, **body.model_dump())


@router.put("/items/{item_id}/routing", response_model=RoutingOut)
def put_routing(item_id: str, body: RoutingIn, db: Db):
    """How a made item is made, for its standard cost."""
    return masterdata.put_routing(db, item_id, body.model_dump())


@router.get("/items/{item_id}/standard-cost", response_model=CostOut)
def item_standard_cost(item_id: str, db: Db):
    """Per unit, rolled up through today's BOMs and the routings."""
    return costing.standard_cost(db, item_id)


@router.get("/stock/values", response_model=list[ItemValueOut])
def stock_values(db: ValuedDb, item_id: str | None = None):
    """Quantity and value on hand per item, every move into or out of the plant valued."""
    return valuation.item_values(db, item_id)


@router.get("/stock/value-entries", response_model=list[ValueEntryOut])
def value_entries(db: ValuedDb, item_id: str | None = None, work_order_id: str | None = None,
                  limit: Annotated[int, Query(gt=0, le=10_000)] = 500):
    """The valuation ledger, newest first: receipts, issues and true-ups with their values."""
    return valuation.value_entries(db, item_id, work_order_id, limit)
