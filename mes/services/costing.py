"""Work-order actual cost, live: the valuation of what backflush consumed, metered energy at each
machine's tariff, run time at its work centre's hourly rate, and booked labour.

Run time is the time the machine reported `running` (`machine_states`) inside the order's dispatch
windows on that machine, the API's and the PLC's merged so that no second is counted twice
(`mes.rules.states.running_seconds`). Energy is each attributed production interval's Wh priced at the
instant it was counted (`last_ts`), the rule attribution uses. A machine whose work centre names no
tariff uses the tariff `default`; with no tariff at all, energy costs 0 (stated in the cost's `notes`).
The cost itself is assembled by `inventory.rules.costing.actual_cost`.

Works on a Session inside the caller's transaction, so the valuation worker can price finished-goods
receipts with it in the pass that values them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.rules.costing import MachineUse, StandardCost, WorkOrderCost, actual_cost, variances
from inventory.services import valuation
from inventory.services.costing import DEFAULT_TARIFF, load_tariff, standard_cost
from inventory.services.masterdata import get
from kernel.rules.refusals import Conflict
from mes.models import WorkOrder, WorkOrderLabour
from mes.rules.shifts import union
from mes.rules.states import StateChange, derive_intervals, running_seconds

# Run time is read from the states a machine reported; a silence is not a stop here (the downtime
# rules judge communication loss), so the offline timeout is set beyond any order's length.
_NEVER_OFFLINE = timedelta(days=36_500)


@dataclass(frozen=True)
class ActualCost:
    cost: WorkOrderCost
    run_seconds: Decimal
    energy_wh: int
    notes: tuple[str, ...]


def work_order_cost(session: Session, work_order_id: str, *, until: datetime | None = None) -> ActualCost:
    """The order's actual cost so far (up to `until`, default now)."""
    until = until or datetime.now(UTC)
    order = {"order": work_order_id}
    material = session.execute(text(
        """SELECT coalesce(-sum(v.value), 0) FROM stock_values v JOIN stock_moves m ON m.id = v.move_id
           WHERE m.work_order_id = :order AND m.reason = 'backflush'"""), order).scalar_one()
    labour = session.execute(select(WorkOrderLabour.hours, WorkOrderLabour.rate)
                             .where(WorkOrderLabour.work_order_id == work_order_id).order_by(WorkOrderLabour.id)).all()
    made = session.execute(text(
        """SELECT machine_id, last_ts, good, scrap, energy_wh FROM production_attributions
           WHERE work_order_id = :order ORDER BY last_ts"""), order).all()
    dispatched = session.scalars(text("SELECT DISTINCT machine_id FROM dispatches WHERE work_order_id = :order"), order).all()
    notes: list[str] = []
    uses: list[MachineUse] = []
    for machine_id in sorted({row.machine_id for row in made} | set(dispatched)):
        rate, tariff_id = session.execute(text(
            """SELECT coalesce(w.hourly_rate, 0), coalesce(w.tariff_id, :default) FROM machines m
               LEFT JOIN work_centres w USING (work_centre_id) WHERE m.machine_id = :machine"""),
            {"default": DEFAULT_TARIFF, "machine": machine_id}).one()
        tariff = load_tariff(session, tariff_id)
        readings = tuple((row.last_ts, row.energy_wh) for row in made if row.machine_id == machine_id and row.energy_wh)
        if tariff is None and readings:
            notes.append(f"{machine_id}: no energy tariff {tariff_id!r}; its energy is costed at 0")
        uses.append(MachineUse(tariff, readings, run_seconds(session, machine_id, work_order_id, until), rate))
    cost = actual_cost(material, good=sum(row.good for row in made), scrap=sum(row.scrap for row in made),
                       machines=uses, labour=labour)
    return ActualCost(cost, sum((use.run_seconds for use in uses), Decimal(0)), sum(row.energy_wh for row in made), tuple(notes))


def run_seconds(session: Session, machine_id: str, work_order_id: str, until: datetime) -> Decimal:
    """Seconds the machine reported running while the order was dispatched to it, up to `until`."""
    windows = union((row.start_ts, row.end_ts or until) for row in session.execute(text(
        """SELECT start_ts, end_ts FROM dispatches WHERE machine_id = :machine AND work_order_id = :order AND start_ts < :until"""),
        {"machine": machine_id, "order": work_order_id, "until": until}))
    if not windows:
        return Decimal(0)
    changes = [StateChange(row.ts, row.state_code, row.fault_code) for row in session.execute(text(
        """(SELECT ts, state_code, fault_code FROM machine_states WHERE machine_id = :machine AND ts <= :from
            ORDER BY ts DESC LIMIT 1)
           UNION ALL
           SELECT ts, state_code, fault_code FROM machine_states WHERE machine_id = :machine AND ts > :from AND ts < :to"""),
        {"machine": machine_id, "from": windows[0].start, "to": windows[-1].end})]
    return running_seconds(derive_intervals(machine_id, changes, [], until, _NEVER_OFFLINE), windows)


def running_cost(session: Session, work_order_id: str) -> WorkOrderCost:
    """The order's cost so far: what inventory values its finished-goods receipts at (`valuation.ProductionCost`)."""
    return work_order_cost(session, work_order_id).cost


def work_order_costing(session: Session, work_order_id: str) -> dict:
    """Actual cost so far, standard, variances, and how much of the cost the finished goods carry."""
    work_order = get(session, WorkOrder, work_order_id, "work order")
    valuation.value_queued(session, running_cost)
    actual = work_order_cost(session, work_order_id)
    received = session.execute(text(
        """SELECT coalesce(sum(v.value), 0) FROM stock_values v JOIN stock_moves m ON m.id = v.move_id
           WHERE m.work_order_id = :order AND m.reason = 'production receipt'"""), {"order": work_order_id}).scalar_one()
    try:
        standard: StandardCost | None = standard_cost(session, work_order.item_id)
        notes = list(actual.notes)
    except Conflict as error:
        standard, notes = None, [*actual.notes, str(error)]
    session.commit()
    return {
        "work_order_id": work_order_id, "actual": actual.cost, "run_seconds": actual.run_seconds, "energy_wh": actual.energy_wh,
        "standard_per_unit": standard, "variances": None if standard is None else variances(actual.cost, standard),
        "finished_goods_value": received, "not_absorbed": actual.cost.total - received, "notes": notes,
    }


def book_labour(session: Session, work_order_id: str, hours: Decimal, rate: Decimal, actor: str | None) -> dict:
    get(session, WorkOrder, work_order_id, "work order")
    session.add(WorkOrderLabour(work_order_id=work_order_id, hours=hours, rate=rate, actor=actor))
    session.commit()
    return {"work_order_id": work_order_id, "hours": hours, "rate": rate}

