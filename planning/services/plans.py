"""The live plan: every input loaded from the stored tables in one unit of work, netted by planning.rules.

Read from the other domains (planning sits above mes and inventory in the layers, so through their models):
- items, BOM lines, routings and work centres (inventory); machines (kernel) for each centre's time;
- on hand: the ledger's balance over every location but the transit ones; what sits in `transit:<id>` is a
  scheduled receipt of transfer <id>, expected today (a transfer carries no arrival date);
- open purchase-order lines (draft, submitted, approved or partially received: a draft is a firmed planned
  order on its way to approval): ordered − received, by the order's due date (today when it has none);
- open sales-order lines (open or partially shipped): ordered − shipped, by the order's due date (UTC day);
- released, running and paused work orders: quantity − good counted so far, at the projected finish of a
  running order (from its live rate) or its due date (`work_order_receipt_date`); their component needs are
  the BOM snapshot's quantity per unit × that remaining quantity, needed now by a running or paused order and at
  its start (receipt − lead time, `work_order_components_date`) by one not started yet. A work order still `planned`
  (entered by hand, not yet released) is expected at its due date, its components exploded from the BOM
  in force today (it has no snapshot yet);
- the shift calendar: a centre's available time = its machines × the calendar's planned production time
  (24 h a day without shifts). Its average per day over the horizon turns a made item's ideal cycle time
  into days of lead time.

Planning's own tables (migration 0030): `item_planning` (lead time, safety stock, lot sizing) and
`planning_forecasts`. An item without a planning row is planned lot-for-lot with the item's safety stock and
no lead time (so it is refused, naming it, as soon as it needs an order).
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.models import BomLine as BomRow
from inventory.models import Item, PurchaseOrder, SalesOrder
from inventory.models import Routing as RoutingRow
from inventory.rules.bom import BomLine, explode
from inventory.rules.operations import TRANSIT_PREFIX
from inventory.services.purchasing import PurchaseLine, add_draft_purchase_order, add_submission
from kernel.db.models import Machine
from kernel.db.unit_of_work import get
from kernel.rules.refusals import Conflict, Invalid, NotFound, Refused, as_conflict, as_invalid
from mes.models import WorkOrder
from mes.rules.shifts import planned_windows
from mes.services.downtime import load_calendar
from mes.services.workorders import add_released_work_order, live_progress
from planning.models import ItemPlanning, PlanningForecast
from planning.rules.atp import AtpBucket, plan_atp
from planning.rules.pegging import orders_of, pegged_down, pegged_up
from planning.rules.ctp import CtpContext, Promise, Routing, capable_to_promise, rough_cut_free_time
from planning.rules.horizon import MAX_BUCKETS, BucketSize, Horizon
from planning.rules.lead_times import LeadTime, ManufactureLeadTime, purchase_lead_time
from planning.rules.lot_sizing import LotSizing
from planning.rules.mrp import (BucketRecord, Demand, Forecast, ItemPolicy, ItemRecord, Peg, Plan, PlanException, PlanInput,
                                PlannedOrder, Supply, plan, work_order_components_date,
                                work_order_receipt_date)

OPEN_PURCHASE = ("draft", "submitted", "approved", "partially_received")
OPEN_SALES = ("open", "partially_shipped")
OPEN_WORK = ("planned", "released", "running", "paused")
PROMISE_REACH_DAYS = 28  # how far past its due day an entered order's promise may land


@dataclass(frozen=True, slots=True)
class LivePlan:
    plan: Plan
    ctp: CtpContext


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the routers read it, live or stored: `order_of` links component demands to their orders."""

    run_id: str
    plan: Plan
    order_of: dict[str, str]


def live_view(live: LivePlan) -> PlanView:
    return PlanView("live", live.plan, orders_of(live.plan.demands))


# --- planning parameters and forecasts ---------------------------------------------------------


