"""Stock receipts, on-hand and the ledger. Moves are immutable (the database refuses changes).

On hand is `lot_balances`, which a trigger on `stock_moves` keeps in the inserting statement, so every
writer of moves (`post_moves`, the ingest's backflush COPY) keeps it without a call of its own."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from datetime import date, datetime
from decimal import Decimal

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.rules.operations import PlannedMove
from inventory.models import Item, Location, Lot, StockMove
from kernel.rules.refusals import Conflict
from kernel.db.unit_of_work import get


def receive(session: Session, item_id: str, lot: str, to_location: str, quantity: Decimal, *,
            expires: date | None = None, unit_cost: Decimal | None = None, reason: str = "receipt",
            source_ref: str) -> StockMove:
    """Goods into a location, into a lot (created on first receipt; its expiry must then agree)."""
    get(session, Item, item_id, "item")
    get(session, Location, to_location, "location")
    (move,) = post_moves(session, [PlannedMove(item_id, lot, None, to_location, quantity, reason, unit_cost)],
                         source_ref=source_ref, expires={(item_id, lot): expires})
    session.commit()
    return move


def post_moves(session: Session, moves: Iterable[PlannedMove], *, source_ref: str, ts: datetime | None = None,
               work_order_id: str | None = None, expires: Mapping[tuple[str, str], date | None] | None = None) -> list[StockMove]:
    """Add the moves a document step planned, in the caller's transaction (the caller commits).

    A lot named for the first time is created, with its expiry from `expires`; a known lot's expiry
    must agree with it. The ledger refuses nothing here that the rules allowed: quantities are
    positive and locations distinct by construction."""
    expires = expires or {}
    added = []
    for planned in moves:
        if planned.lot is not None:
            expiry = expires.get((planned.item, planned.lot))
            existing = session.get(Lot, (planned.item, planned.lot))
            if existing is None:
                session.add(Lot(item_id=planned.item, lot=planned.lot, expires=expiry))
                session.flush()
            elif expiry is not None and existing.expires != expiry:
                raise Conflict(f"lot {planned.lot!r} of {planned.item!r} expires {existing.expires}, not {expiry}")
        move = StockMove(item_id=planned.item, lot=planned.lot, from_location=planned.from_location,
                         to_location=planned.to_location, quantity=planned.quantity, unit_cost=planned.unit_cost,
                         reason=planned.reason, source_ref=source_ref, work_order_id=work_order_id,
                         **({"ts": ts} if ts is not None else {}))
        session.add(move)
        added.append(move)
    session.flush()
    return added


def lot_balances_at(session: Session, location_id: str, item_id: str | None = None, *,
                    for_update: bool = False) -> dict[tuple[str, str | None], Decimal]:
    """On hand per (item, lot) at a location, the unknown lot included (it can be negative); `for_update`:
    the balances locked until the caller's transaction ends, in the order every taker locks them."""
    rows = session.execute(text(
        f"""SELECT item_id, lot, quantity FROM lot_balances
            WHERE location_id = :location AND (CAST(:item AS text) IS NULL OR item_id = :item)
            ORDER BY item_id, location_id, lot{' FOR UPDATE' if for_update else ''}"""),
        {"location": location_id, "item": item_id})
    return {(item, lot): quantity for item, lot, quantity in rows if quantity != 0}


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
