"""Transfers between the plant's locations, and the stock available at each location.

A transfer is requested (items and quantities from one location to another), approved by someone
else, shipped (the goods leave the source for the transfer's own transit location), received at the
destination (in one or several receipts), and posted once nothing remains in transit. What never
arrives is written off with a reason. Each step calls the pure rules of `inventory.rules.operations`
(lifecycle, `transfer_ship`, `transfer_receive`, `write_off_in_transit`, `check_transfer_can_post`),
posts the moves they plan with source_ref `transfer:<id>`, writes a `document_events` row and
commits once; a refused step raises NotFound (404) or Conflict (409) and writes nothing.

Goods in transit sit in the location `transit:<id>` (kind 'transit', name "in transit: <id>"),
created when the transfer ships. It belongs to no warehouse, so `available` counts them nowhere, and
the ledger still shows where every unit is: Σ over all locations + Σ written off never changes.

Decisions, stated:
- Four eyes: a transfer needs exactly one approval, from a person other than its requester (names
  compared trimmed and case-insensitively, as `operations.approve` does). Transfers carry no value,
  so the purchase-order value thresholds do not apply.
- Shipping never goes below what the source holds, whatever its negative-stock policy: 'allow' books
  material a machine has already consumed, but a transfer would move goods that are not there into
  transit, where they would then have to be "received". A shortage is refused with what is on hand.
- Lots: a ship line naming a lot takes that lot; a line without one is picked first-expiry-first-out,
  then first-in-first-out (`inventory.rules.lots.allocate`) from the source's known lots, after the
  named lots of the same request are taken. The unknown lot is never picked (as in backflush). A ship
  request without lines ships every requested quantity, picked this way.
- Receipts and write-offs name (item, lot, quantity); the lot may be left out when the item is in
  transit in exactly one lot. Several lines for the same (item, lot) add up.
- Cancelling records an optional reason; shipping, receiving and posting record an optional actor.
- `available_stock` lives here because transit is what it leaves out; it has no reservations to
  subtract yet, and shows a location's total as the ledger has it (a negative unknown-lot balance
  lowers it; nothing is clamped).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from decimal import Decimal
from typing import NamedTuple

from sqlalchemy import select
from sqlalchemy.orm import Session

from inventory.services.backflush import lot_balances
from inventory.rules import operations
from inventory.rules.backflush import remaining_after
from inventory.rules.lots import NegativeStockPolicy, allocate
from inventory.rules.operations import TransferAction, TransferStatus, transition
from inventory.models import DocumentEvent, Item, Location, StockMove, Transfer, TransferLine
from kernel.rules.refusals import Conflict, as_conflict
from inventory.services import stock as stock_service
from inventory.services.documents import add_event, describe, document_events, change_status, locked
from kernel.db.unit_of_work import get

DOCUMENT = "transfer"
TRANSIT_KIND = "transit"


class Line(NamedTuple):
    """A quantity of an item, in a lot or (None) in whichever lot the rule of the step says."""

    item_id: str
    quantity: Decimal
    lot: str | None = None


# --- the transfer lifecycle --------------------------------------------------------------------

def request_transfer(session: Session, transfer_id: str, from_location: str, to_location: str,
                     lines: Mapping[str, Decimal], requested_by: str) -> dict:
    if session.get(Transfer, transfer_id) is not None:
        raise Conflict(f"transfer {transfer_id!r} already exists")
    requester = _person(requested_by, "the requester (requested_by)")
    for location_id in (from_location, to_location):
        _stock_location(session, location_id)
    if from_location == to_location:
        raise Conflict(f"a transfer moves goods between two locations; {from_location!r} is both source and destination")
    if not lines:
        raise Conflict("a transfer needs at least one line (item and quantity)")
    for item_id, quantity in lines.items():
        get(session, Item, item_id, "item")
        if quantity <= 0:
            raise Conflict(f"the quantity of {item_id} requested must be positive, got {quantity}")
    session.add(Transfer(transfer_id=transfer_id, from_location=from_location, to_location=to_location,
                         status=TransferStatus.REQUESTED.value, requested_by=requester))
    session.flush()
    session.add_all(TransferLine(transfer_id=transfer_id, item_id=item_id, quantity=quantity)
                    for item_id, quantity in sorted(lines.items()))
    add_event(session, DOCUMENT, transfer_id, "request", None, TransferStatus.REQUESTED.value, requester,
              describe({(item, None): quantity for item, quantity in lines.items()}))
    session.commit()
    return transfer_view(session, transfer_id)


def approve_transfer(session: Session, transfer_id: str, approver: str) -> dict:
    """One approval, by someone other than the requester (four eyes)."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.APPROVE)
        approval = operations.approve((), approver, transfer.requested_by, needed=1)
    change_status(session, DOCUMENT, transfer, TransferAction.APPROVE, after, approval.approvers[-1])
    session.commit()
    return transfer_view(session, transfer_id)


