"""Production's master data: machines (registered from the plant file) and their work centre, the ideal
cycle of an item on a machine, scrap reasons."""

from __future__ import annotations

from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Item, WorkCentre
from kernel.db.models import Machine
from kernel.db.unit_of_work import create, get, update
from mes.models import MachineItem, ScrapReason


def list_machines(session: Session) -> list[Machine]:
    return list(session.scalars(select(Machine).order_by(Machine.machine_id)))


def set_work_centre(session: Session, machine_id: str, work_centre_id: str | None) -> Machine:
    machine = get(session, Machine, machine_id, "machine")
    if work_centre_id is not None:
        get(session, WorkCentre, work_centre_id, "work centre")
    return update(session, machine, {"work_centre_id": work_centre_id})


def set_ideal_cycle(session: Session, machine_id: str, item_id: str, ideal_cycle_s: Decimal) -> MachineItem:
    """The ideal cycle time of an item on a machine: what its performance is measured against."""
    get(session, Machine, machine_id, "machine")
    get(session, Item, item_id, "item")
    row = session.merge(MachineItem(machine_id=machine_id, item_id=item_id, ideal_cycle_s=ideal_cycle_s))
    session.commit()
    return row


def ideal_cycles(session: Session, machine_id: str) -> list[MachineItem]:
    get(session, Machine, machine_id, "machine")
    return list(session.scalars(select(MachineItem).where(MachineItem.machine_id == machine_id).order_by(MachineItem.item_id)))


def create_scrap_reason(session: Session, code: str, description: str, active: bool) -> ScrapReason:
    return create(session, ScrapReason, code, "scrap reason", code=code, description=description, active=active)


def scrap_reasons(session: Session) -> list[ScrapReason]:
    return list(session.scalars(select(ScrapReason).order_by(ScrapReason.code)))
