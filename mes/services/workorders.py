"""Work orders: creation, lifecycle, BOM snapshot at release, dispatch to machines.

Dispatch rule: a machine runs at most one work order at a time (per source: the API, or the
PLC's own order id, which wins in attribution). Starting a work order on a machine where another
one runs pauses that one at the same instant: a changeover is one action for the supervisor.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from inventory.services import backflush as ledger
from inventory.rules.backflush import BackflushPlan, Move, remaining_after
from inventory.rules.lots import NegativeStockPolicy, allocate
from mes.models import Dispatch, ScrapClassification, ScrapReason, WorkOrder, WorkOrderComponent, WorkOrderEvent
from inventory.models import Item
from kernel.db.models import Machine
from kernel.rules.instants import exact_seconds
from mes.rules.attribution import AttributionRow, DispatchWindow, overlaps
from mes.rules.workorders import Progress, WorkOrderStatus, classify_scrap, progress, scrap_by_reason, transition
from kernel.rules.refusals import Conflict, NotFound, as_conflict
from inventory.services.masterdata import exploded
from kernel.db.unit_of_work import add_new, create, get

RUNS_ON_A_MACHINE = ("start", "resume")
# The live rate is the good units of this recent stretch of the order's run time.
RATE_WINDOW = timedelta(minutes=10)


def create_work_order(session: Session, work_order_id: str, item_id: str, quantity: int, *, due: date | None = None,
                      over_tolerance: Decimal = Decimal(0), auto_complete: bool = False) -> WorkOrder:
    get(session, Item, item_id, "item")
    return create(session, WorkOrder, work_order_id, "work order", work_order_id=work_order_id, item_id=item_id,
                  quantity=quantity, due=due, over_tolerance=over_tolerance, auto_complete=auto_complete)


def add_released_work_order(session: Session, work_order_id: str, item_id: str, quantity: int, *, due: date | None,
                            actor: str | None, now: datetime) -> WorkOrder:
    """A new work order released at once (its BOM snapshot taken, as `act` releases one), in the caller's unit of
    work: the caller commits it with the rest of its step (planning firms several orders in one commit)."""
    get(session, Item, item_id, "item")
    work_order = add_new(session, WorkOrder, work_order_id, "work order", work_order_id=work_order_id, item_id=item_id,
                         quantity=quantity, due=due, status=WorkOrderStatus.PLANNED.value)
    session.flush()
    _apply_action(session, work_order, "release", None, actor, now)
    return work_order


def act(session: Session, work_order_id: str, action: str, *, machine_id: str | None = None, actor: str | None = None,
        now: datetime | None = None) -> WorkOrder:
    """Apply a lifecycle action (release, start, pause, resume, complete, close) in one transaction."""
    now = now or datetime.now(UTC)
    work_order = get(session, WorkOrder, work_order_id, "work order")
    _apply_action(session, work_order, action, machine_id, actor, now)
    session.commit()
    return work_order


def _apply_action(session: Session, work_order: WorkOrder, action: str, machine_id: str | None, actor: str | None,
           now: datetime) -> None:
    work_order_id = work_order.work_order_id
    if action in RUNS_ON_A_MACHINE:
        if machine_id is None:
            raise Conflict(f"{action} needs the machine the work order runs on (machine_id)")
        get(session, Machine, machine_id, "machine")
    elif machine_id is not None:
        raise Conflict(f"{action} takes no machine_id")
    _change_status(session, work_order, action, now, machine_id, actor)
    if action == "release":
        _snapshot_bom(session, work_order, now.date())
    if action in RUNS_ON_A_MACHINE:
        _pause_whatever_runs_on(session, machine_id, now, actor)
        session.add(Dispatch(machine_id=machine_id, work_order_id=work_order_id, source="api", start_ts=now))
    else:
        _end_dispatch(session, work_order_id, now)


def running_on(session: Session, machine_id: str) -> Dispatch | None:
    return session.scalars(select(Dispatch).where(Dispatch.machine_id == machine_id, Dispatch.source == "api",
                                                  Dispatch.end_ts.is_(None))).first()


def _change_status(session: Session, work_order: WorkOrder, action: str, now: datetime, machine_id: str | None,
                   actor: str | None) -> None:
    before = work_order.status
    work_order.status = transition(WorkOrderStatus(before), action).value
    session.add(WorkOrderEvent(work_order_id=work_order.work_order_id, ts=now, action=action, from_status=before,
                               to_status=work_order.status, machine_id=machine_id, actor=actor))


def _snapshot_bom(session: Session, work_order: WorkOrder, on: date) -> None:
    """What one unit consumes, frozen at release: later BOM edits do not change a released order."""
    work_order.released_at = datetime.now(UTC)
    for component, quantity in sorted(exploded(session, work_order.item_id, on).items()):
        session.add(WorkOrderComponent(work_order_id=work_order.work_order_id, component_item=component,
                                       quantity_per_unit=quantity))


def _pause_whatever_runs_on(session: Session, machine_id: str, now: datetime, actor: str | None) -> None:
    current = running_on(session, machine_id)
    if current is None:
        return
    other = get(session, WorkOrder, current.work_order_id, "work order")
    _change_status(session, other, "pause", now, machine_id, actor)
    current.end_ts = now


def _end_dispatch(session: Session, work_order_id: str, now: datetime) -> None:
    # The PLC's own windows end only when the PLC reports another order.
    for dispatch in session.scalars(select(Dispatch).where(Dispatch.work_order_id == work_order_id, Dispatch.source == "api",
                                                           Dispatch.end_ts.is_(None))):
        dispatch.end_ts = now


def list_work_orders(session: Session, status: str | None = None) -> list[WorkOrder]:
    query = select(WorkOrder).order_by(WorkOrder.created_at, WorkOrder.work_order_id)
    if status:
        query = query.where(WorkOrder.status == status)
    return list(session.scalars(query))



def live_progress(session: Session, work_order_id: str, now: datetime | None = None) -> Progress:
    """Good, scrap, yield, % complete, current rate and projected finish from the attributed counts."""
    now = now or datetime.now(UTC)
    work_order = get(session, WorkOrder, work_order_id, "work order")
    good, scrap, recent_good = session.execute(text(
        """SELECT coalesce(sum(good), 0), coalesce(sum(scrap), 0),
                  coalesce(sum(good) FILTER (WHERE last_ts > :since), 0)
           FROM production_attributions WHERE work_order_id = :work_order"""),
        {"work_order": work_order_id, "since": now - RATE_WINDOW}).one()
    first_start = session.scalar(select(func.min(Dispatch.start_ts)).where(Dispatch.work_order_id == work_order_id))
    ran_for = min(RATE_WINDOW, now - first_start) if first_start else timedelta(0)
    window_seconds = exact_seconds(ran_for)
    return progress(work_order.quantity, int(good), int(scrap), int(recent_good), max(window_seconds, Decimal(0)), now,
                    work_order.over_tolerance)


def unassigned(session: Session) -> list[dict]:
    """Counts no work order was running for, per machine: for a supervisor to re-assign."""
    # plc_reported: order ids the machine's PLC reported that could not count, while these units were made
    rows = session.execute(text(
        """WITH bucket AS (
               SELECT machine_id, sum(good) AS good, sum(scrap) AS scrap, sum(energy_wh) AS energy_wh,
                      min(first_ts) AS first_ts, max(last_ts) AS last_ts
               FROM production_attributions WHERE work_order_id IS NULL GROUP BY machine_id)
           SELECT b.*, coalesce(array(
                      SELECT DISTINCT d.reported_order FROM dispatches d
                      WHERE d.machine_id = b.machine_id AND d.source = 'plc' AND d.work_order_id IS NULL
                        AND d.start_ts <= b.last_ts AND (d.end_ts IS NULL OR d.end_ts > b.first_ts)
                      ORDER BY 1), '{}') AS plc_reported
           FROM bucket b ORDER BY machine_id"""))
    return [dict(row._mapping) for row in rows]


REASSIGNABLE = ("released", "running", "paused", "completed")


def reassign_unassigned(session: Session, machine_id: str, work_order_id: str, start: datetime, end: datetime,
                        actor: str | None = None) -> dict:
    """Give a past period's unassigned production on a machine to a work order, and backflush it.

    One transaction: a dispatch window records the decision (it must not overlap the machine's
    others), the period's unassigned rows move to the order (whole production intervals: a message
    counts as inside when all of its counted units are), and exactly those units are backflushed.
    Rows can be reassigned once: afterwards they are no longer unassigned.
    """
    if start >= end:
        raise Conflict("the period must end after it starts")
    get(session, Machine, machine_id, "machine")
    work_order = get(session, WorkOrder, work_order_id, "work order")
    if work_order.status not in REASSIGNABLE:
        raise Conflict(f"production can only be given to a released order; {work_order_id} is {work_order.status}")
    others = [DispatchWindow(d.machine_id, d.work_order_id, d.start_ts, d.end_ts, "api") for d in session.scalars(
        select(Dispatch).where(Dispatch.machine_id == machine_id, Dispatch.source == "api"))]
    period = DispatchWindow(machine_id, work_order_id, start, end, "api")
    clashes = [other for pair in overlaps([*others, period]) for other in pair if other is not period]
    if clashes:
        raise Conflict(f"the period overlaps {clashes[0]}")
    session.add(Dispatch(machine_id=machine_id, work_order_id=work_order_id, source="api", start_ts=start, end_ts=end))
    rows = session.execute(text(
        """DELETE FROM production_attributions
           WHERE machine_id = :machine AND work_order_id IS NULL AND first_ts >= :start AND last_ts < :end
           RETURNING edge_id, epoch, seq, machine_id, good, scrap, energy_wh, first_ts, last_ts"""),
        {"machine": machine_id, "start": start, "end": end}).all()
    moved = [AttributionRow(row.edge_id, row.epoch, row.seq, row.machine_id, work_order_id, row.good, row.scrap,
                            row.energy_wh, row.first_ts, row.last_ts) for row in rows]
    if moved:
        session.execute(text(
            """INSERT INTO production_attributions AS a
                   (edge_id, epoch, seq, machine_id, work_order_id, good, scrap, energy_wh, first_ts, last_ts)
               VALUES (:edge_id, :epoch, :seq, :machine_id, :work_order_id, :good, :scrap, :energy_wh, :first_ts, :last_ts)
               ON CONFLICT (edge_id, epoch, seq, (coalesce(work_order_id, ''))) DO UPDATE SET
                   good = a.good + EXCLUDED.good, scrap = a.scrap + EXCLUDED.scrap, energy_wh = a.energy_wh + EXCLUDED.energy_wh,
                   first_ts = least(a.first_ts, EXCLUDED.first_ts), last_ts = greatest(a.last_ts, EXCLUDED.last_ts)"""),
            [row._asdict() for row in moved])
    backflush = ledger.backflush_attributed(session, moved)
    if backflush is not None:
        ledger.write_backflush(session, backflush)
    session.add(WorkOrderEvent(work_order_id=work_order_id, action="reassign", from_status=work_order.status,
                               to_status=work_order.status, machine_id=machine_id, actor=actor))
    session.commit()
    return {"intervals": len(moved), "good": sum(row.good for row in moved), "scrap": sum(row.scrap for row in moved)}


def dispatches(session: Session, machine_id: str, limit: int) -> list[Dispatch]:
    """A machine's dispatch windows, newest first: the API's and those the PLC reported."""
    get(session, Machine, machine_id, "machine")
    return list(session.scalars(select(Dispatch).where(Dispatch.machine_id == machine_id)
                                .order_by(Dispatch.start_ts.desc(), Dispatch.id.desc()).limit(limit)))


def scrap_breakdown(session: Session, work_order_id: str) -> dict[str, int]:
    """The order's scrapped units per reason, with the unclassified rest."""
    get(session, WorkOrder, work_order_id, "work order")
    return scrap_by_reason(*_scrap_counts(session, work_order_id))


