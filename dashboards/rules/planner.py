"""The planner page's selections from a plan (what each list means: `dashboards.services.planner`). Pure: no
I/O, no clock; `today` is passed in.

- orders at risk: the sales-order lines the plan covers after their due day (its `demand_late` messages about a
  sales-order demand), latest cover first;
- the orders a late demand hits: the order it belongs to (a component need of a work order or a planned order),
  and every sales-order line that order serves, up the pegs through every level;
- planned orders to firm: the planned orders to release before `today + days` (past due included), earliest first.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import date, timedelta

from planning.rules.mrp import Demand, Peg, PlanException, PlannedOrder
from planning.rules.pegging import pegged_up

DEMAND_LATE = "demand_late"


def orders_at_risk(exceptions: Iterable[PlanException], demands: Mapping[str, Demand]) -> list[PlanException]:
    """The late sales-order lines, the one covered latest (or never) first, then by due day and id."""
    late = [e for e in exceptions if e.kind == DEMAND_LATE and e.reference in demands
            and demands[e.reference].kind == "sales_order"]
    return sorted(late, key=lambda e: (e.to is not None, -(e.to - e.on).days if e.to else 0, e.on, e.reference))


def orders_hit(demand_id: str, demands: Mapping[str, Demand], pegs: Sequence[Peg], order_of: Mapping[str, str]) -> list[str]:
    """The order a late demand belongs to, then the sales-order lines above it; a sales-order line is itself."""
    demand = demands.get(demand_id)
    if demand is not None and demand.kind == "sales_order":
        return [demand_id]
    owner = order_of.get(demand_id)
    if owner is None:
        return []
    above = {step.peg.demand for step in pegged_up(owner, pegs, order_of)}
    return [owner, *sorted(need for need in above if need in demands and demands[need].kind == "sales_order")]


def to_firm(planned: Iterable[PlannedOrder], today: date, days: int) -> list[PlannedOrder]:
    """Planned orders released before today + `days`, past due ones included; by release day, then id."""
    until = today + timedelta(days=days)
    return sorted((order for order in planned if order.release < until), key=lambda order: (order.release, order.id))
