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

`load_input` loads all of it, or (net change, `live.py`) only what some items' plans read; a plan's rows, kept
as a run or as the maintained live plan, are written and read in `plan_rows.py`.
"""

from __future__ import annotations

import gc
from collections import defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal

from sqlalchemy import Select, select, text
from sqlalchemy.orm import InstrumentedAttribute, Session, selectinload

from inventory.models import BomLine as BomRow
from inventory.models import Item, PurchaseOrder, PurchaseOrderLine, SalesOrder, SalesOrderLine
from inventory.models import Routing as RoutingRow
from inventory.rules.bom import BomLine, explode
from inventory.rules.operations import TRANSIT_PREFIX
from inventory.services.purchasing import PurchaseLine, add_draft_purchase_order, add_submission
from kernel.db.models import Machine
from kernel.db.unit_of_work import get
from kernel.rules.refusals import Conflict, Invalid, NotFound, Refused, as_conflict, as_invalid
from mes.models import WorkOrder, WorkOrderComponent
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
from planning.rules.mrp import (Demand, Forecast, ItemPlan, ItemPolicy, Plan, PlanInput, PlannedOrder, Supply, assemble, plan_parts,
                                work_order_components_date, work_order_receipt_date)
from planning.services.plan_rows import has_name, read_exceptions, read_pegs, read_planned_orders, read_records, write_parts

FORECAST = "forecast:"  # a forecast's demand id: FORECAST + its row id
OPEN_PURCHASE = ("draft", "submitted", "approved", "partially_received")
OPEN_SALES = ("open", "partially_shipped")
OPEN_WORK = ("planned", "released", "running", "paused")
PROMISE_REACH_DAYS = 28  # how far past its due day an entered order's promise may land


@dataclass(frozen=True, slots=True)
class LivePlan:
    plan: Plan
    ctp: CtpContext
    parts: list[ItemPlan]  # the plan per item, as a run stores it


@dataclass(frozen=True, slots=True)
class PlanView:
    """A plan as the routers read it, live or stored: `order_of` links component demands to their orders."""

    run_id: str
    plan: Plan
    order_of: dict[str, str]
    stored: int | None = None  # read from a run's rows (its demands and supplies are not read: `names`)

    def names(self, session: Session, name: str) -> bool:
        """Whether `name` is a demand or a supply of the plan."""
        if self.stored is not None:
            return has_name(session, self.stored, name)
        return name in {d.id for d in self.plan.demands} | {s.id for s in self.plan.supplies} | {
            part for peg in self.plan.pegs for part in (peg.supply, peg.demand)}


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
    loaded = load_input(session, horizon, now)
    with as_conflict():
        parts = regenerate_parts(loaded.given)
    result = assemble(horizon, parts)
    loads = list(loaded.loads)
    today = loaded.given.today
    for order in result.planned_orders:
        routing = loaded.routings.get(order.item)
        if routing is not None:
            loads.append((routing.work_centre_id, max(order.release, today), order.quantity * routing.ideal_cycle_s))
    free = rough_cut_free_time(horizon, loaded.available, loads)
    ctp = CtpContext(result, today, loaded.given.boms, loaded.given.policies,
                     {item: Routing(row.work_centre_id, row.ideal_cycle_s) for item, row in loaded.routings.items()}, free)
    return LivePlan(result, ctp, parts)


@dataclass(frozen=True, slots=True)
class LoadedInput:
    given: PlanInput
    boms: dict[str, list[BomLine]]
    routings: dict[str, RoutingRow]
    available: dict[str, list[Decimal]]
    loads: list[tuple[str, date, Decimal]]  # released work orders' load on their centres (rough-cut)


def load_input(session: Session, horizon: Horizon, now: datetime, items: Collection[str] | None = None,
               boms: dict[str, list[BomLine]] | None = None, *, available: dict[str, list[Decimal]] | None = None,
               policies_for: Collection[str] | None = None, graph: BomGraph | None = None) -> LoadedInput:
    """The plan's input as stored now: every item's, or (net change) the on hand, orders and forecasts of
    `items` alone and the policies of `policies_for` (default: `items`), with every BOM, each work centre's
    available time and the BOMs' graph (derived unless given)."""
    today = now.astimezone(UTC).date()
    boms = load_boms(session) if boms is None else boms
    policies_for = items if policies_for is None else policies_for
    routings = {row.item_id: row for row in session.scalars(_only(select(RoutingRow), RoutingRow.item_id, policies_for))}
    available = available_seconds(session, horizon) if available is None else available
    policies = _policies(session, boms, routings, available, horizon, policies_for)
    lead_time_of = _lead_times(session, boms, available, horizon, policies)
    demands, receipts, loads = _orders(session, today, now, routings, boms, lead_time_of, items, graph)
    forecasts = [Forecast(f"{FORECAST}{row.id}", row.item_id, row.bucket_start, row.quantity)
                 for row in session.scalars(_only(select(PlanningForecast), PlanningForecast.item_id, items))]
    given = PlanInput(horizon, today, boms, _on_hand(session, items), policies, demands, forecasts, receipts)
    return LoadedInput(given, boms, routings, available, loads)


