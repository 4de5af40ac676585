"""Items, bills of materials and locations."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.rules import bom as bom_rules
from inventory.models import BomLine, Item, Location
from kernel.rules.refusals import Conflict, NotFound


def get(session: Session, model, key, what: str):
    found = session.get(model, key)
    if found is None:
        raise NotFound(f"{what} {key!r} does not exist")
    return found


def create(session: Session, model, key, what: str, **fields):
    if session.get(model, key) is not None:
        raise Conflict(f"{what} {key!r} already exists")
    row = model(**fields)
    session.add(row)
    session.commit()
    return row


def bom_structure(session: Session) -> dict[str, list[bom_rules.BomLine]]:
    """Every BOM line as the rules see it, by parent item."""
    structure: dict[str, list[bom_rules.BomLine]] = {}
    for line in session.scalars(select(BomLine).order_by(BomLine.id)):
        structure.setdefault(line.parent_item, []).append(bom_rules.BomLine(
            parent=line.parent_item, component=line.component_item, quantity_per=line.quantity_per,
            scrap_factor=line.scrap_factor, effective_from=line.effective_from, effective_to=line.effective_to,
            phantom=line.phantom,
        ))
    return structure


def add_bom_line(session: Session, parent_item: str, component_item: str, quantity_per: Decimal,
                 scrap_factor: Decimal = Decimal(0), phantom: bool = False,
                 effective_from: date | None = None, effective_to: date | None = None) -> BomLine:
    get(session, Item, parent_item, "item")
    get(session, Item, component_item, "item")
    line = BomLine(parent_item=parent_item, component_item=component_item, quantity_per=quantity_per,
                   scrap_factor=scrap_factor, phantom=phantom, effective_from=effective_from, effective_to=effective_to)
    session.add(line)
    session.flush()
    cycle = bom_rules.find_cycle(parent_item, bom_structure(session))  # whatever the lines' dates
    if cycle:
        session.rollback()
        raise Conflict(f"this line would make a BOM cycle: {' → '.join(cycle)}")
    session.commit()
    return line


def exploded(session: Session, item_id: str, on: date) -> dict[str, Decimal]:
    get(session, Item, item_id, "item")
    return bom_rules.explode(item_id, bom_structure(session), on)


def create_location(session: Session, **fields) -> Location:
    return create(session, Location, fields["location_id"], "location", **fields)