def set_item_planning(session: Session, item_id: str, *, lead_time_days: int | None, safety_stock: Decimal | None,
                      lot_sizing: LotSizing) -> ItemPlanning:
    get(session, Item, item_id, "item")
    row = session.get(ItemPlanning, item_id) or ItemPlanning(item_id=item_id)
    row.lead_time_days, row.safety_stock = lead_time_days, safety_stock
    row.lot_rule, row.lot_quantity, row.lot_periods = lot_sizing.rule, lot_sizing.quantity, lot_sizing.periods
    row.lot_minimum, row.lot_multiple, row.lot_maximum = lot_sizing.minimum, lot_sizing.multiple, lot_sizing.maximum
    row.updated_at = datetime.now(UTC)
    session.add(row)
    session.commit()
    return row


def add_forecast(session: Session, item_id: str, bucket_start: date, quantity: Decimal) -> PlanningForecast:
    get(session, Item, item_id, "item")
    with as_invalid():
        Forecast("new", item_id, bucket_start, quantity)
    row = PlanningForecast(item_id=item_id, bucket_start=bucket_start, quantity=quantity)
    session.add(row)
    session.commit()
    return row


def lot_sizing_of(row: ItemPlanning) -> LotSizing:
    return LotSizing(row.lot_rule, row.lot_quantity, row.lot_periods, row.lot_minimum, row.lot_multiple,  # type: ignore[arg-type]
                     row.lot_maximum)


# --- the live plan ----------------------------------------------------------------------------


def live_plan(session: Session, start: date, bucket: BucketSize, buckets: int, now: datetime) -> LivePlan:
    """The plan from what is stored now; nothing is written."""
    with as_invalid():
        horizon = Horizon(start, bucket, buckets)
    today = now.astimezone(UTC).date()
    boms = _boms(session)
    routings = {row.item_id: row for row in session.scalars(select(RoutingRow))}
    available = _available_seconds(session, horizon)
    policies = _policies(session, boms, routings, available, horizon)
    demands, receipts, loads = _orders(session, today, now, routings, boms, policies)
    forecasts = [Forecast(f"forecast:{row.id}", row.item_id, row.bucket_start, row.quantity)
                 for row in session.scalars(select(PlanningForecast))]
    with as_conflict():
        result = regenerate(PlanInput(horizon, today, boms, _on_hand(session), policies, demands, forecasts, receipts))
    for order in result.planned_orders:
        routing = routings.get(order.item)
        if routing is not None:
            loads.append((routing.work_centre_id, max(order.release, today), order.quantity * routing.ideal_cycle_s))
    free = rough_cut_free_time(horizon, available, loads)
    ctp = CtpContext(result, today, boms, policies,
                     {item: Routing(row.work_centre_id, row.ideal_cycle_s) for item, row in routings.items()}, free)
    return LivePlan(result, ctp)


def regenerate(given: PlanInput) -> Plan:
    """`plan` with the cycle collector paused: a plan allocates hundreds of thousands of small objects, none of
    them in a reference cycle, and the collector would rescan the growing heap again and again (nearly half the
    time of a 10,000-item plan). It runs once, afterwards, as it would have anyway."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return plan(given)
    finally:
        if was_enabled:
            gc.enable()


def atp(live: LivePlan, item_id: str) -> list[AtpBucket]:
    _require_planned(live, item_id)
    return plan_atp(live.plan, item_id)


def _require_planned(live: LivePlan, item_id: str) -> None:
    if item_id not in live.plan.records:
        raise NotFound(f"item {item_id!r} does not exist")


def promise(live: LivePlan, lines: list[tuple[str, Decimal, date]]) -> list[Promise]:
    """Each inquiry line (item, quantity, wanted) promised on its own: nothing is booked."""
    for item, _, _ in lines:
        _require_planned(live, item)
    with as_conflict():
        return [capable_to_promise(live.ctp, item, quantity, wanted) for item, quantity, wanted in lines]


def sales_demand_id(so_id: str, line: str) -> str:
    """A sales-order line's demand in the plan, as the pegging routes take it."""
    return f"{so_id}/{line}"


