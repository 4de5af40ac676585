"""Inventory valuation: what an item's stock is worth, by moving weighted average or FIFO.

An item is valued as a whole, across all its locations and lots: a transfer changes neither its
quantity nor its value, so only receipts and issues are posted here. `post` takes the item's state
(`ItemValuation`) and one event and gives the new state and the valued entries the event books. The
entries are the valuation ledger: at every step Σ entry quantities = quantity on hand and Σ entry
values = value on hand, exactly.

Sign convention: an entry's `quantity` and `value` are what it changes on hand. A receipt is +, an
issue is − (the value that leaves stock, i.e. the cost of what was used), a true-up moves value only
(quantity 0) and is − when the receipt that covered a shortfall cost more than the provisional cost.

Moving weighted average: a receipt into positive stock recomputes the average as (value on hand +
receipt value) / (quantity on hand + receipt quantity). A receipt into zero or negative stock takes
the incoming cost as the average. Issues are priced at the current average.

FIFO: each receipt is a layer (its quantity, its unit cost, the value it is carried at). An issue
consumes layers oldest first; each layer consumed, wholly or partly, is its own issue entry at that
layer's cost. Receipts are never merged into one another's layers, so the layers on hand are the tails
of the latest receipts.

Negative stock: a quantity issued beyond what is on hand is priced at the last known cost (moving
average: the average; FIFO: the latest receipt's cost, which is the cost of the layer just emptied)
and owed as a shortfall layer at that provisional cost. If no cost was ever known (an issue before
any receipt), the caller's `fallback_cost` (the item's standard cost, default 0) is the provisional
cost. The next receipt first covers the shortfall, oldest first; the covered quantity is re-priced at
the receipt's cost by a 'true_up' entry of its own, (provisional value of the covered quantity) −
(covered quantity × receipt cost, rounded), so that what was issued ends valued at the receipt's
cost. What is left of the receipt goes on hand at its cost: a new FIFO layer, or the new average.

Rounding: quantities are never rounded. A value is quantity × unit cost rounded to `PLACES` (6)
decimal places, ROUND_HALF_EVEN, once per entry; the moving average is value / quantity rounded the
same way, which is also the precision of the ledger's unit_cost column, so what the ledger shows is
what was used. Value on hand is the exact sum of the entries, and whatever takes the last of a layer
or of the average stock (or of a shortfall layer) takes exactly the value it is carried at, so
emptying stock leaves exactly zero. A receipt's unit cost is taken as given, not rounded.

Ambiguity, stated:
- FIFO layers are receipts, not lots: an issue from a particular lot still consumes the oldest
  layer. Valuation follows the money, lot traceability stays in the stock ledger.
- An issue that crosses zero books two entries, the part on hand and the part beyond stock, so the
  ledger shows which quantity is provisional (moving average: both at the average).
- The true-up is defined on rounded values rather than as covered × (receipt cost − provisional
  cost) rounded: the two can differ by 0.000001 and only this one leaves the covered quantity at
  exactly (covered × receipt cost) rounded. A true-up of zero (same cost) is not posted.
- A receipt smaller than the shortfall re-prices only what it covers; the rest stays at its
  provisional cost until a later receipt covers it. Issues beyond stock after that receipt are
  priced at its cost (now the last known one) and owed behind the older shortfall.
- A partial take never takes more than the value the layer is carried at. Rounding can otherwise
  make a take of 0.000001-scale values exceed what is left; the clamp keeps value on hand ≥ 0
  whenever quantity on hand is ≥ 0.
- Receipts need a unit cost (zero is allowed: free samples). Changing an item's method is not a
  valuation event: the service starts the new method from an opening state.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from decimal import Decimal, localcontext
from enum import Enum
from fractions import Fraction
from typing import NamedTuple, cast

from kernel.rules.quantities import EXACT, exact_quantity, positive_quantity

PLACES = 6  # decimal places of every value and of the moving average, as numeric(18, 6) holds them


class ValuationMethod(str, Enum):
    MOVING_AVERAGE = "moving_average"
    FIFO = "fifo"


class EntryKind(str, Enum):
    RECEIPT = "receipt"
    ISSUE = "issue"
    TRUE_UP = "true_up"


class Layer(NamedTuple):
    """A FIFO receipt layer still on hand, or a quantity issued beyond stock (a shortfall)."""

    quantity: Decimal  # positive
    unit_cost: Decimal  # the receipt's cost, or the provisional cost of a shortfall
    value: Decimal  # what it is carried at: the exact remainder, which a last take takes whole


class Receipt(NamedTuple):
    quantity: Decimal | int
    unit_cost: Decimal | int


class Issue(NamedTuple):
    quantity: Decimal | int


class ValuedEntry(NamedTuple):
    kind: EntryKind
    quantity: Decimal  # change in quantity on hand: + receipt, − issue, 0 true-up
    value: Decimal  # change in value on hand
    unit_cost: Decimal  # receipt: its cost; issue: the cost it was priced at; true-up: the receipt cost re-pricing
    revalued_quantity: Decimal = Decimal(0)  # true-up: the quantity issued beyond stock that it re-prices


@dataclass(frozen=True)
class ItemValuation:
    """One item's valuation state; `ItemValuation(method)` is an item with nothing ever received.

    Built from plain values (what `as_fields` gives, layers as (quantity, unit cost, value) triples)
    and checked: a state read back from storage that does not add up is refused.
    """

    method: ValuationMethod
    quantity: Decimal = Decimal(0)  # negative when more was issued than was on hand
    value: Decimal = Decimal(0)
    last_known_cost: Decimal | None = None  # moving average: the average; FIFO: the latest receipt's cost
    layers: tuple[Layer, ...] = ()  # FIFO layers on hand, oldest first; always empty for moving average
    shortfall: tuple[Layer, ...] = ()  # issued beyond stock at provisional costs, oldest first

    def __post_init__(self) -> None:
        normalised = {
            "method": ValuationMethod(self.method),
            "quantity": exact_quantity(self.quantity, "quantity on hand"),
            "value": exact_quantity(self.value, "value on hand"),
            "last_known_cost": None if self.last_known_cost is None else _unit_cost(self.last_known_cost, "last known cost"),
            "layers": _layers(self.layers, "stock layer"),
            "shortfall": _layers(self.shortfall, "shortfall"),
        }
        for name, field in normalised.items():
            object.__setattr__(self, name, field)
        problem = self._inconsistency()
        if problem:
            raise ValueError(f"this item's valuation does not add up: {problem}")

    def _inconsistency(self) -> str | None:
        with localcontext(EXACT):
            stocked, stocked_value = _total(self.layers)
            owed, owed_value = _total(self.shortfall)
        if self.method is ValuationMethod.MOVING_AVERAGE and self.layers:
            return "a moving-average item keeps no FIFO layers"
        if self.quantity < 0:
            if self.layers or owed != -self.quantity or owed_value != -self.value:
                return (f"stock of {self.quantity} worth {self.value} should be exactly what is owed at provisional cost "
                        f"({owed} worth {owed_value}), with nothing on hand")
            return None
        if self.shortfall:
            return f"nothing can be owed while {self.quantity} is on hand"
        if self.method is ValuationMethod.FIFO and (stocked != self.quantity or stocked_value != self.value):
            return f"stock of {self.quantity} worth {self.value} differs from its layers ({stocked} worth {stocked_value})"
        if self.value < 0 or (self.quantity == 0 and self.value != 0):
            return f"stock of {self.quantity} cannot be worth {self.value}"
        if self.quantity > 0 and self.last_known_cost is None:
            return f"stock of {self.quantity} is on hand but its cost is unknown"
        return None

    def as_fields(self) -> dict[str, object]:
        """The state as plain values; `ItemValuation(**state.as_fields()) == state`."""
        return {"method": self.method.value, "quantity": self.quantity, "value": self.value,
                "last_known_cost": self.last_known_cost, "layers": [list(layer) for layer in self.layers],
                "shortfall": [list(layer) for layer in self.shortfall]}


class Posting(NamedTuple):
    state: ItemValuation
    entries: tuple[ValuedEntry, ...]


def post(state: ItemValuation, event: Receipt | Issue, fallback_cost: Decimal | int = 0) -> Posting:
    """The item's state after `event`, and the entries it books (Σ values = change in value on hand).

    `fallback_cost` prices an issue beyond stock only while no cost has ever been known.
    """
    if isinstance(event, Receipt):
        return _receive(state, positive_quantity(event.quantity, "receipt quantity"), _unit_cost(event.unit_cost, "receipt unit cost"))
    if isinstance(event, Issue):
        return _issue(state, positive_quantity(event.quantity, "issue quantity"), _unit_cost(fallback_cost, "fallback cost"))
    raise TypeError(f"only a Receipt or an Issue can be valued, not {type(event).__name__}")


def replay(initial: ItemValuation, events: Iterable[Receipt | Issue], fallback_cost: Decimal | int = 0) -> Posting:
    """`post` applied to each event in turn: the final state and every entry booked, in order."""
    state = initial
    entries: list[ValuedEntry] = []
    for event in events:
        state, booked = post(state, event, fallback_cost)
        entries.extend(booked)
    return Posting(state, tuple(entries))


def _receive(state: ItemValuation, quantity: Decimal, cost: Decimal) -> Posting:
    received = _rounded(Fraction(quantity) * Fraction(cost))
    covered, shortfall, _ = _take(state.shortfall, quantity)
    entries = [ValuedEntry(EntryKind.RECEIPT, quantity, received, cost)]
    with localcontext(EXACT):
        covered_quantity, provisional_value = _total(covered)
        covered_value = _rounded(Fraction(covered_quantity) * Fraction(cost))
        true_up = provisional_value - covered_value
        if true_up:
            entries.append(ValuedEntry(EntryKind.TRUE_UP, Decimal(0), true_up, cost, covered_quantity))
        new_quantity = state.quantity + quantity
        new_value = state.value + received + true_up
        layers = state.layers
        if state.method is ValuationMethod.FIFO and quantity > covered_quantity:
            layers += (Layer(quantity - covered_quantity, cost, received - covered_value),)
    last_known_cost = cost
    if state.method is ValuationMethod.MOVING_AVERAGE and state.quantity > 0:
        last_known_cost = _rounded(Fraction(new_value) / Fraction(new_quantity))
    return Posting(ItemValuation(state.method, new_quantity, new_value, last_known_cost, layers, shortfall), tuple(entries))


def _issue(state: ItemValuation, quantity: Decimal, fallback_cost: Decimal) -> Posting:
    if state.method is ValuationMethod.FIFO:
        on_hand = state.layers
    else:
        # stock on hand always has a known cost (ItemValuation refuses a state without one)
        on_hand = (Layer(state.quantity, cast(Decimal, state.last_known_cost), state.value),) if state.quantity > 0 else ()
    taken, left, beyond_stock = _take(on_hand, quantity)
    shortfall = state.shortfall
    if beyond_stock:
        cost = fallback_cost if state.last_known_cost is None else state.last_known_cost
        owed = Layer(beyond_stock, cost, _rounded(Fraction(beyond_stock) * Fraction(cost)))
        taken.append(owed)
        shortfall = _owe(shortfall, owed)
    entries = tuple(ValuedEntry(EntryKind.ISSUE, -part.quantity, -part.value, part.unit_cost) for part in taken)
    with localcontext(EXACT):
        new_quantity = state.quantity - quantity
        new_value = state.value - _total(taken)[1]
    layers = left if state.method is ValuationMethod.FIFO else ()
    return Posting(ItemValuation(state.method, new_quantity, new_value, state.last_known_cost, layers, shortfall), entries)


def _take(layers: Sequence[Layer], quantity: Decimal) -> tuple[list[Layer], tuple[Layer, ...], Decimal]:
    """`quantity` taken from the layers oldest first: the parts taken, the layers left, and what they lacked."""
    taken: list[Layer] = []
    left = list(layers)
    remaining = quantity
    with localcontext(EXACT):
        while remaining > 0 and left:
            layer = left[0]
            if layer.quantity <= remaining:
                taken.append(left.pop(0))
                remaining -= layer.quantity
                continue
            value = min(_rounded(Fraction(remaining) * Fraction(layer.unit_cost)), layer.value)
            taken.append(Layer(remaining, layer.unit_cost, value))
            left[0] = Layer(layer.quantity - remaining, layer.unit_cost, layer.value - value)
            remaining = Decimal(0)
    return taken, tuple(left), remaining


def _owe(shortfall: tuple[Layer, ...], owed: Layer) -> tuple[Layer, ...]:
    """The shortfall with `owed` added; merged into the newest one at the same cost so repeated issues
    while negative do not pile up one layer (and one true-up part) each."""
    if shortfall and shortfall[-1].unit_cost == owed.unit_cost:
        newest = shortfall[-1]
        with localcontext(EXACT):
            return (*shortfall[:-1], Layer(newest.quantity + owed.quantity, owed.unit_cost, newest.value + owed.value))
    return (*shortfall, owed)


def _total(layers: Iterable[Layer]) -> tuple[Decimal, Decimal]:
    """Σ quantity and Σ value; the caller runs it in EXACT."""
    quantity, value = Decimal(0), Decimal(0)
    for layer in layers:
        quantity += layer.quantity
        value += layer.value
    return quantity, value


def _rounded(amount: Fraction) -> Decimal:
    """`amount` to PLACES decimal places, half to even; computed on the exact fraction, so rounded once."""
    return Decimal(round(amount * 10 ** PLACES)).scaleb(-PLACES, EXACT)



def _unit_cost(cost: Decimal | int, what: str) -> Decimal:
    cost = exact_quantity(cost, what)
    if cost < 0:
        raise ValueError(f"{what} must not be negative, got {cost}")
    return cost


def _layers(layers: Iterable[Sequence[Decimal | int]], what: str) -> tuple[Layer, ...]:
    checked = []
    for raw in layers:
        if len(raw) != 3:
            raise ValueError(f"a {what} is (quantity, unit cost, value), got {raw!r}")
        layer = Layer(positive_quantity(raw[0], f"{what} quantity"), _unit_cost(raw[1], f"{what} unit cost"),
                      exact_quantity(raw[2], f"{what} value"))
        if layer.value < 0:
            raise ValueError(f"{what} value must not be negative, got {layer.value}")
        checked.append(layer)
    return tuple(checked)
