"""Inventory's master data: items, BOMs, work centres, locations."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import date
from decimal import Decimal
from typing import Annotated, Literal

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from kernel.http import Db, Id, In, Out, Quantity
from inventory.models import Item, Location, WorkCentre
from inventory.services import masterdata

router = APIRouter()


# numeric(18, 6) in the database: larger values are refused here, in the schema, rather than by the database
HourlyRate = Annotated[Decimal, Field(ge=0, lt=Decimal(10) ** 12, max_digits=18, decimal_places=6)]

class ItemIn(In):
    item_id: Id
    name: str = Field(min_length=1)
    kind: Literal["make", "buy"]
    uom: str = Field(min_length=1, max_length=16)
    shelf_life_days: int | None = Field(default=None, gt=0)
    standard_cost: Decimal | None = Field(default=None, ge=0)
    valuation: Literal["moving_average", "fifo"] = Field(default="moving_average",
                                                         description="fixed once the item's first move is valued")
    safety_stock: Decimal | None = Field(default=None, ge=0, description="below it (available + on order): an alert")
    reorder_quantity: Decimal = Field(default=Decimal(0), ge=0, description="bought on top of the safety stock")
    minimum_order: Decimal = Field(default=Decimal(0), ge=0)
    order_multiple: Decimal | None = Field(default=None, gt=0)


class ItemOut(Out):
    item_id: str
    name: str
    kind: str
    uom: str
    shelf_life_days: int | None
    standard_cost: Decimal | None
    valuation: str
    safety_stock: Decimal | None
    reorder_quantity: Decimal
    minimum_order: Decimal
    order_multiple: Decimal | None


class ItemPatch(In):
    name: str | None = Field(default=None, min_length=1)
    uom: str | None = Field(default=None, min_length=1, max_length=16)
    shelf_life_days: int | None = Field(default=None, gt=0)
    standard_cost: Decimal | None = Field(default=None, ge=0)
    safety_stock: Decimal | None = Field(default=None, ge=0)
    reorder_quantity: Decimal | None = Field(default=None, ge=0)
    minimum_order: Decimal | None = Field(default=None, ge=0)
    order_multiple: Decimal | None = Field(default=None, gt=0)


class WorkCentreIn(In):
    work_centre_id: Id
    name: str = Field(min_length=1)
    hourly_rate: HourlyRate = Field(default=Decimal(0), description="cost of one hour of machine time")
    tariff_id: str | None = None


class WorkCentreOut(Out):
    work_centre_id: str
    name: str
    hourly_rate: Decimal
    tariff_id: str | None = Field(description="energy tariff of its machines; none: the tariff 'default'")


class WorkCentrePatch(In):
    name: str | None = Field(default=None, min_length=1)
    hourly_rate: HourlyRate | None = None
    tariff_id: str | None = None


class BomLineIn(In):
    component_item: Id
    quantity_per: Quantity
    scrap_factor: Decimal = Field(default=Decimal(0), ge=0)
    phantom: bool = False
    effective_from: date | None = None
    effective_to: date | None = None


class BomOut(BaseModel):
    item_id: str
    on: date
    lines: list[BomLineIn]
    per_unit: dict[str, Decimal] = Field(description="components one unit consumes on `on`, phantoms exploded")


class LocationIn(In):
    location_id: Id
    name: str = Field(min_length=1)
    kind: Literal["warehouse", "line_side"]
    line: str | None = None
    negative_stock: Literal["allow", "block"] = "allow"


class LocationOut(Out):
    location_id: str
    name: str
    kind: str
    line: str | None
    negative_stock: str





@router.post("/items", status_code=201, response_model=ItemOut)
def create_item(body: ItemIn, db: Db):
    return masterdata.create(db, Item, body.item_id, "item", **body.model_dump())


@router.get("/items", response_model=list[ItemOut])
def list_items(db: Db):
    return db.scalars(select(Item).order_by(Item.item_id)).all()


@router.get("/items/{item_id}", response_model=ItemOut)
def get_item(item_id: str, db: Db):
    return masterdata.get(db, Item, item_id, "item")


@router.patch("/items/{item_id}", response_model=ItemOut)
def update_item(item_id: str, body: ItemPatch, db: Db):
    """Change an item's description; kind and id never change (they are referenced everywhere)."""
    return masterdata.update_item(db, item_id, body.model_dump(exclude_unset=True))


@router.post("/work-centres", status_code=201, response_model=WorkCentreOut)
def create_work_centre(body: WorkCentreIn, db: Db):
    return masterdata.create(db, WorkCentre, body.work_centre_id, "work centre", **body.model_dump())


@router.patch("/work-centres/{work_centre_id}", response_model=WorkCentreOut)
def update_work_centre(work_centre_id: str, body: WorkCentrePatch, db: Db):
    return masterdata.update_work_centre(db, work_centre_id, body.model_dump(exclude_unset=True))


@router.get("/work-centres", response_model=list[WorkCentreOut])
def list_work_centres(db: Db):
    return db.scalars(select(WorkCentre).order_by(WorkCentre.work_centre_id)).all()


@router.post("/items/{item_id}/bom", status_code=201, response_model=BomOut)
def add_bom_line(item_id: str, body: BomLineIn, db: Db):
    masterdata.add_bom_line(db, item_id, **body.model_dump())
    return bom(item_id, db)


@router.get("/items/{item_id}/bom", response_model=BomOut)
def bom(item_id: str, db: Db, on: Annotated[date | None, Query(description="default: today")] = None):
    on = on or date.today()
    per_unit = masterdata.exploded(db, item_id, on)
    lines = [BomLineIn(component_item=line.component, quantity_per=line.quantity_per, scrap_factor=line.scrap_factor,
                       phantom=line.phantom, effective_from=line.effective_from, effective_to=line.effective_to)
             for line in masterdata.bom_structure(db).get(item_id, [])]
    return BomOut(item_id=item_id, on=on, lines=lines, per_unit=per_unit)


@router.post("/locations", status_code=201, response_model=LocationOut)
def create_location(body: LocationIn, db: Db):
    return masterdata.create_location(db, **body.model_dump())


@router.get("/locations", response_model=list[LocationOut])
def list_locations(db: Db):
    return db.scalars(select(Location).order_by(Location.location_id)).all()