def promise_sales_lines(session: Session, so_id: str, due: datetime, lines: Sequence[tuple[str, str, Decimal]],
                        now: datetime) -> dict[str, dict]:
    """Per line (line id, item, quantity) of a sales order being entered: its promise (ATP first, CTP beyond) from the
    plan as it stands without the order, in day buckets from today to `PROMISE_REACH_DAYS` past the due day, and
    the line's demand id. Nothing is written. A plan that cannot be made (a BOM cycle, a missing lead time) or an
    item it does not know promises nothing, with that reason: the order is entered all the same."""
    today = now.astimezone(UTC).date()
    wanted = due.astimezone(UTC).date()
    buckets = min(MAX_BUCKETS, max((wanted - today).days, 0) + PROMISE_REACH_DAYS)
    try:
        answers = promise(live_plan(session, today, "day", buckets, now),
                          [(item, quantity, wanted) for _, item, quantity in lines])
    except Refused as refusal:
        answers = [Promise(item, quantity, None, "none", (str(refusal),)) for _, item, quantity in lines]
    return {line: {"demand_id": sales_demand_id(so_id, line), "date": answer.date, "source": answer.source,
                   "reasons": list(answer.reasons)}
            for (line, _, _), answer in zip(lines, answers, strict=True)}


def firm(session: Session, live: LivePlan, planned_order_id: str, document_id: str, actor: str,
         supplier_id: str | None, now: datetime, submit: bool = False) -> dict:
    """A planned order made firm in one commit (`firm_many` of one)."""
    (firmed,) = firm_many(session, live, [planned_order_id], [document_id], actor, {}, supplier_id, now, submit)
    return firmed


def firm_many(session: Session, live: LivePlan, planned_order_ids: Sequence[str], document_ids: Sequence[str],
              actor: str, suppliers: Mapping[str, str], supplier_id: str | None, now: datetime,
              submit: bool = False) -> list[dict]:
    """Planned orders made firm in one commit, each under its document id, or none of them. A make order becomes a
    work order released at once (due on the planned receipt, its BOM snapshot taken, as releasing it by hand
    does); a buy order a draft purchase order from the item's supplier in `suppliers`, else `supplier_id`, at the
    item's standard cost, which goes through the approval thresholds like any other: when submitted, in the same
    commit with `submit` (approved at once when its value needs no approval), or later by hand."""
    by_id = {order.id: order for order in live.plan.planned_orders}
    missing = [planned for planned in planned_order_ids if planned not in by_id]
    if missing:
        raise NotFound(f"planned order {', '.join(map(repr, missing))} is not in the plan")
    if len(set(planned_order_ids)) != len(planned_order_ids):
        raise Invalid("a planned order is named twice")
    firmed = [_add_firmed(session, by_id[planned], document_id, actor, suppliers.get(by_id[planned].item, supplier_id), now,
                          submit)
              for planned, document_id in zip(planned_order_ids, document_ids, strict=True)]
    session.commit()
    return firmed


def pegged_to_sales_order(session: Session, live: LivePlan, so_id: str) -> list[str]:
    """The planned orders below the sales order's lines, on every level, top level first."""
    sales_order = get(session, SalesOrder, so_id, "sales order")
    planned = {order.id for order in live.plan.planned_orders}
    order_of = orders_of(live.plan.demands)
    found = {step.peg.supply: None for line in sales_order.lines
             for step in pegged_down(sales_demand_id(so_id, line.line), live.plan.pegs, order_of)
             if step.peg.supply in planned}
    return list(found)


def _add_firmed(session: Session, order: PlannedOrder, document_id: str, actor: str, supplier_id: str | None,
                now: datetime, submit: bool) -> dict:
    if order.kind == "make":
        if order.quantity != order.quantity.to_integral_value():
            raise Conflict(f"{order.id} plans {order.quantity}: a work order makes whole units (give the item "
                           "a lot multiple of 1)")
        add_released_work_order(session, document_id, order.item, int(order.quantity), due=order.receipt, actor=actor,
                                now=now)
        return {"planned_order_id": order.id, "work_order_id": document_id, "purchase_order_id": None}
    if supplier_id is None:
        raise Invalid(f"{order.id} is bought: name the supplier (supplier_id)")
    item = get(session, Item, order.item, "item")
    add_draft_purchase_order(session, document_id, supplier_id, actor,
                             [PurchaseLine("1", order.item, order.quantity, item.standard_cost or Decimal(0))],
                             due=order.receipt)
    if submit:
        add_submission(session, document_id, actor)
    return {"planned_order_id": order.id, "work_order_id": None, "purchase_order_id": document_id}


