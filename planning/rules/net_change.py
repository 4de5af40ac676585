"""Net change: replanning only the items a change touched, and the items below them, in low-level-code order.

A plan is its items' parts (`mrp.ItemPlan`), and an item's part depends only on its own input (on hand,
receipts, independent demand, policy) and on the dependent demand its parents' planned orders place on it.
So after a change to some items' input (the dirty items) the plan is brought up to date by netting again,
in ascending low-level code:

- every dirty item, from its new input;
- every item below a dirty item whose dependent demand changed: a parent replanned to the same planned
  orders places the same demand, and its components keep their parts (the change stops there);

each with `mrp.net_item`, the netting a full regeneration runs. The candidates are the dirty items and
everything below them (`replan_order`); how far the change really travels is known only while netting.
Net change gives exactly the parts a full regeneration from the same input would
(`test_net_change_after_any_changes_equals_a_full_regeneration`).

The BOMs, and so the low-level codes, must be those of the previous plan: a change to a BOM (or to what
every item's lead time depends on, like the shift calendar) needs a full regeneration.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from decimal import Decimal

from inventory.rules.bom import Boms
from planning.rules.mrp import Demand, ItemPlan, PlanInput, Prepared, Supply, net_item, policy_of, prepare

ZERO = Decimal(0)


def parents_of(boms: Boms) -> dict[str, list[str]]:
    """Each component's parents, in no particular order (callers sort by low-level code)."""
    found: dict[str, set[str]] = {}
    for parent, lines in boms.items():
        for line in lines:
            found.setdefault(line.component, set()).add(parent)
    return {component: sorted(parents) for component, parents in found.items()}


def replan_order(dirty: Iterable[str], boms: Boms, codes: Mapping[str, int]) -> list[str]:
    """The dirty items and every item below them in the BOMs, each once, by ascending low-level code (then
    name): the order in which every parent is netted before its components. An item the codes do not know
    (new since they were computed) comes first, with code 0."""
    seen: set[str] = set()
    pending = list(dirty)
    while pending:
        item = pending.pop()
        if item in seen:
            continue
        seen.add(item)
        pending.extend(line.component for line in boms.get(item, ()))
    return sorted(seen, key=lambda item: (codes.get(item, 0), item))


def net_change(previous: Mapping[str, ItemPlan], given: PlanInput, dirty: Collection[str], codes: Mapping[str, int],
               placed_above: Mapping[str, Sequence[Demand]] | None = None,
               parents: Mapping[str, Sequence[str]] | None = None) -> dict[str, ItemPlan]:
    """The parts that change: the dirty items' and those below them whose dependent demand changed.

    `previous`: the parts of the plan being brought up to date, at least those of every item in
    `replan_order(dirty)`; `placed_above`: what the other parents of those items placed (each parent's
    `placed`, at least on those items), when `previous` lacks their parts. `given`: the new input of the dirty
    items (on hand, demands, forecasts and receipts of those items; the rest is ignored), with the BOMs, the
    policies of every item replanned, the horizon and today of the previous plan. `codes`: the previous
    plan's; `parents`: `parents_of(given.boms)`, when the caller keeps it."""
    prepared = prepare(given, codes)
    parents = parents_of(given.boms) if parents is None else parents
    above = placed_above or {}
    changed: dict[str, ItemPlan] = {}
    moved: set[str] = set()  # items whose placed demand changed: their components are replanned
    for item in replan_order(dirty, given.boms, codes):
        item_parents = sorted(parents.get(item, ()), key=lambda parent: (codes.get(parent, 0), parent))
        if item not in dirty and not any(parent in moved for parent in item_parents):
            continue
        before = previous.get(item)
        if item in dirty or before is None:
            own, receipts = _own_input(item, prepared)
            on_hand = given.on_hand.get(item, ZERO)
        else:
            own, receipts, on_hand = before.own_demands(), before.receipts(), before.record.on_hand
        dependent = [demand for parent in item_parents for demand in _placed(parent, changed, previous, above)
                     if demand.item == item]
        part = net_item(item, codes.get(item, 0), on_hand, policy_of(item, given, prepared), [*own, *dependent],
                        receipts, given.boms.get(item, ()), given.horizon, given.today)
        changed[item] = part
        if before is None or part.placed != before.placed:
            moved.add(item)
    return changed


def _own_input(item: str, prepared: Prepared) -> tuple[list[Demand], list[Supply]]:
    return prepared.demands_of.get(item, []), prepared.receipts_of.get(item, [])


def _placed(parent: str, changed: Mapping[str, ItemPlan], previous: Mapping[str, ItemPlan],
            above: Mapping[str, Sequence[Demand]]) -> Sequence[Demand]:
    part = changed.get(parent) or previous.get(parent)
    return part.placed if part is not None else above.get(parent, ())
