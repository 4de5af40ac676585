"""The unit of work is a SQLAlchemy Session: a service loads through it, calls the rules, writes what they
decided and commits once (or raises, and nothing is written). Routers never commit. These are the steps
every service shares."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from kernel.rules.refusals import Conflict, NotFound

Row = TypeVar("Row")


def get(session: Session, model: type[Row], key: Any, what: str) -> Row:
    """The row of `model` with this primary key, or NotFound naming `what`."""
    found = session.get(model, key)
    if found is None:
        raise NotFound(f"{what} {key!r} does not exist")
    return found


def create(session: Session, model: type[Row], key: Any, what: str, **fields: Any) -> Row:
    """A new row, committed; Conflict when one with this key exists."""
    row = add_new(session, model, key, what, **fields)
    session.commit()
    return row


def add_new(session: Session, model: type[Row], key: Any, what: str, **fields: Any) -> Row:
    """A new row in the unit of work, for the caller to commit with the rest; Conflict when one with this key exists."""
    if session.get(model, key) is not None:
        raise Conflict(f"{what} {key!r} already exists")
    row = model(**fields)
    session.add(row)
    return row


def update(session: Session, row: Row, changes: Mapping[str, Any]) -> Row:
    """`row` with `changes` applied, committed."""
    for field, value in changes.items():
        setattr(row, field, value)
    session.commit()
    return row
