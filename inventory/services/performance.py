"""Delivery performance from the documents and the ledger (the formulas: `inventory.rules.performance`).

Read, each in one statement:
- sales-order lines of orders not cancelled whose due instant falls in the period, and the order's shipments
  (moves with reason 'shipment', source_ref `so:<so_id>/shipment:<n>`) up to `as_of`. A line's promise date is
  the one `POST /sales-orders` answered and kept (`sales_order_lines.promised`, migration 0017); a line without
  one (no date could be promised, or entered before promises were kept) is judged against its due instant only;
- receipts from suppliers (reason 'goods receipt', source_ref `po:<po_id>/receipt:<n>`) in the period, valued at
  the move's unit cost, with their order's supplier and due day; returns to suppliers (reason 'return to
  supplier: …', source_ref `po:<po_id>/return:<n>`) in the period, valued at the order line's unit cost of that
  item (the lowest, if the order has several lines of the item).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import UTC, datetime, timedelta, tzinfo

from sqlalchemy import text
from sqlalchemy.orm import Session

from inventory.rules.operations import GOODS_RECEIPT, RETURN_TO_SUPPLIER, SHIPMENT
from inventory.rules.performance import (LineDelivery, SalesLine, Shipment, SupplierReceipt, SupplierReturn, SupplierScore,
                                         line_deliveries, rank_suppliers, supplier_scores)

RANKING_WINDOW = timedelta(days=180)  # the receipts and returns a purchase suggestion ranks suppliers by

_LINES = text("""
    SELECT l.so_id, l.line, l.item_id, l.quantity, o.due, l.promised
    FROM sales_order_lines l JOIN sales_orders o USING (so_id)
    WHERE o.status <> 'cancelled' AND o.due >= :start AND o.due < :end""")
_SHIPMENTS = text("""
    SELECT split_part(substr(m.source_ref, 4), '/', 1) AS so_id, m.item_id, m.ts, m.quantity
    FROM stock_moves m
    WHERE m.reason = :shipment AND m.source_ref LIKE 'so:%' AND m.ts <= :as_of
      AND split_part(substr(m.source_ref, 4), '/', 1) IN (
          SELECT so_id FROM sales_orders WHERE status <> 'cancelled' AND due >= :start AND due < :end)""")
_RECEIPTS = text("""
    SELECT po.supplier_id, m.ts, po.due, m.quantity * coalesce(m.unit_cost, 0)
    FROM stock_moves m JOIN purchase_orders po ON po.po_id = split_part(substr(m.source_ref, 4), '/', 1)
    WHERE m.reason = :receipt AND m.source_ref LIKE 'po:%' AND m.from_location IS NULL AND m.ts >= :start AND m.ts < :end""")
_RETURNS = text("""
    SELECT po.supplier_id, m.ts,
           m.quantity * coalesce((SELECT min(l.unit_cost) FROM purchase_order_lines l
                                  WHERE l.po_id = po.po_id AND l.item_id = m.item_id), 0)
    FROM stock_moves m JOIN purchase_orders po ON po.po_id = split_part(substr(m.source_ref, 4), '/', 1)
    WHERE m.reason LIKE :returned AND m.source_ref LIKE 'po:%' AND m.to_location IS NULL AND m.ts >= :start AND m.ts < :end""")


def deliveries(session: Session, start: datetime, end: datetime, as_of: datetime, tz: tzinfo = UTC) -> list[LineDelivery]:
    """The sales-order lines due in [start, end), judged as of `as_of`."""
    period = {"start": start, "end": end}
    lines = [SalesLine(*row) for row in session.execute(_LINES, period)]
    shipments = [Shipment(*row) for row in session.execute(_SHIPMENTS, {**period, "as_of": as_of, "shipment": SHIPMENT})]
    return line_deliveries(lines, shipments, as_of, tz)


def supplier_receipts(session: Session, start: datetime, end: datetime) -> tuple[list[SupplierReceipt], list[SupplierReturn]]:
    period = {"start": start, "end": end}
    receipts = [SupplierReceipt(*row) for row in session.execute(_RECEIPTS, {**period, "receipt": GOODS_RECEIPT})]
    returns = [SupplierReturn(*row) for row in session.execute(_RETURNS, {**period, "returned": f"{RETURN_TO_SUPPLIER}:%"})]
    return receipts, returns


def scores(session: Session, start: datetime, end: datetime, tz: tzinfo = UTC) -> list[SupplierScore]:
    """Each supplier's score over [start, end)."""
    receipts, returns = supplier_receipts(session, start, end)
    return supplier_scores(receipts, returns, tz)


def ranked_suppliers(session: Session, now: datetime) -> dict[str, list[str]]:
    """Per item, the suppliers that have had it on a purchase order, best score of the RANKING_WINDOW first."""
    scored = {score.supplier: score.score for score in scores(session, now - RANKING_WINDOW, now)}
    candidates: dict[str, set[str]] = defaultdict(set)
    for item, supplier in session.execute(text(
            "SELECT DISTINCT l.item_id, po.supplier_id FROM purchase_order_lines l JOIN purchase_orders po USING (po_id)")):
        candidates[item].add(supplier)
    return {item: rank_suppliers(suppliers, scored) for item, suppliers in candidates.items()}
