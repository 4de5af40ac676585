"""Which lots a consumption is taken from, and what happens when the location runs short.

Lots are picked first-expiry-first-out (the lot expiring soonest goes first; lots that never expire
come after every lot that does), then first-in-first-out (earliest received), then by lot id so the
same stock always gives the same picks. A lot gives at most its positive balance.

When the lots hold less than the need, the location's negative-stock policy decides:
- ALLOW (the default): the machine has already used the material, so the physical truth is booked.
  The missing quantity is consumed as its own pick from the unknown lot (`UNKNOWN_LOT`, None): the
  location's unknown-lot balance goes negative and the caller raises a shortage record for someone to
  reconcile (a late receipt, a mis-scanned lot, a miscount).
- BLOCK: only what the lots hold is consumed; the shortage is reported and `held` tells the caller
  to hold the work order so the supervisor sees why.

Ambiguity, stated: under ALLOW the shortage is not charged to the last lot picked. That lot's
balance is known and its traceability would be falsified (genealogy would name a lot that never held
the material); a negative unknown-lot balance says exactly what is known, that the material came from
somewhere this location has no record of. It also matches the ledger, whose moves carry a nullable lot.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import date, datetime
from decimal import Decimal, localcontext
from enum import Enum
from typing import NamedTuple

from kernel.rules.quantities import EXACT, exact_quantity

UNKNOWN_LOT = None  # the lot of material consumed beyond the recorded stock


class NegativeStockPolicy(str, Enum):
    ALLOW = "allow"
    BLOCK = "block"


class LotBalance(NamedTuple):
    lot: str
    quantity: Decimal  # on hand at the location; may be zero or negative, then it gives nothing
    expires: date | None  # None: never expires
    received: datetime


class Pick(NamedTuple):
    lot: str | None  # UNKNOWN_LOT for a shortage consumed under ALLOW
    quantity: Decimal  # always positive: what is taken


class Allocation(NamedTuple):
    picks: tuple[Pick, ...]
    shortage: Decimal  # need not covered by recorded stock; under ALLOW it is also the unknown-lot pick
    held: bool  # BLOCK ran short: hold the work order


def pick_order(lots: Iterable[LotBalance]) -> list[LotBalance]:
    """Lots in the order they are consumed: earliest expiry (never-expiring last), earliest receipt, lot id."""
    return sorted(lots, key=lambda lot: (lot.expires is None, lot.expires or date.min, lot.received, lot.lot))


def allocate(need: Decimal, lots: Iterable[LotBalance], policy: NegativeStockPolicy) -> Allocation:
    """Take `need` from the lots in pick order; the rest is a shortage, consumed or not as `policy` says."""
    policy = NegativeStockPolicy(policy)
    need = exact_quantity(need, "need")
    if need < 0:
        raise ValueError(f"need must not be negative, got {need}")
    ordered = pick_order(lots)
    on_hand = [exact_quantity(lot.quantity, f"balance of lot {lot.lot}") for lot in ordered]
    lot_ids = [lot.lot for lot in ordered]
    if len(set(lot_ids)) != len(lot_ids):
        raise ValueError(f"a lot appears twice among {sorted(lot_ids)}")
    picks: list[Pick] = []
    remaining = need
    with localcontext(EXACT):
        for lot, quantity in zip(ordered, on_hand, strict=True):
            if remaining == 0:
                break
            if quantity <= 0:
                continue
            taken = min(quantity, remaining)
            picks.append(Pick(lot.lot, taken))
            remaining -= taken
    short = remaining > 0
    if short and policy is NegativeStockPolicy.ALLOW:
        picks.append(Pick(UNKNOWN_LOT, remaining))
    return Allocation(tuple(picks), shortage=remaining, held=short and policy is NegativeStockPolicy.BLOCK)
