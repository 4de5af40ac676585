"""Pure inventory rules: BOM explosion, backflush quantities, lot picking. No I/O.

Quantities are exact. They enter as Decimal or int (never float: 0.1 kg as a float is not 0.1 kg), and
the arithmetic runs in `EXACT`, a context that never rounds: the default 28 significant digits would
silently round a deep BOM times a long run, and a rounding here would make the ledger disagree with
the issue's formula. Only addition, subtraction and multiplication are used, so results stay finite.
"""

from __future__ import annotations

from decimal import MAX_EMAX, MAX_PREC, MIN_EMIN, Context, Decimal, DivisionByZero, Inexact, InvalidOperation, Overflow

EXACT = Context(prec=MAX_PREC, Emax=MAX_EMAX, Emin=MIN_EMIN, traps=[InvalidOperation, DivisionByZero, Overflow, Inexact])


def exact_quantity(value: Decimal | int, what: str) -> Decimal:
    """`value` as a finite Decimal; a float or bool is refused rather than converted."""
    if isinstance(value, bool) or not isinstance(value, Decimal | int):
        raise TypeError(f"{what} must be a Decimal or an int, not {type(value).__name__}: {value!r}")
    quantity = Decimal(value)
    if not quantity.is_finite():
        raise ValueError(f"{what} must be finite, got {value}")
    return quantity