def _lead_times(session: Session, boms: dict[str, list[BomLine]], available: dict[str, list[Decimal]], horizon: Horizon,
                policies: Mapping[str, ItemPolicy]) -> Callable[[str], LeadTime | None]:
    """Each item's lead time: from the policies loaded, else (net change: the item of a work order that needs an item
    replanned, outside those replanned) loaded for that item alone, once."""
    more: dict[str, ItemPolicy] = {}

    def lead_time_of(item: str) -> LeadTime | None:
        if item not in policies and item not in more:
            routing = {row.item_id: row for row in session.scalars(select(RoutingRow).where(RoutingRow.item_id == item))}
            more.update(_policies(session, boms, routing, available, horizon, [item]))
        policy = policies.get(item) or more.get(item)
        return None if policy is None else policy.lead_time
    return lead_time_of


def _only(query: Select, column: InstrumentedAttribute, items: Collection[str] | None) -> Select:
    return query if items is None else query.where(column.in_(list(items)))


def regenerate(given: PlanInput) -> Plan:
    """A full regeneration: `plan` with the cycle collector paused (`regenerate_parts`)."""
    return assemble(given.horizon, regenerate_parts(given))


def regenerate_parts(given: PlanInput) -> list[ItemPlan]:
    """`plan_parts` with the cycle collector paused: a plan allocates hundreds of thousands of small objects, none
    of them in a reference cycle, and the collector would rescan the growing heap again and again (nearly half the
    time of a 10,000-item plan). It runs once, afterwards, as it would have anyway."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        return plan_parts(given)
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


def shortages(view: PlanView, today: date, days: int) -> list[dict]:
    """Per item, the demands due within `days` from today that their supply reaches late, each with the orders it
    hits (the work or planned order whose component need it is, and the sales-order lines that order serves,
    through the pegging), the buckets of that window projected below safety stock, and the item's planned orders
    to release within it (what to buy or make now)."""
    until = today + timedelta(days=days)
    plan, order_of = view.plan, view.order_of
    # the demands at the top of the pegs (a stored plan keeps its pegs, not its demands): sales-order lines, forecasts
    sales_lines = {peg.demand for peg in plan.pegs if peg.demand not in order_of and not peg.demand.startswith(FORECAST)}
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
    horizon = live.plan.horizon
    run_id = session.execute(text(
        "INSERT INTO planning_runs (today, start, bucket, buckets) VALUES (:today, :start, :bucket, :buckets) RETURNING run_id"),
        {"today": live.ctp.today, "start": horizon.start, "bucket": horizon.bucket, "buckets": horizon.count}).scalar_one()
    write_parts(session, run_id, live.parts)
    session.commit()
    return PlanView(str(run_id), live.plan, orders_of(live.plan.demands))


def stored_view(session: Session, run_id: str) -> PlanView:
    """A kept run, as it was (the maintained live plan's own run is read as `live`)."""
    run = session.execute(text("SELECT start, bucket, buckets FROM planning_runs WHERE run_id = :run AND NOT live"),
                          {"run": int(run_id)}).one_or_none() if run_id.isdigit() else None
    if run is None:
        raise NotFound(f"plan run {run_id!r} does not exist (the live plan is 'live')")
    return run_view(session, int(run_id), run_id, Horizon(run.start, run.bucket, run.buckets))


def run_view(session: Session, run_id: int, name: str, horizon: Horizon) -> PlanView:
    """Every row of a run, as a plan (its demands and supplies are read only where a reader needs them)."""
    pegs, order_of = read_pegs(session, run_id)
    return PlanView(name, Plan(horizon, read_records(session, run_id), read_planned_orders(session, run_id), [], [], pegs,
                               read_exceptions(session, run_id)), order_of, run_id)


# --- loading ----------------------------------------------------------------------------------


def load_boms(session: Session) -> dict[str, list[BomLine]]:
    boms: dict[str, list[BomLine]] = defaultdict(list)
    for row in session.scalars(select(BomRow).order_by(BomRow.parent_item, BomRow.id)):
        boms[row.parent_item].append(BomLine(row.parent_item, row.component_item, row.quantity_per, row.scrap_factor,
                                             row.effective_from, row.effective_to, row.phantom))
    return dict(boms)


def _on_hand(session: Session, items: Collection[str] | None = None) -> dict[str, Decimal]:
    only = "" if items is None else "AND item_id = ANY(:items)"
    rows = session.execute(text(
        f"SELECT item_id, sum(quantity) FROM stock_on_hand WHERE location_id NOT LIKE :transit {only} GROUP BY item_id"),
        {"transit": f"{TRANSIT_PREFIX}%", "items": list(items or ())})
    return {item: quantity for item, quantity in rows}


def available_seconds(session: Session, horizon: Horizon) -> dict[str, list[Decimal]]:
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
              available: dict[str, list[Decimal]], horizon: Horizon, items: Collection[str] | None = None
              ) -> dict[str, ItemPolicy]:
    planning = {row.item_id: row for row in session.scalars(_only(select(ItemPlanning), ItemPlanning.item_id, items))}
    policies: dict[str, ItemPolicy] = {}
    with as_conflict():
        for item in session.scalars(_only(select(Item), Item.item_id, items)):
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
            lead_time_of: Callable[[str], LeadTime | None], items: Collection[str] | None = None,
            graph: BomGraph | None = None) -> tuple[list[Demand], list[Supply], list[tuple[str, date, Decimal]]]:
    """Open sales-order lines and work orders' component needs; open purchase orders, work orders and transfers;
    the load of released work orders on their centres (today, rough-cut). With `items`, only theirs: the lines
    of those items, the work orders that make them or need them."""
    demands: list[Demand] = []
    receipts: list[Supply] = []
    loads: list[tuple[str, date, Decimal]] = []
    wanted = (lambda item: True) if items is None else set(items).__contains__
    # lines and snapshots in one query each, not one per order
    sales = select(SalesOrder).where(SalesOrder.status.in_(OPEN_SALES)).options(selectinload(SalesOrder.lines))
    purchases = (select(PurchaseOrder).where(PurchaseOrder.status.in_(OPEN_PURCHASE))
                 .options(selectinload(PurchaseOrder.lines)))
    works = select(WorkOrder).where(WorkOrder.status.in_(OPEN_WORK)).options(selectinload(WorkOrder.components))
    if items is not None:
        sales = sales.where(SalesOrder.lines.any(SalesOrderLine.item_id.in_(list(items))))
        purchases = purchases.where(PurchaseOrder.lines.any(PurchaseOrderLine.item_id.in_(list(items))))
        works = works.where(WorkOrder.item_id.in_(list(items) + (graph or BomGraph.of(boms)).makers_of(items))
                            | WorkOrder.components.any(WorkOrderComponent.component_item.in_(list(items))))
    for order in session.scalars(sales):
        for line in order.lines:
            outstanding = line.quantity - line.shipped
            if outstanding > 0 and wanted(line.item_id):
                demands.append(Demand(sales_demand_id(order.so_id, line.line), line.item_id, order.due.astimezone(UTC).date(),
                                      outstanding, "sales_order"))
    for purchase in session.scalars(purchases):
        for po_line in purchase.lines:
            remaining = po_line.quantity - po_line.received
            if remaining > 0 and wanted(po_line.item_id):
                receipts.append(Supply(f"{purchase.po_id}/{po_line.line}", po_line.item_id, purchase.due or today,
                                       remaining, "purchase_order"))
    only = "" if items is None else "AND item_id = ANY(:items)"
    for transfer_id, item_id, quantity in session.execute(text(
            f"SELECT location_id, item_id, quantity FROM stock_on_hand WHERE location_id LIKE :transit AND quantity > 0 {only}"),
            {"transit": f"{TRANSIT_PREFIX}%", "items": list(items or ())}):
        receipts.append(Supply(f"transfer:{transfer_id.removeprefix(TRANSIT_PREFIX)}/{item_id}", item_id, today,
                               quantity, "transfer"))
    for work in session.scalars(works):
        progress = live_progress(session, work.work_order_id, now)
        remaining = Decimal(max(work.quantity - progress.good, 0))
        if remaining == 0:
            continue
        finish = progress.projected_finish.astimezone(UTC).date() if progress.projected_finish is not None else None
        receipt = work_order_receipt_date(work.status, work.due or today, finish, today)
        if wanted(work.item_id):
            receipts.append(Supply(work.work_order_id, work.item_id, receipt, remaining, "work_order"))
        with as_conflict():
            per_unit = ({component.component_item: component.quantity_per_unit for component in work.components}
                        if work.status != "planned" else explode(work.item_id, boms, today))
            needed = work_order_components_date(work.status, receipt, remaining, lead_time_of(work.item_id),
                                                work.item_id, today)
        for component, quantity_per_unit in per_unit.items():
            if not wanted(component):
                continue
            demands.append(Demand(f"{work.work_order_id}/{component}", component, needed, quantity_per_unit * remaining,
                                  "work_order", work.work_order_id))
        routing = routings.get(work.item_id)
        if routing is not None:
            loads.append((routing.work_centre_id, today, remaining * routing.ideal_cycle_s))
    return demands, receipts, loads


@dataclass(frozen=True, slots=True)
class BomGraph:
    """Who uses what, for finding the work orders that need some items (net change); built once per BOMs."""

    parents: dict[str, list[tuple[str, bool]]]  # each component's parents, and whether the line is a phantom one

    @classmethod
    def of(cls, boms: dict[str, list[BomLine]]) -> BomGraph:
        parents: dict[str, list[tuple[str, bool]]] = defaultdict(list)
        for parent, lines in boms.items():
            for line in lines:
                parents[line.component].append((parent, line.phantom))
        return cls(dict(parents))

    def makers_of(self, items: Collection[str]) -> list[str]:
        """The items whose work orders need `items` from today's BOM (a planned order has no snapshot yet):
        their parents, and through phantoms the parents' parents."""
        found: set[str] = set()
        pending = list(items)
        while pending:
            for parent, phantom in self.parents.get(pending.pop(), ()):
                if parent not in found:
                    found.add(parent)
                    if phantom:
                        pending.append(parent)
        return sorted(found)