def ship_transfer(session: Session, transfer_id: str, lines: Sequence[Line] | None = None, actor: str | None = None) -> dict:
    """Ship from the source into transit: the lots named, else picked FEFO/FIFO; never more than is there."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.SHIP)
    wanted = list(lines) if lines is not None else [Line(line.item_id, line.quantity) for line in transfer.lines]
    shipping = _pick_lots(session, get(session, Location, transfer.from_location, "location"), wanted)
    with as_conflict():
        moves = operations.transfer_ship(_as_rule(transfer), shipping)
    transit_id = operations.transit_location(transfer.transfer_id)
    if session.get(Location, transit_id) is None:
        session.add(Location(location_id=transit_id, name=f"in transit: {transfer.transfer_id}", kind=TRANSIT_KIND,
                             line=None, negative_stock=NegativeStockPolicy.BLOCK.value))
        session.flush()
    stock_service.post_moves(session, moves, source_ref=_source_ref(transfer_id))
    change_status(session, DOCUMENT, transfer, TransferAction.SHIP, after, actor, describe(shipping))
    session.commit()
    return transfer_view(session, transfer_id)


def receive_transfer(session: Session, transfer_id: str, lines: Sequence[Line], actor: str | None = None) -> dict:
    """Receive at the destination out of transit; what is not received stays in transit."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.RECEIVE)
    in_transit = _in_transit(session, transfer_id)
    receiving = _from_transit(lines, in_transit, "received")
    with as_conflict():
        update = operations.transfer_receive(_as_rule(transfer), in_transit, receiving)
    stock_service.post_moves(session, update.moves, source_ref=_source_ref(transfer_id))
    change_status(session, DOCUMENT, transfer, TransferAction.RECEIVE, after, actor, _with_rest(describe(receiving), update))
    session.commit()
    return transfer_view(session, transfer_id)


def write_off_transfer(session: Session, transfer_id: str, lines: Sequence[Line], reason: str,
                       actor: str | None = None) -> dict:
    """Write off goods lost in transit, with the reason (it is also on every move)."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.WRITE_OFF)
    in_transit = _in_transit(session, transfer_id)
    lost = _from_transit(lines, in_transit, "written off")
    with as_conflict():
        update = operations.write_off_in_transit(_as_rule(transfer), in_transit, lost, reason)
    stock_service.post_moves(session, update.moves, source_ref=_source_ref(transfer_id))
    change_status(session, DOCUMENT, transfer, TransferAction.WRITE_OFF, after, actor,
                   _with_rest(f"{describe(lost)}: {reason.strip()}", update))
    session.commit()
    return transfer_view(session, transfer_id)


def post_transfer(session: Session, transfer_id: str, actor: str | None = None) -> dict:
    """Close the transfer; refused while anything remains in transit."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.POST)
        operations.check_transfer_can_post(_as_rule(transfer), _in_transit(session, transfer_id))
    change_status(session, DOCUMENT, transfer, TransferAction.POST, after, actor)
    session.commit()
    return transfer_view(session, transfer_id)