def shortages(live: LivePlan, today: date, days: int) -> list[dict]:
    """Per item, the demands due within `days` from today that their supply reaches late, each with the orders it
    hits (the work or planned order whose component need it is, and the sales-order lines that order serves,
    through the pegging), the buckets of that window projected below safety stock, and the item's planned orders
    to release within it (what to buy or make now)."""
    until = today + timedelta(days=days)
    plan = live.plan
    order_of = orders_of(plan.demands)
    sales_lines = {demand.id for demand in plan.demands if demand.kind == "sales_order"}
    found: dict[str, dict] = {}
    for exception in plan.exceptions:
        if exception.kind not in ("demand_late", "below_safety_stock") or exception.on >= until:
            continue
        entry = found.setdefault(exception.item, {"item_id": exception.item, "late_demands": [], "below_safety_stock": [],
                                                  "orders_hit": [], "planned_orders": []})
        if exception.kind == "demand_late":
            order = order_of.get(exception.reference)
            served = ({exception.reference} if exception.reference in sales_lines else
                      {step.peg.demand for step in pegged_up(order, plan.pegs, order_of) if step.peg.demand in sales_lines}
                      if order is not None else set())
            entry["late_demands"].append({"demand_id": exception.reference, "due": exception.on,
                                          "covered_on": exception.to, "quantity": exception.quantity,
                                          "order_id": order, "sales_order_lines": sorted(served)})
            entry["orders_hit"] = sorted({*entry["orders_hit"], *([order] if order else []), *served})
        else:
            entry["below_safety_stock"].append({"start": exception.on, "short_of_safety_stock": exception.quantity})
    for order in plan.planned_orders:
        if order.item in found and order.release < until:
            found[order.item]["planned_orders"].append(
                {"id": order.id, "kind": order.kind, "quantity": order.quantity, "release": order.release,
                 "receipt": order.receipt})
    return [found[item] for item in sorted(found)]


# --- stored runs --------------------------------------------------------------------------------


def store_run(session: Session, live: LivePlan) -> PlanView:
    """The plan kept as it is now, in one commit."""
    result, horizon = live.plan, live.plan.horizon
    run_id = session.execute(text(
        "INSERT INTO planning_runs (today, start, bucket, buckets) VALUES (:today, :start, :bucket, :buckets) RETURNING run_id"),
        {"today": live.ctp.today, "start": horizon.start, "bucket": horizon.bucket, "buckets": horizon.count}).scalar_one()
    records = [{"run_id": run_id, "item_id": record.item, "low_level_code": record.low_level_code, "on_hand": record.on_hand,
                "safety_stock": record.safety_stock, **bucket._asdict()}
               for record in result.records.values() for bucket in record.buckets]
    _insert_many(session, "planning_records", records, rename={"start": "bucket_start"})
    _insert_many(session, "planning_planned_orders",
                 [{"run_id": run_id, **order._asdict()} for order in result.planned_orders],
                 rename={"id": "planned_order_id", "item": "item_id"})
    _insert_many(session, "planning_exceptions",
                 [{"run_id": run_id, "kind": e.kind, "item_id": e.item, "reference": e.reference, "on_date": e.on,
                   "to_date": e.to, "quantity": e.quantity, "message": e.message} for e in result.exceptions])
    order_of = orders_of(result.demands)
    _insert_many(session, "planning_pegs",
                 [{"run_id": run_id, "supply": peg.supply, "demand": peg.demand, "demand_of_order": order_of.get(peg.demand),
                   "item_id": peg.item, "quantity": peg.quantity} for peg in result.pegs])
    session.commit()
    return PlanView(str(run_id), result, order_of)