def classify(session: Session, work_order_id: str, reason_code: str, quantity: int, *, comment: str | None = None,
             actor: str | None = None) -> dict[str, int]:
    """Give scrapped units of an order a reason (a negative quantity takes units back from one)."""
    if session.get(WorkOrder, work_order_id, with_for_update=True) is None:  # one classification of an order at a time
        raise NotFound(f"work order {work_order_id!r} does not exist")
    reason = get(session, ScrapReason, reason_code, "scrap reason")
    if not reason.active and quantity > 0:
        raise Conflict(f"scrap reason {reason_code!r} is retired")
    total, classified = _scrap_counts(session, work_order_id)
    with as_conflict():
        after = classify_scrap(total, classified, reason_code, quantity)
    session.add(ScrapClassification(work_order_id=work_order_id, reason_code=reason_code, quantity=quantity,
                                    comment=comment, actor=actor, ts=datetime.now(UTC)))
    session.commit()
    return scrap_by_reason(total, after)


def _scrap_counts(session: Session, work_order_id: str) -> tuple[int, dict[str, int]]:
    total = session.scalar(text("SELECT coalesce(sum(scrap), 0) FROM production_attributions WHERE work_order_id = :w"),
                           {"w": work_order_id})
    classified = session.execute(select(ScrapClassification.reason_code, func.sum(ScrapClassification.quantity))
                                 .where(ScrapClassification.work_order_id == work_order_id)
                                 .group_by(ScrapClassification.reason_code)).all()
    return int(total), {reason: int(units) for reason, units in classified}


