"""Stocktakes: count a location, see the book beside the count, post the differences as moves.

A stocktake is opened for one location ('counting'); counts are recorded per (item, lot), a later
count of the same (item, lot) replacing the earlier one (upsert into `stocktake_counts`). Until it is
posted, the stocktake shows each count with the current book quantity and the difference, and the
adjustments posting would make: `operations.stocktake_adjustments(book, counted, complete_locations)`
decides them (a counted balance is set to its count; an uncounted one is left alone unless the count
is declared complete, when it is zeroed). Posting writes those moves ('stocktake gain' into the
location, 'stocktake loss' out of it) with source_ref `stocktake:<id>`, and closes the stocktake.
Every step writes a `document_events` row; a refused step raises NotFound (404) or Conflict (409)
and writes nothing.

Decisions, stated:
- The posting reason is required. The rule names its moves 'stocktake gain' / 'stocktake loss' and
  takes no reason, so the moves keep exactly those names and the reason is the note of the 'post'
  event (the audit trail says why; the ledger says what).
- The book is read when posting, not when counting: goods moved between count and posting are
  adjusted away. Count shortly before posting, or count again (a recount replaces the count).
- One stocktake counts a location at a time: opening a second while one is counting there is
  refused, so two sets of counts can never both be posted against the same book.
- A stocktake with no count at all cannot be posted (for a complete count it would zero the whole
  location by accident); to record an empty location, count one of its items as 0.
- A transit location cannot be counted (its goods are on the road); counts are 0 or more.
- Once posted, the stocktake shows what was posted: the book of each line is the count less the
  posted difference. A cancelled stocktake shows its counts against the current book and no
  adjustments.
"""

from __future__ import annotations

from collections.abc import Iterable
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select, text
from sqlalchemy.orm import Session

from inventory.rules import operations
from inventory.models import DocumentEvent, Item, Location, StockMove, Stocktake
from kernel.rules.refusals import Conflict, as_conflict
from inventory.services import stock as stock_service
from kernel.db.unit_of_work import get
from inventory.services.transfers import TRANSIT_KIND
from inventory.services.documents import add_event, describe, document_events, locked

DOCUMENT = "stocktake"
COUNTING, POSTED, CANCELLED = "counting", "posted", "cancelled"


class Count(NamedTuple):
    item_id: str
    lot: str | None  # None: an item not tracked by lot
    quantity: Decimal  # 0 or more
    counted_by: str | None = None


def open_stocktake(session: Session, stocktake_id: str, location_id: str, complete: bool = False,
                   actor: str | None = None) -> dict:
    if session.get(Stocktake, stocktake_id) is not None:
        raise Conflict(f"stocktake {stocktake_id!r} already exists")
    location = get(session, Location, location_id, "location")
    if location.kind == TRANSIT_KIND:
        raise Conflict(f"{location_id} is a transfer's transit location: goods in transit cannot be counted")
    counting = session.scalar(select(Stocktake.stocktake_id).where(Stocktake.location_id == location_id,
                                                                   Stocktake.status == COUNTING))
    if counting is not None:
        raise Conflict(f"stocktake {counting} is already counting {location_id}: post or cancel it first")
    session.add(Stocktake(stocktake_id=stocktake_id, location_id=location_id, status=COUNTING, complete=complete))
    add_event(session, DOCUMENT, stocktake_id, "open", None, COUNTING, actor,
              "complete count: what is not counted is zeroed" if complete else "partial count: only what is counted changes")
    session.commit()
    return stocktake_view(session, stocktake_id)


def record_counts(session: Session, stocktake_id: str, counts: Iterable[Count]) -> dict:
    """Upsert counts: a recount of an (item, lot) replaces its earlier count."""
    stocktake = locked(session, Stocktake, stocktake_id, DOCUMENT)
    _still_counting(stocktake, "counted")
    by_key: dict[tuple[str, str | None], Count] = {}
    for count in counts:
        get(session, Item, count.item_id, "item")
        if count.quantity < 0:
            raise Conflict(f"a count cannot be negative: {count.quantity} {count.item_id}")
        key = (count.item_id, count.lot)
        if key in by_key:
            lot = "" if count.lot is None else f" lot {count.lot}"
            raise Conflict(f"{count.item_id}{lot} is counted twice in one request: send one count per item and lot")
        by_key[key] = count
    if not by_key:
        raise Conflict("no counts given: send at least one (item, lot, quantity)")
    for count in by_key.values():
        session.execute(text(
            """INSERT INTO stocktake_counts (stocktake_id, item_id, lot, quantity, counted_by)
               VALUES (:stocktake, :item, :lot, :quantity, :counted_by)
               ON CONFLICT (stocktake_id, item_id, coalesce(lot, ''))
               DO UPDATE SET quantity = excluded.quantity, counted_by = excluded.counted_by, counted_at = now()"""),
            {"stocktake": stocktake_id, "item": count.item_id, "lot": count.lot, "quantity": count.quantity,
             "counted_by": count.counted_by})
    counters = sorted({count.counted_by for count in by_key.values() if count.counted_by})
    add_event(session, DOCUMENT, stocktake_id, "count", COUNTING, COUNTING, ", ".join(counters) or None,
              describe({key: count.quantity for key, count in by_key.items()}))
    session.commit()
    return stocktake_view(session, stocktake_id)


