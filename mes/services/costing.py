"""Work-order actual cost, live: the valuation of what backflush consumed, metered energy at each
machine's tariff, run time at its work centre's hourly rate, and booked labour.

Run time is the time the machine reported `running` (`machine_states`) inside the order's dispatch
windows on that machine, the API's and the PLC's merged so that no second is counted twice. Energy is
each attributed production interval's Wh priced at the instant it was counted (`last_ts`), the rule
attribution uses. A machine whose work centre names no tariff uses the tariff `default`; with no
tariff at all, energy costs 0 (stated in the cost's `notes`).

Works on a psycopg connection inside the caller's transaction, so the valuation worker can price
finished-goods receipts with it in the pass that values them.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import psycopg

from sqlalchemy.orm import Session

from inventory.rules.costing import StandardCost, WorkOrderCost, energy_cost, machine_cost, variances
from inventory.services import valuation
from inventory.services.costing import DEFAULT_TARIFF, load_tariff, standard_cost
from inventory.services.masterdata import get
from kernel.rules.refusals import Conflict
from mes.models import WorkOrder, WorkOrderLabour
from mes.rules.states import Category, StateChange, derive_intervals

# Run time is read from the states a machine reported; a silence is not a stop here (the downtime
# rules judge communication loss), so the offline timeout is set beyond any order's length.
_NEVER_OFFLINE = timedelta(days=36_500)


@dataclass(frozen=True)
class ActualCost:
    cost: WorkOrderCost
    run_seconds: Decimal
    energy_wh: int
    notes: tuple[str, ...]


def work_order_cost(conn: psycopg.Connection, work_order_id: str, *, until: datetime | None = None) -> ActualCost:
    """The order's actual cost so far (up to `until`, default now)."""
    until = until or datetime.now(UTC)
    (material,) = conn.execute(
        """SELECT coalesce(-sum(v.value), 0) FROM stock_values v JOIN stock_moves m ON m.id = v.move_id
           WHERE m.work_order_id = %s AND m.reason = 'backflush'""", (work_order_id,)).fetchone()
    labour = conn.execute("SELECT coalesce(sum(hours * rate), 0) FROM work_order_labour WHERE work_order_id = %s",
                          (work_order_id,)).fetchone()[0]
    made = conn.execute(
        """SELECT machine_id, last_ts, good, scrap, energy_wh FROM production_attributions
           WHERE work_order_id = %s ORDER BY last_ts""", (work_order_id,)).fetchall()
    machines = sorted({row[0] for row in made} | {row[0] for row in conn.execute(
        "SELECT DISTINCT machine_id FROM dispatches WHERE work_order_id = %s", (work_order_id,))})
    notes: list[str] = []
    energy = machine = Decimal(0)
    run_total = Decimal(0)
    for machine_id in machines:
        rate, tariff_id = conn.execute(
            """SELECT coalesce(w.hourly_rate, 0), coalesce(w.tariff_id, %s) FROM machines m
               LEFT JOIN work_centres w USING (work_centre_id) WHERE m.machine_id = %s""",
            (DEFAULT_TARIFF, machine_id)).fetchone()
        tariff = load_tariff(conn, tariff_id)
        readings = [(ts, wh) for m, ts, _, _, wh in made if m == machine_id and wh]
        if tariff is None:
            if readings:
                notes.append(f"{machine_id}: no energy tariff {tariff_id!r}; its energy is costed at 0")
        else:
            energy += energy_cost(tariff, readings)
        seconds = run_seconds(conn, machine_id, work_order_id, until)
        run_total += seconds
        machine += machine_cost(seconds, rate)
    cost = WorkOrderCost(material=material, energy=energy, machine=machine, labour=labour,
                         good=sum(row[2] for row in made), scrap=sum(row[3] for row in made))
    return ActualCost(cost, run_total, sum(row[4] for row in made), tuple(notes))


def run_seconds(conn: psycopg.Connection, machine_id: str, work_order_id: str, until: datetime) -> Decimal:
    """Seconds the machine reported running while the order was dispatched to it, up to `until`."""
    windows = _merged([(start, end or until) for start, end in conn.execute(
        """SELECT start_ts, end_ts FROM dispatches WHERE machine_id = %s AND work_order_id = %s AND start_ts < %s
           ORDER BY start_ts""", (machine_id, work_order_id, until))])
    if not windows:
        return Decimal(0)
    changes = [StateChange(ts, state, fault) for ts, state, fault in conn.execute(
        """(SELECT ts, state_code, fault_code FROM machine_states WHERE machine_id = %(m)s AND ts <= %(from)s
            ORDER BY ts DESC LIMIT 1)
           UNION ALL
           SELECT ts, state_code, fault_code FROM machine_states WHERE machine_id = %(m)s AND ts > %(from)s AND ts < %(to)s""",
        {"m": machine_id, "from": windows[0][0], "to": windows[-1][1]})]
    running = [(i.start, i.end) for i in derive_intervals(machine_id, changes, [], until, _NEVER_OFFLINE)
               if i.category is Category.RUNNING]
    overlap = timedelta(0)
    for start, end in windows:
        for run_start, run_end in running:
            overlap += max(timedelta(0), min(end, run_end) - max(start, run_start))
    return Decimal(overlap // timedelta(microseconds=1)) / 1_000_000


def _merged(spans: list[tuple[datetime, datetime]]) -> list[tuple[datetime, datetime]]:
    merged: list[tuple[datetime, datetime]] = []
    for start, end in sorted(spans):
        if merged and start <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], end))
        elif start < end:
            merged.append((start, end))
    return merged


def running_cost(conn: psycopg.Connection, work_order_id: str) -> WorkOrderCost:
    """The order's cost so far: what inventory values its finished-goods receipts at (`valuation.ProductionCost`)."""
    return work_order_cost(conn, work_order_id).cost


def work_order_costing(session: Session, work_order_id: str) -> dict:
    """Actual cost so far, standard, variances, and how much of the cost the finished goods carry."""
    work_order = get(session, WorkOrder, work_order_id, "work order")
    conn = _driver(session)
    valuation.value_queued(session, running_cost)
    actual = work_order_cost(conn, work_order_id)
    received = conn.execute(
        """SELECT coalesce(sum(v.value), 0) FROM stock_values v JOIN stock_moves m ON m.id = v.move_id
           WHERE m.work_order_id = %s AND m.reason = 'production receipt'""", (work_order_id,)).fetchone()[0]
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


def _driver(session: Session) -> psycopg.Connection:
    """The session's own psycopg connection: the same transaction, for the SQL the valuation worker shares."""
    return session.connection().connection.driver_connection
