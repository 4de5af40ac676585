"""Whole-number ratios of exact quantities, without the inexact division `EXACT` refuses."""

from __future__ import annotations

from decimal import Decimal, localcontext

from kernel.rules.quantities import EXACT


def ceiling_ratio(quantity: Decimal, unit: Decimal) -> int:
    """How many `unit`s (> 0) cover `quantity` (≥ 0): ceil(quantity / unit)."""
    with localcontext(EXACT):
        whole, rest = divmod(quantity, unit)
    return int(whole) + (1 if rest > 0 else 0)


def floor_ratio(quantity: Decimal, unit: Decimal) -> int:
    """How many whole `unit`s (> 0) fit in `quantity` (≥ 0): floor(quantity / unit)."""
    with localcontext(EXACT):
        return int(quantity // unit)
