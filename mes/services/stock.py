"""Stock receipts, on-hand and the ledger. Moves are immutable (the database refuses changes)."""

from __future__ import annotations

from datetime import date
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from mes.models import Item, Location, Lot, StockMove
from mes.services import Conflict
from mes.services.masterdata import get


def receive(session: Session, item_id: str, lot: str, to_location: str, quantity: Decimal, *,
            expires: date | None = None, unit_cost: Decimal | None = None, reason: str = "receipt",
            source_ref: str) -> StockMove:
    """Goods into a location, into a lot (created on first receipt; its expiry must then agree)."""
    get(session, Item, item_id, "item")
    get(session, Location, to_location, "location")
    existing = session.get(Lot, (item_id, lot))
    if existing is None:
        session.add(Lot(item_id=item_id, lot=lot, expires=expires))
    elif expires is not None and existing.expires != expires:
        raise Conflict(f"lot {lot!r} of {item_id!r} expires {existing.expires}, not {expires}")
    move = StockMove(item_id=item_id, lot=lot, to_location=to_location, quantity=quantity, unit_cost=unit_cost,
                     reason=reason, source_ref=source_ref)
    session.add(move)
    session.commit()
    return move


def on_hand(session: Session, item_id: str | None = None, location_id: str | None = None) -> list[dict]:
    rows = session.execute(text(
        """SELECT s.item_id, s.location_id, s.lot, l.expires, s.quantity FROM stock_on_hand s
           LEFT JOIN lots l USING (item_id, lot)
           WHERE (CAST(:item AS text) IS NULL OR s.item_id = :item)
             AND (CAST(:location AS text) IS NULL OR s.location_id = :location)
           ORDER BY s.item_id, s.location_id, l.expires NULLS LAST, s.lot"""),
        {"item": item_id, "location": location_id})
    return [dict(row._mapping) for row in rows]


def ledger(session: Session, *, item_id: str | None = None, location_id: str | None = None,
           source_ref: str | None = None, limit: int = 500) -> list[StockMove]:
    query = select(StockMove).order_by(StockMove.id.desc()).limit(limit)
    if item_id:
        query = query.where(StockMove.item_id == item_id)
    if location_id:
        query = query.where((StockMove.from_location == location_id) | (StockMove.to_location == location_id))
    if source_ref:
        query = query.where(StockMove.source_ref == source_ref)
    return list(session.scalars(query))



_LINKED_MOVES = text(
    """SELECT other.item_id, other.lot, sum(other.quantity)
       FROM stock_moves start JOIN stock_moves other USING (source_ref)
       WHERE start.item_id = :item AND start.lot = :lot AND start.reason = :start_reason AND other.reason = :other_reason
       GROUP BY other.item_id, other.lot
       ORDER BY other.item_id, other.lot NULLS LAST""")


def trace(session: Session, item_id: str, lot: str, direction: str) -> list[dict]:
    """Lot genealogy through the ledger, where the moves of one production interval share its source_ref.

    back: from a finished lot to every component lot its intervals consumed, and on through component
    lots that were made here. forward: from a component lot to every finished lot made from it, and on.
    Quantities are what the linked intervals moved. Material consumed beyond the recorded stock shows
    as lot null (the unknown lot).
    """
    get(session, Lot, (item_id, lot), "lot")
    start_reason, other_reason = (("backflush", "production receipt") if direction == "forward"
                                  else ("production receipt", "backflush"))
    found: dict[tuple[str, str | None], Decimal] = {}
    frontier, seen = [(item_id, lot)], {(item_id, lot)}
    while frontier:
        item, a_lot = frontier.pop(0)
        linked = session.execute(_LINKED_MOVES, {"item": item, "lot": a_lot, "start_reason": start_reason,
                                                 "other_reason": other_reason})
        for other_item, other_lot, quantity in linked:
            found[(other_item, other_lot)] = found.get((other_item, other_lot), Decimal(0)) + quantity
            if other_lot is not None and (other_item, other_lot) not in seen:
                seen.add((other_item, other_lot))
                frontier.append((other_item, other_lot))
    return [{"item_id": item, "lot": a_lot, "quantity": quantity} for (item, a_lot), quantity in found.items()]


def backflush_exceptions(session: Session, work_order_id: str | None = None, only_open: bool = True) -> list[dict]:
    rows = session.execute(text(
        """SELECT id, ts, source_ref, work_order_id, item_id, location_id, quantity, kind, reason, resolved
           FROM backflush_exceptions
           WHERE (CAST(:work_order AS text) IS NULL OR work_order_id = :work_order) AND (NOT :only_open OR NOT resolved)
           ORDER BY id"""), {"work_order": work_order_id, "only_open": only_open})
    return [dict(row._mapping) for row in rows]
