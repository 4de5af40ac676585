"""The plan's shortages as alerts: the time-phased purchase suggestions beside the inventory's safety-stock ones.

The inventory's `safety_stock` alert suggests buying when an item's position is below its safety stock now; it
knows nothing of when the demand falls. `planned_shortage` is the same suggestion from the live plan: an item
holds while a demand due within the next `days` (default 7) is reached late by its supply, or the item is
projected below safety stock in that window (`plans.shortages`); its detail names the orders hit and the planned
orders to release now, its value the quantity they plan. It is a passthrough kind (`mes.rules.alerts`): every
round sends the complete list of items short, so an item no longer short clears. A plan that cannot be made (a
BOM cycle, a missing lead time) leaves the alerts as they are for that round and is logged.
"""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from kernel.db.models import make_engine
from kernel.logs import get_logger
from kernel.rules.refusals import Refused
from mes.rules.alerts import AlertKind, Fact, RuleBook, Transition, passthrough, reconcile
from mes.services.alerts import load_rules, log_transitions, open_alerts, store
from planning.services import live as maintained
from planning.services.plans import shortages

log = get_logger("planning.alerts")

DEFAULT_DAYS = 7
LISTED = 5  # late demands named in an alert's detail; the shortages route lists them all


def shortage_facts(found: list[dict]) -> list[Fact]:
    """One fact per item short: what is late or below safety stock, the orders hit, the planned orders to release."""
    facts = []
    for entry in found:
        item = entry["item_id"]
        late = [f"{d['quantity']} for {d['demand_id']} due {d['due']} (covered {d['covered_on'] or 'not in the horizon'})"
                for d in entry["late_demands"][:LISTED]]
        if len(entry["late_demands"]) > LISTED:
            late.append(f"{len(entry['late_demands']) - LISTED} more late")
        below = [f"{b['short_of_safety_stock']} below safety stock from {b['start']}" for b in entry["below_safety_stock"][:1]]
        hits = f"; hits {', '.join(entry['orders_hit'])}" if entry["orders_hit"] else ""
        orders = entry["planned_orders"]
        suggested = sum((order["quantity"] for order in orders), Decimal(0))
        plan = ("; suggest " + ", ".join(f"{order['kind']} {order['quantity']} ({order['id']}, release {order['release']})"
                                         for order in orders)) if orders else ""
        facts.append(Fact(item, f"{item}: {'; '.join(late + below)}{hits}{plan}", suggested))
    return facts


def evaluate_shortages(session: Session, now: datetime | None = None, days: int = DEFAULT_DAYS) -> list[Transition]:
    """One round of the planned_shortage alerts; returns the transitions stored (committed)."""
    now = now or datetime.now(UTC)
    today = now.astimezone(UTC).date()
    # the maintained live plan (four weeks of days, as GET /planning/shortages reads it: later orders place demand in
    # the window), brought up to date with the marks first, not a regeneration every round
    facts = shortage_facts(shortages(maintained.view(session, now), today, days))
    current = open_alerts(session)
    conditions = passthrough(RuleBook(load_rules(session)), AlertKind.PLANNED_SHORTAGE, facts, current)
    stored = store(session, reconcile(current, conditions, now))
    session.commit()
    return stored


class ShortageAlerts:
    """The core's job for the planned_shortage alerts, in a database connection of its own."""

    def __init__(self, database_url: str, days: int = DEFAULT_DAYS):
        self.engine = make_engine(database_url)
        self.days = days

    def round(self) -> None:
        try:
            with Session(self.engine) as session:
                log_transitions(evaluate_shortages(session, days=self.days))
        except Refused as refusal:
            log.warning("no plan to take shortages from; alerts left as they are", reason=str(refusal))
        except SQLAlchemyError as error:
            log.warning("shortage alert round failed; tried again next round", error=str(error))

    def close(self) -> None:
        self.engine.dispose()


