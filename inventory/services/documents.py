"""What every document service shares: its audit trail (`document_events`), its row lock and status
change, and quantities written out for a person."""

from __future__ import annotations

from collections.abc import Mapping
from decimal import Decimal
from enum import Enum

from sqlalchemy import inspect, select
from sqlalchemy.orm import Session

from inventory.models import DocumentEvent
from kernel.rules.refusals import NotFound


def add_event(session: Session, document: str, document_id: str, action: str, from_status: str | None,
              to_status: str | None, actor: str | None = None, note: str | None = None) -> None:
    session.add(DocumentEvent(document=document, document_id=document_id, action=action, from_status=from_status,
                              to_status=to_status, actor=actor, note=note))


def locked(session: Session, model, document_id: str, document: str):
    """The document's row, locked until commit: two steps on one document cannot interleave."""
    found = session.get(model, document_id, with_for_update=True)
    if found is None:
        raise NotFound(f"{document.replace('_', ' ')} {document_id!r} does not exist")
    return found


def change_status(session: Session, document: str, row, action: Enum, after: Enum, actor: str | None,
                  note: str | None = None) -> None:
    """Move the document's row to `after` and record who did it, in the caller's transaction."""
    before = row.status
    row.status = after.value
    add_event(session, document, inspect(row).identity[0], action.value, before, after.value, actor, note)


def document_events(session: Session, document: str, document_id: str) -> list[DocumentEvent]:
    return list(session.scalars(select(DocumentEvent).where(DocumentEvent.document == document,
                                                            DocumentEvent.document_id == document_id)
                                .order_by(DocumentEvent.id)))


def describe(quantities: Mapping[tuple[str, str | None], Decimal]) -> str:
    """Quantities as "10 steel lot C-17, 4 screw", for an event's note."""
    return ", ".join(f"{quantity} {item}" + ("" if lot is None else f" lot {lot}")
                     for (item, lot), quantity in sorted(quantities.items(), key=lambda kv: (kv[0][0], kv[0][1] or "")))