def post_stocktake(session: Session, stocktake_id: str, reason: str, actor: str | None = None) -> dict:
    """Post the adjustments that bring the book to the counts; once only."""
    stocktake = locked(session, Stocktake, stocktake_id, DOCUMENT)
    _still_counting(stocktake, "posted")
    if not reason or not reason.strip():
        raise Conflict("a stocktake is posted with a reason (e.g. 'year-end count')")
    counted = _counts(stocktake, _count_rows(session, stocktake_id))
    if not counted:
        raise Conflict(f"nothing was counted on stocktake {stocktake_id}: record counts (0 for an item not found) "
                       "or cancel it")
    book = _book(session, stocktake, for_update=True)
    with as_conflict():
        moves = operations.stocktake_adjustments(book, counted, _complete_locations(stocktake))
    stock_service.post_moves(session, moves, source_ref=_source_ref(stocktake_id))
    stocktake.status = POSTED
    add_event(session, DOCUMENT, stocktake_id, "post", COUNTING, POSTED, actor,
              f"{reason.strip()} ({len(moves)} adjustment{'s' * (len(moves) != 1)})")
    session.commit()
    return stocktake_view(session, stocktake_id)


def cancel_stocktake(session: Session, stocktake_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    stocktake = locked(session, Stocktake, stocktake_id, DOCUMENT)
    _still_counting(stocktake, "cancelled")
    stocktake.status = CANCELLED
    add_event(session, DOCUMENT, stocktake_id, "cancel", COUNTING, CANCELLED, actor, reason)
    session.commit()
    return stocktake_view(session, stocktake_id)


# --- views -------------------------------------------------------------------------------------

def list_stocktakes(session: Session, status: str | None = None, location_id: str | None = None) -> list[Stocktake]:
    query = select(Stocktake).order_by(Stocktake.created_at, Stocktake.stocktake_id)
    if status:
        query = query.where(Stocktake.status == status)
    if location_id:
        query = query.where(Stocktake.location_id == location_id)
    return list(session.scalars(query))


def stocktake_view(session: Session, stocktake_id: str) -> dict:
    """The counts beside the book and the difference, and the adjustments posting makes (or made)."""
    stocktake = get(session, Stocktake, stocktake_id, "stocktake")
    rows = _count_rows(session, stocktake_id)
    counted = {(row.item_id, row.lot): row.quantity for row in rows}
    if stocktake.status == POSTED:
        adjustments = [operations.PlannedMove(move.item_id, move.lot, move.from_location, move.to_location, move.quantity,
                                              move.reason)
                       for move in session.scalars(select(StockMove).where(StockMove.source_ref == _source_ref(stocktake_id))
                                                   .order_by(StockMove.id))]
    else:
        live_book = _book(session, stocktake)
        with as_conflict():
            adjustments = (operations.stocktake_adjustments(live_book, _counts(stocktake, rows), _complete_locations(stocktake))
                           if stocktake.status == COUNTING else [])
        book = {(item, lot): quantity for (item, _, lot), quantity in live_book.items()}
    change = {(move.item, move.lot): move.quantity if move.to_location == stocktake.location_id else -move.quantity
              for move in adjustments}
    if stocktake.status == POSTED:  # the book as it was: what was counted, less what posting changed
        book = {key: counted.get(key, Decimal(0)) - change.get(key, Decimal(0)) for key in counted.keys() | change.keys()}
    return {
        "stocktake_id": stocktake.stocktake_id, "location_id": stocktake.location_id, "status": stocktake.status,
        "complete": stocktake.complete, "created_at": stocktake.created_at,
        "counts": [{"item_id": row.item_id, "lot": row.lot, "counted": row.quantity, "counted_by": row.counted_by,
                    "counted_at": row.counted_at, "book": book.get((row.item_id, row.lot), Decimal(0)),
                    "difference": row.quantity - book.get((row.item_id, row.lot), Decimal(0))} for row in rows],
        "adjustments": [{"item_id": move.item, "lot": move.lot, "book": book.get((move.item, move.lot), Decimal(0)),
                         "counted": counted.get((move.item, move.lot), Decimal(0)), "quantity": change[(move.item, move.lot)],
                         "reason": move.reason} for move in adjustments],
    }


def stocktake_events(session: Session, stocktake_id: str) -> list[DocumentEvent]:
    get(session, Stocktake, stocktake_id, "stocktake")
    return document_events(session, DOCUMENT, stocktake_id)


# --- helpers -----------------------------------------------------------------------------------


def _still_counting(stocktake: Stocktake, past: str) -> None:
    if stocktake.status != COUNTING:
        raise Conflict(f"stocktake {stocktake.stocktake_id} is {stocktake.status}: it can no longer be {past}")


def _count_rows(session: Session, stocktake_id: str) -> list:
    return session.execute(text(
        """SELECT item_id, lot, quantity, counted_by, counted_at FROM stocktake_counts
           WHERE stocktake_id = :stocktake ORDER BY item_id, lot NULLS FIRST"""), {"stocktake": stocktake_id}).all()


def _counts(stocktake: Stocktake, rows: Iterable) -> dict[operations.StockKey, Decimal]:
    return {(row.item_id, stocktake.location_id, row.lot): row.quantity for row in rows}


def _book(session: Session, stocktake: Stocktake, *, for_update: bool = False) -> dict[operations.StockKey, Decimal]:
    """The location's balances; `for_update` when adjustments are computed from them (nothing moves in between)."""
    balances = stock_service.lot_balances_at(session, stocktake.location_id, for_update=for_update)
    return {(item, stocktake.location_id, lot): quantity for (item, lot), quantity in balances.items()}


def _complete_locations(stocktake: Stocktake) -> list[str]:
    return [stocktake.location_id] if stocktake.complete else []


def _source_ref(stocktake_id: str) -> str:
    return f"{DOCUMENT}:{stocktake_id}"
