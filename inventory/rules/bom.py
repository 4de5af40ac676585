"""Bill of materials → what one unit of an item consumes on a given date.

A BOM line says one unit of `parent` takes `quantity_per` of `component`, plus `scrap_factor` more for
what the process loses (0.02 = 2 % extra). A phantom component is never stocked (a kit that exists only
on the drawing), so its own BOM is consumed in its place. Any other component, a bought part or a
stocked sub-assembly, is consumed as itself: its own BOM was consumed when it was made.

The result of `explode` is what a work order snapshots at release, so later BOM edits do not change
an order already on the floor.

Ambiguities, stated:
- Scrap compounds through phantom levels: each level's quantity_per × (1 + scrap_factor) multiplies
  the levels above it.
- A line counts from `effective_from` (inclusive) to `effective_to` (exclusive); None leaves that end
  open. An engineering change dated 1 March therefore ends the old line and starts the new one on
  1 March with neither overlap nor gap.
- A component reached by several paths (directly and through a phantom) is summed into one quantity.
- A phantom with no line effective on the date is an error, not an empty kit: consuming nothing for
  it would understate consumption for the whole life of the work order.
- A cycle anywhere below the item, through phantoms or stocked sub-assemblies, among the lines
  effective on the date, is an error: no such product can be built.
- An item with no BOM lines consumes nothing (a bought item, or a make item not yet engineered).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from decimal import Decimal, localcontext

from kernel.rules.quantities import EXACT, exact_quantity

Boms = Mapping[str, Sequence["BomLine"]]  # BOM lines by parent item
Link = tuple[str, str]  # (parent, component): a BOM line as the cycle checks see it, whatever its quantities


@dataclass(frozen=True, slots=True)
class BomLine:
    parent: str
    component: str
    quantity_per: Decimal
    scrap_factor: Decimal = Decimal(0)
    effective_from: date | None = None
    effective_to: date | None = None  # exclusive
    phantom: bool = False

    def __post_init__(self) -> None:
        # frozen: normalising an int quantity to Decimal has to bypass the dataclass's own setattr
        object.__setattr__(self, "quantity_per", exact_quantity(self.quantity_per, "quantity_per"))
        object.__setattr__(self, "scrap_factor", exact_quantity(self.scrap_factor, "scrap_factor"))
        if self.quantity_per <= 0:
            raise ValueError(f"{self.parent} → {self.component}: quantity_per must be positive, got {self.quantity_per}")
        if self.scrap_factor < 0:
            raise ValueError(f"{self.parent} → {self.component}: scrap_factor must not be negative, got {self.scrap_factor}")
        if self.effective_from is not None and self.effective_to is not None and self.effective_from >= self.effective_to:
            raise ValueError(f"{self.parent} → {self.component}: effective_from {self.effective_from} "
                             f"is not before effective_to {self.effective_to}")

    def effective_on(self, on: date) -> bool:
        return (self.effective_from is None or self.effective_from <= on) and (self.effective_to is None or on < self.effective_to)

    @property
    def gross_quantity(self) -> Decimal:
        """What one parent unit really takes: quantity_per plus the scrap allowance."""
        with localcontext(EXACT):
            return self.quantity_per * (1 + self.scrap_factor)


def effective_lines(item: str, boms: Boms, on: date | None) -> list[BomLine]:
    """The item's BOM lines in force on `on`; every line of the item when `on` is None."""
    return [line for line in boms.get(item, ()) if on is None or line.effective_on(on)]


def find_cycle(item: str, boms: Boms, on: date | None = None) -> tuple[str, ...] | None:
    """A cycle reachable from `item`, as the items along it (first == last), or None: the shortest one
    through the first line on a cycle, the item's own lines first (so a cycle through the item starts there).

    Only lines effective on `on` count; with `on` None every line counts, whatever its dates, which is
    the check to run when a BOM line is added.
    """
    return next((cycle for _, cycle in _cycles(_lines_below(item, boms, on), ())), None)


