"""Low-level codes: an item's deepest level in any BOM (end items 0, their components 1, …).

MRP nets an item once, after every parent that can place dependent demand on it: processing items by
ascending low-level code guarantees it. A component used both directly under a product (level 1) and
under a sub-assembly (level 2) has code 2, and is netted once with both demands.

Every BOM line counts, whatever its effective dates: a level must not change with the day a plan runs.
A cycle makes levels undefined, so it is an error naming the items on it.
"""

from __future__ import annotations

from collections.abc import Iterable
from graphlib import CycleError, TopologicalSorter

from inventory.rules.bom import Boms, lines_on_cycles


def low_level_codes(boms: Boms, items: Iterable[str] = ()) -> dict[str, int]:
    """Each item of the BOMs, and of `items` (0 when in no BOM), with its low-level code."""
    parents_of: dict[str, set[str]] = {}
    for parent, lines in boms.items():
        parents_of.setdefault(parent, set())
        for line in lines:
            parents_of.setdefault(line.component, set()).add(parent)
    for item in items:
        parents_of.setdefault(item, set())
    try:
        order = list(TopologicalSorter(parents_of).static_order())
    except CycleError:
        links = sorted({(parent, line.component) for parent, lines in boms.items() for line in lines})
        cycle = next(iter(lines_on_cycles(links).values()))
        raise ValueError(f"BOM cycle: {' → '.join(cycle)}") from None
    codes: dict[str, int] = {}
    for item in order:  # every parent comes before its components
        codes[item] = max((codes[parent] + 1 for parent in parents_of[item]), default=0)
    return codes
