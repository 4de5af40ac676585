"""Costing master data and standard cost: energy tariffs, routings, and an item's standard cost per unit
rolled up through its BOMs and routings (`inventory.rules.costing`)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

import psycopg
from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.models import Item, Routing, WorkCentre
from inventory.rules.costing import Routing as CostRouting
from inventory.rules.costing import StandardCost, Tariff, TariffPeriod, standard_costs
from inventory.services.masterdata import exploded, get
from kernel.rules.refusals import Conflict

DEFAULT_TARIFF = "default"


def load_tariff(conn: psycopg.Connection, tariff_id: str) -> Tariff | None:
    row = conn.execute("SELECT timezone, default_price_per_kwh FROM energy_tariffs WHERE tariff_id = %s", (tariff_id,)).fetchone()
    if row is None:
        return None
    periods = [TariffPeriod(frozenset(days), start, end, price) for days, start, end, price in conn.execute(
        "SELECT days, start_time, end_time, price_per_kwh FROM energy_tariff_periods WHERE tariff_id = %s ORDER BY id", (tariff_id,))]
    return Tariff(row[0], row[1], tuple(periods))


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
            tariff = load_tariff(_driver(session), centre.tariff_id or DEFAULT_TARIFF)
            routing[item.item_id] = CostRouting(found.ideal_cycle_s, centre.hourly_rate, found.energy_wh_per_unit,
                                                tariff.default_price_per_kwh if tariff else Decimal(0),
                                                found.labour_s_per_unit, found.labour_rate)
        pending.extend(component for component, _, _ in bom[item.item_id])
    try:
        return standard_costs(bom, purchased, routing)[item_id]
    except ValueError as error:
        raise Conflict(f"no standard cost for {item_id}: {error}") from None




def _driver(session: Session) -> psycopg.Connection:
    """The session's own psycopg connection: the same transaction, for SQL shared with the core."""
    return session.connection().connection.driver_connection
