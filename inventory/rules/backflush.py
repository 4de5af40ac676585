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

from collections.abc import Mapping
from datetime import date, timedelta
from decimal import Decimal, localcontext

from inventory.rules import EXACT, exact_quantity

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