def lines_on_cycles(lines: Iterable[Link], others: Iterable[Link] = ()) -> dict[Link, tuple[str, ...]]:
    """Each of `lines` (parent, component) that lies on a cycle of `lines` and `others` together, with the
    shortest cycle through it, (parent, component, …, parent), in the order of `lines`. A line naming its
    parent as its component is the cycle (parent, parent)."""
    return dict(_cycles(lines, others))


def _cycles(lines: Iterable[Link], others: Iterable[Link]) -> Iterator[tuple[Link, tuple[str, ...]]]:
    """`lines_on_cycles` one line at a time: each shortest cycle is searched only when asked for."""
    lines = list(dict.fromkeys(lines))
    graph: dict[str, set[str]] = {}
    for parent, component in [*others, *lines]:
        graph.setdefault(parent, set()).add(component)
    component_of = _strongly_connected_components(graph)
    for parent, component in lines:
        if component_of[parent] == component_of[component]:
            yield (parent, component), (parent, *_shortest_path(graph, component, parent))


def _lines_below(item: str, boms: Boms, on: date | None) -> list[Link]:
    """The (parent, component) of every line reachable from `item`, each once, nearest first."""
    lines: dict[Link, None] = {}
    seen, pending = {item}, deque([item])
    while pending:
        parent = pending.popleft()
        for line in effective_lines(parent, boms, on):
            lines[(parent, line.component)] = None
            if line.component not in seen:
                seen.add(line.component)
                pending.append(line.component)
    return list(lines)


def _strongly_connected_components(graph: Mapping[str, Collection[str]]) -> dict[str, int]:
    """Each node's strongly connected component (Kosaraju, iterative: a deep BOM must not hit the recursion limit)."""
    finished: list[str] = []
    seen: set[str] = set()
    for root in sorted(graph):
        if root in seen:
            continue
        seen.add(root)
        stack = [(root, iter(sorted(graph.get(root, ()))))]
        while stack:
            node, children = stack[-1]
            child = next((child for child in children if child not in seen), None)
            if child is None:
                stack.pop()
                finished.append(node)
            else:
                seen.add(child)
                stack.append((child, iter(sorted(graph.get(child, ())))))
    reverse: dict[str, set[str]] = {}
    for parent, successors in graph.items():
        for child in successors:
            reverse.setdefault(child, set()).add(parent)
    component_of: dict[str, int] = {}
    for root in reversed(finished):
        if root in component_of:
            continue
        component_of[root] = len(component_of)
        identity, pending = component_of[root], [root]
        while pending:
            for parent in reverse.get(pending.pop(), ()):
                if parent not in component_of:
                    component_of[parent] = identity
                    pending.append(parent)
    return component_of


def _shortest_path(graph: Mapping[str, Collection[str]], source: str, target: str) -> list[str]:
    """Nodes from source to target, both included (the caller knows one exists)."""
    came_from: dict[str, str | None] = {source: None}
    queue = deque([source])
    while target not in came_from:
        node = queue.popleft()
        for child in sorted(graph.get(node, ())):
            if child not in came_from:
                came_from[child] = node
                queue.append(child)
    path: list[str] = []
    step: str | None = target
    while step is not None:
        path.append(step)
        step = came_from[step]
    return path[::-1]


def explode(item: str, boms: Boms, on: date) -> dict[str, Decimal]:
    """Stocked components one unit of `item` consumes on `on`, phantoms replaced by their own BOMs."""
    cycle = find_cycle(item, boms, on)
    if cycle is not None:
        raise ValueError(f"BOM cycle on {on}: {' → '.join(cycle)}")
    per_unit: dict[str, Decimal] = {}
    with localcontext(EXACT):
        _add_components(item, Decimal(1), boms, on, per_unit)
    return per_unit


def _add_components(parent: str, parent_quantity: Decimal, boms: Boms, on: date, per_unit: dict[str, Decimal]) -> None:
    for line in effective_lines(parent, boms, on):
        quantity = parent_quantity * line.gross_quantity
        if not line.phantom:
            per_unit[line.component] = per_unit.get(line.component, Decimal(0)) + quantity
        elif effective_lines(line.component, boms, on):
            _add_components(line.component, quantity, boms, on, per_unit)
        else:
            raise ValueError(f"phantom {line.component!r} (in {parent!r}) has no BOM lines effective on {on}")