def release_hold(session: Session, work_order_id: str, *, force: bool = False, actor: str | None = None) -> WorkOrder:
    """Consume what a blocking location held back, now that stock is there, and lift the hold.

    Each blocked quantity is consumed lot by lot (FEFO, FIFO) against the interval it belongs to.
    If stock still does not cover it, nothing changes and the answer says what is missing, unless
    `force`: the supervisor accepts physical truth and the rest comes from the unknown lot.
    """
    work_order = get(session, WorkOrder, work_order_id, "work order")
    blocked = session.execute(text(
        """SELECT id, ts, source_ref, item_id, location_id, quantity FROM backflush_exceptions
           WHERE work_order_id = :work_order AND kind = 'blocked' AND NOT resolved ORDER BY id FOR UPDATE"""),
        {"work_order": work_order_id}).all()
    if work_order.held_reason is None and not blocked:
        raise Conflict(f"{work_order_id} is not held")
    policy = NegativeStockPolicy.ALLOW if force else NegativeStockPolicy.BLOCK
    balances = ledger.lot_balances(session, {row.location_id for row in blocked}, {row.item_id for row in blocked})
    moves, missing = [], []
    for row in blocked:
        lots = balances.setdefault((row.item_id, row.location_id), [])
        allocation = allocate(row.quantity, lots, policy)
        if allocation.held:
            missing.append(f"{allocation.shortage} {row.item_id} at {row.location_id}")
        lots[:] = remaining_after(lots, allocation)
        moves += [Move(row.ts, row.item_id, pick.lot, row.location_id, None, pick.quantity, "backflush", row.source_ref,
                       work_order_id) for pick in allocation.picks]
    if missing:
        session.rollback()
        raise Conflict(f"still short: {', '.join(missing)} (receive the stock, or release with force to consume from an unknown lot)")
    ledger.write_backflush(session, BackflushPlan(moves, [], {}, {}))
    session.execute(text("UPDATE backflush_exceptions SET resolved = true WHERE id = ANY(:ids)"), {"ids": [row.id for row in blocked]})
    work_order.held_reason = None
    session.add(WorkOrderEvent(work_order_id=work_order_id, action="release hold", from_status=work_order.status,
                               to_status=work_order.status, actor=actor))
    session.commit()
    return work_order


def running_orders(session: Session) -> dict[str, tuple[str, int, int]]:
    """Per machine, the work order it runs now (the PLC's own, else the API's): (number, good so far, quantity)."""
    rows = session.execute(text(
        """SELECT DISTINCT ON (d.machine_id) d.machine_id, d.work_order_id, w.quantity,
                  (SELECT coalesce(sum(good), 0) FROM production_attributions a WHERE a.work_order_id = d.work_order_id)
           FROM dispatches d JOIN work_orders w USING (work_order_id) WHERE d.end_ts IS NULL
           ORDER BY d.machine_id, d.source = 'plc' DESC"""))
    return {machine: (number, int(good), quantity) for machine, number, quantity, good in rows}
