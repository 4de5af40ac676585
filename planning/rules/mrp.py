"""Time-phased gross-to-net (MRP) over every level of the BOMs, with lot sizing, lead-time offsetting,
pegging and exception messages.

Per item, in ascending low-level code (so every parent is planned before its components), and per bucket:

- gross requirements = independent demand (open sales-order lines by due date; each forecast reduced by
  the sales-order lines due in its bucket, never below 0: the bucket's independent demand is the larger of
  the two — an order beyond the forecast adds to it, a forecast beyond the orders still stands, and
  nothing carries into another bucket) + dependent demand (each parent's planned release × quantity per ×
  (1 + scrap factor), on the release date, BOM lines effective then; and the remaining component needs of
  released and running work orders, passed in as demands);
- scheduled receipts = open purchase orders by due date, open work orders' remaining good quantity at their
  projected finish (`work_order_receipt_date`), transfers in transit by expected arrival;
- net requirement = what keeps the projected on hand at the safety stock. Netting assumes open receipts
  are rescheduled to when they are needed (the rescheduling assumption): open receipts are used, in date
  order, before anything new is planned, so a receipt due too late gives an `expedite` message, not a
  second order; one due too early gives `defer`; one not needed within the horizon, `cancel`;
- planned receipts = the net requirement lot-sized (lot_sizing.py), in the bucket of the requirement;
  planned releases = the same orders offset by their lead time (lead_times.py). A release that would fall
  before `today` is placed in today's bucket, its components are needed today, and it gives
  `release_past_due`;
- projected on hand = on hand + scheduled receipts where they are due + planned receipts − gross
  requirements, cumulated; a bucket below safety stock gives `below_safety_stock` (open receipts due after
  they are needed do that until they are expedited).

A phantom (an item used through a phantom BOM line) is planned with lot-for-lot and lead time 0, so its
demand passes to its own components on the same day.

Pegging links every demand to the supplies that cover it (`Peg`), first come first served: supplies in
the order the plan uses them (on hand, then receipts by the bucket they are needed in, then planned
receipts), to demands by due date. A planned or released order's components' demands name the order
(`Demand.parent_supply`), which links the levels (`pegging.py` walks them both ways). A demand whose
supplies arrive after its due date gives `demand_late`, with the date they arrive.

Demands and receipts beyond the horizon are left out; those before it count in the first bucket.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date
from decimal import Decimal, localcontext
from typing import Literal, NamedTuple

from inventory.rules.bom import Boms, BomLine
from kernel.rules.quantities import EXACT, exact_quantity, non_negative_quantity
from planning.rules.horizon import Horizon
from planning.rules.lead_times import LeadTime, ManufactureLeadTime, release_date
from planning.rules.levels import low_level_codes
from planning.rules.lot_sizing import LotSizing, lots

DemandKind = Literal["sales_order", "forecast", "work_order", "dependent"]
SupplyKind = Literal["on_hand", "purchase_order", "work_order", "transfer", "planned"]
ExceptionKind = Literal["expedite", "defer", "cancel", "release_past_due", "below_safety_stock", "demand_late"]
ZERO = Decimal(0)


def _quantity(value: Decimal, kind: str, identity: str) -> Decimal:
    """A demand's, forecast's or supply's quantity, checked; a finite non-negative Decimal (every quantity the
    plan derives) passes without building the message a refusal would need."""
    if type(value) is Decimal and value.is_finite() and value >= 0:
        return value
    return non_negative_quantity(value, f"{kind} {identity} quantity")


@dataclass(frozen=True, slots=True)
class Demand:
    id: str
    item: str
    due: date
    quantity: Decimal
    kind: DemandKind
    parent_supply: str | None = None  # the order whose components this is (work_order, dependent)

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _quantity(self.quantity, "demand", self.id))


@dataclass(frozen=True, slots=True)
class Forecast:
    id: str
    item: str
    bucket_start: date
    quantity: Decimal

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _quantity(self.quantity, "forecast", self.id))


@dataclass(frozen=True, slots=True)
class Supply:
    id: str
    item: str
    due: date
    quantity: Decimal
    kind: SupplyKind

    def __post_init__(self) -> None:
        object.__setattr__(self, "quantity", _quantity(self.quantity, "supply", self.id))


@dataclass(frozen=True, slots=True)
class ItemPolicy:
    safety_stock: Decimal = ZERO
    lot_sizing: LotSizing = field(default_factory=LotSizing)
    lead_time: LeadTime | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "safety_stock", non_negative_quantity(self.safety_stock, "safety stock"))


PHANTOM_POLICY = ItemPolicy(lead_time=ManufactureLeadTime(0))


@dataclass(frozen=True, slots=True)
class PlanInput:
    horizon: Horizon
    today: date
    boms: Boms
    on_hand: Mapping[str, Decimal]
    policies: Mapping[str, ItemPolicy]
    demands: Sequence[Demand]  # sales-order lines and released/running work orders' component needs
    forecasts: Sequence[Forecast]
    receipts: Sequence[Supply]  # open purchase orders, work orders, transfers in transit


class BucketRecord(NamedTuple):
    start: date
    gross_requirements: Decimal
    scheduled_receipts: Decimal
    projected_on_hand: Decimal
    net_requirements: Decimal
    planned_receipts: Decimal
    planned_releases: Decimal


@dataclass(frozen=True, slots=True)
class ItemRecord:
    item: str
    low_level_code: int
    on_hand: Decimal
    safety_stock: Decimal
    buckets: tuple[BucketRecord, ...]


class PlannedOrder(NamedTuple):
    id: str
    item: str
    kind: Literal["make", "buy"]
    quantity: Decimal
    release: date  # receipt − lead time; before `today` for a past-due release
    receipt: date  # when the plan needs it
    release_past_due: bool
    expected: date  # when it can really arrive: `receipt`, or later for a past-due release


class Peg(NamedTuple):
    supply: str
    demand: str
    item: str
    quantity: Decimal


@dataclass(frozen=True, slots=True)
class PlanException:
    kind: ExceptionKind
    item: str
    reference: str  # the receipt, planned order or demand concerned; the item for below_safety_stock
    on: date  # the date concerned (the receipt's due date, the release date, the bucket, the demand's due date)
    to: date | None  # where to move it (expedite, defer), or when supply arrives (demand_late)
    quantity: Decimal
    message: str


@dataclass(frozen=True, slots=True)
class Plan:
    horizon: Horizon
    records: dict[str, ItemRecord]
    planned_orders: list[PlannedOrder]
    demands: list[Demand]  # every demand planned: independent, consumed forecasts, dependent
    supplies: list[Supply]  # on hand, scheduled receipts, planned receipts
    pegs: list[Peg]
    exceptions: list[PlanException]


def consume_forecasts(horizon: Horizon, orders: Sequence[Demand], forecasts: Sequence[Forecast]) -> list[Demand]:
    """Each forecast's quantity left after the sales-order lines of its item and bucket, as a demand due on
    the forecast's bucket start (never before the horizon); several forecasts of one bucket are consumed in
    id order. Forecasts beyond the horizon, and those fully consumed, give nothing."""
    booked: dict[tuple[str, int], Decimal] = {}
    for order in orders:
        bucket = horizon.bucket_of(order.due)
        if order.kind == "sales_order" and bucket is not None:
            booked[(order.item, bucket)] = booked.get((order.item, bucket), ZERO) + order.quantity
    remaining: list[Demand] = []
    with localcontext(EXACT):
        for forecast in sorted(forecasts, key=lambda forecast: (forecast.bucket_start, forecast.id)):
            bucket = horizon.bucket_of(forecast.bucket_start)
            if bucket is None:
                continue
            consumed = min(forecast.quantity, booked.get((forecast.item, bucket), ZERO))
            booked[(forecast.item, bucket)] = booked.get((forecast.item, bucket), ZERO) - consumed
            if forecast.quantity > consumed:
                due = max(forecast.bucket_start, horizon.start)
                remaining.append(Demand(forecast.id, forecast.item, due, forecast.quantity - consumed, "forecast"))
    return remaining


def work_order_components_date(status: str, receipt: date, remaining: Decimal, lead_time: LeadTime | None, item: str,
                               today: date) -> date:
    """When an open work order's remaining component needs are due: a running or paused order consumes them as it
    counts, so now; one not started (planned or released) at its start, its receipt offset by the item's lead time
    for what remains (now when the item has none). Never before today."""
    if status in ("running", "paused") or lead_time is None:
        return today
    return max(release_date(receipt, remaining, lead_time, item), today)


def work_order_receipt_date(status: str, due: date, projected_finish: date | None, today: date) -> date:
    """When an open work order's remaining good quantity is expected: a running order at its projected
    finish from the live counts (its due date while it has no rate yet); a released order not yet running
    (or paused) at its due date. Never before today: what is still to make is not in stock yet."""
    expected = projected_finish if status == "running" and projected_finish is not None else due
    return max(expected, today)


@dataclass(frozen=True, slots=True)
class ItemPlan:
    """One item's part of a plan: what netting it gave, and the dependent demand it placed on its components.
    A plan is its items' parts in low-level-code order (`assemble`); net change replaces some of them."""

    record: ItemRecord
    planned_orders: tuple[PlannedOrder, ...]
    demands: tuple[Demand, ...]  # its gross requirements: its own demands, then its parents' dependent demand
    supplies: tuple[Supply, ...]  # on hand, its scheduled receipts by due date, its planned receipts
    pegs: tuple[Peg, ...]
    exceptions: tuple[PlanException, ...]
    placed: tuple[Demand, ...]  # the dependent demand its planned orders place on its components

    def own_demands(self) -> list[Demand]:
        """Its demands but its parents' dependent demand: what it was given to plan."""
        return [demand for demand in self.demands if demand.kind != "dependent"]

    def receipts(self) -> list[Supply]:
        return [supply for supply in self.supplies if supply.kind not in ("on_hand", "planned")]


