"""The demo's work orders: seeded from a file through the services, then reckoned independently."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import yaml
from sqlalchemy import text

from inventory.api.costing import TariffIn
from inventory.api.masterdata import BomLineIn, ItemIn, LocationIn, WorkCentreIn
from inventory.api.stock import ReceiptIn
from mes.api.workorders import WorkOrderIn
from inventory.models import EnergyTariff, EnergyTariffPeriod, Item, WorkCentre
from kernel.db.models import Machine, session_on
from inventory.services import masterdata, stock, valuation
from mes.services import workorders
from mes.rules.alerts import AlertRule
from mes.services.alert_engine import install_default_rules
from mes.services.costing import running_cost, work_order_cost

DEMO_ORDERS = Path(__file__).resolve().parent.parent / "simulators" / "plants" / "demo-orders.yaml"


def seed(database_url: str, path: Path = DEMO_ORDERS) -> None:
    """Items, BOMs, line-side stock and one released, started work order per machine.

    The file is validated with the API's request models: the demo enters data exactly as a user would.
    """
    data = yaml.safe_load(path.read_text())
    with session_on(database_url, expire_on_commit=False) as session:
        for item in data["items"]:
            fields = ItemIn.model_validate(item).model_dump()
            masterdata.create(session, Item, fields["item_id"], "item", **fields)
        for line in data["bom"]:
            masterdata.add_bom_line(session, line["parent"], **BomLineIn.model_validate(
                {k: v for k, v in line.items() if k != "parent"}).model_dump())
        for location in data["locations"]:
            masterdata.create_location(session, **LocationIn.model_validate(location).model_dump())
        for receipt in data["receipts"]:
            stock.receive(session, **ReceiptIn.model_validate({**receipt, "source_ref": f"opening stock {receipt['lot']}"}).model_dump())
        tariff = TariffIn.model_validate({k: v for k, v in data["tariff"].items() if k != "tariff_id"})
        session.add(EnergyTariff(tariff_id=data["tariff"]["tariff_id"], timezone=tariff.timezone,
                                 default_price_per_kwh=tariff.default_price_per_kwh))
        session.add_all(EnergyTariffPeriod(tariff_id=data["tariff"]["tariff_id"], days=period.days, start_time=period.start,
                                           end_time=period.end, price_per_kwh=period.price_per_kwh) for period in tariff.periods)
        for centre in data["work_centres"]:
            fields = WorkCentreIn.model_validate({k: v for k, v in centre.items() if k != "machines"}).model_dump()
            masterdata.create(session, WorkCentre, fields["work_centre_id"], "work centre", **fields)
            for machine_id in centre["machines"]:
                masterdata.get(session, Machine, machine_id, "machine").work_centre_id = fields["work_centre_id"]
        session.commit()
        install_default_rules(session, [AlertRule(**{**rule, "minutes": Decimal(rule["minutes"])}) for rule in data["alert_rules"]])
        for order in data["work_orders"]:
            machine_id = order["machine_id"]
            fields = WorkOrderIn.model_validate({k: v for k, v in order.items() if k != "machine_id"}).model_dump()
            work_order = workorders.create_work_order(session, **fields)
            workorders.act(session, work_order.work_order_id, "release")
            workorders.act(session, work_order.work_order_id, "start", machine_id=machine_id, actor="demo")


def reckoning(database_url: str) -> dict:
    """Per work order what was made and what it cost; per component what backflush consumed against
    what the counts and the released BOMs say it must have (computed here from the attributions,
    not from the moves)."""
    with session_on(database_url) as session:
        valuation.drain(session, running_cost)
        orders = session.execute(text(
            """SELECT w.work_order_id, w.quantity, coalesce(sum(a.good), 0), coalesce(sum(a.scrap), 0),
                      (SELECT coalesce(sum(quantity), 0) FROM stock_on_hand s
                        WHERE s.item_id = w.item_id AND s.lot = 'FG-' || w.work_order_id)
               FROM work_orders w LEFT JOIN production_attributions a USING (work_order_id)
               GROUP BY w.work_order_id ORDER BY w.work_order_id""")).all()
        expected = session.execute(text(
            """SELECT c.component_item, sum(made.units * c.quantity_per_unit)
               FROM work_order_components c
               JOIN (SELECT work_order_id, sum(good + scrap) AS units FROM production_attributions
                     WHERE work_order_id IS NOT NULL GROUP BY 1) AS made USING (work_order_id)
               GROUP BY 1""")).all()
        consumed = dict(session.execute(text(
            "SELECT item_id, sum(quantity) FROM stock_moves WHERE reason = 'backflush' GROUP BY 1")).all())
        costs = {number: work_order_cost(session, number).cost for number, *_ in orders}
    return {
        "work_orders": {
            number: {"good": int(good), "scrap": int(scrap), "percent_complete": str(Decimal(100 * good) / quantity),
                     "finished_goods_on_hand": str(received), "cost": str(costs[number].total),
                     "unit_cost": None if costs[number].unit_cost is None else str(costs[number].unit_cost)}
            for number, quantity, good, scrap, received in orders
        },
        "components": {
            item: {"consumed": str(consumed.get(item, Decimal(0))), "expected": str(need)} for item, need in sorted(expected)
        },
    }


def exact(orders: dict) -> bool:
    return (all(Decimal(entry["consumed"]) == Decimal(entry["expected"]) for entry in orders["components"].values())
            and all(Decimal(entry["finished_goods_on_hand"]) == entry["good"] for entry in orders["work_orders"].values()))
