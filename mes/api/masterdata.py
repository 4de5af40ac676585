"""Production's master data: the machines (registered from the plant file; their work centre is set
here, their connection is what their edge reports), the ideal cycle of an item on a machine, and scrap
reasons."""

# No `from __future__ import annotations`: FastAPI resolves the route annotations at definition time.
from datetime import datetime
from decimal import Decimal
from typing import Literal

from fastapi import APIRouter
from pydantic import Field
from kernel.db.models import Machine
from kernel.http import Db, Id, In, Out
from mes.rules.connections import ShownConnection
from mes.services import masterdata
from mes.services.connections import machine_connections

router = APIRouter()


class MachineIn(In):
    work_centre_id: str | None = Field(description="the work centre the machine belongs to (null: none)")


ConnectionStatus = Literal["ok", "unreachable", "bad_config", "stale"]


class ConnectionOut(Out):
    """How the edge reaches the machine (docs/mqtt.md, edge status): what it reported last, or, while the
    edge is offline, `unreachable` since it went offline."""

    status: ConnectionStatus = Field(description="ok; unreachable (no connection, the device does not answer, or its "
                                     "edge is offline); bad_config (a node or register of the plant file is refused); "
                                     "stale (connected, but the values are not current)")
    detail: str = Field(description="for bad_config the node or register and the status code; for an offline edge, "
                                    "what it reported last")
    since: datetime | None = Field(description="since when the machine shows this status")
    unusable: dict[str, int] = Field(description="readings the edge could not use, per reason, since it started")
    edge_id: str = Field(description="the edge that reported it")
    edge_online: bool = Field(description="false: the edge is offline, and `status` is unreachable for that reason")
    reported_status: ConnectionStatus = Field(description="the status the edge reported last (the same as `status` "
                                              "while the edge is online)")
    received_at: datetime = Field(description="when the core received the edge's report")


class MachineOut(Out):
    machine_id: str
    site: str
    area: str
    line: str
    protocol: str
    ideal_cycle_s: Decimal
    work_centre_id: str | None
    connection: ConnectionOut | None = Field(default=None, description="null: no edge has reported the machine's "
                                             "connection yet")


def connection_out(connection: ShownConnection | None) -> ConnectionOut | None:
    return ConnectionOut(**connection._asdict()) if connection is not None else None


def machine_out(machine: Machine, connection: ShownConnection | None) -> MachineOut:
    return MachineOut.model_validate(machine).model_copy(update={"connection": connection_out(connection)})


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
    """Machines come from the plant file (registered by the core); their work centre is set here; their
    connection is what their edge reports (`connection`)."""
    connections = machine_connections(db)
    return [machine_out(machine, connections.get(machine.machine_id)) for machine in masterdata.list_machines(db)]


@router.patch("/machines/{machine_id}", response_model=MachineOut)
def update_machine(machine_id: str, body: MachineIn, db: Db):
    machine = masterdata.set_work_centre(db, machine_id, body.work_centre_id)
    return machine_out(machine, machine_connections(db, machine_id).get(machine_id))


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