@dataclass(frozen=True, slots=True)
class Prepared:
    """A plan's input sorted per item: what `plan` nets, and what net change nets for the items it replans."""

    codes: dict[str, int]
    phantoms: frozenset[str]
    demands_of: dict[str, list[Demand]]  # independent: sales-order lines, work orders' needs, consumed forecasts
    receipts_of: dict[str, list[Supply]]


def prepare(given: PlanInput, codes: Mapping[str, int] | None = None) -> Prepared:
    """Demands and receipts within the horizon, forecasts consumed, per item; the low-level codes (computed
    unless given) and the phantoms."""
    horizon, today = given.horizon, given.today
    if today >= horizon.end:
        raise ValueError(f"today ({today}) is after the horizon, which ends before {horizon.end}")
    independent = [demand for demand in given.demands if demand.quantity > 0 and horizon.bucket_of(demand.due) is not None]
    forecasts = consume_forecasts(horizon, independent, given.forecasts)
    receipts = [supply for supply in given.receipts if horizon.bucket_of(supply.due) is not None]
    if codes is None:
        items = {*given.on_hand, *given.policies, *(d.item for d in independent), *(d.item for d in forecasts),
                 *(r.item for r in receipts)}
        codes = low_level_codes(given.boms, items)
    phantoms = frozenset(line.component for lines in given.boms.values() for line in lines if line.phantom)
    demands_of: dict[str, list[Demand]] = {}
    for demand in [*independent, *forecasts]:
        demands_of.setdefault(demand.item, []).append(demand)
    receipts_of: dict[str, list[Supply]] = {}
    for receipt in receipts:
        receipts_of.setdefault(receipt.item, []).append(receipt)
    return Prepared(dict(codes), phantoms, demands_of, receipts_of)


