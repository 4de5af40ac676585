"""Lot sizing: how much to order when a bucket's net requirement is positive.

Rules:
- `lot_for_lot`: exactly the net requirement.
- `fixed`: orders of exactly `quantity` each, as many as the net requirement needs (ceil(net / quantity)).
- `period` (period order quantity): the net requirements of `periods` buckets, from the one short onwards,
  in one order — enough that projected on hand stays at safety stock through the last of them.
- `min_multiple`: the net requirement, raised to `minimum`, then rounded up to a `multiple`.

The modifiers `minimum`, `multiple` and `maximum` apply to every rule but `fixed` (whose quantity is the
lot): the quantity is raised to the minimum, rounded up to the multiple, then, above the maximum, split
into orders of the largest multiple not above the maximum, the last one raised to the minimum (and its
multiple) if it would fall short of it. Every planned order therefore lies in [minimum, maximum] and is a
multiple of `multiple`, and together they cover at least the net requirement.
"""

from __future__ import annotations

from dataclasses import dataclass
from decimal import Decimal, localcontext
from typing import Literal

from kernel.rules.quantities import EXACT, non_negative_quantity, positive_quantity, whole_number
from planning.rules.quantities import ceiling_ratio, floor_ratio

LotRule = Literal["lot_for_lot", "fixed", "period", "min_multiple"]
LOT_RULES: tuple[str, ...] = ("lot_for_lot", "fixed", "period", "min_multiple")


@dataclass(frozen=True, slots=True)
class LotSizing:
    rule: LotRule = "lot_for_lot"
    quantity: Decimal | None = None  # fixed
    periods: int = 1  # period
    minimum: Decimal = Decimal(0)
    multiple: Decimal | None = None
    maximum: Decimal | None = None

    def __post_init__(self) -> None:
        if self.rule not in LOT_RULES:
            raise ValueError(f"lot-sizing rule must be one of {', '.join(LOT_RULES)}, got {self.rule!r}")
        if self.rule == "fixed":
            if self.quantity is None:
                raise ValueError("the fixed lot-sizing rule needs a quantity")
            object.__setattr__(self, "quantity", positive_quantity(self.quantity, "fixed lot quantity"))
        whole_number(self.periods, "periods", least=1)
        object.__setattr__(self, "minimum", non_negative_quantity(self.minimum, "minimum lot"))
        if self.multiple is not None:
            object.__setattr__(self, "multiple", positive_quantity(self.multiple, "lot multiple"))
        if self.maximum is not None:
            object.__setattr__(self, "maximum", positive_quantity(self.maximum, "maximum lot"))
            largest = self.largest_lot
            if largest is None or largest <= 0 or largest < self.smallest_lot:
                raise ValueError(f"maximum lot {self.maximum} leaves no lot that is at least the minimum "
                                 f"{self.minimum} and a multiple of {self.multiple}")

    @property
    def smallest_lot(self) -> Decimal:
        """The minimum, rounded up to the multiple."""
        return _round_up(self.minimum, self.multiple)

    @property
    def largest_lot(self) -> Decimal | None:
        """The maximum, rounded down to the multiple; None without a maximum."""
        if self.maximum is None:
            return None
        if self.multiple is None:
            return self.maximum
        with localcontext(EXACT):
            return floor_ratio(self.maximum, self.multiple) * self.multiple


def _round_up(quantity: Decimal, multiple: Decimal | None) -> Decimal:
    if multiple is None:
        return quantity
    with localcontext(EXACT):
        return ceiling_ratio(quantity, multiple) * multiple


def lots(requirement: Decimal, sizing: LotSizing) -> list[Decimal]:
    """The planned orders covering `requirement` (> 0): for `period`, the requirement of all its periods."""
    requirement = positive_quantity(requirement, "net requirement")
    with localcontext(EXACT):
        if sizing.rule == "fixed":
            assert sizing.quantity is not None  # checked when the sizing was made
            return [sizing.quantity] * ceiling_ratio(requirement, sizing.quantity)
        total = _round_up(max(requirement, sizing.minimum), sizing.multiple)
        largest = sizing.largest_lot
        if largest is None or total <= largest:
            return [total]
        full, rest = divmod(total, largest)
        orders = [largest] * int(full)
        if rest:
            orders.append(max(rest, sizing.smallest_lot))
        return orders
