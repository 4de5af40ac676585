"""Inventory's master data: items, bills of materials, locations, work centres, energy tariffs and routings."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, time
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.rules import bom as bom_rules
from sqlalchemy import text

from inventory.models import BomLine, EnergyTariff, Item, Location, Routing, WorkCentre
from inventory.rules.costing import Tariff, TariffPeriod
from kernel.db.unit_of_work import create, get, update
from kernel.rules.refusals import Conflict, as_invalid


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


def update_item(session: Session, item_id: str, changes: dict) -> Item:
    """Change an item's description; kind and id never change (they are referenced everywhere)."""
    return update(session, get(session, Item, item_id, "item"), changes)


def update_work_centre(session: Session, work_centre_id: str, changes: dict) -> WorkCentre:
    centre = get(session, WorkCentre, work_centre_id, "work centre")
    if changes.get("tariff_id") is not None:
        get(session, EnergyTariff, changes["tariff_id"], "energy tariff")
    return update(session, centre, changes)


def put_tariff(session: Session, tariff_id: str, timezone: str, default_price_per_kwh: Decimal,
               periods: Iterable[tuple[Iterable[int], time, time, Decimal]]) -> Tariff:
    """Create or replace a tariff from its periods (days, start, end, price per kWh); 422 when the tariff
    rules refuse it (overlapping periods, an unknown zone, a day that is no weekday)."""
    with as_invalid():
        tariff = Tariff(timezone, default_price_per_kwh, tuple(TariffPeriod(frozenset(days), start, end, price)
                                                               for days, start, end, price in periods))
    session.merge(EnergyTariff(tariff_id=tariff_id, timezone=timezone, default_price_per_kwh=default_price_per_kwh))
    session.flush()
    session.execute(text("DELETE FROM energy_tariff_periods WHERE tariff_id = :t"), {"t": tariff_id})
    for period in tariff.periods:
        session.execute(text(
            """INSERT INTO energy_tariff_periods (tariff_id, days, start_time, end_time, price_per_kwh)
               VALUES (:t, :days, :start, :end, :price)"""),
            {"t": tariff_id, "days": sorted(period.days), "start": period.start, "end": period.end, "price": period.price_per_kwh})
    session.commit()
    return tariff


def put_routing(session: Session, item_id: str, fields: dict) -> Routing:
    """How a made item is made, for its standard cost."""
    item = get(session, Item, item_id, "item")
    if item.kind != "make":
        raise Conflict(f"{item_id} is bought, not made: its standard cost is its purchase cost")
    get(session, WorkCentre, fields["work_centre_id"], "work centre")
    routing = session.merge(Routing(item_id=item_id, **fields))
    session.commit()
    return routing