def policy_of(item: str, given: PlanInput, prepared: Prepared) -> ItemPolicy:
    return PHANTOM_POLICY if item in prepared.phantoms else given.policies.get(item, ItemPolicy())


def plan(given: PlanInput) -> Plan:
    """The plan for every item named by the BOMs, demands, forecasts, receipts, on hand and policies."""
    return assemble(given.horizon, plan_parts(given))


def plan_parts(given: PlanInput) -> list[ItemPlan]:
    """`plan`'s items' parts, in the order it nets them (ascending low-level code, then item)."""
    prepared = prepare(given)
    codes, demands_of = prepared.codes, prepared.demands_of
    parts: list[ItemPlan] = []
    for item in sorted(codes, key=lambda item: (codes[item], item)):
        part = net_item(item, codes[item], given.on_hand.get(item, ZERO), policy_of(item, given, prepared),
                        demands_of.get(item, []), prepared.receipts_of.get(item, []), given.boms.get(item, ()),
                        given.horizon, given.today)
        parts.append(part)
        for demand in part.placed:
            demands_of.setdefault(demand.item, []).append(demand)
    return parts


def assemble(horizon: Horizon, parts: Sequence[ItemPlan]) -> Plan:
    """The plan of these items' parts, in the order given (low-level code, then item, for a whole plan)."""
    result = Plan(horizon, {}, [], [], [], [], [])
    for part in parts:
        result.records[part.record.item] = part.record
        result.planned_orders.extend(part.planned_orders)
        result.demands.extend(part.demands)
        result.supplies.extend(part.supplies)
        result.pegs.extend(part.pegs)
        result.exceptions.extend(part.exceptions)
    return result


