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