def cancel_transfer(session: Session, transfer_id: str, actor: str | None = None, reason: str | None = None) -> dict:
    """Only before shipping: goods that have left must be received or written off."""
    transfer = locked(session, Transfer, transfer_id, DOCUMENT)
    with as_conflict():
        after = transition(TransferStatus(transfer.status), TransferAction.CANCEL)
    change_status(session, DOCUMENT, transfer, TransferAction.CANCEL, after, actor, reason)
    session.commit()
    return transfer_view(session, transfer_id)


# --- views -------------------------------------------------------------------------------------

def list_transfers(session: Session, status: str | None = None) -> list[dict]:
    query = select(Transfer.transfer_id).order_by(Transfer.created_at, Transfer.transfer_id)
    if status:
        query = query.where(Transfer.status == status)
    return [transfer_view(session, transfer_id) for transfer_id in session.scalars(query)]


def transfer_view(session: Session, transfer_id: str) -> dict:
    """The transfer with, per line and per lot, what was requested, shipped, received, written off and is in transit.

    Quantities come from the ledger's moves of the transfer, by where they went: into transit
    (shipped), from transit to the destination (received), from transit out of the plant (written off).
    """
    transfer = get(session, Transfer, transfer_id, "transfer")
    transit_id = operations.transit_location(transfer_id)
    zero = dict.fromkeys(("shipped", "received", "written_off"), Decimal(0))
    per_lot: dict[tuple[str, str | None], dict[str, Decimal]] = {}
    for move in session.scalars(select(StockMove).where(StockMove.source_ref == _source_ref(transfer_id))
                                .order_by(StockMove.id)):
        if move.to_location == transit_id:
            kind = "shipped"
        elif move.from_location == transit_id:
            kind = "received" if move.to_location is not None else "written_off"
        else:  # a transfer's moves all touch its transit location; anything else is not its to count
            continue
        totals = per_lot.setdefault((move.item_id, move.lot), dict(zero))
        totals[kind] += move.quantity
    lines = []
    for line in transfer.lines:
        lots = [{"lot": lot, **totals, "in_transit": totals["shipped"] - totals["received"] - totals["written_off"]}
                for (item, lot), totals in sorted(per_lot.items(), key=lambda kv: kv[0][1] or "") if item == line.item_id]
        summed = {kind: sum((lot[kind] for lot in lots), Decimal(0)) for kind in (*zero, "in_transit")}
        lines.append({"item_id": line.item_id, "requested": line.quantity, **summed, "lots": lots})
    shipped = transfer.status not in (TransferStatus.REQUESTED.value, TransferStatus.APPROVED.value,
                                      TransferStatus.CANCELLED.value)
    return {"transfer_id": transfer.transfer_id, "from_location": transfer.from_location,
            "to_location": transfer.to_location, "status": transfer.status, "requested_by": transfer.requested_by,
            "created_at": transfer.created_at, "transit_location": transit_id if shipped else None, "lines": lines}


def transfer_events(session: Session, transfer_id: str) -> list[DocumentEvent]:
    get(session, Transfer, transfer_id, "transfer")
    return document_events(session, DOCUMENT, transfer_id)


def available_stock(session: Session, item_id: str | None = None, location_id: str | None = None) -> list[dict]:
    """Per item and warehouse or line-side location, Σ on hand over its lots (`operations.available`):
    goods in transit are available nowhere."""
    if item_id is not None:
        get(session, Item, item_id, "item")
    if location_id is not None:
        get(session, Location, location_id, "location")
    on_hand = {(row["item_id"], row["location_id"], row["lot"]): row["quantity"]
               for row in stock_service.on_hand(session, item_id, location_id)}
    with as_conflict():
        totals = operations.available(on_hand)
    return [{"item_id": item, "location_id": location, "quantity": quantity}
            for (item, location), quantity in sorted(totals.items())]


# --- helpers -----------------------------------------------------------------------------------


