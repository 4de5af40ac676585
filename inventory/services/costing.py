"""Costing master data and standard cost: energy tariffs, routings, and an item's standard cost per unit
rolled up through its BOMs and routings (`inventory.rules.costing`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import EnergyTariff, EnergyTariffPeriod, Item, Routing, WorkCentre
from inventory.rules.costing import Routing as CostRouting
from inventory.rules.costing import StandardCost, Tariff, TariffPeriod, standard_costs
from inventory.services.masterdata import exploded, get
from kernel.rules.refusals import Conflict

DEFAULT_TARIFF = "default"


def load_tariff(session: Session, tariff_id: str) -> Tariff | None:
    """The stored tariff as the costing rules price with it; None when there is no such tariff."""
    stored = session.get(EnergyTariff, tariff_id)
    if stored is None:
        return None
    periods = session.scalars(select(EnergyTariffPeriod).where(EnergyTariffPeriod.tariff_id == tariff_id).order_by(EnergyTariffPeriod.id))
    return Tariff(stored.timezone, stored.default_price_per_kwh,
                  tuple(TariffPeriod(frozenset(period.days), period.start_time, period.end_time, period.price_per_kwh)
                        for period in periods))


def standard_cost(session: Session, item_id: str, on: date | None = None) -> StandardCost:
    """The item's standard cost per unit, rolled up through the BOMs in force `on` (default today)
    and the routings. A bought item costs its standard (purchase) cost."""
    on = on or date.today()
    get(session, Item, item_id, "item")
    items = {item.item_id: item for item in session.scalars(select(Item))}
    bom: dict[str, list[tuple[str, Decimal, Decimal]]] = {}
    routing: dict[str, CostRouting] = {}
    purchased: dict[str, Decimal] = {}
    pending = [item_id]
    while pending:
        item = items[pending.pop()]
        if item.item_id in bom or item.item_id in purchased:
            continue
        if item.kind == "buy":
            if item.standard_cost is None:
                raise Conflict(f"bought item {item.item_id!r} has no standard cost")
            purchased[item.item_id] = item.standard_cost
            continue
        # exploded: per-unit quantities with phantoms and scrap factors already applied
        bom[item.item_id] = [(component, quantity, Decimal(0))
                             for component, quantity in exploded(session, item.item_id, on).items()]
        found = session.get(Routing, item.item_id)
        if found is not None:
            centre = session.get(WorkCentre, found.work_centre_id)
            tariff = load_tariff(session, centre.tariff_id or DEFAULT_TARIFF)
            routing[item.item_id] = CostRouting(found.ideal_cycle_s, centre.hourly_rate, found.energy_wh_per_unit,
                                                tariff.default_price_per_kwh if tariff else Decimal(0),
                                                found.labour_s_per_unit, found.labour_rate)
        pending.extend(component for component, _, _ in bom[item.item_id])
    try:
        return standard_costs(bom, purchased, routing)[item_id]
    except ValueError as error:
        raise Conflict(f"no standard cost for {item_id}: {error}") from None
