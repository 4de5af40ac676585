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


def positive_quantity(value: Decimal | int, what: str) -> Decimal:
    quantity = exact_quantity(value, what)
    if quantity <= 0:
        raise ValueError(f"{what} must be positive, got {quantity}")
    return quantity


def non_negative_quantity(value: Decimal | int, what: str) -> Decimal:
    quantity = exact_quantity(value, what)
    if quantity < 0:
        raise ValueError(f"{what} must not be negative, got {quantity}")
    return quantity


def whole_number(value: int, what: str, least: int = 0) -> int:
    """`value` as a count: an int (a bool is refused) of at least `least`."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{what} must be a whole number, not {type(value).__name__}: {value!r}")
    if value < least:
        raise ValueError(f"{what} cannot be negative, got {value}" if least == 0 else f"{what} must be at least {least}, got {value}")
    return value
