"""The planner page's snapshot (`/board/planner/data`): the live plan and the KPIs, read in one unit of work.

  * plan        the live plan (`planning.services.plans.live_plan`) in day buckets from today over
                HORIZON_DAYS, as `/planning/runs/live/...` computes it: nothing is stored.
  * at risk     the sales-order lines the plan covers after their due day (`dashboards.rules.planner`).
  * shortages   what runs short within `days` (default 7) from today, as `/planning/shortages`, each late
                demand with the orders it hits (its own order, and the sales-order lines above it).
  * to firm     the planned orders to release within `days`, past due included (firm them with
                `POST /planning/planned-orders/{id}/firm`, a planner's right: the board's key only reads).
  * KPIs        over the KPI_WINDOW up to now: on-time delivery of sales-order lines (due, promise), supplier
                scores best first, forecast accuracy per item worst first (`planning.services.kpis`).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy.orm import Session

from dashboards.rules.planner import orders_at_risk, orders_hit, to_firm
from planning.rules.mrp import PlanException, PlannedOrder
from planning.rules.pegging import orders_of
from planning.services import kpis, plans

HORIZON_DAYS = 28
SHORTAGE_DAYS = 7
KPI_WINDOW = timedelta(days=30)


@dataclass(frozen=True, slots=True)
class LateDemand:
    demand_id: str
    item: str
    due: date
    covered_on: date | None
    quantity: Decimal
    orders_hit: list[str]


@dataclass(frozen=True, slots=True)
class Shortage:
    item: str
    late_demands: list[LateDemand]
    below_safety_stock: list[dict]


@dataclass(frozen=True, slots=True)
class PlannerBoard:
    generated_at: datetime
    days: int
    at_risk: list[PlanException]
    shortages: list[Shortage]
    to_firm: list[PlannedOrder]
    kpis: kpis.Kpis


def snapshot(session: Session, now: datetime | None = None, days: int = SHORTAGE_DAYS) -> PlannerBoard:
    """The planner page as of `now` (default: the clock), from one snapshot of the database."""
    session.connection(execution_options={"isolation_level": "REPEATABLE READ"})  # plan and KPIs agree
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    live = plans.live_plan(session, today, "day", HORIZON_DAYS, now)
    demands = {demand.id: demand for demand in live.plan.demands}
    order_of = orders_of(live.plan.demands)
    short = [Shortage(entry["item_id"], [
        LateDemand(late["demand_id"], entry["item_id"], late["due"], late["covered_on"], late["quantity"],
                   orders_hit(late["demand_id"], demands, live.plan.pegs, order_of)) for late in entry["late_demands"]],
        entry["below_safety_stock"]) for entry in plans.shortages(plans.live_view(live), today, days)]
    found = kpis.board_kpis(session, kpis.KpiParameters(now - KPI_WINDOW, now, now))
    session.commit()
    return PlannerBoard(now, days, orders_at_risk(live.plan.exceptions, demands), short,
                        to_firm(live.plan.planned_orders, today, days), found)