def net_item(item: str, code: int, on_hand: Decimal, policy: ItemPolicy, demands: Sequence[Demand],
             receipts: Sequence[Supply], bom: Sequence[BomLine], horizon: Horizon, today: date) -> ItemPlan:
    """One item netted against its demands (its own and its parents' dependent demand) and receipts."""
    part = Plan(horizon, {}, [], [], [], [], [])
    placed = _net_item(item, code, exact_quantity(on_hand, f"on hand of {item}"), policy, list(demands), list(receipts),
                       bom, horizon, today, part)
    return ItemPlan(part.records[item], tuple(part.planned_orders), tuple(part.demands), tuple(part.supplies),
                    tuple(part.pegs), tuple(part.exceptions), tuple(placed))


def _net_item(item: str, code: int, on_hand: Decimal, policy: ItemPolicy, demands: list[Demand], receipts: list[Supply],
              bom: Sequence[BomLine], horizon: Horizon, today: date, result: Plan) -> list[Demand]:
    """Nets one item into `result`; returns the dependent demand its planned orders place on components."""
    count, safety = horizon.count, policy.safety_stock
    gross = [ZERO] * count
    for demand in demands:
        gross[_bucket(horizon, demand.due)] += demand.quantity
    receipts = sorted(receipts, key=lambda receipt: (receipt.due, receipt.id))
    scheduled = [ZERO] * count
    for receipt in receipts:
        scheduled[_bucket(horizon, receipt.due)] += receipt.quantity
    net, planned_receipts, planned_releases = [ZERO] * count, [ZERO] * count, [ZERO] * count
    needed_in: dict[str, int] = {}
    orders: list[tuple[PlannedOrder, int]] = []
    with localcontext(EXACT):
        available, next_receipt = on_hand, 0
        for bucket in range(count):
            available -= gross[bucket]
            while available < safety and next_receipt < len(receipts):
                needed_in[receipts[next_receipt].id] = bucket
                available += receipts[next_receipt].quantity
                next_receipt += 1
            if available >= safety:
                continue
            net[bucket] = safety - available
            covered = sum(gross[bucket + 1:bucket + policy.lot_sizing.periods], ZERO) if policy.lot_sizing.rule == "period" else ZERO
            for quantity in lots(net[bucket] + covered, policy.lot_sizing):
                order = _planned_order(item, len(orders) + 1, bool(bom), quantity, horizon.bucket_start(bucket), policy, today)
                orders.append((order, bucket))
                available += quantity
                planned_receipts[bucket] += quantity
                planned_releases[_bucket(horizon, max(order.release, today))] += quantity
        records, on_hand_now = [], on_hand
        for bucket, start in enumerate(horizon.starts()):
            on_hand_now += scheduled[bucket] + planned_receipts[bucket] - gross[bucket]
            records.append(BucketRecord(start, gross[bucket], scheduled[bucket], on_hand_now, net[bucket],
                                        planned_receipts[bucket], planned_releases[bucket]))
    result.records[item] = ItemRecord(item, code, on_hand, safety, tuple(records))
    result.planned_orders.extend(order for order, _ in orders)
    result.demands.extend(demands)
    _receipt_exceptions(item, receipts, needed_in, horizon, result)
    _safety_exceptions(item, records, safety, result)
    supplies = _peg_item(item, on_hand, receipts, needed_in, orders, demands, horizon, today, result)
    result.supplies.extend(supplies)
    dependent: list[Demand] = []
    per_parent = [(line, line.gross_quantity) for line in bom]
    with localcontext(EXACT):
        for order, _ in orders:
            if order.release_past_due:
                result.exceptions.append(PlanException(
                    "release_past_due", item, order.id, order.release, order.expected, order.quantity,
                    f"release {order.id} ({order.quantity} of {item}) now: it arrives {order.expected} at the earliest, "
                    f"after its need date {order.receipt}"))
            released = max(order.release, today)
            needs: dict[str, Decimal] = {}  # two lines of one component make one demand
            for line, per_unit in per_parent:
                if line.effective_on(released):
                    needs[line.component] = needs.get(line.component, ZERO) + order.quantity * per_unit
            dependent.extend(Demand(f"{order.id}/{component}", component, released, quantity, "dependent", order.id)
                             for component, quantity in needs.items())
    return dependent


