"""Alert records: the engine's transitions stored with their audit trail, and the inventory
conditions evaluated into them.

`evaluate_inventory` loads what the stock alert rules need, turns each rule's findings into facts
(the complete list of subjects in that condition now), reconciles them with the open alerts
(`mes.rules.alerts.reconcile`) and stores the transitions in one transaction: an alert is raised
while its condition holds and cleared once it no longer does; a cleared alert never re-opens.
Every stored transition also queues its notifications (`mes.services.notifications.enqueue`), in
the same transaction.
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime
from decimal import Decimal

from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from inventory.rules.backflush import BackflushException
from inventory.rules.operations import OrderLine, SalesOrderStatus
from inventory.services.performance import ranked_suppliers
from inventory.rules.stock_alerts import (
    DEMAND_REASONS,
    ItemActivity,
    LotStock,
    SafetyStockLevel,
    SalesOrderDue,
    StockAlert,
    StockAlertKind,
    backflush_shortage_alerts,
    expiring_lot_alerts,
    overdue_sales_order_alerts,
    safety_stock_alerts,
    slow_moving_alerts,
)
from mes.rules.alerts import Alert, AlertKind, AlertRule, Fact, RuleBook, Transition, acknowledge, passthrough, reconcile
from kernel.db.models import make_engine
from kernel.logs import get_logger
from kernel.rules.refusals import NotFound, as_conflict
from mes.services import notifications

log = get_logger("mes.alerts")

INVENTORY_KINDS = tuple(AlertKind(kind.value) for kind in StockAlertKind)
RULE_COLUMNS = "rule_id, kind, severity, scope, minutes, percent, min_units, down_states, enabled"
_ALERT_COLUMNS = ("alert_id, kind, subject, rule_id, severity, status, raised_at, detail, value, acknowledged_by, "
                  "acknowledged_at, cleared_at")


def load_rules(session: Session) -> list[AlertRule]:
    rows = session.execute(text(f"SELECT {RULE_COLUMNS} FROM alert_rules ORDER BY rule_id"))
    return [AlertRule(rule_id, kind, severity, scope, minutes, percent, min_units, None if down is None else frozenset(down), enabled)
            for rule_id, kind, severity, scope, minutes, percent, min_units, down, enabled in rows]


def open_alerts(session: Session) -> list[Alert]:
    # locked: an acknowledgement made during a round waits for it, rather than being overwritten by its clearing
    rows = session.execute(text(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE status <> 'cleared' ORDER BY alert_id FOR UPDATE"))
    return [Alert(*row) for row in rows]


def store(session: Session, transitions: list[Transition]) -> list[Transition]:
    """Write the transitions (raised alerts get their ids) and their audit records; no commit."""
    stored = []
    for transition in transitions:
        alert = transition.alert
        if alert.alert_id is None:
            alert_id = session.execute(text(
                """INSERT INTO alerts (kind, subject, rule_id, severity, status, raised_at, detail, value)
                   VALUES (:kind, :subject, :rule, :severity, :status, :raised_at, :detail, :value) RETURNING alert_id"""),
                {"kind": alert.kind.value, "subject": alert.subject, "rule": alert.rule_id, "severity": alert.severity.value,
                 "status": alert.status.value, "raised_at": alert.raised_at, "detail": alert.detail, "value": alert.value},
            ).scalar_one()
            transition = transition._replace(alert=Alert(alert_id, *_fields(alert)[1:]))
        else:
            session.execute(text(
                """UPDATE alerts SET status = :status, acknowledged_by = :by, acknowledged_at = :at, cleared_at = :cleared
                   WHERE alert_id = :id"""),
                {"status": alert.status.value, "by": alert.acknowledged_by, "at": alert.acknowledged_at,
                 "cleared": alert.cleared_at, "id": alert.alert_id})
        session.execute(text("INSERT INTO alert_events (alert_id, event, at, by, note) VALUES (:id, :event, :at, :by, :note)"),
                        {"id": transition.alert.alert_id, "event": transition.event.value, "at": transition.at,
                         "by": transition.by, "note": transition.note})
        stored.append(transition)
    notifications.enqueue(session, stored)
    return stored


def _fields(alert: Alert) -> tuple:
    return (alert.alert_id, alert.kind, alert.subject, alert.rule_id, alert.severity, alert.status, alert.raised_at,
            alert.detail, alert.value, alert.acknowledged_by, alert.acknowledged_at, alert.cleared_at)


def evaluate_inventory(session: Session, now: datetime | None = None) -> list[Transition]:
    """One round of the inventory alerts; returns the transitions stored."""
    now = now or datetime.now(UTC)
    findings = _inventory_findings(session, now)
    book, current = RuleBook(load_rules(session)), open_alerts(session)
    conditions = [condition for kind in INVENTORY_KINDS
                  for condition in passthrough(book, kind, [_fact(found) for found in findings.get(kind, [])], current)]
    stored = store(session, reconcile(current, conditions, now))
    session.commit()
    return stored


class InventoryAlerts:
    """The core's job for the inventory alerts: a round of `evaluate_inventory` every so often, in a
    database connection of its own. A database failure is logged and tried again next round."""

    def __init__(self, database_url: str):
        self.engine = make_engine(database_url)

    def round(self) -> None:
        try:
            with Session(self.engine) as session:
                log_transitions(evaluate_inventory(session))
        except SQLAlchemyError as error:
            log.warning("inventory alert round failed; tried again next round", error=str(error))

    def close(self) -> None:
        self.engine.dispose()


def log_transitions(transitions: list[Transition]) -> None:
    for transition in transitions:
        log.info(f"alert {transition.event.value}", kind=transition.alert.kind.value, subject=transition.alert.subject,
                 detail=transition.alert.detail)


def _fact(found: StockAlert) -> Fact:
    return Fact(found.subject, found.detail, None)


def _inventory_findings(session: Session, now: datetime) -> dict[AlertKind, list[StockAlert]]:
    def q(sql: str, **params: object) -> list:
        return session.execute(text(sql), params).all()

    available: dict[str, Decimal] = defaultdict(Decimal)
    in_transit: dict[str, Decimal] = defaultdict(Decimal)
    for item, kind, quantity in q("""SELECT s.item_id, l.kind, sum(s.quantity) FROM stock_on_hand s
                                     JOIN locations l USING (location_id) GROUP BY 1, 2"""):
        (in_transit if kind == "transit" else available)[item] += quantity
    on_order = dict(q("""SELECT l.item_id, sum(l.quantity - l.received) FROM purchase_order_lines l
                         JOIN purchase_orders o USING (po_id)
                         WHERE o.status IN ('approved', 'partially_received') AND l.quantity > l.received GROUP BY 1"""))
    levels = [SafetyStockLevel(*row) for row in q(
        "SELECT item_id, safety_stock, reorder_quantity, minimum_order, order_multiple FROM items WHERE safety_stock IS NOT NULL")]
    activity = [ItemActivity(*row) for row in q(
        """SELECT s.item_id, sum(s.quantity),
                  (SELECT max(ts) FROM stock_moves m WHERE m.item_id = s.item_id AND m.reason = ANY(:demand)),
                  (SELECT min(ts) FROM stock_moves m WHERE m.item_id = s.item_id AND m.from_location IS NULL)
           FROM stock_on_hand s GROUP BY s.item_id HAVING sum(s.quantity) > 0""", demand=sorted(DEMAND_REASONS))]
    lines = defaultdict(list)
    for so_id, line, item, quantity, shipped in q("SELECT so_id, line, item_id, quantity, shipped FROM sales_order_lines"):
        lines[so_id].append(OrderLine(line, item, quantity, shipped))
    orders = [SalesOrderDue(so_id, SalesOrderStatus(status), due, lines[so_id])
              for so_id, status, due in q("SELECT so_id, status, due FROM sales_orders WHERE status IN ('open', 'partially_shipped')")]
    lots = [LotStock(*row) for row in q(
        """SELECT s.item_id, s.lot, s.location_id, s.quantity, l.expires FROM stock_on_hand s
           JOIN lots l USING (item_id, lot) JOIN locations loc USING (location_id)
           WHERE l.expires IS NOT NULL AND s.quantity > 0 AND loc.kind <> 'transit'""")]
    shortages = [BackflushException(*row) for row in q(
        """SELECT ts, source_ref, work_order_id, item_id, location_id, quantity, kind, reason FROM backflush_exceptions
           WHERE NOT resolved""")]
    findings: dict[AlertKind, list[StockAlert]] = defaultdict(list)
    for found in [*safety_stock_alerts(levels, available, on_order, in_transit, ranked_suppliers(session, now)), *slow_moving_alerts(activity, now),
                  *overdue_sales_order_alerts(orders, now), *expiring_lot_alerts(lots, now),
                  *backflush_shortage_alerts(shortages)]:
        findings[AlertKind(found.kind)].append(found)
    return findings


def acknowledge_alert(session: Session, alert_id: int, who: str, note: str = "", now: datetime | None = None) -> Alert:
    row = session.execute(text(f"SELECT {_ALERT_COLUMNS} FROM alerts WHERE alert_id = :id FOR UPDATE"), {"id": alert_id}).first()
    if row is None:
        raise NotFound(f"alert {alert_id} does not exist")
    with as_conflict():
        transition = acknowledge(Alert(*row), who, now or datetime.now(UTC), note)
    (stored,) = store(session, [transition])
    session.commit()
    return stored.alert


def list_alerts(session: Session, *, status: str | None, kind: str | None, subject: str | None, limit: int) -> list[Alert]:
    rows = session.execute(text(
        f"""SELECT {_ALERT_COLUMNS} FROM alerts
            WHERE (CAST(:status AS text) IS NULL OR status = :status OR (:status = 'open' AND status <> 'cleared'))
              AND (CAST(:kind AS text) IS NULL OR kind = :kind) AND (CAST(:subject AS text) IS NULL OR subject = :subject)
            ORDER BY alert_id DESC LIMIT :limit"""), {"status": status, "kind": kind, "subject": subject, "limit": limit})
    return [Alert(*row) for row in rows]


def alert_events(session: Session, alert_id: int) -> list[dict]:
    if session.execute(text("SELECT 1 FROM alerts WHERE alert_id = :id"), {"id": alert_id}).first() is None:
        raise NotFound(f"alert {alert_id} does not exist")
    rows = session.execute(text("SELECT event, at, by, note FROM alert_events WHERE alert_id = :id ORDER BY id"), {"id": alert_id})
    return [dict(row._mapping) for row in rows]


def newest_open(session: Session, limit: int = 8) -> list[tuple[str, str, str, str, datetime]]:
    """The newest open alerts: (severity, kind, subject, detail, raised_at)."""
    return [tuple(row) for row in session.execute(text(
        """SELECT severity, kind, subject, detail, raised_at FROM alerts WHERE status <> 'cleared'
           ORDER BY raised_at DESC LIMIT :limit"""), {"limit": limit})]


def history(session: Session) -> list[dict]:
    """Every alert in the order raised, with its lifecycle (for the demo's reckoning)."""
    rows = session.execute(text(
        """SELECT kind, subject, severity, status, raised_at, acknowledged_by, cleared_at FROM alerts
           ORDER BY raised_at, alert_id""")).all()
    return [{"kind": kind, "subject": subject, "severity": severity, "status": status, "raised_at": raised.isoformat(),
             "acknowledged_by": acknowledged_by, "cleared_at": cleared and cleared.isoformat()}
            for kind, subject, severity, status, raised, acknowledged_by, cleared in rows]
