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

from core.rules.states import Category, StateChange, derive_intervals
from inventory.rules.costing import Tariff, TariffPeriod, WorkOrderCost, energy_cost, machine_cost

DEFAULT_TARIFF = "default"
# Run time is read from the states a machine reported; a silence is not a stop here (the downtime
# rules judge communication loss), so the offline timeout is set beyond any order's length.
_NEVER_OFFLINE = timedelta(days=36_500)


@dataclass(frozen=True)
class ActualCost:
    cost: WorkOrderCost
    run_seconds: Decimal
    energy_wh: int
    notes: tuple[str, ...]


def load_tariff(conn: psycopg.Connection, tariff_id: str) -> Tariff | None:
    row = conn.execute("SELECT timezone, default_price_per_kwh FROM energy_tariffs WHERE tariff_id = %s", (tariff_id,)).fetchone()
    if row is None:
        return None
    periods = [TariffPeriod(frozenset(days), start, end, price) for days, start, end, price in conn.execute(
        "SELECT days, start_time, end_time, price_per_kwh FROM energy_tariff_periods WHERE tariff_id = %s ORDER BY id", (tariff_id,))]
    return Tariff(row[0], row[1], tuple(periods))


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


