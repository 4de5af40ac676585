"""What every router shares: the database session of a request, id and quantity types, base models."""

from collections.abc import Iterator
from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.orm import Session

Id = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")]
Quantity = Annotated[Decimal, Field(gt=0, max_digits=24, decimal_places=9)]
Person = Annotated[str, Field(min_length=1, max_length=200, pattern=r"\S")]
Reason = Annotated[str, Field(min_length=1, max_length=500, pattern=r"\S")]
# A person's name that clients used to send for the audit trail: still accepted, so they keep working, and
# ignored: audit rows record the authenticated caller (kernel.auth), never a name from the body.
NamedInBody = Annotated[str | None, Field(max_length=200, deprecated=True,
                                          description="ignored: the audit trail records the authenticated caller")]


class In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class EventOut(Out):
    id: int
    ts: datetime
    action: str
    from_status: str | None
    to_status: str | None
    actor: str | None
    note: str | None


def _session(request: Request) -> Iterator[Session]:
    """One session per request: the services commit once, or nothing is written."""
    with request.app.state.sessions() as opened:
        yield opened


Db = Annotated[Session, Depends(_session)]
