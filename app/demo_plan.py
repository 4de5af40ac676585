"""The demo's planning (以销定产): sales orders promised and entered, a plan made and partly firmed before
production; at the end, the promises and the plan as the machines' counts moved it.

Everything goes through the services and the API's request models, as a planner would enter it: each order is
promised as `POST /sales-orders` promises it (from the plan without it: nothing booked), then entered, so each
promise sees the orders entered before it; the planned orders pegged to an order are firmed in one action, as
`POST /planning/planned-orders/firm` does."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path

import yaml
from sqlalchemy.orm import Session

from app.demo_orders import DEMO_ORDERS
from inventory.api.purchasing import SupplierIn
from inventory.api.sales import CustomerIn, SalesOrderIn
from inventory.services import purchasing, sales
from kernel.db.models import session_on
from planning.api.plans import ItemPlanningIn
from planning.rules.lot_sizing import LotSizing
from planning.services import plans

ACTOR = "demo planner"


def seed(database_url: str, now: datetime, path: Path = DEMO_ORDERS) -> dict:
    """Suppliers, customers, planning parameters, forecasts; each sales order promised, then entered; a plan
    kept as a run, and the planned orders pegged to the orders in `firm` firmed. Returns what the reckoning
    compares against: the promises, what was firmed, and each item's projection once firmed, before production."""
    data = yaml.safe_load(path.read_text())["planning"]
    today, buckets = now.astimezone(UTC).date(), int(data["buckets"])
    with session_on(database_url, expire_on_commit=False) as session:
        _master_data(session, data, today)
        promises = []
        for entry in data["sales_orders"]:
            order = SalesOrderIn.model_validate({**{k: v for k, v in entry.items() if k != "due_in_days"},
                                                 "due": datetime.combine(today + timedelta(days=entry["due_in_days"]), time(12), UTC),
                                                 "actor": ACTOR})
            answers = plans.promise_sales_lines(session, order.so_id, order.due,
                                                [(line.line, line.item_id, line.quantity) for line in order.lines], now)
            promises += [{"so_id": order.so_id, "line": line.line, "item_id": line.item_id, "quantity": str(line.quantity),
                          "due": order.due.date().isoformat(),
                          "promised": None if answers[line.line]["date"] is None else answers[line.line]["date"].isoformat(),
                          "source": answers[line.line]["source"]}
                         for line in order.lines]
            sales.create_sales_order(session, order.so_id, order.customer_id, order.due,
                                     [sales.SalesLine(line.line, line.item_id, line.quantity, line.unit_price,
                                                      answers[line.line]["date"], answers[line.line]["source"])
                                      for line in order.lines],
                                     order.tolerance, ACTOR)
        live = plans.live_plan(session, today, "day", buckets, now)
        run = plans.store_run(session, live)
        firmed = _firm_pegged(session, live, data, now)
        before = projection(plans.live_plan(session, today, "day", buckets, now))
    return {"run_id": run.run_id, "buckets": buckets, "promises": promises, "firm": data["firm"], "firmed": firmed,
            "before": before}


def _master_data(session: Session, data: dict, today: date) -> None:
    for supplier in data["suppliers"]:
        fields = SupplierIn.model_validate({k: v for k, v in supplier.items() if k != "items"})
        purchasing.create_supplier(session, fields.supplier_id, fields.name, fields.email)
    for customer in data["customers"]:
        fields = CustomerIn.model_validate(customer)
        sales.create_customer(session, fields.customer_id, fields.name, fields.email)
    for item in data["items"]:
        fields = ItemPlanningIn.model_validate({k: v for k, v in item.items() if k != "item_id"})
        plans.set_item_planning(session, item["item_id"], lead_time_days=fields.lead_time_days,
                                safety_stock=fields.safety_stock, lot_sizing=LotSizing(**fields.lot_sizing.model_dump()))
    for forecast in data["forecasts"]:
        plans.add_forecast(session, forecast["item_id"], today + timedelta(days=forecast["in_days"]), Decimal(forecast["quantity"]))


def _firm_pegged(session: Session, live: plans.LivePlan, data: dict, now: datetime) -> list[dict]:
    """Every planned order pegged, through every level, to the lines of the orders in `firm`, firmed in one action
    per order: make orders as released work orders, buy orders as draft purchase orders from the item's supplier."""
    supplier_of = {item: supplier["supplier_id"] for supplier in data["suppliers"] for item in supplier["items"]}
    planned = {order.id: order for order in live.plan.planned_orders}
    firmed: list[dict] = []
    for so_id in data["firm"]:
        pegged = plans.pegged_to_sales_order(session, live, so_id)
        documents = [f"{'WO' if planned[planned_id].kind == 'make' else 'PO'}-{3001 + len(firmed) + number}"
                     for number, planned_id in enumerate(pegged)]
        firmed += [{"item_id": planned[entry["planned_order_id"]].item, "kind": planned[entry["planned_order_id"]].kind,
                    "quantity": str(planned[entry["planned_order_id"]].quantity), **entry}
                   for entry in plans.firm_many(session, live, pegged, documents, ACTOR, supplier_of, None, now)]
    return firmed


def projection(live: plans.LivePlan) -> dict[str, dict[str, str]]:
    """Per item: on hand, projected on hand at the end of the first bucket and of the horizon."""
    return {item: {"on_hand": str(record.on_hand), "projected_first": str(record.buckets[0].projected_on_hand),
                   "projected_last": str(record.buckets[-1].projected_on_hand)}
            for item, record in sorted(live.plan.records.items())}


def reckoning(database_url: str, seeded: dict, now: datetime) -> dict:
    """The plan again, after production: each item's projection before and after, beside the promises."""
    with session_on(database_url) as session:
        live = plans.live_plan(session, now.astimezone(UTC).date(), "day", seeded["buckets"], now)
    after = projection(live)
    return {"run_id": seeded["run_id"], "promises": seeded["promises"], "firm": seeded["firm"], "firmed": seeded["firmed"],
            "items": {item: {"before": before, "after": after.get(item)} for item, before in seeded["before"].items()}}