def stored_view(session: Session, run_id: str) -> PlanView:
    run = session.execute(text("SELECT start, bucket, buckets FROM planning_runs WHERE run_id = :run"),
                          {"run": int(run_id)}).one_or_none() if run_id.isdigit() else None
    if run is None:
        raise NotFound(f"plan run {run_id!r} does not exist (the live plan is 'live')")
    horizon = Horizon(run.start, run.bucket, run.buckets)
    query = {"run": int(run_id)}
    buckets: dict[str, list[BucketRecord]] = defaultdict(list)
    heads: dict[str, tuple[int, Decimal, Decimal]] = {}
    for row in session.execute(text("SELECT * FROM planning_records WHERE run_id = :run ORDER BY item_id, bucket_start"), query):
        heads[row.item_id] = (row.low_level_code, row.on_hand, row.safety_stock)
        buckets[row.item_id].append(BucketRecord(row.bucket_start, row.gross_requirements, row.scheduled_receipts,
                                                 row.projected_on_hand, row.net_requirements, row.planned_receipts,
                                                 row.planned_releases))
    records = {item: ItemRecord(item, *heads[item], tuple(rows)) for item, rows in buckets.items()}
    orders = [PlannedOrder(row.planned_order_id, row.item_id, row.kind, row.quantity, row.release, row.receipt,
                           row.release_past_due, row.expected) for row in session.execute(text(
                               "SELECT * FROM planning_planned_orders WHERE run_id = :run ORDER BY release, planned_order_id"), query)]
    exceptions = [PlanException(row.kind, row.item_id, row.reference, row.on_date, row.to_date, row.quantity, row.message)
                  for row in session.execute(text("SELECT * FROM planning_exceptions WHERE run_id = :run ORDER BY id"), query)]
    pegs, order_of = [], {}
    for row in session.execute(text("SELECT * FROM planning_pegs WHERE run_id = :run ORDER BY id"), query):
        pegs.append(Peg(row.supply, row.demand, row.item_id, row.quantity))
        if row.demand_of_order is not None:
            order_of[row.demand] = row.demand_of_order
    return PlanView(run_id, Plan(horizon, records, orders, [], [], pegs, exceptions), order_of)


def _insert_many(session: Session, table: str, rows: list[dict], rename: dict[str, str] | None = None) -> None:
    if not rows:
        return
    rename = rename or {}
    columns = {name: rename.get(name, name) for name in rows[0]}
    session.execute(text(f"INSERT INTO {table} ({', '.join(columns.values())}) "
                         f"VALUES ({', '.join(':' + name for name in columns)})"), rows)


# --- loading ----------------------------------------------------------------------------------


def _boms(session: Session) -> dict[str, list[BomLine]]:
    boms: dict[str, list[BomLine]] = defaultdict(list)
    for row in session.scalars(select(BomRow).order_by(BomRow.parent_item, BomRow.id)):
        boms[row.parent_item].append(BomLine(row.parent_item, row.component_item, row.quantity_per, row.scrap_factor,
                                             row.effective_from, row.effective_to, row.phantom))
    return dict(boms)


def _on_hand(session: Session) -> dict[str, Decimal]:
    rows = session.execute(text(
        "SELECT item_id, sum(quantity) FROM stock_on_hand WHERE location_id NOT LIKE :transit GROUP BY item_id"),
        {"transit": f"{TRANSIT_PREFIX}%"})
    return {item: quantity for item, quantity in rows}


def _available_seconds(session: Session, horizon: Horizon) -> dict[str, list[Decimal]]:
    """Per work centre and bucket: its machines × the calendar's planned production time."""
    machines: dict[str, int] = defaultdict(int)
    for centre in session.scalars(select(Machine.work_centre_id).where(Machine.work_centre_id.is_not(None))):
        machines[centre] += 1
    if not machines:
        return {}
    calendar = load_calendar(session)
    per_bucket = []
    for start in horizon.starts():
        begin = datetime.combine(start, time(0), calendar.timezone)
        end = begin + timedelta(days=horizon.days)
        seconds = sum((window.duration for _, windows in planned_windows(calendar, begin, end) for window in windows),
                      timedelta(0))
        per_bucket.append(Decimal(int(seconds.total_seconds())))
    return {centre: [seconds * count for seconds in per_bucket] for centre, count in machines.items()}