def _as_rule(transfer: Transfer) -> operations.Transfer:
    return operations.Transfer(transfer.transfer_id, transfer.from_location, transfer.to_location,
                               {line.item_id: line.quantity for line in transfer.lines})


def _source_ref(transfer_id: str) -> str:
    return f"{DOCUMENT}:{transfer_id}"



def _stock_location(session: Session, location_id: str) -> Location:
    location = get(session, Location, location_id, "location")
    if location.kind == TRANSIT_KIND:
        raise Conflict(f"{location_id} is a transfer's transit location: a transfer goes between warehouse "
                       "or line-side locations")
    return location


def _person(name: str, what: str) -> str:
    if not name or not name.strip():
        raise Conflict(f"{what} is needed")
    return name.strip()


def _in_transit(session: Session, transfer_id: str) -> dict[tuple[str, str | None], Decimal]:
    return stock_service.lot_balances_at(session, operations.transit_location(transfer_id))


def _pick_lots(session: Session, source: Location, wanted: Iterable[Line]) -> dict[tuple[str, str | None], Decimal]:
    """(item, lot) → quantity to ship: named lots first, then FEFO/FIFO; refused if the source holds too little."""
    named: dict[tuple[str, str], Decimal] = {}
    picked: dict[str, Decimal] = {}
    for line in wanted:
        if line.lot is None:
            picked[line.item_id] = picked.get(line.item_id, Decimal(0)) + line.quantity
        else:
            named[(line.item_id, line.lot)] = named.get((line.item_id, line.lot), Decimal(0)) + line.quantity
    items = sorted({item for item, _ in named} | set(picked))
    balances = {item: lots for (item, _), lots in lot_balances(session, [source.location_id], items).items()}
    policy = NegativeStockPolicy(source.negative_stock)
    shipping: dict[tuple[str, str | None], Decimal] = {}
    short = []
    requests = [(item, lot, quantity) for (item, lot), quantity in sorted(named.items())]
    requests += [(item, None, quantity) for item, quantity in sorted(picked.items())]
    for item, lot, quantity in requests:
        lots = balances.get(item, [])
        candidates = [balance for balance in lots if lot is None or balance.lot == lot]
        with as_conflict():
            allocation = allocate(quantity, candidates, policy)
        if allocation.shortage > 0:
            held = sum((balance.quantity for balance in candidates if balance.quantity > 0), Decimal(0))
            short.append(f"{quantity} {item}{'' if lot is None else f' lot {lot}'} asked, {held} on hand")
            continue
        balances[item] = remaining_after(lots, allocation)
        for pick in allocation.picks:
            shipping[(item, pick.lot)] = shipping.get((item, pick.lot), Decimal(0)) + pick.quantity
    if short:
        raise Conflict(f"cannot ship from {source.location_id}: {'; '.join(short)}. Goods that are not there cannot "
                       f"be shipped, whatever the location's negative-stock policy ({source.negative_stock})")
    return shipping


def _from_transit(lines: Iterable[Line], in_transit: Mapping[tuple[str, str | None], Decimal],
                  past: str) -> dict[tuple[str, str | None], Decimal]:
    """(item, lot) → quantity; a line without a lot takes the item's only lot in transit."""
    quantities: dict[tuple[str, str | None], Decimal] = {}
    for line in lines:
        lot = line.lot
        if lot is None:
            lots = sorted({lot or "(no lot)" for item, lot in in_transit if item == line.item_id})
            if len(lots) > 1:
                raise Conflict(f"{line.item_id} is in transit in lots {', '.join(lots)}: name the lot {past}")
            lot = next((lot for item, lot in in_transit if item == line.item_id), None)
        quantities[(line.item_id, lot)] = quantities.get((line.item_id, lot), Decimal(0)) + line.quantity
    if not quantities:
        raise Conflict(f"nothing {past}: give at least one line (item, quantity, lot)")
    return quantities


def _with_rest(note: str, update: operations.TransitUpdate) -> str:
    return f"{note}; still in transit: {describe(update.in_transit) or 'nothing'}"
