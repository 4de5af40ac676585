"""Production's master data: the machines (registered from the plant file; their work centre is set
here), the ideal cycle of an item on a machine, and scrap reasons."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from decimal import Decimal

from fastapi import APIRouter
from pydantic import Field
from kernel.http import Db, Id, In, Out
from mes.services import masterdata

router = APIRouter()


class MachineIn(In):
    work_centre_id: str | None = Field(description="the work centre the machine belongs to (null: none)")


class MachineOut(Out):
    machine_id: str
    site: str
    area: str
    line: str
    protocol: str
    ideal_cycle_s: Decimal
    work_centre_id: str | None


class MachineItemIn(In):
    ideal_cycle_s: Decimal = Field(gt=0, description="seconds per unit of this item on this machine at ideal speed")


class MachineItemOut(Out):
    machine_id: str
    item_id: str
    ideal_cycle_s: Decimal


class ScrapReasonIn(In):
    code: Id
    description: str = Field(min_length=1)
    active: bool = True


class ScrapReasonOut(Out):
    code: str
    description: str
    active: bool


@router.get("/machines", response_model=list[MachineOut])
def list_machines(db: Db):
    """Machines come from the plant file (registered by the core); their work centre is set here."""
    return masterdata.list_machines(db)


@router.patch("/machines/{machine_id}", response_model=MachineOut)
def update_machine(machine_id: str, body: MachineIn, db: Db):
    return masterdata.set_work_centre(db, machine_id, body.work_centre_id)


@router.put("/machines/{machine_id}/items/{item_id}", response_model=MachineItemOut)
def set_machine_item(machine_id: str, item_id: str, body: MachineItemIn, db: Db):
    """The ideal cycle time of an item on a machine: what its performance is measured against."""
    return masterdata.set_ideal_cycle(db, machine_id, item_id, body.ideal_cycle_s)


@router.get("/machines/{machine_id}/items", response_model=list[MachineItemOut])
def machine_items(machine_id: str, db: Db):
    return masterdata.ideal_cycles(db, machine_id)


@router.post("/scrap-reasons", status_code=201, response_model=ScrapReasonOut)
def create_scrap_reason(body: ScrapReasonIn, db: Db):
    return masterdata.create_scrap_reason(db, body.code, body.description, body.active)


@router.get("/scrap-reasons", response_model=list[ScrapReasonOut])
def list_scrap_reasons(db: Db):
    return masterdata.scrap_reasons(db)