def _policies(session: Session, boms: dict[str, list[BomLine]], routings: dict[str, RoutingRow],
              available: dict[str, list[Decimal]], horizon: Horizon) -> dict[str, ItemPolicy]:
    planning = {row.item_id: row for row in session.scalars(select(ItemPlanning))}
    policies: dict[str, ItemPolicy] = {}
    with as_conflict():
        for item in session.scalars(select(Item)):
            row = planning.get(item.item_id)
            days = row.lead_time_days if row is not None else None
            lead: LeadTime | None
            if item.item_id in boms or item.kind == "make":
                lead = None if days is None else ManufactureLeadTime(
                    days, *_run_rate(routings.get(item.item_id), available, horizon))
            else:
                lead = purchase_lead_time(days, None)
            safety = row.safety_stock if row is not None and row.safety_stock is not None else item.safety_stock
            sizing = lot_sizing_of(row) if row is not None else LotSizing()
            policies[item.item_id] = ItemPolicy(safety or Decimal(0), sizing, lead)
    return policies


def _run_rate(routing: RoutingRow | None, available: dict[str, list[Decimal]], horizon: Horizon) -> tuple[Decimal, Decimal]:
    """(ideal cycle time, available seconds per day) of the item's work centre: its average over the horizon."""
    if routing is None:
        return Decimal(0), Decimal(86400)
    total = sum(available.get(routing.work_centre_id, []), Decimal(0))
    per_day = Decimal(int(total // (horizon.days * horizon.count)))
    return routing.ideal_cycle_s, per_day if per_day > 0 else Decimal(86400)


def _orders(session: Session, today: date, now: datetime, routings: dict[str, RoutingRow], boms: dict[str, list[BomLine]],
            policies: dict[str, ItemPolicy]) -> tuple[list[Demand], list[Supply], list[tuple[str, date, Decimal]]]:
    """Open sales-order lines and work orders' component needs; open purchase orders, work orders and transfers;
    the load of released work orders on their centres (today, rough-cut)."""
    demands: list[Demand] = []
    receipts: list[Supply] = []
    loads: list[tuple[str, date, Decimal]] = []
    for order in session.scalars(select(SalesOrder).where(SalesOrder.status.in_(OPEN_SALES))):
        for line in order.lines:
            outstanding = line.quantity - line.shipped
            if outstanding > 0:
                demands.append(Demand(sales_demand_id(order.so_id, line.line), line.item_id, order.due.astimezone(UTC).date(),
                                      outstanding, "sales_order"))
    for purchase in session.scalars(select(PurchaseOrder).where(PurchaseOrder.status.in_(OPEN_PURCHASE))):
        for po_line in purchase.lines:
            remaining = po_line.quantity - po_line.received
            if remaining > 0:
                receipts.append(Supply(f"{purchase.po_id}/{po_line.line}", po_line.item_id, purchase.due or today,
                                       remaining, "purchase_order"))
    for transfer_id, item_id, quantity in session.execute(text(
            "SELECT location_id, item_id, quantity FROM stock_on_hand WHERE location_id LIKE :transit AND quantity > 0"),
            {"transit": f"{TRANSIT_PREFIX}%"}):
        receipts.append(Supply(f"transfer:{transfer_id.removeprefix(TRANSIT_PREFIX)}/{item_id}", item_id, today,
                               quantity, "transfer"))
    for work in session.scalars(select(WorkOrder).where(WorkOrder.status.in_(OPEN_WORK))):
        progress = live_progress(session, work.work_order_id, now)
        remaining = Decimal(max(work.quantity - progress.good, 0))
        if remaining == 0:
            continue
        finish = progress.projected_finish.astimezone(UTC).date() if progress.projected_finish is not None else None
        receipt = work_order_receipt_date(work.status, work.due or today, finish, today)
        receipts.append(Supply(work.work_order_id, work.item_id, receipt, remaining, "work_order"))
        with as_conflict():
            per_unit = ({component.component_item: component.quantity_per_unit for component in work.components}
                        if work.status != "planned" else explode(work.item_id, boms, today))
            needed = work_order_components_date(work.status, receipt, remaining, policies[work.item_id].lead_time,
                                                work.item_id, today)
        for component, quantity_per_unit in per_unit.items():
            demands.append(Demand(f"{work.work_order_id}/{component}", component, needed, quantity_per_unit * remaining,
                                  "work_order", work.work_order_id))
        routing = routings.get(work.item_id)
        if routing is not None:
            loads.append((routing.work_centre_id, today, remaining * routing.ideal_cycle_s))
    return demands, receipts, loads