def _bucket(horizon: Horizon, on: date) -> int:
    """The bucket of a date known to be before the horizon's end."""
    bucket = horizon.bucket_of(on)
    assert bucket is not None
    return bucket


def _planned_order(item: str, number: int, made: bool, quantity: Decimal, receipt: date, policy: ItemPolicy,
                   today: date) -> PlannedOrder:
    release = release_date(receipt, quantity, policy.lead_time, item)
    past_due = release < today
    expected = receipt + (today - release) if past_due else receipt
    return PlannedOrder(f"planned:{item}:{number}", item, "make" if made else "buy", quantity, release, receipt,
                        past_due, expected)


def _receipt_exceptions(item: str, receipts: list[Supply], needed_in: dict[str, int], horizon: Horizon, result: Plan) -> None:
    for receipt in receipts:
        due_bucket = _bucket(horizon, receipt.due)
        needed = needed_in.get(receipt.id)
        if needed is None:
            result.exceptions.append(PlanException(
                "cancel", item, receipt.id, receipt.due, None, receipt.quantity,
                f"cancel {receipt.id} ({receipt.quantity} of {item} due {receipt.due}): not needed within the horizon"))
        elif needed != due_bucket:
            kind: ExceptionKind = "expedite" if needed < due_bucket else "defer"
            to = horizon.bucket_start(needed)
            result.exceptions.append(PlanException(
                kind, item, receipt.id, receipt.due, to, receipt.quantity,
                f"{kind} {receipt.id} ({receipt.quantity} of {item}) from {receipt.due} to {to}"))


def _safety_exceptions(item: str, records: list[BucketRecord], safety: Decimal, result: Plan) -> None:
    for record in records:
        if record.projected_on_hand < safety:
            result.exceptions.append(PlanException(
                "below_safety_stock", item, item, record.start, None, safety - record.projected_on_hand,
                f"{item} projected at {record.projected_on_hand} on {record.start}, below its safety stock {safety}"))


def _peg_item(item: str, on_hand: Decimal, receipts: list[Supply], needed_in: dict[str, int],
              orders: list[tuple[PlannedOrder, int]], demands: list[Demand], horizon: Horizon, today: date,
              result: Plan) -> list[Supply]:
    """Pegs the item's demands to its supplies, first come first served; returns the supplies."""
    unneeded = horizon.count
    queue: list[tuple[int, int, Supply, date]] = []  # (bucket used in, order, supply, when it really arrives)
    supplies: list[Supply] = []
    if on_hand > 0:
        stock = Supply(f"on_hand:{item}", item, horizon.start, on_hand, "on_hand")
        supplies.append(stock)
        queue.append((-1, 0, stock, today))
    for rank, receipt in enumerate(receipts):
        supplies.append(receipt)
        queue.append((needed_in.get(receipt.id, unneeded), rank, receipt, max(receipt.due, today)))
    for rank, (order, bucket) in enumerate(orders):
        supply = Supply(order.id, item, order.receipt, order.quantity, "planned")
        supplies.append(supply)
        queue.append((bucket, len(receipts) + rank, supply, order.expected))
    queue.sort(key=lambda entry: (entry[0], entry[1]))
    left = [entry[2].quantity for entry in queue]
    position = 0
    with localcontext(EXACT):
        for demand in sorted(demands, key=lambda demand: (demand.due, demand.id)):
            wanted, arrives = demand.quantity, today
            while wanted > 0 and position < len(queue):
                taken = min(wanted, left[position])
                if taken > 0:
                    result.pegs.append(Peg(queue[position][2].id, demand.id, item, taken))
                    arrives = max(arrives, queue[position][3])
                    wanted -= taken
                    left[position] -= taken
                if left[position] == 0:
                    position += 1
            if arrives > demand.due:
                result.exceptions.append(PlanException(
                    "demand_late", item, demand.id, demand.due, arrives, demand.quantity,
                    f"{demand.kind.replace('_', ' ')} {demand.id} ({demand.quantity} of {item}) due {demand.due} "
                    f"is covered only on {arrives}"))
    return supplies

