"""Walking the pegs through the levels, both ways.

Down from a demand: the supplies pegged to it; for each that is an order with components (a planned
make order, or a released work order whose component needs were planned), the supplies pegged to those
components' demands, and so on to bought items and stock. Up from a supply: the demands it serves; for
each that is a component need of an order, the demands that order serves, and so on to the sales-order
lines and forecasts at the top. Each step is a peg with its depth (0 = the one asked about), level by
level. The BOMs have no cycle, so every walk ends.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from typing import NamedTuple

from planning.rules.mrp import Demand, Peg


class PegStep(NamedTuple):
    depth: int
    peg: Peg


def orders_of(demands: Iterable[Demand]) -> dict[str, str]:
    """Each component demand's id with the order it belongs to: what links the levels."""
    return {demand.id: demand.parent_supply for demand in demands if demand.parent_supply is not None}


def pegged_down(demand_id: str, pegs: Sequence[Peg], order_of: Mapping[str, str]) -> list[PegStep]:
    """Every peg below a demand, level by level."""
    by_demand: dict[str, list[Peg]] = {}
    for peg in pegs:
        by_demand.setdefault(peg.demand, []).append(peg)
    needs_of: dict[str, list[str]] = {}
    for need, order in order_of.items():
        needs_of.setdefault(order, []).append(need)
    steps: list[PegStep] = []
    pending = deque([(0, demand_id)])
    while pending:
        depth, current = pending.popleft()
        for peg in by_demand.get(current, []):
            steps.append(PegStep(depth, peg))
            pending.extend((depth + 1, need) for need in needs_of.get(peg.supply, []))
    return steps


def pegged_up(supply_id: str, pegs: Sequence[Peg], order_of: Mapping[str, str]) -> list[PegStep]:
    """Every peg above a supply, level by level."""
    by_supply: dict[str, list[Peg]] = {}
    for peg in pegs:
        by_supply.setdefault(peg.supply, []).append(peg)
    steps: list[PegStep] = []
    pending = deque([(0, supply_id)])
    while pending:
        depth, current = pending.popleft()
        for peg in by_supply.get(current, []):
            steps.append(PegStep(depth, peg))
            parent = order_of.get(peg.demand)
            if parent is not None:
                pending.append((depth + 1, parent))
    return steps
