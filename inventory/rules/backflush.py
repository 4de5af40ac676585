"""Backflush: what a production interval consumes, and the lot its good units go into.

Every unit the machine made, good or scrap, used its material, so an interval attributed to a work
order consumes (good + scrap) × the order's per-unit quantity of each component (the BOM exploded and
snapshotted at release, scrap allowances included). Consumption is linear in units, so backflushing
interval by interval sums exactly to backflushing the whole run at once: nothing is rounded.

Good units go into one finished-goods lot per work order. Ambiguity, stated: a work order can run for
days, but a lot has one expiry; it is counted from the day the lot's first unit was made, so the label
never promises more shelf life than its oldest unit has.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime, timedelta
from decimal import Decimal, localcontext
from typing import NamedTuple

from kernel.rules.quantities import EXACT, exact_quantity
from inventory.rules.lots import UNKNOWN_LOT, Allocation, LotBalance, NegativeStockPolicy, allocate

FINISHED_GOODS_LOT_PREFIX = "FG-"  # tells a made lot from a supplier's lot on a label or in the ledger


def consumption(units: int, per_unit: Mapping[str, Decimal]) -> dict[str, Decimal]:
    """Each component's quantity for `units` (good + scrap) units: units × per-unit quantity, exactly.

    No units consume nothing: the result is empty rather than a list of zero moves.
    """
    if isinstance(units, bool) or not isinstance(units, int):
        raise TypeError(f"units must be an int, not {type(units).__name__}: {units!r}")
    if units < 0:
        raise ValueError(f"units must not be negative, got {units}")
    quantities = {component: exact_quantity(quantity, f"per-unit quantity of {component}") for component, quantity in per_unit.items()}
    for component, quantity in quantities.items():
        if quantity <= 0:
            raise ValueError(f"per-unit quantity of {component} must be positive, got {quantity}")
    if units == 0:
        return {}
    with localcontext(EXACT):
        return {component: units * quantity for component, quantity in quantities.items()}


def finished_goods_lot(work_order_number: str) -> str:
    """The lot a work order's good units are received into: one per order, named after it."""
    number = work_order_number.strip()
    if not number:
        raise ValueError("a work order number is needed to name its finished-goods lot")
    return f"{FINISHED_GOODS_LOT_PREFIX}{number}"


def expiry(produced_on: date, shelf_life_days: int | None) -> date | None:
    """The day a lot made on `produced_on` expires: shelf life days later; never for an item without one."""
    if shelf_life_days is None:
        return None
    if isinstance(shelf_life_days, bool) or not isinstance(shelf_life_days, int) or shelf_life_days <= 0:
        raise ValueError(f"shelf life must be a positive number of days, got {shelf_life_days!r}")
    return produced_on + timedelta(days=shelf_life_days)


class Material(NamedTuple):
    """A released work order as backflush needs it."""

    item_id: str  # what the order makes
    shelf_life_days: int | None
    per_unit: Mapping[str, Decimal]  # the BOM snapshot taken at release


class LineSide(NamedTuple):
    """Where a machine's line takes its material from and puts its output."""

    location_id: str
    policy: NegativeStockPolicy


class AttributedUnits(NamedTuple):
    source_ref: str  # the production interval (message) the units were counted in
    machine_id: str
    work_order_id: str
    good: int
    scrap: int
    ts: datetime


def interval_ref(edge_id: str, epoch: int, seq: int) -> str:
    """The `source_ref` of the stock moves of one production interval (one ingested message): genealogy
    follows it from consumption to receipt."""
    return f"interval:{edge_id}/{epoch}/{seq}"


class Move(NamedTuple):
    ts: datetime
    item_id: str
    lot: str | None
    from_location: str | None
    to_location: str | None
    quantity: Decimal
    reason: str
    source_ref: str
    work_order_id: str


class BackflushException(NamedTuple):
    """Something a person must reconcile: material used beyond the recorded stock, or not consumed."""

    ts: datetime
    source_ref: str
    work_order_id: str
    item_id: str
    location_id: str | None
    quantity: Decimal
    kind: str  # 'shortage' (consumed from the unknown lot), 'blocked' (not consumed, order held), 'no_location'
    reason: str


class BackflushPlan(NamedTuple):
    moves: list[Move]
    exceptions: list[BackflushException]
    new_lots: dict[tuple[str, str], date | None]  # (item, lot) -> expiry, for finished-goods lots
    held: dict[str, str]  # work order -> why it is held


def plan_backflush(units: Iterable[AttributedUnits], materials: Mapping[str, Material], line_side: Mapping[str, LineSide],
                   balances: Mapping[tuple[str, str], Iterable[LotBalance]]) -> BackflushPlan:
    """The moves for every attributed interval: components consumed from the line side, lot by lot, and
    good units received into the order's finished-goods lot there. Balances carry over from one
    interval to the next within the call."""
    left = {key: list(lots) for key, lots in balances.items()}
    plan = BackflushPlan([], [], {}, {})
    for counted in units:
        material, place = materials[counted.work_order_id], line_side.get(counted.machine_id)
        needs = consumption(counted.good + counted.scrap, material.per_unit)
        if place is None:
            reason = f"machine {counted.machine_id}'s line has no line-side location"
            for item, quantity in [*needs.items(), *([(material.item_id, Decimal(counted.good))] if counted.good else [])]:
                plan.exceptions.append(BackflushException(counted.ts, counted.source_ref, counted.work_order_id, item, None,
                                                  quantity, "no_location", reason))
            continue
        for item, need in needs.items():
            _consume(plan, left.setdefault((item, place.location_id), []), counted, item, need, place)
        if counted.good:
            lot = finished_goods_lot(counted.work_order_id)
            plan.new_lots.setdefault((material.item_id, lot), expiry(counted.ts.date(), material.shelf_life_days))
            plan.moves.append(Move(counted.ts, material.item_id, lot, None, place.location_id, Decimal(counted.good),
                                   "production receipt", counted.source_ref, counted.work_order_id))
    return plan


def _consume(plan: BackflushPlan, lots: list[LotBalance], counted: AttributedUnits, item: str, need: Decimal,
             place: LineSide) -> None:
    allocation = allocate(need, lots, place.policy)
    for pick in allocation.picks:
        plan.moves.append(Move(counted.ts, item, pick.lot, place.location_id, None, pick.quantity, "backflush",
                               counted.source_ref, counted.work_order_id))
    # a lot with nothing left gives nothing to a later allocation: dropped, so the batch's later intervals
    # do not sort and check the lots it emptied
    lots[:] = [lot for lot in remaining_after(lots, allocation) if lot.quantity > 0]
    if allocation.shortage:
        kind = "blocked" if allocation.held else "shortage"
        reason = (f"{allocation.shortage} {item} not on hand at {place.location_id}: "
                  + ("not consumed, work order held" if allocation.held else "consumed from an unknown lot"))
        plan.exceptions.append(BackflushException(counted.ts, counted.source_ref, counted.work_order_id, item, place.location_id,
                                          allocation.shortage, kind, reason))
    if allocation.held:
        plan.held.setdefault(counted.work_order_id, f"short of {item} at {place.location_id}")


def remaining_after(lots: Iterable[LotBalance], allocation: Allocation) -> list[LotBalance]:
    """The lots' balances once the allocation's picks are taken (unknown-lot picks take from none)."""
    taken = {pick.lot: pick.quantity for pick in allocation.picks if pick.lot is not UNKNOWN_LOT}
    with localcontext(EXACT):
        return [lot._replace(quantity=lot.quantity - taken[lot.lot]) if lot.lot in taken else lot for lot in lots]
