"""Lead times, in calendar days, and the offset from a planned receipt back to its release.

- Bought: the item's own purchase lead time when it has one, else its supplier's (`purchase_lead_time`).
- Made: a fixed part (set-up, queue, move) plus the run: quantity × the machine's ideal cycle time,
  spread over the work centre's available time per day (from its shift calendar), rounded up to whole
  days. 100 units at 36 s on a centre with 8 h a day: 3600 s / 28800 s = 0.125 → 1 day, plus 2 fixed = 3.
- A phantom is never stocked or ordered: lead time 0.

An item that needs a planned order but has no lead time is an error naming it, never a guess.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta
from decimal import Decimal, localcontext

from kernel.rules.quantities import EXACT, non_negative_quantity, positive_quantity, whole_number
from planning.rules.quantities import ceiling_ratio


@dataclass(frozen=True, slots=True)
class PurchaseLeadTime:
    days: int

    def __post_init__(self) -> None:
        whole_number(self.days, "purchase lead time days")

    def days_for(self, quantity: Decimal) -> int:
        return self.days


@dataclass(frozen=True, slots=True)
class ManufactureLeadTime:
    fixed_days: int
    ideal_cycle_time_seconds: Decimal = Decimal(0)
    available_seconds_per_day: Decimal = Decimal(86400)

    def __post_init__(self) -> None:
        whole_number(self.fixed_days, "fixed manufacturing lead time days")
        object.__setattr__(self, "ideal_cycle_time_seconds",
                           non_negative_quantity(self.ideal_cycle_time_seconds, "ideal cycle time"))
        object.__setattr__(self, "available_seconds_per_day",
                           positive_quantity(self.available_seconds_per_day, "available seconds per day"))

    def days_for(self, quantity: Decimal) -> int:
        with localcontext(EXACT):
            run_seconds = quantity * self.ideal_cycle_time_seconds
        return self.fixed_days + ceiling_ratio(run_seconds, self.available_seconds_per_day)


LeadTime = PurchaseLeadTime | ManufactureLeadTime


def purchase_lead_time(item_days: int | None, supplier_days: int | None) -> PurchaseLeadTime | None:
    """The item's own purchase lead time wins over its supplier's; None when neither is known."""
    days = item_days if item_days is not None else supplier_days
    return None if days is None else PurchaseLeadTime(days)


def release_date(receipt: date, quantity: Decimal, lead_time: LeadTime | None, item: str) -> date:
    """When an order for `quantity` due on `receipt` must start."""
    if lead_time is None:
        raise ValueError(f"item {item!r} has no lead time: its planned order due {receipt} cannot be offset")
    days = lead_time.days_for(quantity)
    try:
        return receipt - timedelta(days=days)
    except OverflowError:
        raise ValueError(f"item {item!r}: a lead time of {days} days for {quantity} due {receipt} starts before any "
                         "calendar date; check its lead time and cycle time") from None
